#!/usr/bin/env bash
# A Nightshift cluster on this machine: one coordinator and N data-center
# plus M edge workers, on free loopback ports, in the background.
#
#   deploy/local_cluster.sh up [--datacenter N] [--edge M] [--threads T]
#                              [--slowdown-last F]   (benchmarks)
#                              [--parked-debounce S] (edge: seconds parked
#                                                    before eligible; 5)
#                              [--follow-models A,B] (edge: keep the newest
#                                                    published version of these)
#                              [--no-shared-memory]  (ring data over data
#                                                    sockets, as between machines)
#                              [--insecure]          (no TLS: development only)
#   deploy/local_cluster.sh status
#   deploy/local_cluster.sh down
#
# Logs, pid files and the coordinator's state go to one folder
# ($NIGHTSHIFT_CLUSTER_DIR, default /tmp/nightshift-cluster), printed by
# `up`; `down` stops exactly the processes `up` started. `up` prints the
# coordinator's address (also in $DIR/coordinator).
#
# Secure like any deployment: `up` makes a CA and certificates
# (deploy/certs.sh, in $DIR/tls), starts every process with mutual TLS,
# takes the admin token the coordinator writes at its first start, makes a
# worker join token for the workers, and writes the CLI's config (CA,
# client certificate, admin token, coordinator address) to the config
# directory: $NIGHTSHIFT_CONFIG_DIR if set, else ~/.config/nightshift
# (unless that holds another cluster's credentials: then $DIR/client, and
# `up` says to export NIGHTSHIFT_CONFIG_DIR). The `nightshift` commands
# then need no flags. $DIR/coordinator.flags and $DIR/worker.flags hold
# the security flags, for starting more processes by hand; $DIR/dashboard
# the dashboard's sign-in link (with a viewer token), which `up` prints.
set -euo pipefail
[ -n "${NIGHTSHIFT_COORDINATOR_BIN:-}" ] || cd "$(dirname "$0")/.."
DIR="${NIGHTSHIFT_CLUSTER_DIR:-/tmp/nightshift-cluster}"
# Prebuilt binaries (tests set these); otherwise `up` builds them.
COORDINATOR_BIN="${NIGHTSHIFT_COORDINATOR_BIN:-bazel-bin/coordinator/nightshift-coordinator}"
WORKER_BIN="${NIGHTSHIFT_WORKER_BIN:-bazel-bin/worker/nightshift-worker}"
CLI_BIN="${NIGHTSHIFT_CLI_BIN:-bazel-bin/cli/nightshift}"
CERTS="$(dirname "$0")/certs.sh"
MARK=".written-by-local-cluster"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

up() {
  local dc=2 edge=0 threads=1 slowdown_last=1 insecure=0 debounce=5 follow="" share_memory=true
  while [ $# -gt 0 ]; do
    case "$1" in
      --insecure) insecure=1; shift ;;
      --datacenter) dc="$2"; shift 2 ;;
      --edge) edge="$2"; shift 2 ;;
      --threads) threads="$2"; shift 2 ;;
      --slowdown-last) slowdown_last="$2"; shift 2 ;;  # benchmarks: a slower last worker
      --parked-debounce) debounce="$2"; shift 2 ;;      # edge: seconds parked before eligible
      --follow-models) follow="$2"; shift 2 ;;          # edge: published models to keep
      --no-shared-memory) share_memory=false; shift ;;  # ring data over data sockets, as between machines
      *) echo "local_cluster.sh up: unknown flag $1" >&2; exit 2 ;;
    esac
  done
  if alive "$DIR/coordinator.pid"; then
    echo "a cluster is already up in $DIR (run: $0 down)" >&2; exit 1
  fi
  if [ -z "${NIGHTSHIFT_COORDINATOR_BIN:-}" ]; then
    bazel build //coordinator:nightshift-coordinator //worker:nightshift-worker //cli:nightshift >&2
  fi
  rm -rf "$DIR"; mkdir -p "$DIR"
  local grpc_port http_port scheme=https client_flags=""
  grpc_port=$(free_port); http_port=$(free_port)
  if ((insecure)); then
    echo "--insecure" >"$DIR/coordinator.flags"
    echo "--insecure" >"$DIR/worker.flags"
    client_flags="--insecure"; scheme=http
  else
    "$CERTS" --dir="$DIR/tls" coordinator worker client >/dev/null
    echo "--tls_ca=$DIR/tls/ca.pem --tls_cert=$DIR/tls/coordinator.pem --tls_key=$DIR/tls/coordinator.key" >"$DIR/coordinator.flags"
    echo "--tls_ca=$DIR/tls/ca.pem --tls_cert=$DIR/tls/worker.pem --tls_key=$DIR/tls/worker.key" >"$DIR/worker.flags"
  fi
  # shellcheck disable=SC2046
  "$COORDINATOR_BIN" --listen=127.0.0.1:$grpc_port --http=127.0.0.1:$http_port \
    --state_dir="$DIR/state" --admin_token_file="$DIR/admin.token" $(cat "$DIR/coordinator.flags") \
    >"$DIR/coordinator.log" 2>&1 &
  echo $! >"$DIR/coordinator.pid"
  echo "127.0.0.1:$grpc_port" >"$DIR/coordinator"
  echo "$scheme://127.0.0.1:$http_port" >"$DIR/http"
  for _ in $(seq 1 100); do [ -s "$DIR/admin.token" ] && break; sleep 0.1; done
  [ -s "$DIR/admin.token" ] || { tail "$DIR/coordinator.log" >&2; echo "the coordinator did not start" >&2; exit 1; }
  # The CLI's config: the given config directory, or the user's unless it
  # holds credentials this script did not write.
  local config="${NIGHTSHIFT_CONFIG_DIR:-}"
  if [ -z "$config" ]; then
    config="${XDG_CONFIG_HOME:-$HOME/.config}/nightshift"
    if [ -f "$config/token" ] && [ ! -f "$config/$MARK" ]; then config="$DIR/client"; fi
  fi
  mkdir -p "$config"
  rm -f "$config/ca.pem" "$config/client.pem" "$config/client.key"
  if ((!insecure)); then
    cp "$DIR/tls/ca.pem" "$DIR/tls/client.pem" "$config/"
    (umask 077; cp "$DIR/tls/client.key" "$config/client.key")
  fi
  (umask 077; cp "$DIR/admin.token" "$config/token")
  echo "127.0.0.1:$grpc_port" >"$config/coordinator"
  touch "$config/$MARK"
  echo "$config" >"$DIR/config"
  # shellcheck disable=SC2086
  NIGHTSHIFT_CONFIG_DIR="$config" "$CLI_BIN" token create --role=worker \
    --label="local cluster workers" $client_flags >"$DIR/worker.token" 2>/dev/null
  chmod 600 "$DIR/worker.token"
  # The dashboard's sign-in link: a viewer token the browser turns into a
  # cookie (coordinator/http_api.h).
  local viewer
  # shellcheck disable=SC2086
  viewer=$(NIGHTSHIFT_CONFIG_DIR="$config" "$CLI_BIN" token create --role=viewer \
    --label="local cluster dashboard" $client_flags 2>/dev/null)
  (umask 077; echo "$scheme://127.0.0.1:$http_port/?token=$viewer" >"$DIR/dashboard")
  echo "--token_file=$DIR/worker.token" >>"$DIR/worker.flags"
  for ((i = 0; i < dc + edge; i++)); do
    local pool=datacenter name="dc-$i"
    local slow=1
    local vehicle=()
    if ((i >= dc)); then
      pool=edge; name="edge-$((i - dc))"
      # Its vehicle: parked and charging on ethernet, as a gateway would
      # write it; edit the file to try the idle policy (nightshift workers
      # shows the answer). No gateway refreshes it here, so the policy
      # trusts it however old it is, and waits 5 s (--parked-debounce), not
      # 5 min, once parked.
      mkdir -p "$DIR/$name"
      echo '{"ignition": "IGNITION_OFF", "gear": "GEAR_PARK", "charging": true, "chargerPowerKw": 7.4, "stateOfCharge": 0.8, "estimatedRangeKm": 380, "network": "NETWORK_ETHERNET"}' \
        >"$DIR/$name/vehicle.json"
      printf 'staleness_seconds: 1e9\nparked_debounce_seconds: %s\n' "$debounce" \
        >"$DIR/$name/idle_policy.textproto"
      vehicle=(--vehicle_state="$DIR/$name/vehicle.json" --idle_policy="$DIR/$name/idle_policy.textproto")
      [ -z "$follow" ] || vehicle+=(--follow_models="$follow")
    fi
    if ((i == dc - 1)); then slow=$slowdown_last; fi
    # shellcheck disable=SC2046
    "$WORKER_BIN" --coordinator=127.0.0.1:$grpc_port --pool=$pool \
      --threads="$threads" --listen=127.0.0.1:0 --name="$name" --scratch_dir="$DIR/scratch" \
      --share_memory="$share_memory" \
      --simulated_slowdown="$slow" "${vehicle[@]}" $(tr '\n' ' ' <"$DIR/worker.flags") \
      >"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
  done
  # Ready when every worker has registered.
  for _ in $(seq 1 100); do
    # shellcheck disable=SC2086
    n=$(NIGHTSHIFT_CONFIG_DIR="$config" "$CLI_BIN" workers $client_flags 2>/dev/null | grep -c IDLE || true)
    [ "$n" -ge $((dc + edge)) ] && break
    sleep 0.2
  done
  echo "cluster up in $DIR: coordinator 127.0.0.1:$grpc_port, HTTP $scheme://127.0.0.1:$http_port, $dc data-center and $edge edge workers"
  if ((insecure)); then
    echo "INSECURE: no TLS anywhere (--insecure); the nightshift commands need --insecure too"
  else
    echo "mutual TLS on every link; CA $DIR/tls/ca.pem"
  fi
  echo "dashboard: $(cat "$DIR/dashboard")"
  ((insecure)) || echo "  (the browser needs to trust $DIR/tls/ca.pem, or accept the certificate)"
  echo "CLI credentials (admin token, TLS files, coordinator address): $config"
  if [ "$config" = "$DIR/client" ] && [ -z "${NIGHTSHIFT_CONFIG_DIR:-}" ]; then
    echo "  (your ~/.config/nightshift holds other credentials: export NIGHTSHIFT_CONFIG_DIR=$config)"
  fi
}

status() {
  [ -f "$DIR/coordinator" ] || { echo "no cluster in $DIR"; exit 1; }
  for pid in "$DIR"/*.pid; do
    name=$(basename "$pid" .pid)
    if alive "$pid"; then echo "$name: running (pid $(cat "$pid"))"; else echo "$name: stopped"; fi
  done
  echo "coordinator: $(cat "$DIR/coordinator"), HTTP: $(cat "$DIR/http")"
  local insecure_flag=""
  grep -q -- --insecure "$DIR/coordinator.flags" 2>/dev/null && insecure_flag=--insecure
  # shellcheck disable=SC2086
  NIGHTSHIFT_CONFIG_DIR="$(cat "$DIR/config")" "$CLI_BIN" workers $insecure_flag || true
}

down() {
  [ -d "$DIR" ] || { echo "no cluster in $DIR"; return 0; }
  for pid in "$DIR"/*.pid; do
    [ -f "$pid" ] || continue
    if alive "$pid"; then kill "$(cat "$pid")" 2>/dev/null || true; fi
  done
  for pid in "$DIR"/*.pid; do
    [ -f "$pid" ] || continue
    for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -9 "$(cat "$pid")" 2>/dev/null || true
    rm -f "$pid"
  done
  echo "cluster in $DIR stopped"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  status) status ;;
  down) down ;;
  *) echo "usage: $0 up [--datacenter N] [--edge M] [--threads T] [--no-shared-memory] [--insecure] | status | down" >&2; exit 2 ;;
esac
