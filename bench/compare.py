#!/usr/bin/env python3
"""Two builds of Switchyard side by side: the gateway CPU per request of each in a closed loop
and at 1000 requests per second (with that rate's p99 latency), alternated in one run against the
gateway benchmark's nginx mock, so that the machine's drift weighs on both alike. For telling
whether a change costs CPU on the request path, and what a lever saved.

    bench/run.sh --quick                         # once: installs nginx and oha, builds
    git worktree add /tmp/base main && (cd /tmp/base && cargo xtask plugins &&
        cargo build --release -p switchyard --bin switchyard)
    python3 bench/compare.py /tmp/base/target/release/switchyard target/release/switchyard
    python3 bench/compare.py --base-option 'spare_instances = 0' B B   # one build, two settings
    python3 bench/compare.py --base-policies /tmp/old-wasm B B   # one build, two policy builds

Both run the bundled cost-router policy of this checkout with the benchmark's config (with
--reuse, on reused instances; --base-option and --candidate-option add a line to the policy's
entry of one side; --base-policies and --candidate-policies take one side's components from
another folder than target/wasm32-wasip2/wasm, such as a copy of it made before a change to the
SDK). It prints each measurement, with the decision time's p50 and p99 at
1000 req/s from the proxy's log lines and the proxy's peak resident memory, then each side's
medians.
"""

import argparse
import statistics
import time
from pathlib import Path

import gateway as g


def measure(binary, policies, work, mock_port, name, seconds, reuse, option):
    """Gateway CPU per request (µs) of `binary` in a closed loop after a warm-up, its CPU per
    request at 1000 req/s, that rate's p99 latency (ms), its decision time's p50 and p99 (µs),
    and its peak resident memory (MiB)."""
    g.SWITCHYARD = binary
    g.POLICY = policies / g.POLICY.name
    config = g.switchyard_config(g.free_port(), mock_port, False, reuse, option=option)
    proxy, port = g.start_switchyard(work, name, config)
    log = work / f"{name}.log"
    try:
        closed = g.closed_loop_cpu_us(proxy, port, "/v1/chat/completions", g.REQUEST, seconds,
                                      warmup=3)
        time.sleep(0.3)  # the log's batches are written within 100 ms
        logged = len(g.decision_times(log))
        at_rate, fixed = g.fixed_rate_cpu_us(proxy, port, seconds, 1000)
        time.sleep(0.3)
        decisions = sorted(g.decision_times(log)[logged:])
        p50, p99 = (decisions[int(len(decisions) * q)] for q in (0.5, 0.99))
        p99_ms = fixed["latencyPercentiles"]["p99"] * 1000
        return closed, at_rate, p99_ms, p50, p99, g.peak_rss_mib(proxy)
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
    parser.add_argument("--base-option", default="", help="a line for the base's policy entry")
    parser.add_argument("--candidate-option", default="",
                        help="a line for the candidate's policy entry")
    for side in ("base", "candidate"):
        parser.add_argument(f"--{side}-policies", type=Path, default=g.POLICY.parent,
                            help=f"the folder of the {side}'s policy components")
    args = parser.parse_args()
    options = {"base": args.base_option, "candidate": args.candidate_option}
    policies = {"base": args.base_policies.resolve(),
                "candidate": args.candidate_policies.resolve()}
    builds = {"base": args.base.resolve(), "candidate": args.candidate.resolve()}
    figures = {name: [] for name in builds}
    with g.mocked() as (work, mock_port):
        for round_, name in g.alternated(builds, args.rounds):
            figure = measure(builds[name], policies[name], work, mock_port,
                             f"{name}-{round_}", args.seconds, args.reuse, options[name])
            figures[name].append(figure)
            closed, at_rate, p99, d50, d99, rss = figure
            print(f"round {round_}: {name} closed loop {closed:.1f} µs/request, at "
                  f"1000/s {at_rate:.1f} µs/request, p99 {p99:.3f} ms, decision p50 "
                  f"{d50} µs p99 {d99} µs, peak RSS {rss:.1f} MiB", flush=True)
    for name, values in figures.items():
        closed, at_rate, p99, d50, d99, rss = (statistics.median(v[i] for v in values)
                                               for i in range(6))
        print(f"{name}: median closed loop {closed:.1f} µs/request "
              f"({', '.join(f'{v[0]:.1f}' for v in values)}), at 1000/s {at_rate:.1f} "
              f"µs/request, p99 {p99:.3f} ms, decision p50 {d50} µs p99 {d99} µs, "
              f"peak RSS {rss:.1f} MiB")

if __name__ == "__main__":
    main()
