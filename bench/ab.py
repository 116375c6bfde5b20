#!/usr/bin/env python3
"""Two or more builds of the proxy against each other, for what one change saved.

Each binary runs the gateway benchmark's Switchyard setup (bench/gateway.py: the bundled policy on
a fresh sandbox per request, or with --reuse on reused instances, in front of the nginx mock, the
gateway alone on core 0), one after the other, the order reversed every other round. For each it
prints the gateway's CPU per request in a closed loop of 32 connections and at 1000 requests per
second, and the p99 latency at that rate, then the medians. The machine is shared and noisy, so
only figures from one run are compared. Keep a build with `cp target/release/switchyard
/tmp/before` before the change, rebuild, then:

    python3 bench/ab.py /tmp/before target/release/switchyard [--rounds 4] [--seconds 6]
"""

import argparse
import statistics
import tempfile
from pathlib import Path

import gateway as g


def measure(binary, work, mock_port, seconds, reuse):
    """(closed-loop CPU µs per request, CPU µs per request at 1000/s, p99 ms at 1000/s)."""
    g.SWITCHYARD = Path(binary)
    name = Path(binary).name
    proxy, port = g.start_switchyard(
        work, name, g.switchyard_config(g.free_port(), mock_port, False, reuse))
    try:
        closed = g.closed_loop_cpu_us(proxy, port, "/v1/chat/completions", g.REQUEST, seconds)
        before = g.cpu_seconds(proxy)
        fixed = g.oha(port, "/v1/chat/completions", g.REQUEST, seconds, 16, 1000)
        at_rate = (g.cpu_seconds(proxy) - before) / g.ok_count(fixed) * 1e6
        return closed, at_rate, fixed["latencyPercentiles"]["p99"] * 1000
    finally:
        proxy.terminate()
        proxy.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binaries", nargs="+", help="proxy binaries to compare")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--reuse", action="store_true", help="reuse policy instances")
    args = parser.parse_args()
    figures = {b: [] for b in args.binaries}
    with tempfile.TemporaryDirectory(prefix="switchyard-ab-") as work:
        mock, mock_port = g.chat_mock(Path(work))
        try:
            for round_ in range(args.rounds):
                order = args.binaries if round_ % 2 == 0 else args.binaries[::-1]
                for binary in order:
                    closed, at_rate, p99 = measure(binary, Path(work), mock_port, args.seconds,
                                                   args.reuse)
                    figures[binary].append((closed, at_rate, p99))
                    print(f"round {round_}: {binary}: closed loop {closed:.1f} µs/request, "
                          f"at 1000/s {at_rate:.1f} µs/request, p99 {p99:.3f} ms", flush=True)
        finally:
            mock.terminate()
            mock.wait()
    for binary, values in figures.items():
        closed, at_rate, p99 = (statistics.median(v[i] for v in values) for i in range(3))
        print(f"median {binary}: closed loop {closed:.1f} µs/request, at 1000/s {at_rate:.1f} "
              f"µs/request, p99 {p99:.3f} ms")


if __name__ == "__main__":
    main()
