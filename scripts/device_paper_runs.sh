#!/usr/bin/env bash
# One prepared call of a lent GPU machine (the `run` tool of /work/.library/device): trains the pending units of
# one or more paper plans in parallel on the GPU (per plan, several processes each claiming the next unit) until a
# deadline, then optionally runs the speed benchmark on the GPU, and hands back records, logs, the finished runs'
# best weights (a FAME fine-tune here can start from a pretraining done there), the cut-off units' checkpoints and
# the benchmark's JSON through $OUT. Nothing to install: the machine's python3 has torch, pandas, tqdm and matplotlib; the package runs from the
# working tree (PYTHONPATH); the data and the benchmark's eager package travel in the ignored folder .device_data.
# A unit cut off by the deadline resumes from the checkpoint handed back (unfinished-<run>.tgz), else starts over.
#
#   here, once:   mkdir -p .device_data && cp -r ../shared/data/. .device_data/
#                 mkdir -p .device_data/tmp && TMPDIR=$PWD/.device_data/tmp \
#                   python -c "from benchmarks.speed import eager_package; eager_package()"
#   device run:   SEQREC_GIT_COMMIT=$(git rev-parse HEAD) BENCH_SECONDS=150 \
#                   bash scripts/device_paper_runs.sh 330 beauty-sasrec:2 ml100k-mojito:4
#                 (carry [".device_data"], timeout_s 560; commit first: the records name SEQREC_GIT_COMMIT)
#   back here:    tar xzf FILES_AT/records.tgz -C outputs/paper && git add outputs/paper/records && git commit
#                 (each record names its commit, device and date); python scripts/publish_paper.py;
#                 tar xzf FILES_AT/weights.tgz -C outputs/paper/runs (optional), likewise unfinished-*.tgz (the
#                 cut-off units' last checkpoints: paper_runs.py resumes them here)
#
# Arguments: SECONDS before the runs' clean stop, then PLAN:WORKERS for each plan (paper_runs.py --plan); a PLAN of the
# form a+b+c is a chain: its plans run one after the other (beauty-fig6+beauty-table2:6: Fig. 6, then Table 2's rows
# at the H* and N* it chose), plans given apart run at the same time.
# BENCH_SECONDS (optional): after the runs, benchmarks/speed.py --device cuda for at most that many seconds.
set -u
seconds=${1:?usage: device_paper_runs.sh SECONDS PLAN:WORKERS [PLAN:WORKERS ...]}
shift
out=${OUT:?OUT (the folder whose files come back) is not set}
export SEQREC_DATA_DIR=$PWD/.device_data PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TMPDIR=$PWD/.device_data/tmp
[ -d "$SEQREC_DATA_DIR/s3rec" ] || { echo "no .device_data: copy ../shared/data there and carry it" >&2; exit 2; }
[ -n "${SEQREC_GIT_COMMIT:-}" ] ||
  { echo "name the commit of this copy in SEQREC_GIT_COMMIT (its own git may be older)" >&2; exit 2; }
logs=outputs/paper/logs                    # everything but records, weights and the benchmark travels in logs.tgz
mkdir -p "$TMPDIR" outputs/paper/runs "$logs"
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv > "$logs/device_gpu.txt" 2>&1 ||
  echo "no nvidia-smi" > "$logs/device_gpu.txt"
touch "$TMPDIR/started"
for spec in "$@"; do
  plan=${spec%%:*}; workers=${spec#*:}
  # shellcheck disable=SC2086  # PLAN may be a chain, a+b: paper_runs.py --plan a b (each plan to its end, in order)
  python3 scripts/paper_runs.py --plan ${plan//+/ } --workers "$workers" --threads 2 --deadline "$seconds" \
    > "$logs/device_${plan//+/_}.log" 2>&1 &
done
wait
grep -h "finished in\|not ready\|Error" "$logs"/*.worker*.log
python3 scripts/publish_paper.py > "$logs/device_publish.log" 2>&1 && cp outputs/paper/results/status.md "$logs/"
tar czf "$out/records.tgz" -C outputs/paper records
tar czf "$out/logs.tgz" -C outputs/paper logs
(cd outputs/paper/runs && find . -name result.json -newer "$TMPDIR/started" | sed 's|/result.json||' |
  while read -r run; do echo "$run/best.pt"; echo "$run/result.json"; done | tar czf "$out/weights.tgz" -T -)
# the units the deadline cut off: their last checkpoint, one file each (at most 4, each under the 16 MB a file may
# have), so that a later session on any device resumes them (RNG: the CPU's stream goes on, CUDA's is not restored)
(cd outputs/paper/runs && find . -name last.pt -newer "$TMPDIR/started") | while read -r ckpt; do
  run=$(basename "$(dirname "$ckpt")")
  [ -f "outputs/paper/runs/$run/result.json" ] && continue
  [ "$(ls "$out"/unfinished-*.tgz 2>/dev/null | wc -l)" -lt 4 ] || { echo "$run: a fifth cut-off unit, left"; continue; }
  tar czf "$out/unfinished-$run.tgz" -C outputs/paper/runs "$run/last.pt"
  [ "$(stat -c %s "$out/unfinished-$run.tgz")" -lt 16000000 ] || { echo "$run: checkpoint over 16 MB, left"; rm "$out/unfinished-$run.tgz"; }
done
if [ -n "${BENCH_SECONDS:-}" ]; then
  timeout "$BENCH_SECONDS" python3 benchmarks/speed.py --device cuda --rows sasrec-ce:beauty,fame:beauty,mojito:ml-100k \
    --paths eager,exact,bf16 --epochs 3 --threads 2 --out "$out/speed_gpu.json" 2>&1 | grep -v "^ \|^-\|^Name\|^Self"
fi
ls -la "$out"
