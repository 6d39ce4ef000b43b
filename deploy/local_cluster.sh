#!/usr/bin/env bash
# A Nightshift cluster on this machine: one coordinator and N data-center
# plus M edge workers, on free loopback ports, in the background.
#
#   deploy/local_cluster.sh up [--datacenter N] [--edge M] [--threads T]
#                              [--slowdown-last F]   (benchmarks)
#   deploy/local_cluster.sh status
#   deploy/local_cluster.sh down
#
# Logs, pid files and the coordinator's state go to one folder
# ($NIGHTSHIFT_CLUSTER_DIR, default /tmp/nightshift-cluster), printed by
# `up`; `down` stops exactly the processes `up` started. `up` prints the
# coordinator's address (also in $DIR/coordinator) for `nightshift
# --coordinator=...`.
set -euo pipefail
[ -n "${NIGHTSHIFT_COORDINATOR_BIN:-}" ] || cd "$(dirname "$0")/.."
DIR="${NIGHTSHIFT_CLUSTER_DIR:-/tmp/nightshift-cluster}"
# Prebuilt binaries (tests set these); otherwise `up` builds them.
COORDINATOR_BIN="${NIGHTSHIFT_COORDINATOR_BIN:-bazel-bin/coordinator/nightshift-coordinator}"
WORKER_BIN="${NIGHTSHIFT_WORKER_BIN:-bazel-bin/worker/nightshift-worker}"
CLI_BIN="${NIGHTSHIFT_CLI_BIN:-bazel-bin/cli/nightshift}"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

up() {
  local dc=2 edge=0 threads=1 slowdown_last=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --datacenter) dc="$2"; shift 2 ;;
      --edge) edge="$2"; shift 2 ;;
      --threads) threads="$2"; shift 2 ;;
      --slowdown-last) slowdown_last="$2"; shift 2 ;;  # benchmarks: a slower last worker
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
  local grpc_port http_port
  grpc_port=$(free_port); http_port=$(free_port)
  "$COORDINATOR_BIN" --listen=127.0.0.1:$grpc_port \
    --http=127.0.0.1:$http_port --state_dir="$DIR/state" >"$DIR/coordinator.log" 2>&1 &
  echo $! >"$DIR/coordinator.pid"
  echo "127.0.0.1:$grpc_port" >"$DIR/coordinator"
  echo "http://127.0.0.1:$http_port" >"$DIR/http"
  for ((i = 0; i < dc + edge; i++)); do
    local pool=datacenter name="dc-$i"
    local slow=1
    if ((i >= dc)); then pool=edge; name="edge-$((i - dc))"; fi
    if ((i == dc - 1)); then slow=$slowdown_last; fi
    "$WORKER_BIN" --coordinator=127.0.0.1:$grpc_port --pool=$pool \
      --threads="$threads" --listen=127.0.0.1:0 --name="$name" --scratch_dir="$DIR/scratch" \
      --simulated_slowdown="$slow" \
      >"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
  done
  # Ready when every worker has registered.
  for _ in $(seq 1 100); do
    n=$("$CLI_BIN" workers --coordinator=127.0.0.1:$grpc_port 2>/dev/null | grep -c IDLE || true)
    [ "$n" -ge $((dc + edge)) ] && break
    sleep 0.2
  done
  echo "cluster up in $DIR: coordinator 127.0.0.1:$grpc_port, HTTP http://127.0.0.1:$http_port, $dc data-center and $edge edge workers"
}

status() {
  [ -f "$DIR/coordinator" ] || { echo "no cluster in $DIR"; exit 1; }
  for pid in "$DIR"/*.pid; do
    name=$(basename "$pid" .pid)
    if alive "$pid"; then echo "$name: running (pid $(cat "$pid"))"; else echo "$name: stopped"; fi
  done
  echo "coordinator: $(cat "$DIR/coordinator"), HTTP: $(cat "$DIR/http")"
  "$CLI_BIN" workers --coordinator="$(cat "$DIR/coordinator")" || true
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
  *) echo "usage: $0 up [--datacenter N] [--edge M] [--threads T] | status | down" >&2; exit 2 ;;
esac
