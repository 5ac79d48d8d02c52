"""The experiment layer end to end on the smoke profile (tiny synthetic data, 2 epochs per run)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import seqrec_lib.experiments as ex
import seqrec_lib.train as train_module
import seqrec_lib.two_stage as two_stage
from seqrec_lib.data.sequences import data_fingerprint
from seqrec_lib.profiles import get_profile

SMOKE = get_profile("smoke")
DATA = "synthetic"
TIME_LABELS = ["MOJITO", "SASRec-BCE", "SASRec-CE"] + (["TiSASRec"] if "tisasrec" in ex.MODELS else [])


def _pipeline(root: Path) -> list[dict]:
    records = ex.run_many(ex.head_sweep_specs(SMOKE, DATA), SMOKE, root)
    heads = ex.best_heads(records, DATA)
    records += ex.run_many(ex.expert_sweep_specs(SMOKE, DATA, heads), SMOKE, root)
    records += ex.run_many(ex.time_specs(SMOKE, DATA), SMOKE, root)
    return records


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return root, _pipeline(root)


def _metrics(records):
    return [(r["label"], r["run_id"], r["metrics"]) for r in records]


def test_sweeps_train_every_spec_and_share_the_pretraining(pipeline):
    root, records = pipeline
    labels = [r["label"] for r in records]
    assert labels == ["SASRec-CE", "SASRec-CE", "FAME w/o MoE", "FAME w/o MoE", "FAME"] + TIME_LABELS
    by_heads = {r["model_config"]["n_heads"]: r for r in records          # the head sweep's, not the MOJITO table's
                if r["label"] == "SASRec-CE" and r["samples_step"] is None}
    for record in records:
        assert (Path(record["run_dir"]) / "result.json").exists()
        assert json.loads((Path(record["run_dir"]) / "result.json").read_text())["label"] == record["label"]
        if record["model"] == "fame":   # fine-tuned from the head sweep's SASRec-CE at the same H
            assert record["pretrained"]["reused"]
            assert record["pretrained"]["run_id"] == by_heads[record["model_config"]["n_heads"]]["run_id"]
    time_rows = records[-len(TIME_LABELS):]
    mojito, bce, ce = time_rows[:3]
    for record in time_rows:       # the MOJITO table: one rule for every row
        assert record["samples_step"] == SMOKE.mojito_samples_step
        assert list(record["metrics"]["test"]) == ["sampled", "full"]
        assert record["optimizer"]["betas"] == [0.9, 0.98]
    assert bce["model_config"]["loss"] == "bce" and ce["model_config"]["loss"] == "ce"
    sampled = mojito["protocol"]["evaluation"][0]
    assert (sampled["mode"], sampled["n_negatives"], sampled["n_cohorts"]) == ("sampled", 100, 5)
    # the SASRec-CE runs are the FAME pretrainings: only one sasrec folder per H, none extra
    assert len([p for p in root.iterdir() if p.name.startswith("sasrec-")]) == len(SMOKE.heads) + 2  # + BCE, CE


def test_rerun_skips_every_finished_run(pipeline, monkeypatch):
    root, records = pipeline
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(ex, "train_and_evaluate", forbidden)
    monkeypatch.setattr(ex, "train_fame_two_stage", forbidden)
    monkeypatch.setattr(two_stage, "train_and_evaluate", forbidden)
    monkeypatch.setattr(train_module.Trainer, "fit", forbidden)
    again = _pipeline(root)
    assert _metrics(again) == _metrics(records)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == stamps


def _count_epochs(monkeypatch) -> list[int]:
    calls = []
    real = train_module.Trainer._train_epoch

    def spy(self, model, split, optimizer, epoch):
        calls.append(epoch)
        return real(self, model, split, optimizer, epoch)

    monkeypatch.setattr(train_module.Trainer, "_train_epoch", spy)
    return calls


def test_interrupted_run_continues_from_its_checkpoint(tmp_path, monkeypatch):
    spec = ex.single_run_spec(SMOKE, "sasrec", DATA, epochs=2, patience=5)
    straight = ex.run(spec, SMOKE, tmp_path / "a")
    # "cut off" after one epoch: the same run folder, trained for 1 of its 2 epochs, no result.json
    folder = ex.run_dir(spec, SMOKE, tmp_path / "b")
    _, split = ex.load_split(DATA, SMOKE)
    one_epoch = dataclasses.replace(spec.train_config, epochs=1)
    train_module.train_and_evaluate("sasrec", split, spec.model_config, one_epoch, spec.protocols, folder)
    (folder / "result.json").unlink()
    assert (folder / "last.pt").exists()
    calls = _count_epochs(monkeypatch)
    resumed = ex.run(spec, SMOKE, tmp_path / "b")
    assert calls == [1]                                   # only the second epoch was trained
    assert resumed["metrics"] == straight["metrics"] and resumed["epochs_run"] == 2


def test_fame_without_result_but_with_checkpoint_finishes_without_training(pipeline, tmp_path, monkeypatch):
    _, records = pipeline
    fame = next(r for r in records if r["label"] == "FAME")
    spec = ex.expert_sweep_specs(SMOKE, DATA, fame["model_config"]["n_heads"])[0]
    first = ex.run(spec, SMOKE, tmp_path)
    (Path(first["run_dir"]) / "result.json").unlink()
    calls = _count_epochs(monkeypatch)
    again = ex.run(spec, SMOKE, tmp_path)
    assert calls == [] and again["metrics"] == first["metrics"] == fame["metrics"]


def test_load_trained_gives_the_best_weights(pipeline):
    _, records = pipeline
    for record in [r for r in records if r["label"] in ("FAME", "MOJITO")]:
        model, data, split = ex.load_trained(record, SMOKE)
        assert not model.training and data.name == split.name == DATA
        assert split.max_len == record["model_config"]["max_len"]
        best = torch.load(Path(record["run_dir"]) / "best.pt", weights_only=True)
        assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())


def test_best_heads_uses_validation_not_test():
    def record(heads, valid, test, label="FAME w/o MoE", seed=0):
        return {"label": label, "model": "fame", "dataset": DATA, "seed": seed, "run_id": f"{heads}-{seed}",
                "model_config": {"n_heads": heads, "n_experts": 1},
                "metrics": {"valid": {"full": {"NDCG@20": valid}}, "test": {"full": {"NDCG@20": test}}}}

    records = [record(1, 0.10, 0.30), record(2, 0.20, 0.10), record(4, 0.15, 0.50),
               record(8, 0.90, 0.90, label="SASRec-CE")]
    assert ex.best_heads(records, DATA) == 2
    records += [record(4, 0.30, 0.0, seed=1)]           # mean over seeds: H=4 → 0.225 > 0.20
    assert ex.best_heads(records, DATA) == 4
    with pytest.raises(ValueError, match="no 'FAME w/o MoE' runs on dataset 'beauty'"):
        ex.best_heads(records, "beauty")
    fame = [dict(record(2, v, 0.0, label="FAME"), model_config={"n_heads": 2, "n_experts": n})
            for n, v in ((2, 0.1), (4, 0.3), (8, 0.2))]
    assert ex.best_experts(fame + [dict(fame[0], model_config={"n_heads": 4, "n_experts": 16})], DATA, 2) == 4


def test_results_frame_and_summary_table(pipeline):
    _, records = pipeline
    frame = ex.results_frame(records)
    assert list(frame.columns[:7]) == ["label", "model", "dataset", "heads", "experts", "seed", "run_id"]
    for column in ("test_full_NDCG@20", "valid_full_NDCG@20", "test_sampled_NDCG@10", "test_sampled_NDCG@10_std"):
        assert column in frame
    assert frame.loc[frame.label == "FAME w/o MoE", "experts"].tolist() == [1, 1]
    assert frame.loc[frame.label == "SASRec-CE", "experts"].isna().all()
    assert frame["test_sampled_NDCG@10"].notna().sum() == len(TIME_LABELS)

    # three seeds of one configuration: mean and sample std over seeds
    fake = pd.concat([frame[frame.label == "FAME"]] * 3, ignore_index=True)
    fake["seed"], fake["run_id"] = [1, 2, 3], ["a", "b", "c"]
    fake["test_full_NDCG@20"] = [0.1, 0.2, 0.3]
    table = ex.summary_table(fake, ["NDCG@20", "HR@20"])
    row = table.loc[(DATA, "FAME")]
    assert row["NDCG@20"] == pytest.approx(0.2) and row["NDCG@20_std"] == pytest.approx(np.std([.1, .2, .3], ddof=1))
    assert row["n_seeds"] == 3
    assert ex.format_summary(table, ["NDCG@20"]).loc[(DATA, "FAME"), "NDCG@20"] == "0.2000 ± 0.1000"
    sampled = ex.summary_table(frame[frame.model.isin(["mojito"]) | (frame.label == "SASRec-BCE")], ["NDCG@10"],
                               protocol="sampled")
    assert list(sampled.index.get_level_values("label")) == ["MOJITO", "SASRec-BCE"]
    assert "NDCG@10_cohort_std" in sampled
    with pytest.raises(ValueError, match="mix heads"):
        ex.summary_table(frame, ["NDCG@20"])           # a whole sweep is not one table row
    with pytest.raises(KeyError, match="test_full_NOPE"):
        ex.summary_table(frame, ["NOPE"])


def test_spec_builders():
    sasrec = ex.single_run_spec(SMOKE, "sasrec", DATA)
    fame = ex.single_run_spec(SMOKE, "fame", DATA)
    mojito = ex.single_run_spec(SMOKE, "mojito", DATA)
    assert (sasrec.label, fame.label, mojito.label) == ("SASRec-CE", "FAME", "MOJITO")
    assert fame.model_config.sasrec_config() == sasrec.model_config   # FAME pretrains exactly this SASRec
    assert [p.mode for p in mojito.protocols] == ["sampled", "full"]
    assert mojito.samples_step == SMOKE.mojito_samples_step and mojito.train_config == dataclasses.replace(
        SMOKE.mojito_train, seed=SMOKE.seeds[0], device=SMOKE.device)
    moe_free = ex.single_run_spec(SMOKE, "fame", DATA, n_experts=1, seed=7)
    assert moe_free.label == "FAME w/o MoE" and moe_free.seed == 7 and moe_free.protocols[0].seed == 7
    with pytest.raises(TypeError, match="no setting"):
        ex.single_run_spec(SMOKE, "sasrec", DATA, n_expertz=3)
    with pytest.raises(ValueError, match="model must be one of"):
        ex.single_run_spec(SMOKE, "gru5rec", DATA)
    table = ex.table_specs(SMOKE, DATA, 2, 2)
    assert [s.label for s in table] == ["SASRec-CE", "FAME w/o MoE", "FAME"] * len(SMOKE.seeds)
    assert all(s.model_config.n_heads == 2 for s in table)
    time_specs = ex.time_specs(SMOKE, DATA)
    assert [s.label for s in time_specs] == TIME_LABELS * len(SMOKE.seeds)
    assert time_specs[0].protocols == time_specs[1].protocols and time_specs[0].samples_step == time_specs[1].samples_step
    assert ex.runs_root(SMOKE) == Path("outputs/smoke/runs")
    with pytest.raises(TypeError, match="must be a FameConfig"):
        ex.RunSpec("fame", DATA, sasrec.model_config, sasrec.train_config, sasrec.protocols)
    assert ex.RunSpec("fame", DATA, moe_free.model_config, moe_free.train_config, moe_free.protocols).label == "FAME w/o MoE"


def test_load_split_is_cached_and_needs_a_synthetic_config():
    data, split = ex.load_split(DATA, SMOKE)
    assert ex.load_split(DATA, SMOKE)[1] is split and split.max_len == SMOKE.max_len
    assert data.n_users == SMOKE.synthetic.n_users
    windows = ex.load_split(DATA, SMOKE, samples_step=SMOKE.mojito_samples_step)[1]
    assert windows is not split and len(windows.train) >= len(split.train)
    no_synthetic = dataclasses.replace(get_profile("paper"), d=16, heads=(1, 2), experts=(2,), single_heads=2)
    with pytest.raises(ValueError, match="synthetic=None"):
        ex.load_split(DATA, no_synthetic)


def test_the_mojito_table_trains_every_row_on_the_same_windows(monkeypatch):
    """One rule for every row (issue 16): the same windows, training, optimiser and protocols; and the trainer
    feeds each model exactly those training samples."""
    specs = ex.time_specs(SMOKE, DATA, ablations=True)
    assert [s.label for s in specs] == (TIME_LABELS + [f"MOJITO ({name})" for name in ex.MOJITO_ABLATIONS]) \
        * len(SMOKE.seeds)
    assert len({(s.samples_step, s.train_config, s.protocols, s.max_len) for s in specs}) == 1
    assert {(s.model_config.adam_beta1, s.model_config.adam_beta2) for s in specs} == {(0.9, 0.98)}
    assert len({data_fingerprint(ex.load_split(s.dataset, SMOKE, s.samples_step, s.max_len)[1])["sha256"]
                for s in specs}) == 1
    ablations = [s.model_config for s in specs if s.label.startswith("MOJITO (")]
    assert [(c.lambda_long, c.time_context, c.faithful_batch_pairing, c.attn_noise) for c in ablations] == [
        (0.0, True, False, True), (0.1, False, False, True), (0.1, True, True, True), (0.1, True, False, False)]
    assert ex.time_specs(SMOKE, DATA) == specs[:len(TIME_LABELS)]          # smoke: no ablations by default
    assert ex.label_for("mojito", {"lambda_long": 0.0, "attn_noise": False}) == \
        "MOJITO (w/o long-term, w/o attention noise)"
    assert ex.label_for("mojito", {"lambda_long": 0.1}) == "MOJITO"      # a record made before the switches

    seen: dict[str, list] = {}
    real = train_module.Trainer._train_epoch

    def spy(self, model, split, optimizer, epoch):
        original = model.loss

        def loss(batch):
            seen.setdefault(type(model).__name__ + str(getattr(model, "n_negatives", "")), []).append(
                torch.cat([batch.users[:, None], batch.items, batch.targets], 1))
            return original(batch)

        model.loss = loss
        try:
            return real(self, model, split, optimizer, epoch)
        finally:
            del model.loss

    monkeypatch.setattr(train_module.Trainer, "_train_epoch", spy)
    _, split = ex.load_split(DATA, SMOKE, SMOKE.mojito_samples_step, SMOKE.max_len)
    rows = torch.cat([split.train.users[:, None], split.train.items, split.train.targets], 1)
    want = sorted(map(tuple, rows.tolist()))
    for spec in specs[:3]:                                               # MOJITO, SASRec-BCE, SASRec-CE
        one_epoch = dataclasses.replace(spec.train_config, epochs=1)
        train_module.train_and_evaluate(spec.model, split, spec.model_config, one_epoch, spec.protocols[:1])
    assert len(seen) == 3
    for batches in seen.values():
        assert sorted(map(tuple, torch.cat(batches).tolist())) == want


def test_a_published_record_is_a_finished_run_on_a_fresh_clone(tmp_path, monkeypatch):
    spec = ex.single_run_spec(SMOKE, "sasrec", DATA, epochs=1, patience=5)
    first = ex.run(spec, SMOKE, tmp_path / "a" / "runs")
    # a fresh clone: no run folder, only the record committed under <outputs>/<profile>/records/
    folder = ex.run_dir(spec, SMOKE, tmp_path / "b" / "runs")
    published = ex.published_record(folder)
    assert published == tmp_path / "b" / "records" / f"{folder.name}.json"
    published.parent.mkdir(parents=True)
    published.write_text((Path(first["run_dir"]) / "result.json").read_text())
    assert ex.is_done(spec, SMOKE, tmp_path / "b" / "runs")
    calls = _count_epochs(monkeypatch)
    again = ex.run(spec, SMOKE, tmp_path / "b" / "runs")
    assert calls == [] and again["metrics"] == first["metrics"] and not folder.exists()


def test_a_profile_that_trains_nothing_reads_committed_records_and_leaves_the_rest_out(tmp_path, monkeypatch,
                                                                                        capsys):
    """``train_missing=False`` (the paper profile): ``to_run`` keeps the specs with a finished record; a record
    committed under the repository's ``outputs/<profile>/records/`` counts wherever the runs root is; every
    ``run`` call is logged as read or trained."""
    quiet = dataclasses.replace(SMOKE, train_missing=False)
    first, second = ex.head_sweep_specs(SMOKE, DATA)[:2]
    trained = ex.run(first, SMOKE, tmp_path / "a" / "smoke" / "runs")
    committed = tmp_path / "repo_outputs"
    records = committed / "smoke" / "records"
    records.mkdir(parents=True)
    name = Path(trained["run_dir"]).name
    (records / f"{name}.json").write_text(Path(trained["run_dir"], "result.json").read_text())
    monkeypatch.setattr(ex, "COMMITTED_OUTPUTS", committed)
    root = tmp_path / "elsewhere" / "smoke" / "runs"
    assert ex.to_run([first, second], quiet, root) == [first]
    assert "1 of 2 runs have no published record" in capsys.readouterr().out
    assert ex.to_run([first, second], SMOKE, root) == [first, second]
    again = ex.run(first, quiet, root)
    assert again["metrics"] == trained["metrics"] and Path(again["run_dir"]) == root / name
    log = (root.parent / "logs" / ex.RUNS_LOG).read_text().splitlines()
    assert log == [f"read\t{name}\t{records / f'{name}.json'}"]
    first_log = (tmp_path / "a" / "smoke" / "logs" / ex.RUNS_LOG).read_text().splitlines()
    assert first_log[-1].startswith(f"trained\t{name}\t")


def test_head_diversity_compares_the_time_rows_and_fame_with_its_pretraining():
    paper = get_profile("paper")
    groups = ex.head_diversity_specs(paper)
    time_rows = groups["time"]
    assert {s.dataset for s in time_rows} == {"ml-100k"} and {s.seed for s in time_rows} == set(paper.seeds)
    assert sorted({s.label for s in time_rows}) == sorted(ex.HEAD_DIVERSITY_TIME_ROWS)
    assert all(s.model_config.n_heads == 2 for s in time_rows)
    facets = groups["facets"]
    assert [s.label for s in facets[:2]] == ["SASRec-CE", "FAME"] and {s.dataset for s in facets} == {"beauty"}
    fame = facets[1]
    assert fame == ex.single_run_spec(paper, "fame", "beauty", n_heads=paper.case_study_heads)   # Fig. 7's FAME
    assert ex.prerequisites(fame) == [facets[0]]


def test_with_weights_keeps_the_runs_a_notebook_can_load(tmp_path, capsys):
    trained = ex.run(ex.head_sweep_specs(SMOKE, DATA)[0], SMOKE, tmp_path / "smoke" / "runs")
    gone = dict(trained, run_dir=str(tmp_path / "nowhere"), label="SASRec-CE (moved)")
    assert ex.with_weights([trained, gone], SMOKE) == [trained]
    assert "1 of 2 runs have neither a checkpoint nor shipped weights" in capsys.readouterr().out
