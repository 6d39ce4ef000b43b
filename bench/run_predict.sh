#!/usr/bin/env bash
# Inference on the vehicle's computer: `nightshift predict` (oneDNN) and
# PyTorch 1.13 (bench/torch_predict.py, run as bench/peer_env.sh runs the
# peer) side by side on the same model file — the Fashion-MNIST MLP,
# trained first by `nightshift train --local` — over the 10,000 test
# images, at batch 1 (one frame at a time) and 64, with 1 and 2 threads.
# Prints each side's p50/p99 batch latency and samples/s, the throughput
# ratio, and both accuracies (the same model: they should agree).
#
# usage: bench/run_predict.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build -c opt //cli:nightshift >/dev/null 2>&1 || bazel build -c opt //cli:nightshift
NS=bazel-bin/cli/nightshift
D=/usr/share/datasets/fashion-mnist
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
source bench/peer_env.sh
peer_config
"$NS" train --local examples/fashion_mlp.textproto --out="$OUT" >"$OUT/train.txt" 2>&1
grep "^final test accuracy" "$OUT/train.txt"
MODEL="$OUT/model.safetensors"

printf "%-6s %-8s %-32s %-32s %s\n" batch threads "nightshift p50/p99 ms, samples/s" "pytorch p50/p99 ms, samples/s" "ratio (samples/s)"
for threads in 1 2; do
  for batch in 1 64; do
    repeat=$(( batch == 1 ? 3 : 30 ))
    ns=$(OMP_NUM_THREADS=$threads "$NS" predict "$MODEL" "$D/t10k-images-idx3-ubyte.gz" \
         "$D/t10k-labels-idx1-ubyte.gz" --batch_size=$batch --repeat=$repeat --threads=$threads)
    pt=$(OMP_NUM_THREADS=$threads peer_python bench/torch_predict.py "$MODEL" \
         "$D/t10k-images-idx3-ubyte.gz" "$D/t10k-labels-idx1-ubyte.gz" \
         --batch_size=$batch --repeat=$repeat --threads=$threads)
    summary() { echo "$1" | sed -n 's/.*p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms;.* \([0-9]*\) samples\/s.*/\1\/\2, \3/p'; }
    rate() { echo "$1" | sed -n 's/.* \([0-9]*\) samples\/s.*/\1/p'; }
    ratio=$(awk -v a="$(rate "$ns")" -v b="$(rate "$pt")" 'BEGIN { printf "%.2f", a / b }')
    printf "%-6s %-8s %-32s %-32s %sx\n" "$batch" "$threads" "$(summary "$ns")" "$(summary "$pt")" "$ratio"
    acc_ns=$(echo "$ns" | sed -n 's/^accuracy \([0-9.]*%\).*/\1/p')
    acc_pt=$(echo "$pt" | sed -n 's/^accuracy \([0-9.]*%\).*/\1/p')
  done
done
echo "accuracy on the 10,000 test images: nightshift $acc_ns, pytorch $acc_pt"
