#!/usr/bin/env python3
"""What a hostile team costs the others: a well-behaved team's latency and decision times, and the
proxy's peak resident memory, without and then with a team whose policy misbehaves.

    cargo xtask plugins && cargo build --release -p switchyard --bin switchyard
    python3 bench/hostile.py                  # the aliasing policy (issue 15)
    python3 bench/hostile.py --behaviour huge-log --seconds 20

The release proxy serves two teams on the built-in echo provider (no upstream): `good` runs the
bundled cost-router, `hostile` runs plugins/testing/hostile, both with a 10 ms deadline and a
32 MiB memory cap. The good team sends a fixed rate of requests from a few client threads (each
request's latency counted from when it was due, so a stall is not hidden by the client waiting);
first alone, then while hostile clients send `x-hostile: BEHAVIOUR` requests back to back. For
each phase it prints the good team's latency p50/p99, its decision time p50/p99 and how many of
its decisions failed (from the proxy's log lines), how the hostile requests were answered, and
the proxy's peak RSS (VmHWM) at the end of the phase.
"""

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWITCHYARD = ROOT / "target/release/switchyard"
WASM = ROOT / "target/wasm32-wasip2/wasm"
GOOD_KEY = "sk-good-team-bench-0001"
HOSTILE_KEY = "sk-hostile-team-bench-01"
REQUEST = json.dumps({"model": "auto", "messages": [
    {"role": "user", "content": "What is the capital of France?"}]})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(port):
    return f'''listen = "127.0.0.1:{port}"

[[policies]]
name = "good"
path = "{WASM / 'cost_router.wasm'}"
deadline_ms = 10

[[policies]]
name = "hostile"
path = "{WASM / 'hostile_policy.wasm'}"
deadline_ms = 10
memory_mib = 32
headers = ["x-hostile", "x-hostile-arg"]

[[teams]]
name = "good"
policy = "good"
fallback = ["gpt-4o-mini"]
keys = ["{GOOD_KEY}"]

[[teams]]
name = "hostile"
policy = "hostile"
fallback = ["gpt-4o-mini"]
keys = ["{HOSTILE_KEY}"]

[[providers]]
name = "echo"
kind = "echo"

[[models]]
id = "gpt-4o-mini"
provider = "echo"
input_cost_per_mtok = 0.15
output_cost_per_mtok = 0.6
context_window = 128000
tags = ["cheap"]

[[models]]
id = "o3"
provider = "echo"
input_cost_per_mtok = 2.0
output_cost_per_mtok = 8.0
context_window = 200000
tags = ["reasoning"]
'''


def post(conn, key, headers=None):
    conn.request("POST", "/v1/chat/completions", body=REQUEST, headers={
        "content-type": "application/json", "authorization": f"Bearer {key}", **(headers or {})})
    response = conn.getresponse()
    response.read()
    return response.status


def good_load(port, rate, seconds, threads=4):
    """Latencies (ms) of `rate` good requests a second for `seconds`, counted from when each
    was due."""
    latencies, lock = [], threading.Lock()
    start = time.perf_counter() + 0.2
    interval = threads / rate

    def client(offset):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        due = start + offset * interval / threads
        while due < start + seconds:
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            status = post(conn, GOOD_KEY)
            elapsed = (time.perf_counter() - due) * 1000
            assert status == 200, status
            with lock:
                latencies.append(elapsed)
            due += interval
        conn.close()

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return latencies


def hostile_load(port, behaviour, stop, statuses, clients):
    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port)
        while not stop.is_set():
            statuses.append(post(conn, HOSTILE_KEY, {"x-hostile": behaviour}))
        conn.close()

    workers = [threading.Thread(target=client) for _ in range(clients)]
    for w in workers:
        w.start()
    return workers


def peak_rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


def good_decisions(log: Path, since: int):
    """Decision times (µs) and fallbacks of the good team's requests logged after byte `since`."""
    times, fallbacks = [], 0
    with open(log, "rb") as f:
        f.seek(since)
        for line in f.read().decode(errors="replace").splitlines():
            m = re.search(r"decision_us=(\d+)", line)
            if m and "switchyard::request" in line and 'team="good"' in line:
                times.append(int(m.group(1)))
                fallbacks += 'route_by="fallback"' in line
    return times, fallbacks


def hostile_failures(log: Path):
    """How many decisions of the hostile team failed, by kind."""
    kinds = {}
    for line in log.read_text(errors="replace").splitlines():
        m = re.search(r'kind="([a-z-]+)"', line)
        if m and "policy failed" in line and "team=hostile" in line:
            kinds[m.group(1)] = kinds.get(m.group(1), 0) + 1
    return kinds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--behaviour", default="alias")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate", type=int, default=200, help="good requests per second")
    parser.add_argument("--hostile-clients", type=int, default=4)
    parser.add_argument("--proxy", type=Path, default=SWITCHYARD,
                        help="the switchyard binary (default: the release build)")
    args = parser.parse_args()
    for path in (args.proxy, WASM / "cost_router.wasm", WASM / "hostile_policy.wasm"):
        if not path.exists():
            sys.exit(f"{path} is missing: run `cargo xtask plugins && cargo build --release -p switchyard --bin switchyard`")

    work = Path(tempfile.mkdtemp(prefix="switchyard-hostile-"))
    port = free_port()
    (work / "config.toml").write_text(config(port))
    log = work / "proxy.log"
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
    with open(log, "wb") as out:
        proxy = subprocess.Popen([str(args.proxy), "serve", "--config", str(work / "config.toml")],
                                 stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proxy.poll() is not None:
                sys.exit(f"the proxy did not become ready; see {log}")
            time.sleep(0.1)
        good_load(port, args.rate, 2)  # warm-up

        rows = []
        for phase in ("alone", f"beside {args.hostile_clients} `{args.behaviour}` clients"):
            time.sleep(0.3)  # let the log batch of the previous phase reach the file
            since = log.stat().st_size
            stop, statuses = threading.Event(), []
            workers = []
            if phase != "alone":
                workers = hostile_load(port, args.behaviour, stop, statuses, args.hostile_clients)
            latencies = good_load(port, args.rate, args.seconds)
            stop.set()
            for w in workers:
                w.join()
            time.sleep(0.3)
            decisions, fallbacks = good_decisions(log, since)
            rows.append({
                "phase": phase,
                "good_requests": len(latencies),
                "latency_p50_ms": round(statistics.median(latencies), 2),
                "latency_p99_ms": round(pct(latencies, 99), 2),
                "decision_p50_us": pct(decisions, 50),
                "decision_p99_us": pct(decisions, 99),
                "good_policy_failures": fallbacks,
                "hostile_answers": {str(s): statuses.count(s) for s in sorted(set(statuses))},
                "peak_rss_mib": round(peak_rss_mib(proxy.pid), 1),
            })
            print(json.dumps(rows[-1]), flush=True)
        print(f"hostile decisions failed, by kind: {hostile_failures(log)}")
    finally:
        proxy.terminate()
        proxy.wait()
    print(f"(proxy log: {log})")


if __name__ == "__main__":
    main()
