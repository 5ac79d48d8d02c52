#!/usr/bin/env bash
# Execute every notebook in order with papermill and collect what they produce under <outputs>/<profile>/
# (<outputs> is out/, ignored by git, unless --outputs DIR or --publish says otherwise):
#   notebooks/  the executed notebooks (01_train once per model: 01_train_sasrec.ipynb, ...)
#   figures/    every figure as PNG and PDF
#   results/    tables (CSV and markdown) and result JSON
#   runs/       one folder per training run (record + checkpoints); finished runs are skipped, so an
#               interrupted ./run_all.sh continues where it stopped when started again
#   logs/       papermill's log of each notebook
# Stops at the first failing notebook, naming it and showing the error.
#
# Usage: ./run_all.sh [--profile smoke|demo|paper] [--outputs DIR | --publish] [--kernel NAME] [--only NAME]
#   --profile NAME  the experiment profile (default: demo)
#   --outputs DIR   write under DIR/<profile>/ (default: out/, which git ignores)
#   --publish       write under outputs/<profile>/, the results committed with the repository
#   --kernel NAME   the Jupyter kernel; when it does not run this Python, a kernel for it is installed into
#                   this environment (never user-level) (default: python3, this environment's own)
#   --only NAME     run only the notebook NAME (e.g. 00_data, 01_train_fame)
#   --executor local|ray  how the sweeps (02, 03, 06) train their runs: local, one after the other (default),
#                   or ray, as Ray tasks in parallel (pip install -e ".[distributed]"; README: multi-GPU, cluster)
#   --address ADDR  with --executor ray: the Ray cluster to use (auto: the one `ray start` runs on this
#                   machine; ray://host:10001: a remote one); without it each sweep notebook starts a local Ray
# The Python used is $PYTHON, else the active virtual/conda environment's python, else .venv/bin/python.
# Relative paths (--outputs, $SEQREC_DATA_DIR, $SEQREC_CACHE_DIR) are taken from where it is started.
set -euo pipefail
CALLER_DIR="$PWD"
cd "$(dirname "$0")"
ROOT="$PWD"

PROFILE="demo"
KERNEL="python3"
OUTPUTS=""
PUBLISH=""
ONLY=""
EXECUTOR="local"
ADDRESS=""
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
absolute() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$CALLER_DIR/$1" ;; esac; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile) PROFILE="${2:?--profile needs a name}"; shift 2 ;;
        --profile=*) PROFILE="${1#*=}"; shift ;;
        --outputs) OUTPUTS="$(absolute "${2:?--outputs needs a folder}")"; shift 2 ;;
        --outputs=*) OUTPUTS="$(absolute "${1#*=}")"; shift ;;
        --publish) PUBLISH=1; shift ;;
        --kernel) KERNEL="${2:?--kernel needs a name}"; shift 2 ;;
        --kernel=*) KERNEL="${1#*=}"; shift ;;
        --only) ONLY="${2:?--only needs a notebook name}"; shift 2 ;;
        --only=*) ONLY="${1#*=}"; shift ;;
        --executor) EXECUTOR="${2:?--executor needs local or ray}"; shift 2 ;;
        --executor=*) EXECUTOR="${1#*=}"; shift ;;
        --address) ADDRESS="${2:?--address needs a Ray address}"; shift 2 ;;
        --address=*) ADDRESS="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run_all.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
if [[ "$EXECUTOR" != local && "$EXECUTOR" != ray ]]; then
    echo "run_all.sh: --executor must be local or ray, got '$EXECUTOR'" >&2
    exit 2
fi
if [[ -n "$ADDRESS" && "$EXECUTOR" != ray ]]; then
    echo "run_all.sh: --address is for --executor ray" >&2
    exit 2
fi
SWEEP_ARGS=(-p executor "$EXECUTOR")                  # the sweep notebooks' parameters
if [[ -n "$ADDRESS" ]]; then SWEEP_ARGS+=(-p address "$ADDRESS"); fi
if [[ -n "$PUBLISH" && -n "$OUTPUTS" ]]; then
    echo "run_all.sh: --publish writes to outputs/; it cannot be combined with --outputs" >&2
    exit 2
fi
if [[ -n "$PUBLISH" ]]; then OUTPUTS="$ROOT/outputs"; elif [[ -z "$OUTPUTS" ]]; then OUTPUTS="$ROOT/out"; fi
# the notebooks run in notebooks/: make the data and cache folders absolute first
for var in SEQREC_DATA_DIR SEQREC_CACHE_DIR; do
    if [[ -n "${!var:-}" ]]; then export "$var=$(absolute "${!var}")"; fi
done

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ]] && command -v python >/dev/null; then PYTHON="python"
    elif [[ -x .venv/bin/python ]]; then PYTHON="$ROOT/.venv/bin/python"
    else PYTHON="python3"; fi
fi
if ! "$PYTHON" -c "import seqrec_lib, papermill, ipykernel, jupytext" 2>/dev/null; then
    echo "run_all.sh: $PYTHON cannot import seqrec_lib, papermill, ipykernel and jupytext." >&2
    echo "Install them first: pip install -e \".[dev]\" (see README)." >&2
    exit 1
fi
if [[ "$EXECUTOR" == ray ]] && ! "$PYTHON" -c "import ray" 2>/dev/null; then
    echo "run_all.sh: --executor ray needs Ray in $PYTHON: pip install -e \".[distributed]\" (see README)." >&2
    exit 1
fi
if ! "$PYTHON" -c "from seqrec_lib.profiles import get_profile; get_profile('$PROFILE')" 2>/dev/null; then
    echo "run_all.sh: unknown profile '$PROFILE'." >&2
    "$PYTHON" -c "from seqrec_lib.profiles import PROFILES; print('Known profiles:', ', '.join(PROFILES))" >&2 || true
    exit 2
fi

# On a CPU where it helps (an x86 CPU whose vendor is not Intel, torch's BLAS MKL), MKL's fast kernels: the MKL vendor
# shim in LD_PRELOAD, which the notebooks' kernels inherit (seqrec_lib/blas.py; docs/protocol.md §8).
# SEQREC_FAST_BLAS=0 turns it off; a shim that cannot be built is one line on stderr and the default path.
PRELOAD="$("$PYTHON" -m seqrec_lib.blas --preload)" || PRELOAD="${LD_PRELOAD:-}"
if [[ -n "$PRELOAD" ]]; then export LD_PRELOAD="$PRELOAD"; fi
BLAS_NOTE=""
if [[ "${LD_PRELOAD:-}" == *libseqrec_mkl_intel_cpu.so* ]]; then
    BLAS_NOTE=", MKL's Intel kernels (vendor shim; SEQREC_FAST_BLAS=0: off)"
fi

OUT="$OUTPUTS/$PROFILE"
mkdir -p "$OUT/notebooks" "$OUT/logs"
RUNS_LOG="$OUT/logs/runs.tsv"           # one line per run a notebook asked for: read back or trained
LOGGED=$( (cat "$RUNS_LOG" 2>/dev/null || true) | wc -l)
T0=$(date +%s)

# Each notebook is a jupytext pair (notebooks/jupytext.toml): NN_name.py, the source, and NN_name.ipynb. Sync
# the pairs first (jupytext --sync: the file saved last wins), so that papermill executes what was edited, in
# JupyterLab (which saves both), in a Jupyter without jupytext (the .ipynb) or in an editor (the .py).
if ! "$PYTHON" scripts/sync_notebooks.py; then
    echo "run_all.sh: the notebooks and their .py sources could not be synced (above); nothing was run." >&2
    exit 1
fi

# run_notebook NOTEBOOK OUTPUT_NAME [-p NAME VALUE ...]: through seqrec_lib.notebook_runner, which rejects a
# parameter the notebook does not declare and runs a kernel of this Python. On a terminal it shows the running
# cell and the time so far; `tail -f` on the log shows the cells' output.
RAN=0
run_notebook() {
    local nb="$1" name="$2"; shift 2
    local log="$OUT/logs/$name.log" start end progress=()
    if [[ -n "$ONLY" && "$name" != "$ONLY" ]]; then return 0; fi
    RAN=$((RAN + 1))
    start=$(date +%s)
    if [[ -t 1 ]]; then progress=(--progress "$name"); else printf '%-28s ' "$name"; fi
    if "$PYTHON" -m seqrec_lib.notebook_runner "notebooks/$nb.ipynb" "$OUT/notebooks/$name.ipynb" -k "$KERNEL" \
            --cwd notebooks ${progress[@]+"${progress[@]}"} -p profile "$PROFILE" -p outputs "$OUTPUTS" "$@" \
            2>"$log"; then
        end=$(date +%s)
        if [[ -t 1 ]]; then printf '%-28s ' "$name"; fi
        printf 'ok  %5ds\n' $((end - start))
    else
        end=$(date +%s)
        if [[ -t 1 ]]; then printf '%-28s ' "$name"; fi
        printf 'FAILED after %ds\n\n' $((end - start))
        echo "Notebook $nb failed (profile $PROFILE). The error:" >&2
        # papermill prints the failing cell's traceback after its "Exception encountered" banner
        if grep -q "Exception encountered" "$log"; then
            sed -n '/Exception encountered/,$p' "$log" | tail -n 40 >&2
        else
            tail -n 40 "$log" >&2
        fi
        echo >&2
        echo "Executed notebook (with the error cell): $OUT/notebooks/$name.ipynb" >&2
        echo "Full log: $log" >&2
        exit 1
    fi
}

echo "Profile $PROFILE, kernel $KERNEL, executor $EXECUTOR${ADDRESS:+ at $ADDRESS}, outputs in $OUT$BLAS_NOTE"
run_notebook 00_data 00_data
for model in sasrec fame mojito; do
    run_notebook 01_train "01_train_$model" -p model "$model"
done
run_notebook 02_head_sweep 02_head_sweep "${SWEEP_ARGS[@]}"
run_notebook 03_expert_sweep 03_expert_sweep "${SWEEP_ARGS[@]}"
run_notebook 04_head_diversity 04_head_diversity
# notebook 05 once per case study of the profile (paper: Beauty, then Sports): the first as 05_case_study
first=1
while read -r dataset user; do
    if [[ -n "$first" ]]; then run_notebook 05_case_study 05_case_study -p dataset "$dataset" -p user "$user"
    else run_notebook 05_case_study "05_case_study_$dataset" -p dataset "$dataset" -p user "$user"; fi
    first=""
done < <("$PYTHON" -c "from seqrec_lib.profiles import get_profile
for dataset, user in get_profile('$PROFILE').case_studies: print(dataset, user)")
run_notebook 06_results 06_results "${SWEEP_ARGS[@]}"
T1=$(date +%s)
if [[ "$RAN" == 0 ]]; then
    echo "run_all.sh: there is no notebook run named '$ONLY' (e.g. 00_data, 01_train_fame, 06_results)" >&2
    exit 2
fi

echo
echo "Produced under $OUT:"
for dir in notebooks figures results; do
    [[ -d "$OUT/$dir" ]] || continue
    echo "  $dir/"
    (cd "$OUT/$dir" && find . -type f | sort | while read -r f; do
        printf '    %-48s %8s\n' "${f#./}" "$(numfmt --to=iec --suffix=B "$(stat -c %s "$f")")"
    done)
done
if [[ -d "$OUT/runs" ]]; then
    printf '  runs/  %s run folders, %s\n' "$(find "$OUT/runs" -mindepth 1 -maxdepth 1 -type d | wc -l)" \
        "$(du -sh "$OUT/runs" | cut -f1)"
fi
# distinct runs since this start: trained here, or only read back (an earlier result.json or a committed record)
tail -n +$((LOGGED + 1)) "$RUNS_LOG" 2>/dev/null | awk -F'\t' '
    $1 == "trained" { trained[$2] = 1 } $1 == "read" { read[$2] = 1 }
    END { t = 0; r = 0; for (k in trained) t++; for (k in read) if (!(k in trained)) r++
          printf "Runs: %d trained, %d read back\n", t, r }' || true
WALL=$((T1 - T0))
printf 'Wall time: %dm %02ds (%ds)\n' $((WALL / 60)) $((WALL % 60)) "$WALL"
if [[ -z "$PUBLISH" && "$OUTPUTS" == "$ROOT/out" ]]; then
    echo "(out/ is ignored by git; ./run_all.sh --publish writes the committed results under outputs/)"
fi
