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
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
