#!/usr/bin/env bash
# One training step of the Fashion-MNIST MLP: Nightshift (oneDNN) and
# PyTorch 1.13 (OpenBLAS, OpenMP build, as bench/peer_env.sh runs it) side by side, at batch 64 and 256
# with 1 and 2 threads. Prints samples/s for both, the ratio, and the share
# of the oneDNN sgemm bound Nightshift's step reaches.
#
# usage: bench/run_mlp_step.sh [--seconds=S]   (default 2 s per figure)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_FLAG="${1:---seconds=2}"
bazel build -c opt //bench:mlp_step_bench >/dev/null 2>&1 || bazel build -c opt //bench:mlp_step_bench
NS=bazel-bin/bench/mlp_step_bench
source bench/peer_env.sh
peer_config
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

printf "%-6s %-7s %14s %14s %7s %12s\n" batch threads nightshift pytorch ratio bound_share
for threads in 1 2; do
  for batch in 64 256; do
    ns=$(OMP_NUM_THREADS=$threads "$NS" --batch=$batch --threads=$threads $SECONDS_FLAG)
    pt=$(OMP_NUM_THREADS=$threads peer_python \
         bench/torch_mlp_step.py --batch=$batch --threads=$threads $SECONDS_FLAG)
    ns_sps=$(echo "$ns" | field samples_per_s)
    pt_sps=$(echo "$pt" | field samples_per_s)
    share=$(echo "$ns" | field bound_share)
    ratio=$(awk -v a="$ns_sps" -v b="$pt_sps" 'BEGIN { printf "%.2f", a / b }')
    printf "%-6s %-7s %14s %14s %6sx %12s\n" "$batch" "$threads" "$ns_sps" "$pt_sps" "$ratio" "$share"
  done
done
