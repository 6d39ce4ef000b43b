# Sourced by scripts that drive a local cluster (tests, benchmarks) after
# `local_cluster.sh up`, with NIGHTSHIFT_CLUSTER_DIR (the cluster folder)
# and NIGHTSHIFT_CONFIG_DIR exported: the cluster's own credentials, as
# `up` made them, for curl and for processes the script starts by hand.
# The cluster is secured like any deployment: mutual TLS, the config
# directory's admin token, the workers' join token.
curl() {
  command curl --cacert "$NIGHTSHIFT_CLUSTER_DIR/tls/ca.pem" \
    -H "Authorization: Bearer $(cat "$NIGHTSHIFT_CONFIG_DIR/token")" "$@"
}
export -f curl  # for `bash -c` conditions too
coordinator_flags() { cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator.flags"; }
worker_flags() { tr '\n' ' ' <"$NIGHTSHIFT_CLUSTER_DIR/worker.flags"; }
