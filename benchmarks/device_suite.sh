#!/usr/bin/env bash
# The accelerator suite: one command for a GPU machine (one NVIDIA H100/H200), run from
# the repository root. It uses the machine's own python3 with JAX, installs what it
# lacks from wheels carried in .whl/ (if any; tensornetwork, quimb, cotengra, ...),
# then runs the cost curve, the contraction and regularizer benchmarks, the training
# throughput and a short MNIST training ($TNJAX_MNIST_DIR, or .data/mnist carried in
# the tree), each under its own time limit, all in about 9 minutes, and writes JSON,
# plots and a log to one folder. A benchmark that fails is logged and the rest go on;
# the exit status counts the failures.
#
#   bash benchmarks/device_suite.sh [--quick] [OUT_DIR]     (--quick: seconds, on CPU too)
#   TNJAX_SUITE_STEPS=cost_curve,mnist bash benchmarks/device_suite.sh   (some steps only)
set -uo pipefail
cd "$(dirname "$0")/.."
QUICK=""
if [ "${1:-}" = "--quick" ]; then QUICK="--quick"; shift; fi
OUT_DIR="${1:-${OUT:-benchmarks/results/device}}"
mkdir -p "$OUT_DIR"
PY="${PYTHON:-python3}"
LOG="$OUT_DIR/device_suite.log"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/tnjax-site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/tnjax-site"
fi
if [ -z "${TNJAX_MNIST_DIR:-}" ] && [ -d .data/mnist ]; then export TNJAX_MNIST_DIR="$PWD/.data/mnist"; fi
"$PY" - <<'PYEOF' 2>&1 | tee "$LOG"
import jax, sys
print("python", sys.version.split()[0], "jax", jax.__version__, "devices", jax.devices())
PYEOF
failures=0
STEPS=",${TNJAX_SUITE_STEPS:-cost_curve,contraction,regularizer,throughput,mnist},"
step() {  # step SECONDS KEY NAME ARGS...: one benchmark under a time limit
  local limit=$1 key=$2 name=$3; shift 3
  [[ "$STEPS" == *",$key,"* ]] || return 0
  local t0=$SECONDS
  echo "== $name $* (limit ${limit}s)" | tee -a "$LOG"
  if timeout "$limit" "$PY" -m "benchmarks.$name" $QUICK --out "$OUT_DIR" "$@" >>"$LOG" 2>&1; then
    echo "== $name done in $((SECONDS - t0)) s" | tee -a "$LOG"
  else
    echo "== $name FAILED (exit $?) after $((SECONDS - t0)) s" | tee -a "$LOG"
    failures=$((failures + 1))
  fi
}
if [ -n "$QUICK" ]; then L=(120 120 180 120 120); else L=(150 120 120 60 90); fi
step "${L[0]}" cost_curve cost_curve --points binary,shared,width --budget-s 30
step "${L[1]}" contraction contraction
step "${L[2]}" regularizer regularizer
step "${L[3]}" throughput training --tasks throughput
step "${L[4]}" mnist training --tasks mnist --mnist-epochs 2 --mnist-seeds 1
echo "== device suite: $failures failed; results in $OUT_DIR" | tee -a "$LOG"
exit "$failures"
