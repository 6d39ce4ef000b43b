#!/usr/bin/env bash
# DiLoCo against the synchronous job on the Fashion-MNIST MLP
# (examples/fashion_mlp.textproto: 784-512-256-10, 535,818 parameters),
# side by side in one run, one thread each:
#   sync     `nightshift train --local`, global batch 128 for 4690 steps
#            (10 epochs). Its exact semantics make it the same job as 8
#            data-center workers × 16 samples over the ring
#            (tests/cluster_e2e_test checks the equivalence); a worker
#            of an 8-worker ring sends 2·7/8·4 bytes per parameter per
#            step (float32 gradients), the traffic figure used here.
#   diloco   bench/diloco_bench: 8 replicas × 16 samples, each taking the
#            same 4690 inner steps (the same samples in all as the sync
#            job), over the real RoundKeeper and RoundClient in process;
#            bytes are those each replica fetched and pushed.
#   Variants: H = 50, 100, 250 inner steps per round (IID shards, int8
#   deltas, parameters fetched as float32, the edge default aggregation,
#   centered clipping); float32 deltas; bfloat16 parameters; non-IID shards
#   (Dirichlet α = 0.5); the plain mean. Poisoned: 10 replicas of which 2
#   (20%) send sign-flipped, ×100, NaN or ALIE updates through the
#   test-only wrapper, under the robust default and under a plain mean with
#   screening off (max_norm_ratio 0, direction_mads 0), against a clean
#   10-replica run; and sign flips with only the relative direction
#   screen off (direction_mads 0), to show what it does.
# Prints a table (accuracy, bytes per replica, traffic ratio against the
# ring, rounds, seconds) and writes bench/diloco_accuracy_vs_bytes.png.
#
# usage: bench/run_diloco.sh [--quick] [--only=REGEX]
#   --quick: 1 epoch, no poisoning; --only: the sync job and only the
#   DiLoCo runs whose name matches (bash regex), e.g. --only=noniid
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=4690
POISON=1
ONLY=""
for a in "$@"; do
  case "$a" in
    --quick) STEPS=469; POISON=0 ;;
    --only=*) ONLY="${a#--only=}" ;;
    *) echo "usage: $0 [--quick] [--only=REGEX]" >&2; exit 2 ;;
  esac
done
bazel build -c opt //cli:nightshift //bench:diloco_bench >/dev/null 2>&1
OUT=$(mktemp -d)
sed -e '/^epochs:/d' -e '/^checkpoint_interval_steps/d' -e '/^min_workers/d' -e '/^max_workers/d' \
  examples/fashion_mlp.textproto >"$OUT/base.textproto"

echo "sync: nightshift train --local, $STEPS steps at batch 128" >&2
{ cat "$OUT/base.textproto"; echo "steps: $STEPS"; } >"$OUT/sync.textproto"
start=$(date +%s.%N)
bazel-bin/cli/nightshift train --local "$OUT/sync.textproto" --threads=1 --out="$OUT/sync" \
  2>&1 | tr '\r' '\n' | grep 'test accuracy' >"$OUT/sync.log"
/usr/bin/python3 -c "import sys; print(float(sys.argv[1]) - float(sys.argv[2]))" "$(date +%s.%N)" "$start" >"$OUT/sync.seconds"

# diloco NAME REPLICAS H ALPHA DELTA PARAMS AGGREGATION MAX_NORM_RATIO ATTACK POISONED [DILOCO_FIELDS]
diloco() {
  local name=$1 replicas=$2 h=$3 alpha=$4 delta=$5 params=$6 agg=$7 ratio=$8 attack=$9 poisoned=${10}
  local extra=${11:-}
  if [ -n "$ONLY" ] && ! [[ "$name" =~ $ONLY ]]; then return; fi
  {
    cat "$OUT/base.textproto"
    echo "steps: $STEPS"
    echo "min_workers: 1"
    echo "max_workers: $replicas"
    echo "pools: WORKER_POOL_EDGE"
    echo "sync { diloco { inner_steps: $h quorum: $replicas over_selection: 0"
    echo "  replica_batch_size: 16 shards { dirichlet_alpha: $alpha }"
    echo "  delta_encoding: $delta parameter_dtype: $params aggregation: $agg"
    [ "$ratio" = default ] || echo "  max_norm_ratio: $ratio"
    [ -z "$extra" ] || echo "  $extra"
    echo "} }"
  } >"$OUT/$name.textproto"
  echo "diloco: $name" >&2
  bazel-bin/bench/diloco_bench --spec="$OUT/$name.textproto" --attack="$attack" \
    --poisoned="$poisoned" --curve="$OUT/$name.csv" --threads=1 |
    sed "s/^{/{\"name\": \"$name\", /" >>"$OUT/diloco.jsonl"
}
I8=DELTA_ENCODING_INT8_BLOCKWISE F32=DELTA_ENCODING_FLOAT32
PF=WIRE_DTYPE_FLOAT32 PB=WIRE_DTYPE_BFLOAT16
CC=AGGREGATION_CENTERED_CLIP MEAN=AGGREGATION_MEAN
diloco h50 8 50 0 $I8 $PF $CC default none 0
diloco h100 8 100 0 $I8 $PF $CC default none 0
diloco h250 8 250 0 $I8 $PF $CC default none 0
diloco h100-f32 8 100 0 $F32 $PF $CC default none 0
diloco h100-bf16-params 8 100 0 $I8 $PB $CC default none 0
diloco h100-noniid 8 100 0.5 $I8 $PF $CC default none 0
diloco h50-noniid 8 50 0.5 $I8 $PF $CC default none 0
diloco h100-mean 8 100 0 $I8 $PF $MEAN default none 0
if [ "$POISON" = 1 ]; then
  diloco r10-clean 10 100 0 $I8 $PF $CC default none 0
  for attack in sign_flip scale100 nan alie; do
    diloco "r10-$attack-robust" 10 100 0 $I8 $PF $CC default $attack 2
    diloco "r10-$attack-plainmean" 10 100 0 $I8 $PF $MEAN 0 $attack 2 "direction_mads: 0"
  done
  # The default without its relative direction screen, against sign flips.
  diloco r10-sign_flip-robust-nodirection 10 100 0 $I8 $PF $CC default sign_flip 2 "direction_mads: 0"

fi

PNG=bench/diloco_accuracy_vs_bytes.png
[ -z "$ONLY" ] || PNG="$OUT/diloco_accuracy_vs_bytes.png"  # a part: the picture stays
/usr/bin/python3 - "$OUT" "$PNG" <<'PY'
import csv, json, re, sys
out, png = sys.argv[1], sys.argv[2]
runs = [json.loads(l) for l in open(f"{out}/diloco.jsonl")]
p = runs[0]["num_parameters"]
ring_step = 2 * 7 / 8 * 4 * p  # bytes one worker of an 8-worker ring sends per step
sync = [(int(m.group(1)), float(m.group(2)) / 100) for m in
        (re.search(r"step (\d+)/\d+ +test accuracy ([\d.]+)%", l) for l in open(f"{out}/sync.log")) if m]
steps, sync_acc = sync[-1]
sync_bytes = ring_step * steps
sync_s = float(open(f"{out}/sync.seconds").read())
print(f"model: {p} parameters; ring all-reduce: {ring_step / 1e6:.2f} MB per worker per step\n")
print("| run | replicas | H | rounds | shards | delta | params | aggregation | attack | test acc | Δ | MB sent | ÷ sent | MB in+out | ÷ in+out | refused | s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
print(f"| sync (8-worker ring) | 8 | 1 | {steps} | all | f32 | f32 | sum | — | {sync_acc*100:.2f}% | — | "
      f"{sync_bytes/1e6:.0f} | 1× | {2*sync_bytes/1e6:.0f} | 1× | — | {sync_s:.0f} |")
clean10 = next((r for r in runs if r["name"] == "r10-clean"), None)
for r in runs:
    sent = r["bytes_pushed_per_replica"]
    b = r["bytes_fetched_per_replica"] + sent
    ref = clean10 if r["name"].startswith("r10-") else None
    delta = (r["test_accuracy"] - (ref["test_accuracy"] if ref else sync_acc)) * 100
    vs = f"{delta:+.2f}" + (" vs clean" if ref else "")
    shards = "IID" if r["dirichlet_alpha"] == 0 else f"α={r['dirichlet_alpha']}"
    attack = "—" if r["attack"] == "none" else f"{r['attack']} ×{r['poisoned']}"
    short = lambda s: s.split("_", 2)[-1].lower()
    print(f"| {r['name']} | {r['replicas']} | {r['inner_steps']} | {r['rounds']} | {shards} | {short(r['delta'])} | "
          f"{short(r['parameters'])} | {short(r['aggregation'])} | {attack} | {r['test_accuracy']*100:.2f}% | {vs} | "
          f"{sent/1e6:.1f} | {sync_bytes/sent:.0f}× | {b/1e6:.0f} | {2*sync_bytes/b:.0f}× | {r['refused']} | {r['seconds']:.0f} |")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("matplotlib missing (deploy/setup.sh installs it): no picture"); sys.exit(0)
fig, ax = plt.subplots(figsize=(8, 4.8))
ax.plot([2 * s * ring_step for s, _ in sync], [a for _, a in sync], "k-o", ms=3, label="sync all-reduce (8 workers)")
for name in ["h50", "h100", "h250", "h100-f32", "h100-bf16-params", "h100-noniid", "h50-noniid"]:
    try:
        rows = list(csv.DictReader(open(f"{out}/{name}.csv")))
    except FileNotFoundError:
        continue
    ax.plot([int(x["bytes_per_replica"]) for x in rows], [float(x["test_accuracy"]) for x in rows],
            "-", label=f"DiLoCo {name}")
ax.set_xscale("log")
ax.set_xlabel("bytes sent and received per worker / replica")
ax.set_ylabel("test accuracy")
ax.set_ylim(0.6, 0.92)
ax.grid(True, which="both", alpha=0.3)
ax.legend(loc="lower right", fontsize=8)
ax.set_title("Fashion-MNIST MLP: accuracy against traffic")
fig.tight_layout()
fig.savefig(png, dpi=110)
print("\nwrote", png)
PY
