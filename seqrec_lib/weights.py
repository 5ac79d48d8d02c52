"""Shipped weights: the best-validation checkpoints of committed records as fp32 safetensors, so a fresh clone can
redraw figures without retraining (docs/weights.md).

A run folder ``<runs root>/<model>-<run key>/`` holds ``best.pt`` (a torch state_dict) beside ``result.json``;
its record is committed as ``outputs/paper/records/<model>-<run key>.json``. ``export_runs`` writes the
state_dict as ``outputs/paper/weights/<model>-<run key>.safetensors`` (every tensor exactly as trained: fp32,
integer and bool buffers as they are; no fp16) and lists it in ``outputs/paper/weights/MANIFEST.json`` with its
size, sha256 and the record's test NDCG@10 (full ranking). It refuses a run whose ``result.json`` is not the
committed record (run id, test metrics), and a shipped set over ``MAX_TOTAL_BYTES``. ``load_shipped`` checks a
file's size and sha256 against the manifest before returning its state_dict; ``experiments.load_trained`` falls
back on it (``shipped_state_dict``) when a run folder has no ``best.pt``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from .records import temp_file_beside, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[1]
PAPER = REPO_ROOT / "outputs" / "paper"
RECORDS_DIR = PAPER / "records"             # the committed records
WEIGHTS_DIR = PAPER / "weights"             # the shipped weights and their manifest
STATUS_PAGE = PAPER / "results" / "status.md"   # which plan of scripts/paper_runs.py each unit belongs to
MANIFEST = "MANIFEST.json"
FORMAT = "seqrec-weights/1"
MAX_TOTAL_BYTES = 30_000_000
"""The shipped set (every file the manifest lists) stays under 30 MB (10^6 bytes), so the repository stays small."""
REFERENCE_METRIC = "NDCG@10"                # the record's test metric (full ranking) the manifest keeps for reference
SUFFIX = ".safetensors"

KEPT_DTYPES = (torch.float32, torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
"""What a shipped tensor may be: fp32, or an integer/bool buffer, stored as it is."""


class WeightsError(RuntimeError):
    """Shipped weights that cannot be used: the file is missing, or its size or sha256 is not the manifest's, or
    it is not the weights of the record asked for."""


class ExportRefused(WeightsError):
    """``export_runs`` wrote nothing: a run's ``result.json`` is not its committed record, a checkpoint holds a tensor
    that is not fp32 or an integer/bool buffer, or the shipped set would exceed ``MAX_TOTAL_BYTES``."""


class NoWeightsError(FileNotFoundError):
    """A record's run has neither ``best.pt`` in its run folder nor shipped weights; the message says how to train
    it."""


# ---------------------------------------------------------------- files and manifest


def weights_path(name: str, weights_dir: str | Path = WEIGHTS_DIR) -> Path:
    """``<weights_dir>/<name>.safetensors`` (``name``: the run folder's, ``<model>-<run key>``)."""
    return Path(weights_dir) / f"{name}{SUFFIX}"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(weights_dir: str | Path = WEIGHTS_DIR) -> dict[str, dict[str, Any]]:
    """The manifest's entries by record name (empty when there is no manifest yet)."""
    path = Path(weights_dir) / MANIFEST
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
        return {entry["record"]: entry for entry in manifest["weights"]}
    except (ValueError, KeyError, TypeError) as err:
        raise WeightsError(f"{path} is not a weights manifest ({FORMAT}): {err!r}") from None


def write_manifest(entries: Mapping[str, dict[str, Any]], weights_dir: str | Path = WEIGHTS_DIR) -> Path:
    """Write ``entries`` (by record name) as ``<weights_dir>/MANIFEST.json``, sorted by name; returns its path."""
    ordered = [entries[name] for name in sorted(entries)]
    path = Path(weights_dir) / MANIFEST
    write_json_atomic(path, {
        "format": FORMAT,
        "about": "fp32 safetensors of the best-validation checkpoint (best.pt) of the committed records in "
                 "outputs/paper/records/ (a record and its file share a name); bytes and sha256 are checked on "
                 f"loading; {REFERENCE_METRIC} is the record's test {REFERENCE_METRIC} (full ranking), for "
                 "reference. Written by scripts/ship_weights.py; docs/weights.md.",
        "max_total_bytes": MAX_TOTAL_BYTES,
        "total_bytes": sum(int(e["bytes"]) for e in ordered),
        "weights": ordered,
    })
    return path


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's header."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]).get("__metadata__", {}) or {}


def load_shipped(name: str, weights_dir: str | Path = WEIGHTS_DIR,
                 run_id: str | None = None) -> dict[str, torch.Tensor]:
    """The state_dict shipped for record ``name``, after checking the file against the manifest (size, sha256) and,
    with ``run_id``, that it is that run's. Raises ``WeightsError`` naming the file and what was expected when the
    file is missing or differs, or when the manifest has no such entry."""
    weights_dir = Path(weights_dir)
    entry = read_manifest(weights_dir).get(name)
    if entry is None:
        raise WeightsError(f"{weights_dir / MANIFEST} has no entry for {name!r}")
    path = weights_dir / entry["file"]
    expected = f"{entry['bytes']} bytes, sha256 {entry['sha256']}"
    if not path.is_file():
        raise WeightsError(f"shipped weights {path} are missing; {MANIFEST} expects {expected}")
    data = path.read_bytes()
    if len(data) != entry["bytes"] or sha256_of(data) != entry["sha256"]:
        raise WeightsError(f"shipped weights {path} are {len(data)} bytes, sha256 {sha256_of(data)}; "
                           f"{MANIFEST} expects {expected} (a changed or corrupted file)")
    if run_id is not None and entry.get("run_id") != run_id:
        raise WeightsError(f"shipped weights {path} are run {entry.get('run_id')!r}'s, not run {run_id!r}'s")
    return safetensors_load(data)


def check_manifest(weights_dir: str | Path = WEIGHTS_DIR) -> list[str]:
    """Every problem of the shipped set, one line each (empty: every manifest entry loads, its file has the
    manifest's size and sha256, the set is within ``MAX_TOTAL_BYTES`` and no ``.safetensors`` file is unlisted)."""
    weights_dir = Path(weights_dir)
    try:
        entries = read_manifest(weights_dir)
    except WeightsError as err:
        return [str(err)]
    problems = []
    for name, entry in entries.items():
        try:
            load_shipped(name, weights_dir, entry.get("run_id"))
        except WeightsError as err:
            problems.append(str(err))
    total = sum(int(e["bytes"]) for e in entries.values())
    if total > MAX_TOTAL_BYTES:
        problems.append(f"the shipped set is {total} bytes, over the limit of {MAX_TOTAL_BYTES}")
    listed = {e["file"] for e in entries.values()}
    if weights_dir.is_dir():
        problems += [f"{p} is not in {MANIFEST}" for p in sorted(weights_dir.glob(f"*{SUFFIX}"))
                     if p.name not in listed]
    return problems


# ---------------------------------------------------------------- export


def exact_tensors(state: Mapping[str, Any], source: str = "state_dict") -> dict[str, torch.Tensor]:
    """``state`` as contiguous CPU copies, every tensor exactly as it is: fp32, or an integer/bool buffer (kept as is).
    Anything else (fp16, bf16, fp64, a non-tensor) raises ``ExportRefused``: shipped weights are exact, never cast."""
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ExportRefused(f"{source}: {key!r} is a {type(value).__name__}, not a tensor")
        if value.dtype not in KEPT_DTYPES:
            raise ExportRefused(f"{source}: {key!r} is {value.dtype}; shipped weights are exact, so only float32 and "
                                "integer/bool buffers are kept (no fp16, no casting)")
        out[key] = value.detach().to("cpu").contiguous().clone()
    return out


MEAN_TOLERANCE = 1e-8
"""How far apart a metric other than HR@k and NDCG@k may be: MRR is a mean over every user's full rank, computed in
float32 before commit 3b2f05f and in float64 since, so a record made before then differs in the last digits
(Beauty's SASRec-CE(H = 2): 4.4e-10); HR@k and NDCG@k, functions of the ranks at the cutoffs, must be equal."""


def _same_value(a: Any, b: Any, metric: str = "") -> bool:
    """Equal (NaN equal to NaN: a metric JSON wrote as NaN); a metric other than HR@k / NDCG@k within
    ``MEAN_TOLERANCE``."""
    nan = lambda v: isinstance(v, float) and math.isnan(v)  # noqa: E731
    if a == b or (nan(a) and nan(b)):
        return True
    exact = metric.startswith(("HR@", "NDCG@")) or not all(isinstance(v, float) for v in (a, b))
    return not exact and abs(a - b) <= MEAN_TOLERANCE


def check_same_run(result: Mapping[str, Any], committed: Mapping[str, Any], name: str) -> None:
    """``ExportRefused`` unless ``result`` (a run folder's ``result.json``) is the committed record ``name``: the same
    run id, model and dataset and the same test metrics (every protocol, every metric, HR@k and NDCG@k to the last
    bit, the others within ``MEAN_TOLERANCE``; the first difference named)."""
    for field in ("run_id", "model", "dataset"):
        if result.get(field) != committed.get(field):
            raise ExportRefused(f"{name}: result.json has {field} {result.get(field)!r}, the committed record "
                                f"{committed.get(field)!r}")
    if name != f"{result['model']}-{result['run_id']}":
        raise ExportRefused(f"{name}: the folder's name is not <model>-<run id> of its result.json "
                            f"({result['model']}-{result['run_id']})")
    ours, theirs = result.get("metrics", {}).get("test", {}), committed.get("metrics", {}).get("test", {})
    for protocol in sorted(set(ours) | set(theirs)):
        a, b = ours.get(protocol, {}), theirs.get(protocol, {})
        for metric in sorted(set(a) | set(b)):
            if not _same_value(a.get(metric), b.get(metric), metric):
                raise ExportRefused(f"{name}: test {metric} ({protocol}) is {a.get(metric)!r} in result.json and "
                                    f"{b.get(metric)!r} in the committed record: the run folder's weights are not "
                                    "the committed record's")


def _reference_metric(record: Mapping[str, Any]) -> float | None:
    value = record.get("metrics", {}).get("test", {}).get("full", {}).get(REFERENCE_METRIC)
    return None if value is None else float(value)


def _prepare(folder: Path, records_dir: Path) -> tuple[str, bytes, dict[str, Any]]:
    """(name, safetensors bytes, manifest entry) of the run in ``folder``, after every check."""
    name = folder.name
    result_path, committed_path, checkpoint = folder / "result.json", records_dir / f"{name}.json", folder / "best.pt"
    for path, what in ((result_path, "result.json"), (committed_path, "committed record"), (checkpoint, "best.pt")):
        if not path.is_file():
            raise ExportRefused(f"{name}: no {what} at {path}")
    result, committed = json.loads(result_path.read_text()), json.loads(committed_path.read_text())
    check_same_run(result, committed, name)
    state = exact_tensors(torch.load(checkpoint, map_location="cpu", weights_only=True), str(checkpoint))
    metadata = {"format": FORMAT, "record": name, "run_id": str(committed["run_id"]), "model": str(committed["model"]),
                "dataset": str(committed["dataset"])}
    data = safetensors_save(state, metadata)
    back = safetensors_load(data)                          # exact: every tensor comes back bit for bit
    if back.keys() != state.keys() or not all(back[k].dtype == v.dtype and torch.equal(back[k], v)
                                              for k, v in state.items()):
        raise ExportRefused(f"{name}: the safetensors round trip changed a tensor")
    entry = {
        "record": name,
        "run_id": committed["run_id"],
        "model": committed["model"],
        "dataset": committed["dataset"],
        "label": committed.get("label", ""),
        "file": weights_path(name).name,
        "bytes": len(data),
        "sha256": sha256_of(data),
        "tensors": len(state),
        "parameters": int(sum(t.numel() for t in state.values() if t.is_floating_point())),
        f"test_full_{REFERENCE_METRIC}": _reference_metric(committed),
    }
    return name, data, entry


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    fd, tmp = temp_file_beside(path)             # the umask's permissions, not mkstemp's 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_runs(folders: Iterable[str | Path], records_dir: str | Path = RECORDS_DIR,
                weights_dir: str | Path = WEIGHTS_DIR, max_total_bytes: int = MAX_TOTAL_BYTES) -> list[dict[str, Any]]:
    """Ship the ``best.pt`` of each run folder as ``<weights_dir>/<folder name>.safetensors`` and add (or replace) its
    manifest entry; returns the new entries. Every run is checked before anything is written: its ``result.json``
    must be its committed record ``<records_dir>/<folder name>.json`` (``check_same_run``), its tensors exact
    (``exact_tensors``), and the whole shipped set (the manifest's other entries and these) at most
    ``max_total_bytes``; otherwise ``ExportRefused`` and nothing changes."""
    records_dir, weights_dir = Path(records_dir), Path(weights_dir)
    prepared = {name: (data, entry) for name, data, entry in (_prepare(Path(f), records_dir) for f in folders)}
    entries = read_manifest(weights_dir)
    kept = {name: entry for name, entry in entries.items() if name not in prepared}
    total = sum(int(e["bytes"]) for e in kept.values()) + sum(len(data) for data, _ in prepared.values())
    if total > max_total_bytes:
        raise ExportRefused(f"the shipped set would be {total} bytes ({len(kept)} shipped already, "
                            f"{sum(int(e['bytes']) for e in kept.values())} bytes, + {len(prepared)} new, "
                            f"{sum(len(d) for d, _ in prepared.values())} bytes), over the limit of "
                            f"{max_total_bytes} bytes; nothing written")
    weights_dir.mkdir(parents=True, exist_ok=True)
    for name, (data, entry) in prepared.items():
        _write_bytes_atomic(weights_dir / entry["file"], data)
        kept[name] = entry
    write_manifest(kept, weights_dir)
    return [entry for _, entry in prepared.values()]


# ---------------------------------------------------------------- loading a record's weights


def run_name(record: Mapping[str, Any]) -> str:
    """The name of a record's run folder (and of its committed record and shipped weights): ``<model>-<run key>``."""
    if record.get("run_dir"):
        return Path(record["run_dir"]).name
    return f"{record['model']}-{record['run_id']}"


def weights_dirs(record: Mapping[str, Any], profile_name: str) -> list[Path]:
    """Where a record's shipped weights may be, in order: ``weights/`` beside the ``records/`` of its runs root
    (``<outputs>/<profile>/runs/<name>`` → ``<outputs>/<profile>/weights``), then this checkout's
    ``outputs/<profile>/weights``."""
    candidates = [REPO_ROOT / "outputs" / profile_name / "weights"]
    if record.get("run_dir"):
        candidates.insert(0, Path(record["run_dir"]).parent.parent / "weights")
    out: list[Path] = []
    for path in candidates:
        if all(path.resolve() != p.resolve() for p in out):
            out.append(path)
    return out


def shipped_state_dict(record: Mapping[str, Any], profile_name: str) -> dict[str, torch.Tensor]:
    """The shipped weights of ``record`` (found by its run folder's name in the manifests of ``weights_dirs``), size
    and sha256 checked (``WeightsError`` otherwise); ``NoWeightsError`` saying how to train the run when none ships
    them."""
    name = run_name(record)
    dirs = weights_dirs(record, profile_name)
    for weights_dir in dirs:
        if name in read_manifest(weights_dir):
            return load_shipped(name, weights_dir, record.get("run_id"))
    checkpoint = Path(record["run_dir"]) / "best.pt" if record.get("run_dir") else None
    raise NoWeightsError(missing_weights_message(record, checkpoint, dirs))


def has_weights(record: Mapping[str, Any], profile_name: str) -> bool:
    """Whether ``load_trained`` finds weights for ``record``: its run folder's ``best.pt``, or shipped ones (by name;
    ``load_shipped`` checks the file when it is loaded)."""
    if record.get("run_dir") and (Path(record["run_dir"]) / "best.pt").exists():
        return True
    return any(run_name(record) in read_manifest(d) for d in weights_dirs(record, profile_name))


def paper_plans(name: str, status_page: str | Path = STATUS_PAGE) -> list[str]:
    """The plans of ``scripts/paper_runs.py`` whose units include the record ``name`` (from the status page
    ``outputs/paper/results/status.md``: a ``## <plan>: ...`` heading, then one line per unit naming its record)."""
    path, plans, plan = Path(status_page), [], None
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            plan = line[3:].split(":", 1)[0].strip()
        elif plan and f"`{name}`" in line and plan not in plans:
            plans.append(plan)
    return plans


def duration(seconds: float) -> str:
    """``seconds`` for people: '45 s', '12 min', '3.4 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _measured(record: Mapping[str, Any]) -> tuple[float | None, str]:
    """(the record's ``timings.total_seconds``, the device that measured it)."""
    seconds = record.get("timings", {}).get("total_seconds")
    prov = record.get("provenance", {})
    device = prov.get("device_name") or prov.get("device") or "an unrecorded device"
    return (None if seconds is None or not math.isfinite(seconds) else float(seconds)), device


def _pretraining(record: Mapping[str, Any], records_dir: Path) -> str:
    """For FAME: its SASRec-CE pretraining, trained first when its run folder lacks it, with its measured time."""
    pre = record.get("pretrained")
    if not pre:
        return ""
    name = f"{pre.get('model', 'sasrec')}-{pre.get('run_id')}"
    path = records_dir / f"{name}.json"
    seconds = json.loads(path.read_text()).get("timings", {}).get("total_seconds") if path.exists() else None
    took = "" if seconds is None else f", {duration(seconds)} more, measured the same way"
    return f" FAME trains its SASRec-CE pretraining {name} first unless its run folder has it{took}."


def missing_weights_message(record: Mapping[str, Any], checkpoint: Path | None, looked: list[Path]) -> str:
    """Why a record has no weights here and how to get them: the command that trains it and how long that takes."""
    name = run_name(record)
    label = record.get("label") or record.get("model")
    manifests = ", ".join(str(d / MANIFEST) for d in looked)
    head = (f"run {name} ({label} on {record.get('dataset')}, seed {record.get('seed')}) has no weights here: "
            f"no {checkpoint if checkpoint is not None else 'run folder (the record names none)'}, and no shipped "
            f"weights (no entry {name!r} in {manifests}).")
    plans = paper_plans(name)
    if plans:
        train = (f" To train it: it is a unit of plan {plans[0]} of scripts/paper_runs.py, which skips a unit whose "
                 f"record is committed, so move outputs/paper/records/{name}.json aside first, then run "
                 f"`SEQREC_DATA_DIR=/path/to/data python scripts/paper_runs.py --plan {plans[0]}` (best.pt lands "
                 f"in outputs/paper/runs/{name}/; or ship it: scripts/ship_weights.py, docs/weights.md).")
    else:
        train = (f" To train it: delete its run folder {record.get('run_dir')} (its result.json marks the run "
                 "finished, so it would only be read back) and re-run the notebook (or experiments.run of the spec) "
                 "that made it.")
    seconds, device = _measured(record)
    gpu = str(record.get("provenance", {}).get("device", "cpu")).startswith("cuda")
    if seconds is None:
        cost = (" How long: not recorded; on a CPU expect tens of minutes to hours for the paper's runs, on a GPU "
                "minutes.")
    elif gpu:
        cost = (f" How long: {duration(seconds)} on a GPU (measured: this record's timings.total_seconds, {device}); "
                "longer on a CPU (not measured for this run).")
    else:
        cost = (f" How long: {duration(seconds)} on a CPU (measured: this record's timings.total_seconds, {device}); "
                "on a GPU minutes.")
    return head + train + cost + _pretraining(record, RECORDS_DIR)
