#!/usr/bin/env bash
# The model loop back to the vehicles, in a real local cluster (a
# coordinator, one data-center worker, one edge agent following the model
# "fashion", driven by its vehicle-state file):
#  1. a Fashion-MNIST job whose spec says publish_as ends SUCCEEDED and is
#     published as version 1 (job, accuracy, SHA-256 listed by
#     `nightshift models` and /v1/models); bad publishes are refused with
#     their code: a failed... (here: cancelled) job, a bad name, a viewer
#     token, an unknown job;
#  2. while the vehicle is on a metered cellular link it fetches nothing
#     (checked after its heartbeats have carried the offer);
#  3. on Wi-Fi it fetches version 1, checksum-verified; `nightshift
#     predict` runs that file on the vehicle with the training kernels and
#     reaches the accuracy the job reported;
#  4. a second job published by hand is version 2: the agent replaces 1
#     with it; `nightshift pull` gets the same bytes;
#  5. a version corrupted on the coordinator's disk after publishing is
#     refused by the agent (SHA-256), and version 2 stays.
set -euo pipefail
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
export NIGHTSHIFT_COORDINATOR_BIN=$(abs "$1") NIGHTSHIFT_WORKER_BIN=$(abs "$2") NIGHTSHIFT_CLI_BIN=$(abs "$3")
CLUSTER=$(abs "$4")
SPEC=$(abs "$5")
T="${TEST_TMPDIR:-$(mktemp -d)}"
export NIGHTSHIFT_CLUSTER_DIR="$T/cluster" NIGHTSHIFT_CONFIG_DIR="$T/config"
NS="$NIGHTSHIFT_CLI_BIN"
D="$NIGHTSHIFT_CLUSTER_DIR"
DATA=/usr/share/datasets/fashion-mnist
fail() { echo "FAIL: $*" >&2; tail -n 30 "$D"/*.log >&2 || true; exit 1; }
trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT
[ -f "$DATA/t10k-images-idx3-ubyte.gz" ] || fail "no Fashion-MNIST in $DATA (deploy/setup.sh)"

"$CLUSTER" up --datacenter 1 --edge 1 --threads 1 --parked-debounce 1 --follow-models fashion >/dev/null
C=$(cat "$D/coordinator")
H=$(cat "$D/http")
source "$(dirname "$0")/elastic_helpers.sh"
MODELS="$D/scratch/edge-0/models/fashion"
set_vehicle() {  # SED-EXPRESSION: the gateway rewrites edge-0's state file
  local f="$D/edge-0/vehicle.json"
  sed "$1" "$f" >"$f.new" && mv "$f.new" "$f"
}
edge_says() { "$NS" workers | grep " edge-0 " | grep -q "$1"; }
# heartbeat_after UNIX_SECONDS: edge-0's last heartbeat came after it.
heartbeat_after() {
  curl -sf "$H/v1/workers?pool=edge" | /usr/bin/python3 -c '
import datetime, json, sys
t = json.load(sys.stdin)["workers"][0]["lastHeartbeat"]
seconds = datetime.datetime.fromisoformat(t.rstrip("Z")[:26]).replace(
    tzinfo=datetime.timezone.utc).timestamp()
sys.exit(0 if seconds > float(sys.argv[1]) else 1)' "$1"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
listed_sha() {  # NAME VERSION: its SHA-256 as /v1/models lists it
  curl -sf "$H/v1/models?name=$1" | json "[v['sha256'] for v in d['versions'] if int(v['version']) == $2][0]"
}

echo "== 1. a job with publish_as is published when it succeeds"
set_vehicle 's/"network": "NETWORK_ETHERNET"/"network": "NETWORK_CELLULAR", "metered": true, "dataBudgetBytes": 500000000/'
until_true 30 edge_says "eligible: parked .* on cellular (metered)" || fail "edge-0 never became eligible"
sed -e 's/^epochs: .*/epochs: 1/' "$SPEC" >"$T/fashion.textproto"
echo 'publish_as: "fashion"' >>"$T/fashion.textproto"
"$NS" submit "$T/fashion.textproto" --id=fm-1 --watch >"$T/watch1.txt" || { cat "$T/watch1.txt"; fail "fm-1 did not succeed"; }
has_version() { "$NS" models fashion | grep -q "^fashion  *$1  *$2 "; }
until_true 10 has_version 1 fm-1 || fail "fm-1 was not published: $("$NS" models; "$NS" status fm-1 | tail -3)"
"$NS" models fashion
accuracy=$(job fm-1 'round(100 * d["progress"]["testAccuracy"], 2)')
# (Whole outputs before grep -q: an early match must not cut a writer off.)
status=$("$NS" status fm-1)
grep -q "published as model fashion version 1" <<<"$status" || fail "no history entry for the publish"
metrics=$(curl -sf "$H/metrics")
grep -q '^nightshift_models_published_total 1$' <<<"$metrics" || fail "models_published_total"

# Refused, each with its code; nothing is added.
refused() {  # WANT ARGS...: `nightshift ARGS` exits 1 printing WANT
  if "$NS" "${@:2}" >"$T/out.txt" 2>&1; then fail "accepted: $*"; fi
  grep -q "$1" "$T/out.txt" || fail "$*: $(cat "$T/out.txt")"
}
sed -e 's/^epochs: .*/steps: 100000/' "$SPEC" >"$T/long.textproto"
"$NS" submit "$T/long.textproto" --id=fm-cancelled >/dev/null
"$NS" cancel fm-cancelled >/dev/null
refused "FAILED_PRECONDITION: job fm-cancelled is CANCELLED: only a job that succeeded can be published" \
  publish fm-cancelled fashion
refused "INVALID_ARGUMENT: model_name: 'Fashion/../x' is not a model name" publish fm-1 'Fashion/../x'
refused "NOT_FOUND" publish no-such-job fashion
"$NS" token create --role=viewer >"$T/viewer.token" 2>/dev/null
refused "PERMISSION_DENIED: PublishModel needs an admin token" publish fm-1 other --token_file="$T/viewer.token"
[ "$("$NS" models | grep -c '^fashion ')" = 1 ] || fail "a refused publish added a version"

echo "== 2. on a metered link the vehicle fetches nothing"
# Two heartbeats after the publish (an edge agent beats every 10 s,
# ±10%): the offer came in the first reply.
now=$(date +%s.%N)
until_true 30 heartbeat_after "$now" || fail "no heartbeat"
now=$(date +%s.%N)
until_true 30 heartbeat_after "$now" || fail "no second heartbeat"
[ -z "$(ls -A "$MODELS")" ] || fail "fetched on a metered link: $(ls "$MODELS")"
edge_says "eligible: parked" || fail "edge-0 is not eligible, so this proves nothing"

echo "== 3. on Wi-Fi it fetches version 1 and runs it"
set_vehicle 's/"network": "NETWORK_CELLULAR", "metered": true/"network": "NETWORK_WIFI"/'
until_true 30 test -f "$MODELS/v1.safetensors" || fail "version 1 never arrived"
[ "$(sha "$MODELS/v1.safetensors")" = "$(listed_sha fashion 1)" ] || fail "v1's checksum"
grep -q "model fashion: version 1 fetched and verified" "$D/edge-0.log" || fail "no log line"
"$NS" predict "$MODELS/v1.safetensors" "$DATA/t10k-images-idx3-ubyte.gz" "$DATA/t10k-labels-idx1-ubyte.gz" \
  --threads=1 >"$T/predict.txt" || { cat "$T/predict.txt"; fail "predict on the vehicle's copy"; }
got=$(sed -n 's/^accuracy \([0-9.]*\)% .*/\1/p' "$T/predict.txt")
/usr/bin/python3 -c "import sys; sys.exit(abs($got - $accuracy) > 0.011)" \
  || fail "the vehicle's copy predicts $got%, the job reported $accuracy%"
echo "the vehicle's copy of fashion v1: $got% on the test set (the job reported $accuracy%)"

echo "== 4. version 2 replaces it"
sed -e 's/^epochs: .*/steps: 200/' -e 's/^seed: .*/seed: 11/' "$SPEC" >"$T/short.textproto"
"$NS" submit "$T/short.textproto" --id=fm-2 --watch >/dev/null || fail "fm-2 did not succeed"
"$NS" publish fm-2 fashion | grep -q "^fashion version 2 (job fm-2" || fail "publish fm-2"
"$NS" publish fm-2 fashion | grep -q "^fashion version 2 (job fm-2" || fail "a retried publish is not the same version"
until_true 30 test -f "$MODELS/v2.safetensors" || fail "version 2 never arrived"
until_true 10 test ! -f "$MODELS/v1.safetensors" || fail "version 1 was kept after version 2 arrived"
"$NS" pull fashion "$T/pulled.safetensors" | grep -q "fashion version 2" || fail "pull"
cmp -s "$T/pulled.safetensors" "$MODELS/v2.safetensors" || fail "pull and the vehicle differ"
"$NS" pull fashion:1 "$T/v1.safetensors" >/dev/null || fail "pull of version 1"
[ "$(sha "$T/v1.safetensors")" = "$(listed_sha fashion 1)" ] || fail "pulled v1's checksum"

echo "== 5. a corrupt version is refused; version 2 stays"
set_vehicle 's/"network": "NETWORK_WIFI"/"network": "NETWORK_CELLULAR", "metered": true/'
until_true 30 edge_says "on cellular (metered)" || fail "edge-0 did not see the metered link"
sed -e 's/^epochs: .*/steps: 100/' -e 's/^seed: .*/seed: 12/' "$SPEC" >"$T/short3.textproto"
"$NS" submit "$T/short3.textproto" --id=fm-3 --watch >/dev/null || fail "fm-3 did not succeed"
"$NS" publish fm-3 fashion | grep -q "^fashion version 3" || fail "publish fm-3"
stored="$D/state/models/fashion/v3.safetensors"
[ -f "$stored" ] || fail "no $stored"
/usr/bin/python3 - "$stored" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) - 100] ^= 0xFF  # a flipped byte in the last tensor: still parses
open(path, "wb").write(data)
PY
set_vehicle 's/"network": "NETWORK_CELLULAR", "metered": true/"network": "NETWORK_WIFI"/'
refusal() { grep -q "model fashion v3: DATA_LOSS: refused (kept v2): the download's SHA-256 is" "$D/edge-0.log"; }
until_true 30 refusal || fail "the corrupt version 3 was not refused"
[ -f "$MODELS/v2.safetensors" ] || fail "version 2 is gone"
[ ! -e "$MODELS/v3.safetensors" ] && [ ! -e "$MODELS/v3.safetensors.partial" ] || fail "version 3 was kept"
[ "$(sha "$MODELS/v2.safetensors")" = "$(listed_sha fashion 2)" ] || fail "v2 changed"
echo PASS
