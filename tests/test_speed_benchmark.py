"""The speed benchmark's agreement check compares like with like: paths interleaved in one process each train on
their own RNG stream (batch order, dropout seeds), as they would alone."""

import pytest
import torch

from tests.helpers import need_datasets


@pytest.mark.realdata
def test_interleaved_paths_draw_the_batches_and_dropout_each_would_draw_alone() -> None:
    need_datasets("ml-100k")
    from benchmarks.speed import Path_

    threads = torch.get_num_threads()
    try:
        first, second = (Path_("exact", "sasrec-ce", "ml-100k", 1, seed=3) for _ in range(2))
        for _ in range(2):                                   # interleaved, as benchmarks/speed.py's measure()
            first.epoch()
            torch.rand(7)                                    # anything else drawing from the global stream
            second.epoch()
    finally:
        torch.set_num_threads(threads)
    for (name, a), b in zip(first.model.named_parameters(), second.model.parameters()):
        assert torch.equal(a, b), name


@pytest.mark.realdata
def test_op_count_counts_a_training_step_of_each_path():
    need_datasets("ml-100k")
    from benchmarks.op_count import count_step

    counts = {path: count_step(path, "sasrec-ce", "ml-100k", 16, "cpu") for path in ("padded", "exact")}
    assert all(c["ops"] > 100 and c["host_reads"] >= 0 for c in counts.values()), counts


@pytest.mark.realdata
def test_the_profile_of_a_model_with_sampled_negatives_runs():
    """The benchmark profiles every exact row: a training step of a BCE model needs the trainer's negatives."""
    need_datasets("ml-100k")
    from benchmarks.speed import Path_, profile_exact

    threads = torch.get_num_threads()
    try:
        p = Path_("exact", "sasrec-bce", "ml-100k", 1, seed=1)
        tables, share = profile_exact(p.model, p.split, p.optimizer, p.evaluation, 256)
    finally:
        torch.set_num_threads(threads)
    assert "aten::" in tables["train_step"] and "aten::" in tables["evaluation"]
    assert 0.0 < share < 1.0                       # a BCE step does matrix products, and other work too


def test_ce_products_prints_a_row_per_chunk_and_dtype(capsys):
    from benchmarks.ce_products import main

    threads = torch.get_num_threads()
    try:
        assert main(["--chunks", "4,8", "--items", "50", "--d", "8", "--repeats", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "MKL" in out.splitlines()[0] or "no MKL" in out.splitlines()[0]
    rows = [line for line in out.splitlines() if line.startswith(("| 4 |", "| 8 |"))]
    assert len(rows) == 4 and all(len(row.split("|")) == 7 for row in rows), rows


def test_mojito_block_benchmark_prints_the_eager_row_and_its_matmul_share(capsys):
    from benchmarks.mojito_block import main

    threads = torch.get_num_threads()
    try:
        assert main(["--batch", "4", "--length", "6", "--d", "8", "--repeats", "1", "--rounds", "2",
                     "--paths", "eager"]) == 0
        with pytest.raises(SystemExit):
            main(["--paths", "eager,jit"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| eager |"))
    assert row.split("|")[4].strip() == "1.00x" and len(row.split("|")[2].split("/")) == 2
    share = float(out.split("matrix products are ")[1].split("%")[0])
    assert 0 < share < 100


def test_matmul_share_and_the_bound_it_puts_on_the_speed_up():
    from types import SimpleNamespace

    from benchmarks.speed import matmul_bounds, matmul_share

    events = [SimpleNamespace(key=k, self_cpu_time_total=t)
              for k, t in [("aten::mm", 30.0), ("aten::bmm", 10.0), ("aten::mul", 40.0), ("aten::addmm", 20.0)]]
    assert matmul_share(events) == pytest.approx(0.6)
    rows = [{"model": "m", "dataset": "d", "path": "eager", "median_epoch_seconds": 9.0},
            {"model": "m", "dataset": "d", "path": "exact", "median_epoch_seconds": 5.0, "matmul_share": 0.6},
            {"model": "n", "dataset": "d", "path": "exact", "median_epoch_seconds": 5.0}]
    (line,) = matmul_bounds(rows)                  # the unprofiled row has no bound
    assert "60%" in line and "3.00 s" in line and "at most 3.00x over eager" in line
