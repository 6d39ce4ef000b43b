#!/usr/bin/env bash
# Sets up, builds and runs the main job: the Fashion-MNIST MLP, trained in
# one process with a live progress line, ending with its test accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
bazel build //cli:nightshift
exec bazel-bin/cli/nightshift train --local examples/fashion_mlp.textproto \
  --out=out/fashion_mlp "$@"
