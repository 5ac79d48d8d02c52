"""Ship the trained weights of committed records, so a fresh clone redraws figures without retraining (docs/weights.md).

Exports each named run's ``best.pt`` (``<runs root>/<record name>/``) as exact fp32 safetensors to
``outputs/paper/weights/<record name>.safetensors`` and updates ``outputs/paper/weights/MANIFEST.json`` (bytes,
sha256, the record's test NDCG@10). Refuses, writing nothing, a run whose ``result.json`` is not its committed record
``outputs/paper/records/<record name>.json`` (run id, test metrics) and a shipped set over 30 MB. ``--check`` verifies
every manifest entry (size, sha256, loadable) and exits 1 on any problem.

    python scripts/ship_weights.py --runs outputs/paper/runs fame-dbbda76d7853 sasrec-cf6d91de225e
    python scripts/ship_weights.py --check
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seqrec_lib.weights import (MANIFEST, MAX_TOTAL_BYTES, RECORDS_DIR, REFERENCE_METRIC, WEIGHTS_DIR, WeightsError,
                                check_manifest, export_runs, read_manifest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/ship_weights.py", description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="*", metavar="RECORD",
                        help="record names (= run folder names), e.g. sasrec-09e6125d067d (a trailing .json is "
                             "dropped)")
    parser.add_argument("--runs", type=Path, help="the runs root holding the run folders (e.g. outputs/paper/runs)")
    parser.add_argument("--check", action="store_true", help="verify every manifest entry (after exporting, if any)")
    parser.add_argument("--records-dir", type=Path, default=RECORDS_DIR,
                        help=f"committed records (default {RECORDS_DIR})")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR,
                        help=f"shipped weights (default {WEIGHTS_DIR})")
    args = parser.parse_args(argv)
    if not args.records and not args.check:
        parser.error("name the records to ship (with --runs), or --check")
    if args.records and args.runs is None:
        parser.error("--runs (the runs root holding the run folders) is needed to ship records")
    if args.records:
        names = [Path(name).name.removesuffix(".json") for name in args.records]
        try:
            entries = export_runs([args.runs / name for name in names], args.records_dir, args.weights_dir)
        except WeightsError as err:
            print(f"ship_weights.py: refused, nothing written: {err}", file=sys.stderr)
            return 2
        for entry in entries:
            print(f"shipped {entry['record']} ({entry['label']} on {entry['dataset']}): {entry['file']}, "
                  f"{entry['bytes']} bytes, sha256 {entry['sha256'][:12]}…, test {REFERENCE_METRIC} "
                  f"{entry[f'test_full_{REFERENCE_METRIC}']}")
        total = sum(int(e["bytes"]) for e in read_manifest(args.weights_dir).values())
        print(f"{args.weights_dir / MANIFEST}: {len(read_manifest(args.weights_dir))} file(s), {total} of "
              f"{MAX_TOTAL_BYTES} bytes")
    if args.check:
        problems = check_manifest(args.weights_dir)
        for problem in problems:
            print(f"ship_weights.py --check: {problem}", file=sys.stderr)
        if problems:
            return 1
        print(f"{args.weights_dir / MANIFEST}: {len(read_manifest(args.weights_dir))} file(s), every size and "
              "sha256 as listed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
