#!/usr/bin/env python3
"""Heap allocations per request of one build of Switchyard, counted, not timed: for telling what a
change to the request path allocates on a machine too noisy to time a change of 1%.

    bench/run.sh --quick                                  # once: installs nginx and oha, builds
    python3 bench/allocations.py                          # target/release/switchyard
    python3 bench/allocations.py --reuse /tmp/base-switchyard
    python3 bench/allocations.py --sites 40               # and where the allocations are made

The proxy runs the bundled cost-router policy with the gateway benchmark's config, in front of
its nginx mock, on the gateway's core. An uprobe on each of jemalloc's allocating entry points
(`malloc`, `mallocx`, `calloc`, `realloc`, `rallocx`: the proxy's global allocator) counts every
call the proxy makes while oha runs a closed loop (`perf stat`), and the count is divided by the
requests answered. Reallocations count as allocations. The count moves by a fraction of one
between runs (background work such as the log's flushes), where a CPU time per request moves by
several per cent. With --sites N it then records the call stack of each allocation for a
second (`perf record --call-graph dwarf`, which misses some under load) and prints the N
commonest sites, as shares of the allocations recorded, each named by its first three frames
outside the allocator and the standard library's containers. Needs root (uprobes).
"""

import argparse
import collections
import re
import subprocess
import sys
import time
from pathlib import Path

import gateway as g

GROUP = "switchyard_allocations"
ENTRY_POINTS = ("malloc", "mallocx", "calloc", "realloc", "rallocx")
# Frames of the allocator and of the containers that call it, skipped to name a site.
PLUMBING = re.compile(r"_rjem_|je_|__rust_(alloc|realloc)|alloc::|RawVec|finish_grow|"
                      r"core::ptr|<alloc|Clone>::clone|SpecFrom|SpecExtend|FromIterator")


def add_probes(binary):
    """One uprobe on each allocating entry point of `binary`, in the group `GROUP`."""
    remove_probes()
    for entry in ENTRY_POINTS:
        added = subprocess.run(["perf", "probe", "-q", "-x", str(binary),
                                f"--add={GROUP}:{entry}=_rjem_{entry}"],
                               capture_output=True, text=True)
        if added.returncode != 0:
            sys.exit(f"perf probe on _rjem_{entry} in {binary} failed: {added.stderr.strip()}")


def remove_probes():
    subprocess.run(["perf", "probe", "-q", "-d", f"{GROUP}:*"], capture_output=True)


def count(proxy, port, seconds):
    """Allocations per request over a closed loop of `seconds`."""
    stat = subprocess.Popen(["perf", "stat", "-x,", "-e", f"{GROUP}:*", "-p", str(proxy.pid)],
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    result = g.oha(port, "/v1/chat/completions", g.REQUEST, seconds, 32)
    stat.send_signal(2)
    lines = stat.communicate()[1].strip().splitlines()
    calls = sum(int(line.split(",")[0]) for line in lines if line.split(",")[0].isdigit())
    return calls / g.ok_count(result), g.ok_count(result)


def sites(proxy, port, work, top):
    """The `top` commonest allocation sites over a second of the closed loop, as shares."""
    data = work / "allocations.data"
    record = subprocess.Popen(["perf", "record", "-q", "-e", f"{GROUP}:*", "--call-graph",
                               "dwarf,16384", "-o", str(data), "-p", str(proxy.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    g.oha(port, "/v1/chat/completions", g.REQUEST, 1, 8)
    record.send_signal(2)
    record.wait()
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "ip,sym", "--no-inline"],
                            capture_output=True, text=True, check=True).stdout
    found = collections.Counter()
    for stack in script.split("\n\n"):
        frames = [line.split(None, 1)[-1] for line in stack.strip().splitlines()]
        named = [frame for frame in frames if not PLUMBING.search(frame)]
        if frames:
            found[" <- ".join(frame[:90] for frame in named[:3])] += 1
    total = sum(found.values())
    print(f"allocation sites ({total} recorded):")
    for site, n in found.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {site}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary", nargs="?", type=Path, default=g.SWITCHYARD)
    parser.add_argument("--reuse", action="store_true", help="reuse policy instances")
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--sites", type=int, default=0, metavar="N",
                        help="also print the N commonest allocation sites")
    args = parser.parse_args()
    g.SWITCHYARD = args.binary.resolve()
    add_probes(g.SWITCHYARD)
    with g.mocked(prefix="switchyard-allocations-") as (work, mock_port):
        try:
            config = g.switchyard_config(g.free_port(), mock_port, False, args.reuse)
            proxy, port = g.start_switchyard(work, "switchyard", config)
            try:
                g.oha(port, "/v1/chat/completions", g.REQUEST, 2, 32)
                per_request, served = count(proxy, port, args.seconds)
                kind = "reused instances" if args.reuse else "a fresh sandbox per decision"
                print(f"{g.SWITCHYARD} ({kind}): {per_request:.1f} allocations a request "
                      f"({served} requests)")
                if args.sites:
                    sites(proxy, port, work, args.sites)
            finally:
                proxy.terminate()
                proxy.wait()
        finally:
            remove_probes()


if __name__ == "__main__":
    main()
