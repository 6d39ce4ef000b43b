#!/usr/bin/env bash
# An edge agent behind an emulated vehicle link (tests/link_emulator.py,
# between it and the coordinator): a 600 ms round trip with ±50 ms
# jitter, 256 kbit/s each way, and every connection cut 4 s after it
# opened. Each fetch of the parameters (72 KB in 16 KB chunks) outlasts a
# connection, so the agent's fetches and pushes must resume after cuts: the
# diloco job (tests/e2e_link.textproto, 3 rounds) ends SUCCEEDED with
# every round once in its history, the emulator cut the agent's
# connections during the job, and the agent's log shows calls it retried.
set -euo pipefail
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
export NIGHTSHIFT_COORDINATOR_BIN=$(abs "$1") NIGHTSHIFT_WORKER_BIN=$(abs "$2") NIGHTSHIFT_CLI_BIN=$(abs "$3")
CLUSTER=$(abs "$4")
SPEC=$(abs "$5")
EMULATOR=$(abs "$6")
T="${TEST_TMPDIR:-$(mktemp -d)}"
export NIGHTSHIFT_CLUSTER_DIR="$T/cluster" NIGHTSHIFT_CONFIG_DIR="$T/config"
NS="$NIGHTSHIFT_CLI_BIN"
D="$NIGHTSHIFT_CLUSTER_DIR"
fail() { echo "FAIL: $*" >&2; tail -n 40 "$D"/*.log >&2 || true; cat "$T/link.json" >&2 || true; exit 1; }
cleanup() {
  [ -f "$T/agent.pid" ] && kill "$(cat "$T/agent.pid")" 2>/dev/null || true
  [ -f "$T/link.pid" ] && kill "$(cat "$T/link.pid")" 2>/dev/null || true
  "$CLUSTER" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$CLUSTER" up --datacenter 0 --edge 0 --threads 1 >/dev/null
C=$(cat "$D/coordinator")
H=$(cat "$D/http")
source "$(dirname "$0")/elastic_helpers.sh"

/usr/bin/python3 "$EMULATOR" --target="$C" --port_file="$T/link.port" --stats_file="$T/link.json" \
  --delay_ms=300 --jitter_ms=50 --rate_kbps=256 --cut_after_s=4 >"$T/link.log" 2>&1 &
echo $! >"$T/link.pid"
until_true 10 test -s "$T/link.port" || fail "the link emulator did not start"
mkdir -p "$D/edge-0"
echo '{"ignition": "IGNITION_OFF", "gear": "GEAR_PARK", "charging": true, "stateOfCharge": 0.9, "network": "NETWORK_WIFI"}' \
  >"$D/edge-0/vehicle.json"
printf 'staleness_seconds: 1e9\nparked_debounce_seconds: 0.001\n' >"$D/edge-0/idle_policy.textproto"
# shellcheck disable=SC2046
"$NIGHTSHIFT_WORKER_BIN" --coordinator="127.0.0.1:$(cat "$T/link.port")" --pool=edge --threads=1 \
  --name=edge-0 --scratch_dir="$D/scratch" --vehicle_state="$D/edge-0/vehicle.json" \
  --idle_policy="$D/edge-0/idle_policy.textproto" --round_chunk_bytes=16384 $(worker_flags) \
  >"$D/edge-0.log" 2>&1 &
echo $! >"$T/agent.pid"
edge_eligible() { "$NS" workers --coordinator="$C" | grep " edge-0 " | grep -v ineligible | grep -q "eligible: parked"; }
until_true 60 edge_eligible || fail "the agent did not register eligible through the link"

"$NS" submit "$SPEC" --id=link --coordinator="$C" >/dev/null
timeout 300 "$NS" watch link --coordinator="$C" >/dev/null 2>&1 || fail "link did not succeed within 300 s: $(job link 'd["state"] + " " + d["reason"]')"
echo "link: $(job link 'd["reason"]')"
history=$(curl -sf "$H/v1/jobs/link/history")
echo "$history" | json '" ".join(str(r.get("round", 0)) for r in d["rounds"])' | grep -qx "0 1 2" \
  || fail "rounds in the history: $(echo "$history" | json '[r.get("round", 0) for r in d["rounds"]]')"
stats=$(cat "$T/link.json")
echo "link emulator: $stats"
cuts=$(echo "$stats" | json 'd["cuts"]')
[ "$cuts" -ge 3 ] || fail "only $cuts cuts during the job"
retried=$(grep -c "retried" "$D/edge-0.log" || true)
grep "retried" "$D/edge-0.log" | head -5
[ "$retried" -ge 1 ] || fail "the agent's log shows no retried call: the cuts never hit a transfer"
echo PASS
