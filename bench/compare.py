#!/usr/bin/env python3
"""Two builds of Switchyard side by side: the gateway CPU per request of each in a closed loop
and at 1000 requests per second (with that rate's p99 latency), alternated in one run against the
gateway benchmark's nginx mock, so that the machine's drift weighs on both alike. For telling
whether a change costs CPU on the request path, and what a lever saved.

    bench/run.sh --quick                         # once: installs nginx and oha, builds
    git worktree add /tmp/base main && (cd /tmp/base && cargo xtask plugins &&
        cargo build --release -p switchyard --bin switchyard)
    python3 bench/compare.py /tmp/base/target/release/switchyard target/release/switchyard

Both run the bundled cost-router policy of this checkout with the benchmark's config (with
--reuse, on reused instances). It prints each measurement, then each build's medians.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

import gateway as g


def measure(binary, work, mock_port, name, seconds, reuse):
    """Gateway CPU per request (µs) of `binary` in a closed loop after a warm-up, its CPU per
    request at 1000 req/s, and the p99 latency at that rate (ms)."""
    g.SWITCHYARD = binary
    config = g.switchyard_config(g.free_port(), mock_port, False, reuse)
    proxy, port = g.start_switchyard(work, name, config)
    try:
        closed = g.closed_loop_cpu_us(proxy, port, "/v1/chat/completions", g.REQUEST, seconds,
                                      warmup=3)
        before = g.cpu_seconds(proxy)
        fixed = g.oha(port, "/v1/chat/completions", g.REQUEST, seconds, 16, 1000)
        at_rate = (g.cpu_seconds(proxy) - before) / g.ok_count(fixed) * 1e6
        return closed, at_rate, fixed["latencyPercentiles"]["p99"] * 1000
    finally:
        proxy.terminate()
        proxy.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path, help="the switchyard binary to compare against")
    parser.add_argument("candidate", type=Path, help="the switchyard binary of the change")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--reuse", action="store_true", help="reuse policy instances")
    args = parser.parse_args()
    builds = {"base": args.base.resolve(), "candidate": args.candidate.resolve()}
    figures = {name: [] for name in builds}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        mock, mock_port = g.chat_mock(work)
        try:
            for round_ in range(args.rounds):
                # Each round swaps who goes first.
                order = list(builds) if round_ % 2 == 0 else list(builds)[::-1]
                for name in order:
                    closed, at_rate, p99 = measure(builds[name], work, mock_port,
                                                   f"{name}-{round_}", args.seconds, args.reuse)
                    figures[name].append((closed, at_rate, p99))
                    print(f"round {round_}: {name} closed loop {closed:.1f} µs/request, at "
                          f"1000/s {at_rate:.1f} µs/request, p99 {p99:.3f} ms", flush=True)
        finally:
            mock.terminate()
            mock.wait()
    for name, values in figures.items():
        closed, at_rate, p99 = (statistics.median(v[i] for v in values) for i in range(3))
        print(f"{name}: median closed loop {closed:.1f} µs/request "
              f"({', '.join(f'{v[0]:.1f}' for v in values)}), at 1000/s {at_rate:.1f} "
              f"µs/request, p99 {p99:.3f} ms")


if __name__ == "__main__":
    main()
