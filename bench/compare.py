#!/usr/bin/env python3
"""Two builds of Switchyard side by side: the gateway CPU per request of each in a closed loop,
alternated in one run against the gateway benchmark's nginx mock, so that the machine's drift
weighs on both alike. For telling whether a change costs CPU on the request path.

    bench/run.sh --quick                         # once: installs nginx and oha, builds
    git worktree add /tmp/base main && (cd /tmp/base && cargo xtask plugins &&
        cargo build --release -p switchyard --bin switchyard)
    python3 bench/compare.py /tmp/base/target/release/switchyard target/release/switchyard

Both run the bundled cost-router policy of this checkout with the benchmark's config. It prints
each measurement, then each build's median in µs of gateway CPU per request.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

import gateway as g


def cpu_per_request(binary, work, mock_port, name, seconds):
    """Closed-loop gateway CPU per request (µs) of `binary`, after a warm-up."""
    g.SWITCHYARD = binary
    config = g.switchyard_config(g.free_port(), mock_port, False)
    proxy, port = g.start_switchyard(work, name, config)
    try:
        return g.closed_loop_cpu_us(proxy, port, "/v1/chat/completions", g.REQUEST, seconds,
                                    warmup=3)
    finally:
        proxy.terminate()
        proxy.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", type=Path, help="the switchyard binary to compare against")
    parser.add_argument("candidate", type=Path, help="the switchyard binary of the change")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=10)
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
                    us = cpu_per_request(builds[name], work, mock_port, f"{name}-{round_}",
                                         args.seconds)
                    figures[name].append(us)
                    print(f"round {round_}: {name} {us:.1f} µs/request", flush=True)
        finally:
            mock.terminate()
            mock.wait()
    for name, values in figures.items():
        print(f"{name}: median {statistics.median(values):.1f} µs/request "
              f"({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
