#!/usr/bin/env python3
"""Switchyard's own share against an earlier build's, each over its own floor, in one run: for
reading a target set as "half of today's" on a machine other than the one it was set on.

    bench/run.sh --quick                       # once: installs nginx and oha, builds this checkout
    git worktree add /tmp/then 1bb10d1         # issue 20's starting point, say
    (cd /tmp/then && cargo xtask plugins &&
        cargo build --release -p switchyard --bin switchyard --example bare_proxy)
    python3 bench/baseline.py /tmp/then        # [--rounds 4] [--seconds 6] [--reuse]

Five setups run in turn on the gateway core, the order reversed every other round, in front of
the gateway benchmark's nginx mock: nginx as a plain reverse proxy, the earlier checkout's axum +
reqwest floor (`bare_proxy`) and its proxy with its own cost-router build, and this checkout's
floor and proxy likewise. Each proxy gets the benchmark's config (with --reuse, on reused
instances). For each: the CPU per request in a closed loop (32 connections) and at 1000 requests
a second (with that rate's p99 latency); for this checkout's proxy also its decision time over the
closed loop, from its log lines. Then each setup's medians, and each proxy's own share (its CPU
minus its floor's) with the ratio of now to then.
"""

import argparse
import statistics
import time
from pathlib import Path

import gateway as g


def setups(then: Path):
    """Name -> what runs: "nginx", ("floor", binary) or ("proxy", binary, policy folder)."""
    now = g.ROOT
    return {
        "nginx": "nginx",
        "floor then": ("floor", then / "target/release/examples/bare_proxy"),
        "then": ("proxy", then / "target/release/switchyard", then / "target/wasm32-wasip2/wasm"),
        "floor now": ("floor", g.BARE_PROXY),
        "now": ("proxy", g.SWITCHYARD, now / "target/wasm32-wasip2/wasm"),
    }


def start(name, setup, work, mock_port, reuse):
    """Start `setup` on the gateway core; (process, port)."""
    if setup == "nginx":
        return g.nginx_proxy(work, mock_port)
    if setup[0] == "proxy":
        g.SWITCHYARD, g.POLICY = setup[1], setup[2] / g.POLICY.name
        return g.start_switchyard(work, name.replace(" ", "-"),
                                  g.switchyard_config(g.free_port(), mock_port, False, reuse))
    return g.start_floor(setup[1], "axum-reqwest", mock_port)


def measure(name, proxy, port, work, seconds):
    """CPU per request (µs) closed loop and at 1000/s, that rate's p99 (ms)."""
    log = work / f"{name.replace(' ', '-')}.log"
    logged = len(g.decision_times(log)) if log.exists() else 0
    closed = g.closed_loop_cpu_us(proxy, port, "/v1/chat/completions", g.REQUEST, seconds,
                                  warmup=3)
    if name == "now":
        time.sleep(0.3)  # the log's batches are written within 100 ms
        times = sorted(g.decision_times(log)[logged:])
        p50, p99 = (times[int(len(times) * q)] for q in (0.5, 0.99))
        print(f"  now: decision time in the closed loop p50 {p50} µs, p99 {p99} µs", flush=True)
    at_rate, fixed = g.fixed_rate_cpu_us(proxy, port, seconds, 1000)
    return closed, at_rate, fixed["latencyPercentiles"]["p99"] * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("then", type=Path, help="the earlier checkout, built (see above)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--reuse", action="store_true", help="reuse policy instances")
    args = parser.parse_args()
    runs = setups(args.then.resolve())
    figures = {name: [] for name in runs}
    with g.mocked() as (work, mock_port):
        for round_, name in g.alternated(runs, args.rounds):
            proxy, port = start(name, runs[name], work, mock_port, args.reuse)
            try:
                figures[name].append(measure(name, proxy, port, work, args.seconds))
            finally:
                proxy.terminate()
                proxy.wait()
            closed, at_rate, p99 = figures[name][-1]
            print(f"round {round_}: {name}: closed loop {closed:.1f} µs/request, at "
                  f"1000/s {at_rate:.1f} µs/request, p99 {p99:.3f} ms", flush=True)
    medians = {name: [statistics.median(v[i] for v in values) for i in range(3)]
               for name, values in figures.items()}
    for name, (closed, at_rate, p99) in medians.items():
        print(f"{name}: median closed loop {closed:.1f} µs/request, at 1000/s {at_rate:.1f} "
              f"µs/request, p99 {p99:.3f} ms")
    share = {when: [medians[when][i] - medians[f"floor {when}"][i] for i in range(3)]
             for when in ("then", "now")}
    nginx = medians["nginx"]
    for when, (closed, at_rate, p99) in share.items():
        print(f"own share {when}: closed loop {closed:.1f} µs, at 1000/s {at_rate:.1f} µs, "
              f"added p99 over its floor {p99:+.3f} ms; × nginx: closed loop "
              f"{medians[when][0] / nginx[0]:.2f}, at 1000/s {medians[when][1] / nginx[1]:.2f}")
    print(f"now / then: closed loop {share['now'][0] / share['then'][0]:.2f}, at 1000/s "
          f"{share['now'][1] / share['then'][1]:.2f}")


if __name__ == "__main__":
    main()
