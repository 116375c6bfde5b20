#!/usr/bin/env python3
"""CPU per request against nginx's at several fixed rates and in the closed loop, in one run: for
reading a target set at one rate (issue 20's 2.3x nginx at 1000 req/s) against the rates around
it, on a machine whose idle core wakes slowly.

    bench/run.sh --quick                          # once: installs nginx and oha, builds
    python3 bench/rates.py                        # [--rounds 2] [--seconds 6] [--rates 1000,4000]
    bench/run.sh --dist --quick && python3 bench/rates.py --dist   # the profile-optimized builds

Four setups run in turn on the gateway core, the order reversed every other round, in front of
the gateway benchmark's nginx mock: nginx as a plain reverse proxy, the axum + reqwest floor
(`bare_proxy`), and Switchyard with the benchmark's config, fresh and on reused instances. Each
gets a warm-up, then a closed loop of 32 connections, then each rate in turn (16 connections);
for each, the gateway's CPU per request. Then each setup's medians, each one's ratio to nginx at
each load, and Switchyard's own share (its CPU minus the floor's) in nginx's units.
"""

import argparse
import statistics
from pathlib import Path

import gateway as g

SETUPS = ("nginx", "floor", "switchyard", "reused")


def start(name, work, mock_port, round_):
    """Start setup `name` on the gateway core; (process, port)."""
    if name == "nginx":
        return g.nginx_proxy(work, mock_port)
    if name == "floor":
        return g.start_floor(g.BARE_PROXY, "axum-reqwest", mock_port)
    config = g.switchyard_config(g.free_port(), mock_port, False, reuse=name == "reused")
    return g.start_switchyard(work, f"{name}-{round_}", config)


def measure(process, port, seconds, rates):
    """Load -> CPU per request (µs): "closed", then each of `rates`; every answer a 2xx."""
    cpu = {"closed": g.closed_loop_cpu_us(process, port, "/v1/chat/completions", g.REQUEST,
                                          seconds, warmup=4)}
    for rate in rates:
        cpu[rate], _ = g.fixed_rate_cpu_us(process, port, seconds, rate)
    return cpu


def table(medians, loads):
    """The medians, the ratios to nginx and Switchyard's own share, as a Markdown table."""
    lines = ["| load | " + " | ".join(f"{s} (µs)" for s in SETUPS)
             + " | floor × nginx | switchyard × nginx | reused × nginx "
               "| own share × nginx (fresh, reused) |",
             "|---" * (len(SETUPS) + 5) + "|"]
    for load in loads:
        m = {s: medians[s][load] for s in SETUPS}
        ratios = [m[s] / m["nginx"] for s in ("floor", "switchyard", "reused")]
        own = [(m[s] - m["floor"]) / m["nginx"] for s in ("switchyard", "reused")]
        label = "closed loop" if load == "closed" else f"{load} req/s"
        lines.append(f"| {label} | " + " | ".join(f"{m[s]:.1f}" for s in SETUPS) + " | "
                     + " | ".join(f"{r:.2f}" for r in ratios)
                     + f" | {own[0]:.2f}, {own[1]:.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rates", default="1000,2000,4000,8000",
                        help="fixed rates, requests a second, comma-separated")
    parser.add_argument("--dist", action="store_true",
                        help="the builds of `cargo xtask dist --floor` (target/dist)")
    args = parser.parse_args()
    rates = [int(rate) for rate in args.rates.split(",")]
    if args.dist:
        g.SWITCHYARD = g.ROOT / "target/dist/switchyard"
        g.BARE_PROXY = g.ROOT / "target/dist/bare_proxy"
    figures = {name: [] for name in SETUPS}
    with g.mocked("rates-") as (work, mock_port):
        for round_, name in g.alternated(SETUPS, args.rounds):
            process, port = start(name, work, mock_port, round_)
            try:
                figures[name].append(measure(process, port, args.seconds, rates))
            finally:
                process.terminate()
                process.wait()
            shown = ", ".join(f"{load}: {cpu:.1f}" for load, cpu in figures[name][-1].items())
            print(f"round {round_}: {name}: µs/request {shown}", flush=True)
    loads = ["closed", *rates]
    medians = {name: {load: statistics.median(f[load] for f in values) for load in loads}
               for name, values in figures.items()}
    print(table(medians, loads))


if __name__ == "__main__":
    main()
