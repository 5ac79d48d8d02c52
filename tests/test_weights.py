"""Shipped weights (seqrec_lib.weights, scripts/ship_weights.py, experiments.load_trained): a tiny model trained on
the smoke profile's synthetic data, exported as safetensors, loaded back without its best.pt: the same scores, the
record's test NDCG@10; the integrity checks, the size guard and the refusals. The realdata test reloads every
committed shipped file and reproduces its record."""

import ast
import json
import shutil
from pathlib import Path

import pytest
import torch

import seqrec_lib.experiments as ex
import seqrec_lib.weights as w
from seqrec_lib.evaluation import EvalProtocol, evaluate
from seqrec_lib.profiles import get_profile
from seqrec_lib.train import torch_threads

from tests.helpers import SCRIPTS, load_script, need_datasets

SMOKE = get_profile("smoke")
MODELS = ("sasrec", "fame", "mojito", "pop")     # mojito: an int64 buffer (its FISM item table); pop: no parameters


def record_protocol(record: dict, key: str = "full") -> EvalProtocol:
    """The record's own evaluation protocol ``key`` (its history mask, ks, seed, ...), as it computed its metrics."""
    (entry,) = [p for p in record["protocol"]["evaluation"] if p["key"] == key]
    return EvalProtocol(**{k: v for k, v in entry.items() if k not in ("key", "text")})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``<tmp>/outputs/smoke/{runs,records}``: one tiny run per model (2 epochs) and its record published beside."""
    outputs = tmp_path_factory.mktemp("trained") / "outputs" / "smoke"
    with torch_threads(1):
        for model in MODELS:
            record = ex.run(ex.single_run_spec(SMOKE, model, "synthetic", progress=False), SMOKE, outputs / "runs")
            folder = Path(record["run_dir"])
            ex.published_record(folder).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / "result.json", ex.published_record(folder))
    return outputs


@pytest.fixture
def outputs(trained, tmp_path):
    """A private copy of ``trained`` (tests delete checkpoints and corrupt files)."""
    return Path(shutil.copytree(trained, tmp_path / "outputs" / "smoke"))


def folder_of(outputs: Path, model: str) -> Path:
    (folder,) = [p for p in (outputs / "runs").iterdir() if p.name.startswith(f"{model}-")]
    return folder


def record_of(outputs: Path, model: str) -> dict:
    """The record as ``experiments.run`` reads it back: its run folder on this machine."""
    folder = folder_of(outputs, model)
    return {**json.loads((folder / "result.json").read_text()), "run_dir": str(folder)}


def export(outputs: Path, *models: str, **kwargs) -> list[dict]:
    return w.export_runs([folder_of(outputs, m) for m in models], outputs / "records", outputs / "weights", **kwargs)


def scores(model, split) -> torch.Tensor:
    """Full-catalogue scores of every test user (seeded: MOJITO's attention noise acts in evaluation too)."""
    torch.manual_seed(0)
    with torch.no_grad():
        return model.predict(split.eval_set("test"))


@pytest.mark.parametrize("model_name", ["sasrec", "fame", "mojito"])
def test_shipped_weights_give_the_same_model_as_best_pt(outputs, model_name):
    record = record_of(outputs, model_name)
    original, _, split = ex.load_trained(record, SMOKE)                  # from the run folder's best.pt
    (entry,) = export(outputs, model_name)
    folder = Path(record["run_dir"])
    path = outputs / "weights" / f"{folder.name}.safetensors"
    assert entry["file"] == path.name and entry["bytes"] == path.stat().st_size
    assert entry["sha256"] == w.sha256_of(path.read_bytes()) and entry["run_id"] == record["run_id"]
    assert entry["test_full_NDCG@10"] == record["metrics"]["test"]["full"]["NDCG@10"]
    (folder / "best.pt").unlink()
    (folder / "last.pt").unlink(missing_ok=True)
    shipped, _, _ = ex.load_trained(record, SMOKE)                       # from outputs/smoke/weights/
    before, after = original.state_dict(), shipped.state_dict()
    assert before.keys() == after.keys()
    for key in before:                                                   # bit for bit, dtypes kept (no fp16)
        assert after[key].dtype == before[key].dtype and torch.equal(after[key], before[key]), key
    assert torch.equal(scores(shipped, split), scores(original, split))
    for key, protocol in ((p["key"], record_protocol(record, p["key"])) for p in record["protocol"]["evaluation"]):
        got = evaluate(shipped, split, "test", protocol)["NDCG@10"]
        assert got == pytest.approx(record["metrics"]["test"][key]["NDCG@10"], abs=1e-6), key


def test_a_record_of_another_machine_finds_the_checkouts_weights(outputs, monkeypatch, tmp_path):
    """A committed record names the run folder of the machine that trained it; its weights are then looked up in this
    checkout's ``outputs/<profile>/weights`` (what a fresh clone has)."""
    record = record_of(outputs, "sasrec")
    original, _, split = ex.load_trained(record, SMOKE)
    export(outputs, "sasrec")
    monkeypatch.setattr(w, "REPO_ROOT", tmp_path)                         # outputs/smoke/weights is the copy's
    elsewhere = dict(record, run_dir=f"/another/machine/runs/{Path(record['run_dir']).name}")
    assert w.weights_dirs(elsewhere, SMOKE.name) == [Path("/another/machine/weights"), outputs / "weights"]
    shipped, _, _ = ex.load_trained(elsewhere, SMOKE)
    assert torch.equal(scores(shipped, split), scores(original, split))


def test_mojito_keeps_its_integer_buffer_as_is(outputs):
    export(outputs, "mojito")
    folder = folder_of(outputs, "mojito")
    shipped = w.load_shipped(folder.name, outputs / "weights")
    original = torch.load(folder / "best.pt", weights_only=True)
    assert {k: t.dtype for k, t in shipped.items()} == {k: t.dtype for k, t in original.items()}
    assert torch.int64 in {t.dtype for t in shipped.values()}
    assert {t.dtype for t in shipped.values() if t.is_floating_point()} == {torch.float32}


def test_a_model_without_parameters_needs_no_weights(outputs):
    model, _, _ = ex.load_trained(record_of(outputs, "pop"), SMOKE)      # no best.pt, nothing shipped
    assert not any(True for _ in model.parameters())


def test_a_corrupted_file_is_one_clear_error(outputs):
    (entry,) = export(outputs, "sasrec")
    path = outputs / "weights" / entry["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01                                         # one bit of one weight
    path.write_bytes(bytes(data))
    record = record_of(outputs, "sasrec")
    (Path(record["run_dir"]) / "best.pt").unlink()
    with pytest.raises(w.WeightsError, match=rf"{path}.*expects {entry['bytes']} bytes, sha256 {entry['sha256']}"):
        ex.load_trained(record, SMOKE)
    assert len(w.check_manifest(outputs / "weights")) == 1


def test_a_missing_file_is_one_clear_error(outputs):
    (entry,) = export(outputs, "sasrec")
    (outputs / "weights" / entry["file"]).unlink()
    record = record_of(outputs, "sasrec")
    (Path(record["run_dir"]) / "best.pt").unlink()
    with pytest.raises(w.WeightsError, match=rf"{entry['file']} are missing; MANIFEST.json expects {entry['bytes']}"):
        ex.load_trained(record, SMOKE)
    assert any("missing" in p for p in w.check_manifest(outputs / "weights"))


def test_no_weights_anywhere_names_the_run_and_how_to_train_it(outputs):
    record = record_of(outputs, "sasrec")
    (Path(record["run_dir"]) / "best.pt").unlink()
    with pytest.raises(FileNotFoundError) as caught:                     # NoWeightsError is one
        ex.load_trained(record, SMOKE)
    message = str(caught.value)
    assert isinstance(caught.value, w.NoWeightsError)
    assert Path(record["run_dir"]).name in message and "re-run the notebook" in message
    assert f"{w.duration(record['timings']['total_seconds'])} on a CPU (measured" in message


def test_the_message_for_a_paper_run_gives_its_plan_and_measured_time():
    record = json.loads((w.RECORDS_DIR / "sasrec-6fab93b782ac.json").read_text())
    message = w.missing_weights_message(record, Path("nowhere/best.pt"), [Path("nowhere")])
    assert "SEQREC_DATA_DIR=/path/to/data python scripts/paper_runs.py --plan beauty-sasrec" in message
    assert f"{w.duration(record['timings']['total_seconds'])} on a CPU (measured" in message
    assert "on a GPU minutes" in message
    gpu = json.loads((w.RECORDS_DIR / "gru4rec-90cd8158daba.json").read_text())     # trained on an H200
    assert "on a GPU (measured" in w.missing_weights_message(gpu, None, [Path("nowhere")])
    fame = json.loads((w.RECORDS_DIR / "fame-05546fa8eccf.json").read_text())
    assert f"sasrec-{fame['pretrained']['run_id']} first" in w.missing_weights_message(fame, None, [Path("nowhere")])


def test_the_size_guard_refuses_and_writes_nothing(outputs):
    with pytest.raises(w.ExportRefused, match="over the limit of 1000 bytes; nothing written"):
        export(outputs, "sasrec", "fame", max_total_bytes=1000)
    assert not (outputs / "weights").exists()
    # the default 30 MB counts what is shipped already
    big = {"record": "big", "run_id": "x", "file": "big.safetensors", "bytes": w.MAX_TOTAL_BYTES - 10,
           "sha256": "0" * 64}
    w.write_manifest({"big": big}, outputs / "weights")
    with pytest.raises(w.ExportRefused, match=f"over the limit of {w.MAX_TOTAL_BYTES} bytes"):
        export(outputs, "sasrec")
    assert list(w.read_manifest(outputs / "weights")) == ["big"]
    assert not list((outputs / "weights").glob("sasrec-*"))


@pytest.mark.parametrize("change", ["metric", "run_id"])
def test_refuses_weights_that_are_not_the_committed_records(outputs, change):
    folder = folder_of(outputs, "sasrec")
    committed_path = ex.published_record(folder)
    committed = json.loads(committed_path.read_text())
    if change == "metric":
        committed["metrics"]["test"]["full"]["HR@10"] += 1e-9
        expected = r"test HR@10 \(full\)"
    else:
        committed["run_id"] = "000000000000"
        expected = "run_id"
    committed_path.write_text(json.dumps(committed))
    with pytest.raises(w.ExportRefused, match=expected):
        export(outputs, "sasrec")
    assert not (outputs / "weights").exists()


def test_refuses_a_checkpoint_that_is_not_exact_fp32(outputs):
    folder = folder_of(outputs, "sasrec")
    state = torch.load(folder / "best.pt", weights_only=True)
    key = next(iter(k for k, t in state.items() if t.is_floating_point()))
    state[key] = state[key].half()
    torch.save(state, folder / "best.pt")
    with pytest.raises(w.ExportRefused, match=rf"{key}.*torch.float16"):
        export(outputs, "sasrec")


def test_the_script_ships_replaces_and_checks(outputs, capsys):
    script = load_script("ship_weights")
    dirs = ["--records-dir", str(outputs / "records"), "--weights-dir", str(outputs / "weights")]
    names = [folder_of(outputs, m).name for m in ("sasrec", "mojito")]
    assert script.main(["--runs", str(outputs / "runs"), *names, *dirs]) == 0
    assert script.main(["--runs", str(outputs / "runs"), f"{names[0]}.json", "--check", *dirs]) == 0   # replaced
    assert sorted(w.read_manifest(outputs / "weights")) == sorted(names)
    manifest = json.loads((outputs / "weights" / w.MANIFEST).read_text())
    assert manifest["total_bytes"] == sum(p.stat().st_size for p in (outputs / "weights").glob("*.safetensors"))
    (outputs / "weights" / f"{names[1]}.safetensors").write_bytes(b"")
    assert script.main(["--check", *dirs]) == 1
    assert script.main(["--runs", str(outputs / "runs"), folder_of(outputs, "pop").name, *dirs]) == 2  # no best.pt
    assert "refused, nothing written" in capsys.readouterr().err


def test_the_script_imports_no_other_script():
    tree = ast.parse((SCRIPTS / "ship_weights.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not imported & {p.stem for p in SCRIPTS.glob("*.py")}


def test_the_committed_shipped_set_is_intact():
    """Every committed file has its manifest's size and sha256, and the set is within the limit (vacuous while none
    is shipped)."""
    assert w.check_manifest(w.WEIGHTS_DIR) == []


@pytest.mark.realdata
def test_shipped_weights_reproduce_their_committed_records(tmp_path):
    """Each shipped file, loaded through load_trained (no run folder: the shipped weights), gives its record's test
    NDCG@10 (full ranking, the record's own protocol: history masked as it was) to 1e-6."""
    entries = w.read_manifest(w.WEIGHTS_DIR)
    if not entries:
        pytest.skip(f"no shipped weights yet ({w.WEIGHTS_DIR / w.MANIFEST} lists none)")
    need_datasets(*sorted({entry["dataset"] for entry in entries.values()}))
    paper = get_profile("paper")
    with torch_threads(1):
        for name, entry in entries.items():
            record = json.loads((w.RECORDS_DIR / f"{name}.json").read_text())
            record["run_dir"] = str(tmp_path / "runs" / name)          # no best.pt here: the shipped file is used
            model, _, split = ex.load_trained(record, paper)
            assert (split.n_users, split.n_items) == (record["data"]["n_users"], record["data"]["n_items"]), name
            got = evaluate(model, split, "test", record_protocol(record, "full"))["NDCG@10"]
            assert got == pytest.approx(entry["test_full_NDCG@10"], abs=1e-6), name
            assert got == pytest.approx(record["metrics"]["test"]["full"]["NDCG@10"], abs=1e-6), name


@pytest.mark.parametrize("shift, accepted", [(4.4e-10, True), (2e-8, False)])
def test_mrr_may_differ_by_summation_order_only(outputs, shift, accepted):
    """HR@k and NDCG@k must be equal (above); MRR, a float mean over all ranks, within weights.MEAN_TOLERANCE."""
    folder = folder_of(outputs, "sasrec")
    committed_path = ex.published_record(folder)
    committed = json.loads(committed_path.read_text())
    committed["metrics"]["test"]["full"]["MRR"] += shift
    committed_path.write_text(json.dumps(committed))
    if accepted:
        export(outputs, "sasrec")
        assert (outputs / "weights" / f"{folder.name}.safetensors").exists()
    else:
        with pytest.raises(w.ExportRefused, match=r"test MRR \(full\)"):
            export(outputs, "sasrec")
