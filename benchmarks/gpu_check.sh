#!/usr/bin/env bash
# The one-shot GPU check (issue 36, item 6): at most 8 minutes (its steps' limits add up to 455 s) on a lent GPU,
# from the repository root of a clean checkout, with only torch (and pytest) installed there. Carried beside the
# checkout, both ignored by git:
#   .whl/  optuna and the wheels it needs (README of the device tool: alembic, sqlalchemy, colorlog, mako)
#   DATA   FashionMNIST in torchvision's layout (gzipped files are read as they are)
# Run:  bash benchmarks/gpu_check.sh DATA OUT        (OUT: where the log and the figures go; default $OUT)
# Then copy the figures into benchmarks/RESULTS.md with the device's name. Never write a GPU figure not measured.
# A dry run on a CPU (every budget cut; checks the script, measures nothing):  DEVICE=cpu bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-${NAS_PROXY_DATA:-.gpu}}
OUT=${2:-${OUT:-/tmp/gpu_check}}
DEVICE=${DEVICE:-cuda}
SAMPLE=${SAMPLE:-12}  # architectures of the 720 space in the sweep at the paper's protocol
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NAS_PROXY_DATA="$DATA" PYTHONPATH="$PWD"
if [ "$DEVICE" != cpu ] && ls .whl/*.whl >/dev/null 2>&1; then  # the GPU machine has torch, not optuna
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PWD"
fi
step() {  # step SECONDS COMMAND...: one part, cut at its limit, its output kept in the log as it comes
  local limit=$1
  shift
  echo "== $* (limit ${limit} s)" | tee -a "$OUT/log.txt"
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/log.txt"
  echo "== exit ${PIPESTATUS[0]}" | tee -a "$OUT/log.txt"
}
if [ "$DEVICE" = cpu ]; then
  step 120 python3 -m pytest -q -x -p no:cacheprovider tests/method -k "reads_nothing or falls_back"
  step 300 python3 benchmarks/gpu_probe.py --device cpu --side-by-side 2 --largest d1-w8-relu-none-avgpool --out "$OUT/probe.json"
  step 120 python3 benchmarks/bench_sweep.py --dataset digits --space small --sample 2 --ipc 2 --epochs 2 \
    --repeats 1 --no-record
  step 120 python3 benchmarks/bench_condense.py --dataset digits --ipc 2 --iterations 2 --warmup 1 \
    --variants loop,fp32 --no-record
  step 120 python3 benchmarks/fuse_probe.py --copies 2 --steps 1 --no-record
  exit 0
fi
# 1. The CUDA tests (they skip on a CPU, so CI never runs them).
step 80 python3 -m pytest -q -p no:cacheprovider tests -k "cuda or compile"
# 2. The device and torch's version; host waits and launches per step, memory at the largest side-by-side count.
step 110 python3 benchmarks/gpu_probe.py --device "$DEVICE" --out "$OUT/probe.json"
# 3. The sweep at the paper's protocol (ipc 50, 1000 epochs) on a sample: one at a time and side by side.
step 125 python3 benchmarks/bench_sweep.py --dataset fashion_mnist --space nas720 --sample "$SAMPLE" --ipc 50 \
  --epochs 1000 --device "$DEVICE" --repeats 1 --no-record
# 4. Seconds per DM iteration at ipc 50: the authors' per-class loop against nas-proxy's default.
step 80 python3 benchmarks/bench_condense.py --ipc 50 --iterations 20 --variants loop,default --no-record
# 5. Fused candidates (item 3): 8 networks of one architecture in one set of kernels against one at a time.
step 60 python3 benchmarks/fuse_probe.py --device "$DEVICE" --steps 30 --no-record
