#!/usr/bin/env python3
"""Budgets and rate limits shared through Redis against kept in process: Switchyard's CPU per
request and its latency at a fixed rate, for each, in one run.

    bench/run.sh --quick     # once: installs nginx and oha, builds the release proxy
    python3 bench/fleet.py   # a few minutes; needs redis-server (Debian's package)

The gateway benchmark's nginx mock answers a fixed chat.completion. Two release proxies serve
the same team, which has a budget and both rate limits (large enough never to refuse): one keeps
them in process, the other shares them through a private redis-server (`[state]`), each request
then one script call at admission and one at settlement. Redis and nginx run on the load
generator's core, so the gateway's own core counts only the gateway. The two are measured in
turn over several rounds: gateway CPU per request in a closed loop, and latency p50/p99 at a
fixed 500 requests a second; it prints each measurement, then the medians and the differences.
"""

import argparse
import shutil
import subprocess
from pathlib import Path

import gateway as g

TEAM_LIMITS = '''budget = { usd = 1000000.0 }
rate_limit = { requests_per_minute = 100000000, tokens_per_minute = 1000000000 }
'''


def redis(work: Path, port: int):
    """A private redis-server on the client core, persisting as production should."""
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is needed: apt-get install redis-server")
    return subprocess.Popen(
        ["taskset", "-c", g.CLIENT_CORE, "redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "yes", "--dir", str(work), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def config(mock_port, redis_port=None):
    text = g.switchyard_config(g.free_port(), mock_port, False)
    text = text.replace('fallback = ["gpt-4o-mini"]\n', 'fallback = ["gpt-4o-mini"]\n' + TEAM_LIMITS, 1)
    if redis_port:
        text += f'[state]\nredis_url = "redis://127.0.0.1:{redis_port}/"\n'
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    with g.mocked() as (work, mock_port):
        redis_port = g.free_port()
        store = redis(work, redis_port)
        g.wait_port(redis_port)
        proxies = {}
        try:
            proxies["in process"] = g.start_switchyard(work, "local", config(mock_port))
            proxies["redis"] = g.start_switchyard(work, "redis", config(mock_port, redis_port))
            medians = g.alternating_rounds(proxies, args.rounds, args.seconds)
        finally:
            for proxy, _ in proxies.values():
                proxy.terminate()
                proxy.wait()
            store.terminate()
            store.wait()
    local, shared = medians["in process"], medians["redis"]
    print(f"redis adds {shared[0] - local[0]:.1f} µs of gateway CPU a request "
          f"({shared[0] / local[0]:.3f}x), {shared[1] - local[1]:.2f} ms at p50 and "
          f"{shared[2] - local[2]:.2f} ms at p99")


if __name__ == "__main__":
    main()
