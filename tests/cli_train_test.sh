#!/usr/bin/env bash
# `nightshift train --local` end to end: trains the synthetic example,
# resumes from its checkpoint, writes a model that an independent reader
# loads into PyTorch, and refuses a bad spec and a truncated data file with
# errors that name the field and the file.
set -euo pipefail
NS="$1"
READER="$2"
SPEC="$3"
T="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. Train to the end, with a checkpoint every 50 steps.
{ cat "$SPEC"; echo "checkpoint_interval_steps: 50"; } >"$T/spec.textproto"
SPEC="$T/spec.textproto"
"$NS" train --local "$SPEC" --out="$T/run" --threads=1 >"$T/out.txt" 2>"$T/err.txt" \
  || { cat "$T/err.txt"; fail "training exited non-zero"; }
grep -q "^final test accuracy: " "$T/out.txt" || fail "no final accuracy line"
acc=$(sed -n 's/^final test accuracy: \([0-9.]*\)%.*/\1/p' "$T/out.txt")
awk -v a="$acc" 'BEGIN { exit !(a > 60) }' || fail "accuracy $acc% is near chance (25%)"
grep -q "test accuracy" "$T/err.txt" || fail "no evaluation lines in the progress output"
[ -s "$T/run/model.safetensors" ] || fail "no model.safetensors"

# 2. The model loads into torch.nn.Sequential under the same names.
/usr/bin/python3 "$READER" "$T/run/model.safetensors" flatten dense:64:64 relu dense:64:4 \
  || fail "the safetensors file does not load into PyTorch"

# 3. Resume from the mid-run checkpoint at step 50: the rest of the run
# reproduces the uninterrupted one exactly, down to the model file.
[ -f "$T/run/checkpoint-step-0000050.safetensors" ] || fail "no checkpoint at step 50"
"$NS" train --local "$SPEC" --out="$T/resumed" --threads=1 \
  --resume="$T/run/checkpoint-step-0000050.safetensors" >"$T/out2.txt" 2>"$T/err2.txt" \
  || fail "resume exited non-zero"
# It really continued at step 50 (a fresh start would reproduce the model too).
grep -q " step 60/" "$T/err2.txt" || fail "no progress after step 50"
if grep -q " step 40/" "$T/err2.txt"; then fail "the resumed run trained steps before 50"; fi
cmp <(grep "^final" "$T/out.txt") <(grep "^final" "$T/out2.txt") || fail "resumed accuracy differs"
cmp "$T/run/model.safetensors" "$T/resumed/model.safetensors" || fail "resumed model differs"

# 4. A bad spec: exit 2, the field named, nothing written.
sed 's/lr: 0.02/lr: 0/' "$SPEC" >"$T/bad.textproto"
set +e
"$NS" train --local "$T/bad.textproto" --out="$T/bad" 2>"$T/bad.txt"; rc=$?
set -e
[ "$rc" = 2 ] || fail "bad spec exit code $rc, want 2"
grep -q "optimizer.sgd.lr: must be > 0" "$T/bad.txt" || { cat "$T/bad.txt"; fail "field not named"; }
[ ! -e "$T/bad" ] || fail "a refused spec created its output directory"

# 5. A truncated data file: exit 1, path and offset named.
mkdir -p "$T/data"
printf '\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00\x00\x1c\x00\x00\x00\x1c\x01\x02' >"$T/data/train-images-idx3-ubyte"
cat >"$T/idx.textproto" <<SPEC
model { layers { flatten {} } layers { dense { units: 10 } } }
dataset { idx { dir: "$T/data" train_images: "train-images-idx3-ubyte" } }
optimizer { sgd { lr: 0.1 } }
global_batch_size: 4
steps: 1
SPEC
set +e
"$NS" train --local "$T/idx.textproto" --out="$T/idx" 2>"$T/idx.txt"; rc=$?
set -e
[ "$rc" = 1 ] || fail "truncated data exit code $rc, want 1"
grep -q "$T/data/train-images-idx3-ubyte: truncated IDX data" "$T/idx.txt" || { cat "$T/idx.txt"; fail "path not named"; }
grep -q "byte offset 18" "$T/idx.txt" || fail "offset not named"
echo "PASS"
