#!/usr/bin/env bash
# Real processes, real SIGKILL: three ranks all-reduce over gRPC on
# loopback (then with shared-memory rings between them, then with the
# one-sided sharded update on shared step memory); rank 1 is killed
# mid-run. Both survivors must fail within the 2 s operation timeout
# + 1 s, with an error naming rank 1.
set -euo pipefail
MEMBER="$1"
for mode in --shared_memory=false --shared_memory=true "--shared_memory=true --one_sided"; do
echo "== $mode"
T="${TEST_TMPDIR:-$(mktemp -d)}/$(echo "${mode//--/}" | tr ' =' '__')"
mkdir -p "$T/rv"
fail() { echo "FAIL: $*" >&2; for f in "$T"/log-*; do echo "== $f"; tail -5 "$f"; done; exit 1; }
pids=()
for r in 0 1 2; do
  : >"$T/log-$r"  # exists before anyone tails it
  # shellcheck disable=SC2086  # $mode is several flags
  "$MEMBER" --rank=$r --size=3 --rendezvous="$T/rv" --timeout_ms=2000 $mode >"$T/log-$r" 2>&1 &
  pids+=($!)
done
trap 'kill -9 "${pids[@]}" 2>/dev/null || true' EXIT
# Let the group run a few operations, then kill rank 1 mid-stream.
grep -q -m1 "op 20 done" <(timeout 60 tail -n +1 -f "$T/log-1") || fail "the group never got going"
kill -9 "${pids[1]}"
killed_at=$(date +%s%N)
for r in 0 2; do
  set +e
  timeout 10 tail --pid="${pids[$r]}" -f /dev/null
  wait "${pids[$r]}"; rc=$?
  set -e
  ended_at=$(date +%s%N)
  [ "$rc" = 3 ] || fail "rank $r exited $rc, want 3 (an operation failed)"
  ms=$(( (ended_at - killed_at) / 1000000 ))
  [ "$ms" -le 3000 ] || fail "rank $r took ${ms} ms after the kill, limit 3000"
  grep -Eq "rank 1([^0-9]|$)" <(grep "failed after" "$T/log-$r") || fail "rank $r does not name rank 1"
  echo "rank $r: $(grep 'failed after' "$T/log-$r") (exited ${ms} ms after the kill)"
done
kill -9 "${pids[@]}" 2>/dev/null || true
done
echo PASS
