#!/usr/bin/env python3
"""What spare instances save each policy language: decision times in the release proxy with
`spare_instances = 0` and with the default (1), for the Rust, JavaScript and Python example
policies, alternated over rounds.

    cargo xtask plugins && cargo build --release -p switchyard --bin switchyard
    python3 bench/spares.py                  # 3 rounds of 200 requests a policy and setting

The proxy (started as the gateway benchmark starts it, on its core) serves three teams on the
built-in echo provider (no upstream), each with one policy.
Requests go one after another, 20 ms apart (a light load, where a spare is ready for each), each
team in turn. Decision times come from the proxy's log lines (`decision_us`); the first ten of
each team are left out (the canary's and the first requests' cold slots). It prints each round's
p50 and p90 per policy and setting, then the medians over rounds.
"""

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import gateway as g

WASM = g.ROOT / "target/wasm32-wasip2/wasm"
POLICIES = [("rust", "cost_router", "cost-router"), ("javascript", "js_tier_router", "js"),
            ("python", "python_keyword_router", "py")]
REQUEST = json.dumps({"model": "auto", "messages": [
    {"role": "user", "content": "What is the capital of France? Answer in one word."}]}).encode()


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


def run(work, name, option, requests):
    """Decision times (µs) by team of one proxy run with `option` in every policy's entry."""
    proxy, port = g.start_switchyard(work, name, config(g.free_port(), option))
    try:
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
    log = work / f"{name}.log"
    return {team: sorted(g.decision_times(log, team)[10:]) for team, _, _ in POLICIES}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200, help="requests a policy and run")
    args = parser.parse_args()
    settings = {"spare_instances = 0": [], "spare_instances = 1": []}
    with tempfile.TemporaryDirectory() as work:
        for round_ in range(args.rounds):
            for option, rounds in settings.items():
                name = f"spares-{round_}-{option[-1]}"
                times = run(Path(work), name, option, args.requests)
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
