#!/usr/bin/env bash
# Edge agents in a real local cluster (coordinator, 2 data-center workers
# and 4 edge agents driven by their vehicle-state files) training one
# hybrid diloco job (tests/e2e_diloco.textproto): the two data-center
# workers are one ring, one replica beside the vehicles, while a driver
# flips states:
#  1. ignition on at edge-0 mid-job: it is shown ineligible with the
#     reason and the rounds go on without it; it returns later;
#  2. edge-1's state of charge falls under the floor, unplugged;
#  3. dc-1, a ring member, is SIGKILLed: the ring goes on as dc-0 alone
#     (its next generation) and takes part in rounds again;
#  4. the coordinator is SIGKILLed mid-job and restarted on its state:
#     the job goes on from its last committed round;
#  5. the job ends SUCCEEDED with a test accuracy over the bound, every
#     round in its history once, the model downloadable.
set -euo pipefail
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
export NIGHTSHIFT_COORDINATOR_BIN=$(abs "$1") NIGHTSHIFT_WORKER_BIN=$(abs "$2") NIGHTSHIFT_CLI_BIN=$(abs "$3")
CLUSTER=$(abs "$4")
SPEC=$(abs "$5")
READER=$(abs "$6")
T="${TEST_TMPDIR:-$(mktemp -d)}"
export NIGHTSHIFT_CLUSTER_DIR="$T/cluster" NIGHTSHIFT_CONFIG_DIR="$T/config"
NS="$NIGHTSHIFT_CLI_BIN"
D="$NIGHTSHIFT_CLUSTER_DIR"
fail() { echo "FAIL: $*" >&2; tail -n 30 "$D"/*.log >&2 || true; exit 1; }
trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT

"$CLUSTER" up --datacenter 2 --edge 4 --threads 1
C=$(cat "$D/coordinator")
H=$(cat "$D/http")
source "$(dirname "$0")/elastic_helpers.sh"
round() { job fleet 'int(d.get("round", 0))'; }
round_at_least() { [ "$(round)" -ge "$1" ]; }
events() { curl -sf "$H/v1/jobs/fleet/history" | json '"\n".join(e["reason"] for e in d["events"])'; }
ring_rounds() {  # rounds the data-center ring's update counted in
  curl -sf "$H/v1/jobs/fleet/history" |
    json 'sum("datacenter-ring" in r.get("accepted", []) for r in d["rounds"])'
}
ring_is() { events | grep "data-center ring generation" | tail -n 1 | grep -q " on $1 (one replica"; }
ring_rounds_above() { [ "$(ring_rounds)" -gt "$1" ]; }
edge_says() {  # NAME WHAT: `nightshift workers` shows it for NAME
  "$NS" workers --coordinator="$C" | grep " $1 " | grep -q "$2"
}
set_vehicle() {  # NAME SED-EXPRESSION: the gateway rewrites the state file
  local f="$D/$1/vehicle.json"
  sed "$2" "$f" >"$f.new" && mv "$f.new" "$f"
}
for i in 0 1 2 3; do
  until_true 30 edge_says "edge-$i" "eligible: parked" || fail "edge-$i never became eligible"
done
"$NS" submit "$SPEC" --id=fleet --coordinator="$C" >/dev/null
until_true 120 round_at_least 1 || fail "no round closed: $(job fleet 'd["reason"]')"
until_true 30 ring_is 'dc-[01], dc-[01]' \
  || fail "no ring of dc-0 and dc-1: $(events | grep 'ring generation' || true)"

echo "== 1. ignition on at edge-0 (round $(round))"
set_vehicle edge-0 's/IGNITION_OFF/IGNITION_ON/'
until_true 10 edge_says edge-0 "ineligible: ignition on" || fail "edge-0 did not see the ignition"
echo "== 2. edge-1 unplugged at 30% (round $(round))"
set_vehicle edge-1 's/"charging": true/"charging": false/; s/"stateOfCharge": 0.8/"stateOfCharge": 0.3/'
until_true 10 edge_says edge-1 "ineligible: not charging and state of charge 30%" \
  || fail "edge-1 did not see its battery"
r=$(round)
until_true 120 round_at_least $((r + 2)) || fail "the rounds stopped without edge-0 and edge-1"
set_vehicle edge-0 's/IGNITION_ON/IGNITION_OFF/'
until_true 30 edge_says edge-0 "eligible: parked" || fail "edge-0 did not come back"

echo "== 3. SIGKILL dc-1, a ring member, at round $(round)"
kill -9 "$(pid dc-1)"
until_true 60 ring_is dc-0 \
  || fail "the ring did not go on without dc-1: $(events | grep 'ring' || true)"
before=$(ring_rounds)
events | grep -qE "its peers lost dc-1|dc-1 was fenced" || fail "dc-1's loss is not in the history"
until_true 120 ring_rounds_above "$before" || fail "the ring of dc-0 took part in no round after"

echo "== 4. SIGKILL the coordinator at round $(round)"
kill_and_restart_coordinator dc-0
"$NS" watch fleet --coordinator="$C" >/dev/null 2>&1 || fail "fleet did not succeed: $(job fleet 'd["reason"]')"

echo "== 5. the outcome"
reason=$(job fleet 'd["reason"]')
echo "fleet: $reason"
accuracy=$(job fleet 'd["progress"]["testAccuracy"]')
/usr/bin/python3 -c "import sys; sys.exit(0 if $accuracy > 0.6 else 1)" || fail "test accuracy $accuracy <= 0.6"
history=$(curl -sf "$H/v1/jobs/fleet/history")
echo "$history" | json '" ".join(str(r.get("round", 0)) for r in d["rounds"])' | grep -qx "$(seq -s ' ' 0 29)" \
  || fail "rounds in the history: $(echo "$history" | json '[r.get("round", 0) for r in d["rounds"]]')"
echo "$history" | json '"\n".join("round %s: accepted %s, refused %s" % (r.get("round", 0), r.get("accepted"), [(x["replica"], x["reason"]) for x in r.get("refused", [])]) for r in d["rounds"])'
echo "$history" | json '"\n".join(e["reason"] for e in d["events"])' | grep -q "the rounds go on from round" \
  || fail "the restart is not in the history"
[ "$(ring_rounds)" -ge 2 ] || fail "the data-center ring counted in $(ring_rounds) rounds"
"$NS" export fleet "$T/fleet.safetensors" --coordinator="$C" >/dev/null || fail "export"
/usr/bin/python3 - "$READER" "$T/fleet.safetensors" <<'PY' || fail "the model does not read"
import importlib.util, sys
spec = importlib.util.spec_from_file_location("reader", sys.argv[1])
reader = importlib.util.module_from_spec(spec); spec.loader.exec_module(reader)
tensors, _ = reader.read(sys.argv[2])
assert sorted(tensors) == ["layers.1.bias", "layers.1.weight", "layers.3.bias", "layers.3.weight"], sorted(tensors)
PY
echo PASS
