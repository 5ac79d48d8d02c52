#!/usr/bin/env bash
# One prepared call of a lent GPU machine (the `run` tool of /work/.library/device): trains the pending units of a
# paper plan in parallel on the GPU (several processes, each claiming the next unit) until a deadline, then hands
# back the records and logs through $OUT. Nothing to install: the machine's python3 has torch, pandas, tqdm and
# matplotlib; the package runs from the working tree (PYTHONPATH) and the data travels in the ignored folder
# .device_data. A unit cut off by the deadline starts over next time (one per worker at most).
#
#   here, once:   mkdir -p .device_data && cp -r ../shared/data/. .device_data/
#   device run:   bash scripts/device_paper_runs.sh beauty-sasrec 6 480      (carry [".device_data"], timeout_s 560)
#   back here:    tar xzf FILES_AT/records.tgz -C outputs/paper && git add outputs/paper/records && git commit
#                 (each record names its commit, device and date); python scripts/publish_paper.py
#
# Arguments: PLAN (paper_runs.py --plan), WORKERS (default 6), SECONDS before the clean stop (default 480), and
# optionally LIMIT (the plan's first LIMIT units only).
set -u
plan=${1:?usage: device_paper_runs.sh PLAN [WORKERS] [SECONDS] [LIMIT]}
workers=${2:-6}
seconds=${3:-480}
limit=${4:+--limit $4}
out=${OUT:?OUT (the folder whose files come back) is not set}
export SEQREC_DATA_DIR=$PWD/.device_data PYTHONPATH=$PWD PYTHONUNBUFFERED=1
[ -d "$SEQREC_DATA_DIR" ] || { echo "no .device_data: copy ../shared/data there and carry it" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv > "$out/gpu.txt" 2>&1 || echo "no nvidia-smi" > "$out/gpu.txt"
python3 scripts/paper_runs.py --plan "$plan" --workers "$workers" --deadline "$seconds" $limit 2>&1 | tee "$out/paper_runs.log"
python3 scripts/publish_paper.py > /dev/null 2>&1 && cp outputs/paper/results/status.md "$out/status.md"
tar czf "$out/records.tgz" -C outputs/paper records
tar czf "$out/logs.tgz" -C outputs/paper logs
ls -la "$out"
