"""Bad inputs and faults give one clear line (exit status 2, before any training) or are recovered with a
warning: a run folder refuses to resume with other settings, a resumed record counts every session's time,
corrupt caches are rebuilt, truncated run files and data files are named, wrong flags are caught at start,
the notebook runner checks profile/model/kernel before starting a kernel, and files get umask permissions."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import seqrec_lib.experiments as ex
import seqrec_lib.train as train_module
from seqrec_lib.data import loading
from seqrec_lib.data.download import ensure_file
from seqrec_lib.data.loading import load_dataset
from seqrec_lib.data.parsers import DataFormatError, read_ml100k_ratings
from seqrec_lib.data.preprocess import KCore, Preprocessing
from seqrec_lib.data.registry import DatasetSpec, SourceFile, get_spec
from seqrec_lib.evaluation import EvalProtocol
from seqrec_lib.models.fame import FameConfig
from seqrec_lib.models.sasrec import SASRecConfig
from seqrec_lib.profiles import get_profile
from seqrec_lib.records import CorruptFileError, save_torch_atomic, write_json_atomic
from seqrec_lib.train import PROG, TrainConfig, main, train_and_evaluate
from seqrec_lib.two_stage import run_dir_for, train_fame_two_stage
from tests.helpers import tiny_split

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1",      # this checkout's package, even where it is not installed
       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
SMALL = ["--dataset", "synthetic", "--d", "16", "--n-blocks", "1", "--n-heads", "1", "--threads", "1",
         "--progress", "false", "--patience", "5"]


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m seqrec_lib.train ARGS`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "seqrec_lib.train", *map(str, args)], cwd=cwd, text=True,
                          capture_output=True, timeout=600, env=ENV)


def assert_one_line(stderr: str, *needles: str) -> str:
    """``stderr`` is one line '<PROG>: error: ...' holding every needle, without a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: "), stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------- 1. a run folder knows its settings

def test_resuming_with_other_settings_is_refused_naming_them(tmp_path):
    run = tmp_path / "run"
    assert main(SMALL + ["--epochs", "1", "--out", str(run)]) == 0
    before = folder_bytes(run)
    # an unfinished budget with another lr: the old code resumed Adam at lr 0.001 and recorded lr 0.01
    done = cli(SMALL + ["--epochs", "2", "--lr", "0.01", "--out", run], tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    line = assert_one_line(done.stderr, str(run), "lr (folder 0.001, now 0.01)")
    assert "epochs (folder" not in line                                    # epochs may change: not a difference
    # a finished folder with another setting: the old code printed "training had finished" and wrote a record
    # with the new settings and the old metrics
    done = cli(SMALL + ["--epochs", "1", "--hidden-dropout", "0.2", "--out", run], tmp_path)
    assert done.returncode == 2 and "training had finished" not in done.stdout
    assert_one_line(done.stderr, "hidden_dropout (folder 0.5, now 0.2)")
    assert folder_bytes(run) == before


def test_only_a_longer_budget_continues_and_the_record_is_the_runs(tmp_path):
    split_args = SMALL + ["--out"]
    run, fresh = tmp_path / "run", tmp_path / "fresh"
    assert main(split_args + [str(run), "--epochs", "1"]) == 0
    first = json.loads((run / "result.json").read_text())
    done = cli(split_args + [run, "--epochs", "2"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "continuing with epoch 2" in done.stdout
    resumed = json.loads((run / "result.json").read_text())
    assert resumed["train_config"]["epochs"] == 2 and resumed["epochs_run"] == 2
    assert resumed["optimizer"]["lr"] == resumed["train_config"]["lr"] == 0.001
    # the record is the one a straight 2-epoch run makes: same run key and metrics
    assert main(split_args + [str(fresh), "--epochs", "2"]) == 0
    straight = json.loads((fresh / "result.json").read_text())
    assert resumed["run_id"] == straight["run_id"] != first["run_id"]
    assert resumed["metrics"] == straight["metrics"]
    # a shorter budget than the epochs already run would record a budget the run did not keep
    before = folder_bytes(run)
    done = cli(split_args + [run, "--epochs", "1"], tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert_one_line(done.stderr, str(run), "already holds 2 epochs", "--epochs")
    assert folder_bytes(run) == before


def test_the_library_refuses_the_same(tmp_path):
    split = tiny_split()
    cfg = TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu")
    model_config = SASRecConfig(d=16, n_heads=2, max_len=10)
    train_and_evaluate("sasrec", split, model_config, cfg, run_dir=tmp_path)
    with pytest.raises(train_module.RunMismatchError, match=r"n_heads \(folder 2, now 1\)"):
        train_and_evaluate("sasrec", split, SASRecConfig(d=16, n_heads=1, max_len=10), cfg, run_dir=tmp_path)


# ------------------------------------------------------------------- 2. a resumed record counts every session

def test_total_seconds_counts_every_session(tmp_path, monkeypatch):
    split = tiny_split()
    model_config = SASRecConfig(d=16, n_heads=2, max_len=10)

    def cfg(epochs):
        return TrainConfig(epochs=epochs, batch_size=16, progress=False, device="cpu")

    slow = train_module.Trainer._train_epoch

    def slow_epoch(self, *args, **kwargs):
        time.sleep(1.0)
        return slow(self, *args, **kwargs)

    monkeypatch.setattr(train_module.Trainer, "_train_epoch", slow_epoch)
    _, first = train_and_evaluate("sasrec", split, model_config, cfg(1), run_dir=tmp_path)
    monkeypatch.setattr(train_module.Trainer, "_train_epoch", slow)
    _, resumed = train_and_evaluate("sasrec", split, model_config, cfg(2), run_dir=tmp_path)
    logged = sum(e["train_seconds"] + e["eval_seconds"] for e in resumed["epoch_log"])
    assert resumed["epoch_log"][0]["train_seconds"] >= 1.0
    assert resumed["timings"]["total_seconds"] >= logged
    assert resumed["timings"]["total_seconds"] >= first["timings"]["total_seconds"] - 0.5


# ----------------------------------------------------------------------------------------- 3. corrupt files

CONTENT = b"1\t10\t5\t100\n1\t11\t4\t200\n2\t10\t3\t150\n2\t11\t5\t140\n3\t10\t1\t50\n"


@pytest.fixture
def fake_spec(tmp_path, monkeypatch) -> DatasetSpec:
    """A dataset served from a file:// URL, with no known checksum."""
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "u.data").write_bytes(CONTENT)
    spec = DatasetSpec(name="fake", description="fake",
                       interactions=SourceFile("fake/u.data", url=(remote / "u.data").as_uri()),
                       parser=read_ml100k_ratings, preprocessing=Preprocessing(kcore=KCore(2, 2)),
                       has_timestamps=True)
    monkeypatch.setattr(loading, "get_spec", lambda name: spec if name == "fake" else get_spec(name))
    return spec


@pytest.mark.parametrize("damage", ["truncated", "zip garbage", "json garbage"])
def test_a_corrupt_cache_entry_is_rebuilt_with_a_warning(tmp_path, fake_spec, damage):
    cache = tmp_path / "cache"
    load_dataset("fake", data_dir=tmp_path / "data", cache_dir=cache)
    arrays, meta = next(cache.glob("fake-*.npz")), next(cache.glob("fake-*.json"))
    if damage == "truncated":
        arrays.write_bytes(arrays.read_bytes()[:len(arrays.read_bytes()) // 2])
    elif damage == "zip garbage":
        arrays.write_bytes(b"PK\x03\x04" + os.urandom(200))
    else:
        meta.write_text('["not", "a", "cache entry"]')
    with pytest.warns(UserWarning, match="unreadable cache entry") as caught:
        data = load_dataset("fake", data_dir=tmp_path / "data", cache_dir=cache)
    assert data.n_interactions == 4 and len(caught) == 1 and "\n" not in str(caught[0].message)
    assert load_dataset("fake", data_dir=tmp_path / "data", cache_dir=cache).n_interactions == 4  # rebuilt


def test_a_data_file_without_checksum_cut_mid_line_is_an_error(tmp_path, fake_spec):
    path = tmp_path / "data" / "fake" / "u.data"
    path.parent.mkdir(parents=True)
    path.write_bytes(CONTENT[:-2])              # "3\t10\t1\t5": a whole-looking line, timestamp 5 instead of 50
    with pytest.raises(DataFormatError, match=r"u\.data, line 5: .*no line end"):
        load_dataset("fake", data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def test_a_truncated_checkpoint_is_one_line_in_the_cli(tmp_path):
    run = tmp_path / "run"
    assert main(SMALL + ["--epochs", "1", "--out", str(run)]) == 0
    _truncate(run / "last.pt")
    done = cli(SMALL + ["--epochs", "2", "--out", run], tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert_one_line(done.stderr, str(run / "last.pt"), "delete")


def test_a_truncated_checkpoint_raises_corrupt_file_error_in_the_library(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu")
    model_config = SASRecConfig(d=16, n_heads=2, max_len=10)
    train_and_evaluate("sasrec", tiny_split(), model_config, cfg, run_dir=tmp_path)
    _truncate(tmp_path / "last.pt")
    with pytest.raises(CorruptFileError, match=r"last\.pt.*delete it") as excinfo:
        train_and_evaluate("sasrec", tiny_split(), model_config, cfg, run_dir=tmp_path)
    assert excinfo.value.path == tmp_path / "last.pt"


@pytest.mark.parametrize("name", ["result.json", "best.pt"])
def test_a_truncated_pretraining_file_raises_corrupt_file_error(tmp_path, name):
    split, cfg = tiny_split(), TrainConfig(epochs=1, batch_size=16, progress=False, device="cpu")
    fame = FameConfig(d=16, n_heads=2, max_len=10, n_experts=2)
    train_fame_two_stage(split, fame, cfg, tmp_path)
    folder = run_dir_for(tmp_path, "sasrec", fame.sasrec_config(), split, cfg, (EvalProtocol(),))
    _truncate(folder / name)
    with pytest.raises(CorruptFileError, match=rf"{name}.*delete"):
        train_fame_two_stage(split, fame, cfg, tmp_path)


SMOKE = get_profile("smoke")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs") / "smoke" / "runs"
    spec = ex.single_run_spec(SMOKE, "sasrec", "synthetic")
    return spec, root, ex.run(spec, SMOKE, root)


def test_a_truncated_record_through_experiments_run(smoke_run):
    spec, root, record = smoke_run
    path = Path(record["run_dir"]) / "result.json"
    saved = path.read_bytes()
    _truncate(path)
    try:
        with pytest.raises(CorruptFileError, match="result.json"):
            ex.run(spec, SMOKE, root)
    finally:
        path.write_bytes(saved)


def test_a_truncated_best_checkpoint_through_load_trained(smoke_run):
    _, _, record = smoke_run
    path = Path(record["run_dir"]) / "best.pt"
    saved = path.read_bytes()
    _truncate(path)
    try:
        with pytest.raises(CorruptFileError, match="best.pt"):
            ex.load_trained(record, SMOKE)
    finally:
        path.write_bytes(saved)


# ------------------------------------------------------------------------------ 4. command-line checks at start

def _not_a_dir(tmp_path: Path) -> str:
    (tmp_path / "file").write_text("")
    return str(tmp_path / "file" / "run")


BASE = ["--dataset", "synthetic", "--threads", "1", "--progress", "false", "--epochs", "1"]


@pytest.mark.parametrize("args, needles", [
    (["--out", _not_a_dir], ["--out", "file", "not a folder"]),
    (["--select-metric", "NDCG@7"], ["--select-metric", "NDCG@7", "NDCG@5, NDCG@10, NDCG@20"]),
    (["--select-metric", "AUC"], ["select_metric", "'AUC'"]),
    (["--n-heads", "0"], ["n_heads must be at least 1, got 0"]),
    (["--attn-dropout", "1.0"], ["attn_dropout must lie in [0, 1), got 1.0"]),
    (["--hidden-dropout", "-0.1"], ["hidden_dropout must lie in [0, 1), got -0.1"]),
    (["--model", "gru4rec", "--dropout", "1.5"], ["dropout must lie in [0, 1), got 1.5"]),
    (["--model", "bert4rec", "--n-heads", "0"], ["n_heads must be at least 1, got 0"]),
    (["--model", "bert4rec", "--attn-dropout", "1"], ["attn_dropout must lie in [0, 1), got 1.0"]),
    (["--model", "mojito", "--n-heads", "0"], ["n_heads must be at least 1, got 0"]),
    (["--model", "mojito", "--dropout", "1.0"], ["dropout must lie in [0, 1), got 1.0"]),
    (["--lr", "-0.001"], ["lr must be at least 0, got -0.001"]),
    (["--lr", "0"], ["--lr 0", "nothing would train"]),
    (["--weight-decay", "-0.1"], ["weight_decay must be at least 0, got -0.1"]),
    (["--device", "cuda"], ["--device", "cuda", "CUDA"]),
    (["--device", "gpu"], ["--device", "'gpu'"]),
    (["--model", "mojito", "--dataset", "beauty"], ["mojito", "beauty", "timestamps"]),
    (["--model", "tisasrec", "--dataset", "beauty"], ["tisasrec", "beauty", "timestamps"]),
])
def test_bad_flags_are_one_line_before_data_or_training(args, needles, tmp_path, monkeypatch, capsys):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")

    def no_data(*a, **k):
        raise AssertionError("the data was loaded (or training started) before the flags were checked")

    monkeypatch.setattr("seqrec_lib.data.loading.load_dataset", no_data)
    monkeypatch.setattr(train_module.Trainer, "fit", no_data)
    args = [a(tmp_path) if callable(a) else a for a in args]
    assert main(BASE + ["--out", str(tmp_path / "run")] + args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_line(captured.err, *needles)
    assert not (tmp_path / "run").exists()


def test_a_bad_flag_is_one_line_from_the_command(tmp_path):
    done = cli(["--dataset", "synthetic", "--n-heads", "0", "--out", tmp_path / "run"], tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert_one_line(done.stderr, "n_heads must be at least 1, got 0")
    assert not (tmp_path / "run").exists()


def test_the_library_gets_the_same_checks():
    with pytest.raises(ValueError, match="n_heads must be at least 1"):
        SASRecConfig(n_heads=0)
    with pytest.raises(ValueError, match=r"attn_dropout must lie in \[0, 1\)"):
        SASRecConfig(attn_dropout=1.0)
    with pytest.raises(ValueError, match="lr must be at least 0"):
        TrainConfig(lr=-1e-3)
    with pytest.raises(ValueError, match="weight_decay must be"):
        TrainConfig(weight_decay=-1.0)
    with pytest.raises(ValueError, match="select_metric"):
        TrainConfig(select_metric="NDCG@x")
    with pytest.raises(ValueError, match=r"select_metric 'NDCG@7'.*NDCG@5, NDCG@10, NDCG@20"):
        train_module.Trainer(TrainConfig(select_metric="NDCG@7"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            train_module.resolve_device("cuda")


# ------------------------------------------------------------------------------------ 5. the notebook runner

@pytest.fixture
def notebook(tmp_path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile = "demo"\nmodel = "sasrec"\ndataset = ""\n',
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import seqrec_lib\nprint(profile, model)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "nb.ipynb")
    return tmp_path / "nb.ipynb"


@pytest.mark.parametrize("args, needles", [
    (["-p", "profile", "bogus"], ["'bogus'", "profile", "smoke, demo, paper"]),
    (["-p", "model", "sasrecc"], ["'sasrecc'", "model", "sasrec", "fame"]),
    (["-p", "dataset", "beuaty"], ["'beuaty'", "dataset", "beauty"]),
    (["-k", "bad/name"], ["'bad/name'", "kernel"]),
])
def test_the_notebook_runner_checks_values_before_a_kernel(notebook, tmp_path, args, needles, monkeypatch, capsys):
    from seqrec_lib import notebook_runner as runner

    def no_kernel(*a, **k):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(runner, "ensure_kernel", no_kernel)
    monkeypatch.setattr("papermill.execute_notebook", no_kernel)
    assert runner.main([str(notebook), str(tmp_path / "out.ipynb"), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith(runner.PROG)]
    assert len(lines) == 1 and lines[0].startswith(f"{runner.PROG}: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not (tmp_path / "out.ipynb").exists()


def test_the_notebook_runner_command_rejects_a_bogus_profile(notebook, tmp_path):
    done = subprocess.run([sys.executable, "-m", "seqrec_lib.notebook_runner", str(notebook),
                           str(tmp_path / "out.ipynb"), "-p", "profile", "bogus"],
                          text=True, capture_output=True, timeout=300, env=ENV)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "unknown profile 'bogus'" in done.stderr and not (tmp_path / "out.ipynb").exists()


# ------------------------------------------------------------------------------------- 6. file permissions

@pytest.fixture
def umask_022():
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_files_respect_the_umask(tmp_path, umask_022):
    write_json_atomic(tmp_path / "r.json", {"a": 1})
    save_torch_atomic({"w": torch.zeros(2)}, tmp_path / "w.pt")
    assert _mode(tmp_path / "r.json") == 0o644 and _mode(tmp_path / "w.pt") == 0o644
    os.umask(0o077)
    write_json_atomic(tmp_path / "private.json", {"a": 1})
    assert _mode(tmp_path / "private.json") == 0o600


def test_cache_entries_and_downloads_respect_the_umask(tmp_path, fake_spec, umask_022):
    cache = tmp_path / "cache"
    load_dataset("fake", data_dir=tmp_path / "data", cache_dir=cache)
    for path in [*cache.iterdir(), tmp_path / "data" / "fake" / "u.data"]:
        assert _mode(path) == 0o644, path
    assert ensure_file(fake_spec.interactions, tmp_path / "data").read_bytes() == CONTENT
    assert np.load(next(cache.glob("*.npz")))["items"].size == 4
