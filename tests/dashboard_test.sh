#!/usr/bin/env bash
# The dashboard in a real browser: a local cluster (2 data-center workers,
# 1 edge agent) with a finished job and a live one, and Debian's headless
# Chromium driven by puppeteer-core (tests/dashboard_test.js has the
# checks). The screenshot lands in the test's outputs (dashboard.png).
set -euo pipefail
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
export NIGHTSHIFT_COORDINATOR_BIN=$(abs "$1") NIGHTSHIFT_WORKER_BIN=$(abs "$2") NIGHTSHIFT_CLI_BIN=$(abs "$3")
CLUSTER=$(abs "$4")
SPEC=$(abs "$5")
DRIVER=$(abs "$6")
T="${TEST_TMPDIR:-$(mktemp -d)}"
OUT="${TEST_UNDECLARED_OUTPUTS_DIR:-$T}"
export NIGHTSHIFT_CLUSTER_DIR="$T/cluster" NIGHTSHIFT_CONFIG_DIR="$T/config"
NS="$NIGHTSHIFT_CLI_BIN"
NODE_MODULES=/opt/nightshift/browser-tests/node_modules
fail() { echo "FAIL: $*" >&2; tail -n 20 "$NIGHTSHIFT_CLUSTER_DIR"/coordinator.log >&2 || true; exit 1; }
trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT
[ -x /usr/bin/chromium ] || fail "no /usr/bin/chromium (deploy/setup.sh installs it)"
[ -d "$NODE_MODULES/puppeteer-core" ] || fail "no puppeteer-core in $NODE_MODULES (deploy/setup.sh installs it)"

"$CLUSTER" up --datacenter 2 --edge 1 --threads 1 --parked-debounce 1 >/dev/null
H=$(cat "$NIGHTSHIFT_CLUSTER_DIR/http")

# A finished job, then one that outlasts the checks (cancelled at the end).
sed -e "s/^min_workers: .*/min_workers: 1/" -e "s/^max_workers: .*/max_workers: 2/" "$SPEC" >"$T/done.textproto"
"$NS" submit "$T/done.textproto" --id=finished --watch >/dev/null 2>&1 || fail "job finished did not succeed"
sed -e "s/^min_workers: .*/min_workers: 1/" -e "s/^max_workers: .*/max_workers: 1/" \
  -e "s/^epochs: .*/steps: 10000000/" -e "s/^global_batch_size: .*/global_batch_size: 500/" \
  -e "s/units: 64/units: 1024/" "$SPEC" >"$T/live.textproto"
"$NS" submit "$T/live.textproto" --id=live >/dev/null

# The link `up` printed signs in: a 303 to / setting the cookie.
link=$(cat "$NIGHTSHIFT_CLUSTER_DIR/dashboard")
signin=$(curl -s -o /dev/null -D - --cacert "$NIGHTSHIFT_CLUSTER_DIR/tls/ca.pem" "$link")
grep -q "^HTTP/1.1 303" <<<"$signin" || fail "the printed dashboard link: $signin"
grep -qi "^set-cookie: nightshift_token=.*HttpOnly" <<<"$signin" || fail "no cookie from the link: $signin"
"$NS" token create --role=viewer --label="dashboard test" >"$T/viewer.token"
# The browser trusts the coordinator's key and nothing else.
spki=$(openssl x509 -in "$NIGHTSHIFT_CLUSTER_DIR/tls/coordinator.pem" -pubkey -noout |
  openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64)
NODE_PATH="$NODE_MODULES" node "$DRIVER" "$H" "$T/viewer.token" "$NIGHTSHIFT_CLUSTER_DIR/tls/ca.pem" \
  "$spki" "$OUT/dashboard.png" finished live || fail "the browser checks failed"
[ -s "$OUT/dashboard.png" ] || fail "no screenshot"
"$NS" cancel live >/dev/null
echo "PASS (screenshot: $OUT/dashboard.png)"
