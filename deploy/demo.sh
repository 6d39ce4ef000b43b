#!/usr/bin/env bash
# The main job on a local cluster: set up, build, bring up a coordinator
# and two data-center workers, submit the Fashion-MNIST MLP, watch it train
# with a live progress bar, print the final test accuracy, tear down.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
export NIGHTSHIFT_CLUSTER_DIR="${NIGHTSHIFT_CLUSTER_DIR:-/tmp/nightshift-demo}"
deploy/local_cluster.sh up --datacenter 2
trap 'deploy/local_cluster.sh down' EXIT
COORD=$(cat "$NIGHTSHIFT_CLUSTER_DIR/coordinator")
# The CLI's credentials, where `up` wrote them (usually ~/.config/nightshift).
export NIGHTSHIFT_CONFIG_DIR="$(cat "$NIGHTSHIFT_CLUSTER_DIR/config")"
echo "status API: $(cat "$NIGHTSHIFT_CLUSTER_DIR/http")/v1/jobs"
job=$(bazel-bin/cli/nightshift submit examples/fashion_mlp.textproto --coordinator="$COORD")
echo "submitted $job"
bazel-bin/cli/nightshift watch "$job" --coordinator="$COORD"
mkdir -p out
bazel-bin/cli/nightshift export "$job" "out/$job.safetensors" --coordinator="$COORD"
