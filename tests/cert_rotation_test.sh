#!/usr/bin/env bash
# Certificate rotation without a restart: a coordinator serves gRPC
# (mutual TLS) and HTTPS with certificates from deploy/certs.sh; running
# certs.sh again replaces them, and new connections get the new
# certificate on both ports (both check the files every 10 s) while the
# process keeps its pid and its clients keep working.
set -euo pipefail
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
COORDINATOR=$(abs "$1")
NS=$(abs "$2")
CERTS=$(abs "$3")
T="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*" >&2; tail -n 20 "$T/coordinator.log" >&2 || true; exit 1; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$CERTS" --dir="$T/tls" coordinator client >/dev/null
grpc=$(free_port) http=$(free_port)
"$COORDINATOR" --listen=127.0.0.1:$grpc --http=127.0.0.1:$http --state_dir="$T/state" \
  --tls_ca="$T/tls/ca.pem" --tls_cert="$T/tls/coordinator.pem" --tls_key="$T/tls/coordinator.key" \
  >"$T/coordinator.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$T/state/admin.token" ] && break; sleep 0.1; done
[ -s "$T/state/admin.token" ] || fail "the coordinator did not start"
export NIGHTSHIFT_CONFIG_DIR="$T/config"
mkdir -p "$NIGHTSHIFT_CONFIG_DIR"
cp "$T/tls/ca.pem" "$NIGHTSHIFT_CONFIG_DIR/ca.pem"
cp "$T/tls/client.pem" "$NIGHTSHIFT_CONFIG_DIR/client.pem"
cp "$T/tls/client.key" "$NIGHTSHIFT_CONFIG_DIR/client.key"
cp "$T/state/admin.token" "$NIGHTSHIFT_CONFIG_DIR/token"
echo "127.0.0.1:$grpc" >"$NIGHTSHIFT_CONFIG_DIR/coordinator"

serial() {  # serial PORT [ALPN]: the serial of the certificate a new connection gets
  openssl s_client -connect "127.0.0.1:$1" ${2:+-alpn "$2"} -CAfile "$T/tls/ca.pem" \
    -cert "$T/tls/client.pem" -key "$T/tls/client.key" </dev/null 2>/dev/null |
    openssl x509 -noout -serial 2>/dev/null
}
grpc_before=$(serial $grpc h2)
http_before=$(serial $http)
[ -n "$grpc_before" ] && [ -n "$http_before" ] || fail "no certificate served: [$grpc_before] [$http_before]"
"$NS" list >/dev/null || fail "the CLI could not list before the rotation"

"$CERTS" --dir="$T/tls" coordinator >/dev/null  # the same CA, a new certificate
want=$(openssl x509 -in "$T/tls/coordinator.pem" -noout -serial)
[ "$want" != "$grpc_before" ] || fail "certs.sh made the same certificate again"
deadline=$(( $(date +%s) + 30 ))
while [ "$(serial $grpc h2)" != "$want" ] || [ "$(serial $http)" != "$want" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "still serving the old certificate 30 s after the rotation"
  sleep 0.5
done
kill -0 $pid || fail "the coordinator restarted or died"
"$NS" list >/dev/null || fail "the CLI could not list after the rotation"
echo "rotated: gRPC and HTTPS now serve $want (was $grpc_before), same process"
echo PASS
