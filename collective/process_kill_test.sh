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
killed_at=$(( $(date +%s%N) / 1000000 ))
kill -9 "${pids[1]}"
for r in 0 2; do
  # The failure is what is timed (from the line the rank prints); the
  # process must also exit, but gRPC's final shutdown after a lost peer can
  # take up to ~10 s under load, so exit gets a looser bound.
  set +e
  timeout 20 tail --pid="${pids[$r]}" -f /dev/null
  wait "${pids[$r]}"; rc=$?
  set -e
  [ "$rc" = 3 ] || fail "rank $r exited $rc, want 3 (an operation failed)"
  line=$(grep "failed after" "$T/log-$r") || fail "rank $r printed no failure"
  failed_at=$(sed -E 's/.*at unix ms ([0-9]+).*/\1/' <<<"$line")
  ms=$(( failed_at - killed_at ))
  [ "$ms" -le 3000 ] || fail "rank $r failed ${ms} ms after the kill, limit 3000"
  grep -Eq "rank 1([^0-9]|$)" <<<"$line" || fail "rank $r does not name rank 1"
  echo "rank $r: $line (failed ${ms} ms after the kill)"
done
kill -9 "${pids[@]}" 2>/dev/null || true
done
echo PASS
