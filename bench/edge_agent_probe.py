#!/usr/bin/python3
"""Drives one real edge agent (nightshift-worker --pool=edge) through its
vehicle-state file, as the vehicle's gateway would, and measures it from
outside through /proc:

  preemption  N times: wait until the agent computes (its threads use more
              than 70% of a core over 100 ms), wait a random 0-200 ms more
              so the change lands anywhere in a micro-batch, then rewrite
              the state file with the ignition on (write + rename, as a
              gateway does) and time until the agent's CPU use is back to
              idle: the first moment after which its threads use under 10%
              of a core for 30 ms. Then park the vehicle again.
              Each event is counted as a start-up event (the agent's log
              says "start-up preempted" after it: it landed while the
              agent loaded the data set) or a round event (it landed in a
              round's inner steps); their latencies are given apart.
  cost        CPU (share of one core, over 20 s) and resident memory of
              the agent while training, with the ignition on (the vehicle
              in use) and with no job.

CPU time is the sum of /proc/PID/task/*/schedstat run times (nanoseconds,
every thread of the agent), sampled about every millisecond.

usage: edge_agent_probe.py PID STATE_FILE AGENT_LOG EVENTS OUT.json CANCEL_COMMAND...
"""
import json
import os
import random
import subprocess
import sys
import time

pid, state_file, agent_log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
events, out, cancel = int(sys.argv[4]), sys.argv[5], sys.argv[6:]
parked = json.load(open(state_file))


def runtime_ns():
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that just ended
    return total


def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def write_state(state):
    tmp = state_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, state_file)


def wait_computing(timeout_s=60):
    window = []  # (t, runtime)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        window.append((time.monotonic_ns(), runtime_ns()))
        while len(window) > 1 and window[-1][0] - window[1][0] >= 100e6:
            window.pop(0)
        span = window[-1][0] - window[0][0]
        if span >= 100e6 and window[-1][1] - window[0][1] > 0.7 * span:
            return True
        time.sleep(0.01)
    return False


def time_to_idle(t0, horizon_s=1.5, trace=None):
    samples = []
    while time.monotonic_ns() - t0 < horizon_s * 1e9:
        samples.append((time.monotonic_ns(), runtime_ns()))
        time.sleep(0.001)
    if trace is not None:
        trace.extend(samples)
    j = 0
    for i, (t, r) in enumerate(samples):
        while j < len(samples) and samples[j][0] - t < 30e6:
            j += 1
        if j == len(samples):
            break
        tj, rj = samples[j]
        if rj - r < 0.1 * (tj - t):
            return (t - t0) / 1e6
    return None  # never idle within the horizon


def cpu_share(seconds):
    t0, r0 = time.monotonic_ns(), runtime_ns()
    peak = rss_kib()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.5)
        peak = max(peak, rss_kib())
    return (runtime_ns() - r0) / (time.monotonic_ns() - t0), peak


def log_size():
    return os.path.getsize(agent_log)


def log_since(offset):
    with open(agent_log, errors="replace") as f:
        f.seek(offset)
        return f.read()


rng = random.Random(1)
latencies = {"round": [], "start-up": []}
misses = {"round": 0, "start-up": 0}
if not wait_computing(120):
    sys.exit("the agent never started computing")
for k in range(events):
    time.sleep(rng.uniform(0, 0.2))
    offset = log_size()
    t0 = time.monotonic_ns()
    write_state({**parked, "ignition": "IGNITION_ON", "gear": "GEAR_DRIVE"})
    trace = []
    ms = time_to_idle(t0, trace=trace)
    kind = "start-up" if "start-up preempted" in log_since(offset) else "round"
    if ms is None:
        misses[kind] += 1
    else:
        latencies[kind].append(ms)
    if ms is None or ms > 200:
        # What the agent did instead: its CPU share in each 100 ms after
        # the state change, and the wall time, to find in its log.
        shares = []
        for b in range(15):
            window = [x for x in trace if b * 100e6 <= x[0] - t0 < (b + 1) * 100e6]
            if len(window) > 1:
                shares.append(f"{(window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]):.2f}")
        what = "never idle within 1.5 s" if ms is None else f"idle after {ms:.0f} ms"
        print(f"{kind} event {k} at {time.strftime('%H:%M:%S')}: {what}; CPU per 100 ms: " + " ".join(shares),
              file=sys.stderr)
    write_state(parked)
    if not wait_computing():
        sys.exit(f"event {k}: the agent did not compute again after parking")

training_cpu, training_rss = cpu_share(20)
write_state({**parked, "ignition": "IGNITION_ON", "gear": "GEAR_DRIVE"})
time.sleep(2)
ineligible_cpu, ineligible_rss = cpu_share(20)
write_state(parked)
subprocess.run(cancel, check=True, stdout=subprocess.DEVNULL)
time.sleep(2)
nojob_cpu, nojob_rss = cpu_share(20)



def quantiles(values):
    values = sorted(values)
    if not values:
        return None
    q = lambda p: values[min(len(values) - 1, int(p * len(values)))]
    return {"count": len(values), "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99),
            "max_ms": values[-1]}


ready = [line for line in log_since(0).splitlines() if "trainer ready" in line]
json.dump({
    "events": events, "missed": misses,
    "all": quantiles(latencies["round"] + latencies["start-up"]),
    "round": quantiles(latencies["round"]), "start-up": quantiles(latencies["start-up"]),
    "trainer_ready": ready[0].split("] ", 1)[-1] if ready else None,
    "training_cpu": training_cpu, "training_rss_mib": training_rss / 1024,
    "ineligible_cpu": ineligible_cpu, "ineligible_rss_mib": ineligible_rss / 1024,
    "nojob_cpu": nojob_cpu, "nojob_rss_mib": nojob_rss / 1024,
}, open(out, "w"))
