# Sourced by the cluster tests after `local_cluster.sh up` (with D and
# NIGHTSHIFT_CLUSTER_DIR, the cluster folder, and NIGHTSHIFT_CONFIG_DIR
# exported): the cluster's own
# credentials, as `up` made them, for curl and for the processes a test
# starts by hand. The cluster is secured like any deployment: mutual TLS,
# tokens (the config directory's admin token), a worker join token.
curl() {
  command curl --cacert "$NIGHTSHIFT_CLUSTER_DIR/tls/ca.pem" \
    -H "Authorization: Bearer $(cat "$NIGHTSHIFT_CONFIG_DIR/token")" "$@"
}
export -f curl  # for `bash -c` conditions too
coordinator_flags() { cat "$D/coordinator.flags"; }
worker_flags() { tr '\n' ' ' <"$D/worker.flags"; }
