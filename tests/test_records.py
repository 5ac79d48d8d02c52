"""Run provenance: the commit a record names is the code the run executed."""

import torch


def test_provenance_names_the_commit_the_process_imported_not_the_head_at_writing_time(monkeypatch):
    import seqrec_lib.records as records
    monkeypatch.setattr(records, "git_commit", lambda path=None: "f" * 40)   # HEAD moved on during a long run
    assert records.provenance(torch.device("cpu"))["git_commit"] == records.CODE_COMMIT != "f" * 40
