#!/usr/bin/env bash
# Benchmark of the mc-engine crate against a NumPy reference and the RNG floor.
#
#   bash bench/run.sh            # all cases, RAYON_NUM_THREADS=1 and 2
#   CASES="a b" bash bench/run.sh
#   PRECISION=0 bash bench/run.sh   # skip the precision benchmark (several minutes)
#   bash bench/run.sh precision     # only the precision benchmark
#
# Each (case, mode, threads) runs in its own process so the reported peak RSS
# (VmHWM / ru_maxrss) is that case's own. NumPy is pinned to one thread
# (BLAS threads = 1) so "per core" ratios are honest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
CASES="${CASES:-a b c}"
ONLY="${1:-}"

cargo build --quiet --release -p mc-engine --example bench
BIN="$CARGO_TARGET_DIR/release/examples/bench"

# Accuracy per second (Engine 0.5): time for a 95 % interval of ±0.1 % on the
# terminal median (and also ±0.5 % on P5) with plain MC, antithetics, RQMC
# and RQMC + control variate, each grown by Simulation::run_to_precision from
# 4 096 paths, against a 10 000 000-path reference computed in the same run.
precision_bench() {
  echo "precision benchmark (2 threads; reference: REF_PATHS=${REF_PATHS:-10000000} paths)"
  local out
  out="$(mktemp)"
  RAYON_NUM_THREADS=2 "$BIN" precision all >"$out"
  python3 bench/precision_table.py <"$out"
  rm -f "$out"
}
if [ "$ONLY" = precision ]; then
  precision_bench
  exit 0
fi

python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet numpy

OUT="$(mktemp)"
for c in $CASES; do
  for t in 1 2; do
    RAYON_NUM_THREADS=$t "$BIN" "$c" floor  >>"$OUT"
    RAYON_NUM_THREADS=$t "$BIN" "$c" engine >>"$OUT"
  done
  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python3 bench/numpy_reference.py "$c" >>"$OUT"
done

python3 - "$OUT" <<'PY'
import sys
rows = []
for line in open(sys.argv[1]):
    d = dict(kv.split("=", 1) for kv in line.split())
    rows.append(d)
def get(case, mode, threads=None):
    for r in rows:
        if r["case"] == case and r["mode"] == mode and (threads is None or r["threads"] == threads):
            return r
print(f"{'case':4} {'thr':>3} {'engine s':>10} {'ns/asset-step':>13} {'peak MB':>8} "
      f"{'floor s':>9} {'eng/floor':>9} {'numpy s(1 thr)':>14} {'numpy/eng':>9} {'numpy/(eng*thr)':>15}")
for case in sorted({r["case"] for r in rows}):
    npy = get(case, "numpy")
    for t in ("1", "2"):
        e, f = get(case, "engine", t), get(case, "floor", t)
        if not e:
            continue
        es, fs, ns = float(e["seconds"]), float(f["seconds"]), float(npy["seconds"])
        print(f"{case:4} {t:>3} {es:>10.4f} {float(e['ns_per_asset_step']):>13.2f} "
              f"{float(e['peak_rss_mb']):>8.1f} {fs:>9.4f} {es / fs:>9.2f} {ns:>14.4f} "
              f"{ns / es:>9.2f} {ns / (es * int(t)):>15.2f}")
    print(f"{case:4} numpy: {float(npy['ns_per_asset_step']):.2f} ns/asset-step, peak {float(npy['peak_rss_mb']):.1f} MB")
PY
rm -f "$OUT"

# The machine is shared and its speed drifts between runs, so the ratio of
# two separate processes is noisy. The figure to trust: floor and engine
# alternately in ONE process, REPS pairs, median of the per-pair ratios.
REPS="${REPS:-11}"
echo
echo "engine / floor, interleaved in one process ($REPS pairs): median [q1, q3]"
for c in $CASES; do
  [ "$c" = c ] && continue # (c) is a latency case (no floor target)
  for t in 1 2; do
    RAYON_NUM_THREADS=$t "$BIN" "$c" interleave "$REPS" |
      sed -E 's/.*case=([a-z]).*threads=([0-9]+).*ratio_median=([0-9.]+).*ratio_q1=([0-9.]+) ratio_q3=([0-9.]+).*/\1 threads=\2  \3  [\4, \5]/'
  done
done

echo
echo "small case (c): median wall time and process CPU time per run (2 001 runs)"
for t in 1 2; do
  RAYON_NUM_THREADS=$t "$BIN" c engine | sed -E 's/.*threads=([0-9]+) seconds=([0-9.]+) cpu_seconds=([0-9.]+).*/threads=\1  wall \2 s  cpu \3 s per run/'
done

echo
echo "cancellation latency, 10 000 000 paths (bench cancel)"
RAYON_NUM_THREADS=2 "$BIN" cancel

if [ "${PRECISION:-1}" != 0 ]; then
  echo
  precision_bench
fi
