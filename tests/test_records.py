"""Run provenance: the commit a record names is the code the run executed."""

import torch


def test_provenance_names_the_commit_the_process_imported_not_the_head_at_writing_time(monkeypatch):
    import seqrec_lib.records as records
    monkeypatch.setattr(records, "git_commit", lambda path=None: "f" * 40)   # HEAD moved on during a long run
    assert records.provenance(torch.device("cpu"))["git_commit"] == records.CODE_COMMIT != "f" * 40


def test_cpu_device_name_carries_the_cpu_model_and_its_matmul_instruction_sets(monkeypatch, tmp_path):
    """Sessions land on different CPUs (AVX2-only or AVX-512 with bf16): a record's speeds need the model beside them."""
    import seqrec_lib.blas as blas
    import seqrec_lib.records as records
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    real_path = blas.Path                                   # /proc/cpuinfo is read by blas.cpuinfo
    monkeypatch.setattr(blas, "Path", lambda p: info if p == "/proc/cpuinfo" else real_path(p))
    name = records.device_name(torch.device("cpu"))
    assert name.startswith("cpu (Test CPU 9000, ")
    assert torch.backends.cpu.get_cpu_capability() in name and "native bf16: avx512_bf16" in name
    assert f"{torch.get_num_threads()} threads" in name
    info.write_text("model name\t: Old CPU\nflags\t\t: fpu avx2\n")
    assert "native bf16: none" in records.device_name(torch.device("cpu"))


def test_git_commit_of_a_copied_tree_comes_from_the_environment(tmp_path, monkeypatch):
    import seqrec_lib.records as records
    monkeypatch.setenv("SEQREC_GIT_COMMIT", "abc1234")
    assert records.git_commit() == "abc1234 (copied tree)"         # over the package's own git work tree too
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))     # tmp_path is no git work tree
    monkeypatch.delenv("SEQREC_GIT_COMMIT", raising=False)
    assert records.git_commit(tmp_path) is None
    monkeypatch.setenv("SEQREC_GIT_COMMIT", "abc1234")
    assert records.git_commit(tmp_path) == "abc1234 (copied tree)"
