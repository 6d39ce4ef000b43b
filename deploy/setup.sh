#!/usr/bin/env bash
# Installs every Debian package Nightshift needs to build, run, test and
# benchmark. Idempotent: when everything is present it only runs dpkg-query
# and exits in well under a second.
set -euo pipefail

PACKAGES=(
  # Build: Bazel 4.2.3 offline, compilers and code generators.
  bazel-bootstrap bazel-platforms g++ pkg-config clang-format clang
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  libabsl-dev libgoogle-glog-dev zlib1g-dev
  # Kernels and collectives.
  libdnnl-dev libopenmpi-dev openmpi-bin
  # Coordinator state and HTTP status API (libevent's evhttp, with its
  # OpenSSL bufferevents).
  libsqlite3-dev libevent-dev
  # The coordinator's and the fleet simulator's allocator: glibc's malloc
  # cost a third of their CPU under a fleet's heartbeats (bench/README.md,
  # "A fleet on one machine").
  libjemalloc-dev
  # Tests and benchmarks.
  libgtest-dev libgmock-dev libbenchmark-dev
  # Scripts and tests: the HTTP API is checked with curl; certificates are
  # made with openssl (deploy/certs.sh), uploads parsed with libssl's
  # hashes; the adversary test speaks gRPC from Python; fuzzers need
  # libFuzzer; the status API benchmark drives wrk.
  curl openssl libssl-dev python3-protobuf wrk
  # Fuzzers (deploy/fuzz.sh, --config=fuzz): clang's sanitizer and fuzzer
  # runtimes and its OpenMP (the build passes -fopenmp), which clang
  # itself only recommends.
  libfuzzer-14-dev libclang-rt-14-dev libomp-14-dev
  # Data set used by the examples.
  dataset-fashion-mnist
  # Benchmark peers: PyTorch on OpenBLAS (OpenMP build), Python gRPC.
  python3-torch python3-numpy libopenblas0-openmp python3-grpcio
  # Benchmark pictures (bench/*.png); profiles quoted in bench/README.md
  # (perf record).
  python3-matplotlib linux-perf
  # Operations files: systemd units are checked with systemd-analyze and
  # systemd-sysusers, Kubernetes manifests parsed with PyYAML.
  systemd python3-yaml
  # Operations tests against the real servers: Prometheus scrapes /metrics,
  # Chromium loads the dashboard (driven by puppeteer-core, below), a
  # single-node Slurm (slurmctld + slurmd, authenticated by munge) runs
  # deploy/slurm's batch scripts.
  prometheus chromium slurm-wlm munge
  # npm, for puppeteer-core (below).
  nodejs
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The browser test's driver (tests/dashboard_test.js): puppeteer-core from
# npm, at the versions tests/browser/package-lock.json pins, in a fixed
# folder outside the checkout (Bazel's tests find it there, as they find
# /usr/bin/chromium). Reinstalled only when the lock file changes.
BROWSER_TESTS=/opt/nightshift/browser-tests
LOCK="$(dirname "$0")/../tests/browser/package-lock.json"
if ! cmp -s "$LOCK" "$BROWSER_TESTS/package-lock.json" ||
   [ ! -f "$BROWSER_TESTS/node_modules/puppeteer-core/package.json" ]; then
  echo "setup: installing puppeteer-core into $BROWSER_TESTS" >&2
  $SUDO mkdir -p "$BROWSER_TESTS"
  $SUDO cp "$(dirname "$0")/../tests/browser/package.json" "$LOCK" "$BROWSER_TESTS/"
  (cd "$BROWSER_TESTS" && $SUDO npm ci --no-audit --no-fund --loglevel=error >&2)
fi
