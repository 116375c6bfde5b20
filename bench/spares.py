#!/usr/bin/env python3
"""What spare instances save each policy language: decision times in the release proxy with
`spare_instances = 0` and with the default (1), for the Rust, JavaScript and Python example
policies, alternated over rounds.

    cargo xtask plugins && cargo build --release -p switchyard --bin switchyard
    python3 bench/spares.py                  # 3 rounds of 200 requests a policy and setting

The proxy serves three teams on the built-in echo provider (no upstream), each with one policy.
Requests go one after another, 20 ms apart (a light load, where a spare is ready for each), each
team in turn. Decision times come from the proxy's log lines (`decision_us`); the first ten of
each team are left out (the canary's and the first requests' cold slots). It prints each round's
p50 and p90 per policy and setting, then the medians over rounds.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWITCHYARD = ROOT / "target/release/switchyard"
WASM = ROOT / "target/wasm32-wasip2/wasm"
POLICIES = [("rust", "cost_router", "cost-router"), ("javascript", "js_tier_router", "js"),
            ("python", "python_keyword_router", "py")]
REQUEST = json.dumps({"model": "auto", "messages": [
    {"role": "user", "content": "What is the capital of France? Answer in one word."}]}).encode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(port, option):
    text = f'listen = "127.0.0.1:{port}"\n'
    for i, (team, wasm, name) in enumerate(POLICIES):
        text += f'''[[policies]]
name = "{name}"
path = "{WASM / (wasm + '.wasm')}"
deadline_ms = 1000
memory_mib = 32
{option}
[[teams]]
name = "{team}"
policy = "{name}"
fallback = ["small"]
keys = ["sk-spares-bench-key-{i:04}"]
'''
    return text + '''[[providers]]
name = "echo"
kind = "echo"
[[models]]
id = "small"
provider = "echo"
input_cost_per_mtok = 0.15
output_cost_per_mtok = 0.6
context_window = 128000
tags = ["cheap", "fast"]
[[models]]
id = "large"
provider = "echo"
input_cost_per_mtok = 3.0
output_cost_per_mtok = 15.0
context_window = 200000
tags = ["reasoning"]
'''


def run(work, option, requests):
    """Decision times (µs) by team of one proxy run with `option` in every policy's entry."""
    port = free_port()
    path = work / "spares.toml"
    path.write_text(config(port, option))
    log_path = work / "spares.log"
    with open(log_path, "w") as log:
        proxy = subprocess.Popen([str(SWITCHYARD), "serve", "--config", str(path)],
                                 stdout=subprocess.DEVNULL, stderr=log,
                                 env={"PATH": os.environ["PATH"], "RUST_LOG": "info",
                                      "XDG_CACHE_HOME": str(work / "cache")})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz").status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"the proxy did not become ready: see {log_path}")
                time.sleep(0.2)
        for _ in range(requests):
            for i in range(len(POLICIES)):
                headers = {"content-type": "application/json",
                           "authorization": f"Bearer sk-spares-bench-key-{i:04}"}
                request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                                                 data=REQUEST, headers=headers)
                urllib.request.urlopen(request).read()
                time.sleep(0.02)
        time.sleep(0.3)  # the log's batches are written within 100 ms
    finally:
        proxy.terminate()
        proxy.wait()
    times = {}
    for line in log_path.read_text().splitlines():
        found = re.search(r'team="(\w+)".*decision_us=(\d+)', line)
        if found:
            times.setdefault(found.group(1), []).append(int(found.group(2)))
    return {team: sorted(values[10:]) for team, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200, help="requests a policy and run")
    args = parser.parse_args()
    settings = {"spare_instances = 0": [], "spare_instances = 1": []}
    with tempfile.TemporaryDirectory() as work:
        for round_ in range(args.rounds):
            for option, rounds in settings.items():
                times = run(Path(work), option, args.requests)
                rounds.append(times)
                for team, _, _ in POLICIES:
                    values = times[team]
                    print(f"round {round_}: {option}: {team} decision p50 "
                          f"{values[len(values) // 2]} µs, p90 {values[len(values) * 9 // 10]} µs",
                          flush=True)
    for option, rounds in settings.items():
        for team, _, _ in POLICIES:
            p50 = statistics.median(r[team][len(r[team]) // 2] for r in rounds)
            p90 = statistics.median(r[team][len(r[team]) * 9 // 10] for r in rounds)
            print(f"{option}: {team}: median decision p50 {p50} µs, p90 {p90} µs")


if __name__ == "__main__":
    main()
