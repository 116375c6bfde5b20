#!/usr/bin/env python3
"""A shadow candidate against none: Switchyard's CPU per request and its latency at a fixed rate,
with and without a candidate policy deciding every request in the shadow, in one run.

    bench/run.sh --quick     # once: installs nginx and oha, builds the release proxy
    python3 bench/shadow.py  # a few minutes

The gateway benchmark's nginx mock answers a fixed chat.completion. Two release proxies serve
the bundled cost-router; on the second, the admin API starts a candidate (the same component,
so its decisions cost what the live one's do) in the shadow of every request. Both are measured
in turn over several rounds: gateway CPU per request in a closed loop, and latency p50/p99 at a
fixed 500 requests a second; it prints each measurement, then the medians, the ratio, and how
many shadow decisions were compared and dropped. The aim: one extra decision's CPU, and no
added latency at p99 (the shadow runs after the request is forwarded).
"""

import argparse
import http.client
import json
from pathlib import Path

import gateway as g

TOKEN = "bench-admin-token-0123456789"


def config(mock_port, admin_port):
    text = g.switchyard_config(g.free_port(), mock_port, False)
    return text + f'[admin]\nlisten = "127.0.0.1:{admin_port}"\n'


def admin(port, method, path, body=None, content_type="application/wasm"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": content_type}
    conn.request(method, path, body=body, headers=headers)
    reply = conn.getresponse()
    data = reply.read()
    if reply.status != 200:
        raise SystemExit(f"admin {method} {path}: {reply.status} {data[:300]!r}")
    return json.loads(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    env = {"SWITCHYARD_ADMIN_TOKEN": TOKEN}
    with g.mocked() as (work, mock_port):
        proxies, admin_ports = {}, {}
        try:
            for name in ("no candidate", "shadow"):
                admin_ports[name] = g.free_port()
                proxies[name] = g.start_switchyard(
                    work, name.replace(" ", "-"), config(mock_port, admin_ports[name]), env)
            admin(admin_ports["shadow"], "PUT", "/admin/policies/cost-router/candidate?shadow=1",
                  body=Path(g.POLICY).read_bytes())
            medians = g.alternating_rounds(proxies, args.rounds, args.seconds)
            report = admin(admin_ports["shadow"], "GET", "/admin/policies/cost-router/candidate")
        finally:
            for proxy, _ in proxies.values():
                proxy.terminate()
                proxy.wait()
    base, shadow = medians["no candidate"], medians["shadow"]
    print(f"the shadow adds {shadow[0] - base[0]:.1f} µs of gateway CPU a request "
          f"({shadow[0] / base[0]:.3f}x), {shadow[1] - base[1]:.2f} ms at p50 and "
          f"{shadow[2] - base[2]:.2f} ms at p99")
    r = report["report"]
    print(f"shadow decisions compared: {r['pairs']}, dropped (slots full): {r['dropped']}, "
          f"candidate decision p50 {r['decision_us_p50']} µs, p99 {r['decision_us_p99']} µs")


if __name__ == "__main__":
    main()
