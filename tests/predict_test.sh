#!/usr/bin/env bash
# `nightshift predict` on the real Fashion-MNIST test set: a model trained
# by `nightshift train --local` (2 epochs) runs from its file alone, at
# batch 1 and 64, with the accuracy training reported for the same images;
# bad input is refused naming the file: a checkpoint that does not
# describe its model, a labels file given as images, labels of another
# count, a truncated model file.
set -euo pipefail
NS=$1
SPEC=$2
T="${TEST_TMPDIR:-$(mktemp -d)}"
D=/usr/share/datasets/fashion-mnist
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "$D/t10k-images-idx3-ubyte.gz" ] || fail "no Fashion-MNIST in $D (deploy/setup.sh installs dataset-fashion-mnist)"

sed -e "s/^epochs: .*/epochs: 2/" "$SPEC" >"$T/fashion.textproto"
"$NS" train --local "$T/fashion.textproto" --out="$T/out" >"$T/train.txt" 2>&1 || { cat "$T/train.txt"; fail "training"; }
trained=$(sed -n 's/^final test accuracy: \([0-9.]*\)%.*/\1/p' "$T/train.txt")
[ -n "$trained" ] || fail "no final accuracy in: $(tail -3 "$T/train.txt")"

for batch in 1 64; do
  "$NS" predict "$T/out/model.safetensors" "$D/t10k-images-idx3-ubyte.gz" "$D/t10k-labels-idx1-ubyte.gz" \
    --batch_size=$batch >"$T/predict$batch.txt" || { cat "$T/predict$batch.txt"; fail "predict --batch_size=$batch"; }
  cat "$T/predict$batch.txt"
  grep -q "input \[1, 28, 28\], 10 classes" "$T/predict$batch.txt" || fail "the model's description"
  got=$(sed -n 's/^accuracy \([0-9.]*\)% (\([0-9]*\) of 10000 images)$/\1/p' "$T/predict$batch.txt")
  [ "$got" = "$trained" ] || fail "batch $batch: accuracy $got%, training reported $trained% on the same images"
  grep -q "^batch $batch: latency per batch p50 [0-9.]* ms, p99 [0-9.]* ms; [0-9.]* us per sample; [0-9]* samples/s" \
    "$T/predict$batch.txt" || fail "batch $batch: no latency line"
done
# Without labels: no accuracy, still timed.
"$NS" predict "$T/out/model.safetensors" "$D/t10k-images-idx3-ubyte.gz" >"$T/nolabels.txt"
! grep -q "^accuracy" "$T/nolabels.txt" || fail "an accuracy without labels"

refused() {  # refused WHAT EXPECTED_MESSAGE ARGS...: exit 2 naming the problem
  local what=$1 want=$2; shift 2
  if "$NS" predict "$@" >"$T/out.txt" 2>"$T/err.txt"; then fail "$what: accepted"; fi
  grep -q -- "$want" "$T/err.txt" || fail "$what: $(cat "$T/err.txt")"
}
checkpoint=$(ls "$T/out"/checkpoint-*.safetensors | head -1)
refused "a checkpoint" "__metadata__.model_spec is missing" "$checkpoint" "$D/t10k-images-idx3-ubyte.gz"
refused "labels as images" "t10k-labels-idx1-ubyte.gz: holds an array of \[10000\]" \
  "$T/out/model.safetensors" "$D/t10k-labels-idx1-ubyte.gz"
refused "labels of another count" "60000 labels for the 10000 images" \
  "$T/out/model.safetensors" "$D/t10k-images-idx3-ubyte.gz" "$D/train-labels-idx1-ubyte.gz"
head -c 1000 "$T/out/model.safetensors" >"$T/truncated.safetensors"
refused "a truncated model" "truncated.safetensors" "$T/truncated.safetensors" "$D/t10k-images-idx3-ubyte.gz"
refused "a missing model" "nope.safetensors" "$T/nope.safetensors" "$D/t10k-images-idx3-ubyte.gz"
refused "no images" "usage: nightshift predict" "$T/out/model.safetensors"
echo PASS
