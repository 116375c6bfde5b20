#!/usr/bin/env python3
"""The gateway benchmark (run it through bench/run.sh, which installs and builds what it needs).

A mock upstream that is much faster than any gateway (nginx answering a fixed chat.completion,
and a fixed SSE stream on another path) runs on core 1 with the load generator (oha). Three
setups are measured one after the other, the gateway alone on core 0:
  - direct: oha talks to the mock;
  - nginx: nginx as a plain reverse proxy with keep-alive to the mock (the cost of one hop);
  - switchyard: the release build with the bundled cost-router policy, a fresh sandbox per
    request, its one log line per request written to a file.
For each: the gateway's CPU time per request (from /proc), the most requests per second in a
closed loop, latency p50/p99 at fixed rates of 200 and 1000 requests per second (added latency is
read against direct), peak RSS, and time to the first chunk of a streamed answer. Every 2xx a
client saw is checked against the mock's access log, so a gateway that answered errors fast cannot
look fast. Results go to docs/performance.md, as ratios to nginx measured in the same run.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SWITCHYARD = ROOT / "target/release/switchyard"
POLICY = ROOT / "target/wasm32-wasip2/wasm/cost_router.wasm"
GATEWAY_CORE = "0"
CLIENT_CORE = "1"
TICKS = os.sysconf("SC_CLK_TCK")

ANSWER = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris is the capital of France."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22},
}, separators=(",", ":"))


def sse_events():
    chunk = lambda delta, finish=None: "data: " + json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}, separators=(",", ":")) + "\n\n"
    usage = "data: " + json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [], "usage": {"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22}},
        separators=(",", ":")) + "\n\n"
    return (chunk({"role": "assistant", "content": ""}) + chunk({"content": "Paris is "})
            + chunk({"content": "the capital."}) + chunk({}, "stop") + usage + "data: [DONE]\n\n")


REQUEST = json.dumps({"model": "auto", "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"}]}, separators=(",", ":"))
STREAM_REQUEST = json.dumps({"model": "auto", "stream": True, "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"}]}, separators=(",", ":"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"nothing listens on port {port}")


def nginx(prefix: Path, core: str, server: str, extra_http: str = ""):
    """Start nginx (one worker) with `server` as its server block, pinned to `core`."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "logs").mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    {extra_http}
    {server}
}}
""")
    return subprocess.Popen(["taskset", "-c", core, "nginx", "-p", str(prefix), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pids_of(process):
    """The process and its children (nginx's worker)."""
    pids = [process.pid]
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    return pids


def cpu_seconds(process):
    total = 0
    for pid in pids_of(process):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def peak_rss_mib(process):
    total = 0
    for pid in pids_of(process):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def mock_200s(access_log: Path):
    if not access_log.exists():
        return 0
    return sum(1 for line in access_log.read_text().splitlines() if line.startswith("200"))


def oha(port, path, body, seconds, connections, rate=None):
    args = ["taskset", "-c", CLIENT_CORE, "oha", "--no-tui", "--output-format", "json",
            "-z", f"{seconds}s", "-c", str(connections), "-m", "POST",
            "-H", "content-type: application/json", "-d", body]
    if rate:
        args += ["-q", str(rate), "--latency-correction"]
    args.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def ok_count(result):
    return sum(int(n) for code, n in result.get("statusCodeDistribution", {}).items()
               if code.startswith("2"))


def first_chunk_ms(port, path, n):
    """Median and p99 time from sending a streamed request to its first body chunk, in ms."""
    times = []
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(n):
        start = time.perf_counter()
        conn.request("POST", path, body=STREAM_REQUEST, headers={"content-type": "application/json"})
        response = conn.getresponse()
        first = response.read1(65536)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status == 200 and first, (response.status, first)
        response.read()
    conn.close()
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def measure(name, port, path, stream_path, process, access_log, seconds, quick):
    """Every figure for one setup; `process` is the gateway (None for direct), `stream_path`
    where streams are asked for (None: measured elsewhere)."""
    oha(port, path, REQUEST, 2 if quick else 5, 32)  # warm-up
    before_200 = mock_200s(access_log)
    cpu_before = cpu_seconds(process) if process else 0.0
    closed = oha(port, path, REQUEST, seconds, 32)
    cpu = (cpu_seconds(process) - cpu_before) if process else 0.0
    served = ok_count(closed)
    mocked = mock_200s(access_log) - before_200
    if served > mocked:
        sys.exit(f"{name}: clients saw {served} 2xx but the mock answered {mocked}")
    result = {
        "rps": served / seconds,
        "cpu_us_per_request": (cpu / served * 1e6) if process and served else None,
        "errors": sum(closed.get("statusCodeDistribution", {}).values()) - served,
    }
    for rate in (200, 1000):
        fixed = oha(port, path, REQUEST, seconds, 16, rate)
        percentiles = fixed["latencyPercentiles"]
        result[f"p50_ms_at_{rate}"] = percentiles["p50"] * 1000
        result[f"p99_ms_at_{rate}"] = percentiles["p99"] * 1000
        result[f"ok_at_{rate}"] = ok_count(fixed)
    if stream_path:
        result["first_chunk_p50_ms"], result["first_chunk_p99_ms"] = first_chunk_ms(
            port, stream_path, 100 if quick else 500)
    result["peak_rss_mib"] = peak_rss_mib(process) if process else None
    print(f"  {name}: {json.dumps(result)}", flush=True)
    return result


def switchyard_config(port, mock_port, sse):
    base = f"http://127.0.0.1:{mock_port}/{'sse/' if sse else ''}v1"
    models = [("gpt-4o-mini", 0.15, 0.6, '["cheap", "fast", "tools", "vision"]'),
              ("claude-haiku-4-5", 1.0, 5.0, '["cheap", "fast", "tools", "vision"]'),
              ("o3", 2.0, 8.0, '["reasoning", "tools"]'),
              ("claude-sonnet-4-5", 3.0, 15.0, '["reasoning", "tools", "vision"]')]
    text = f'''listen = "127.0.0.1:{port}"
[auth]
anonymous_team = "bench"
[[policies]]
name = "cost-router"
path = "{POLICY}"
[[teams]]
name = "bench"
policy = "cost-router"
fallback = ["gpt-4o-mini"]
[[providers]]
name = "mock"
kind = "openai"
base_url = "{base}"
'''
    for model, cost_in, cost_out, tags in models:
        text += f'''[[models]]
id = "{model}"
provider = "mock"
upstream_model = "gpt-4o-mini"
input_cost_per_mtok = {cost_in}
output_cost_per_mtok = {cost_out}
context_window = 128000
tags = {tags}
'''
    return text


def run_round(work: Path, seconds, quick):
    mock_port = free_port()
    mock_dir = work / "mock"
    access_log = mock_dir / "access.log"
    sse = sse_events().replace("'", "\\'")
    mock = nginx(mock_dir, CLIENT_CORE, f"""
    log_format status '$status';
    access_log {access_log} status;
    server {{
        listen 127.0.0.1:{mock_port} reuseport backlog=4096;
        location = /v1/chat/completions {{ default_type application/json; return 200 '{ANSWER}'; }}
        location = /sse/v1/chat/completions {{ default_type text/event-stream; return 200 '{sse}'; }}
    }}""")
    wait_port(mock_port)
    results = {}
    try:
        print("direct", flush=True)
        results["direct"] = measure("direct", mock_port, "/v1/chat/completions",
                                    "/sse/v1/chat/completions", None, access_log, seconds, quick)

        proxy_port = free_port()
        proxy = nginx(work / "proxy", GATEWAY_CORE, f"""
    access_log off;
    upstream mock {{ server 127.0.0.1:{mock_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{proxy_port} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}""")
        wait_port(proxy_port)
        try:
            print("nginx", flush=True)
            results["nginx"] = measure("nginx", proxy_port, "/v1/chat/completions",
                                       "/sse/v1/chat/completions", proxy, access_log, seconds, quick)
        finally:
            proxy.terminate()
            proxy.wait()

        results["switchyard"] = run_switchyard(work, mock_port, access_log, seconds, quick)
    finally:
        mock.terminate()
        mock.wait()
    return results


def run_switchyard(work, mock_port, access_log, seconds, quick):
    """Switchyard twice: once for plain answers, once with the mock's SSE path for streams."""
    figures = None
    for sse in (False, True):
        port = free_port()
        config = work / f"switchyard-{'sse' if sse else 'json'}.toml"
        config.write_text(switchyard_config(port, mock_port, sse))
        log = open(work / f"switchyard-{'sse' if sse else 'json'}.log", "w")
        env = {"PATH": os.environ["PATH"], "XDG_CACHE_HOME": str(work / "cache"), "RUST_LOG": "info"}
        gateway = subprocess.Popen(["taskset", "-c", GATEWAY_CORE, str(SWITCHYARD), "serve",
                                    "--config", str(config)], stdout=subprocess.DEVNULL,
                                   stderr=log, env=env)
        wait_port(port)
        ready_deadline = time.monotonic() + 60
        while time.monotonic() < ready_deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        try:
            if not sse:
                print("switchyard", flush=True)
                figures = measure("switchyard", port, "/v1/chat/completions", None, gateway,
                                  access_log, seconds, quick)
            else:
                p50, p99 = first_chunk_ms(port, "/v1/chat/completions", 100 if quick else 500)
                figures["first_chunk_p50_ms"], figures["first_chunk_p99_ms"] = p50, p99
                print(f"  switchyard streams: first chunk p50 {p50:.3f} ms, p99 {p99:.3f} ms",
                      flush=True)
        finally:
            gateway.terminate()
            gateway.wait()
            log.close()
    return figures


def report(rounds, command):
    lines = ["# Gateway benchmark: results of the last run", "",
             "Measured by `" + command + "` (see `bench/gateway.py` for what each figure is). "
             "The machine is shared and noisy, so the figures are ratios within one run, and "
             "the benchmark runs twice.", ""]
    for i, r in enumerate(rounds, 1):
        d, n, s = r["direct"], r["nginx"], r["switchyard"]
        lines += [f"## Run {i}", "",
                  "| figure | direct | nginx | switchyard | switchyard / nginx |",
                  "|---|---|---|---|---|"]

        def row(label, key, fmt="{:.1f}", ratio=True):
            vals = [d.get(key), n.get(key), s.get(key)]
            cells = ["-" if v is None else fmt.format(v) for v in vals]
            rat = f"{s[key] / n[key]:.2f}" if ratio and n.get(key) and s.get(key) is not None else "-"
            lines.append(f"| {label} | {' | '.join(cells)} | {rat} |")

        row("gateway CPU per request (µs)", "cpu_us_per_request")
        row("requests/s, closed loop, 32 connections", "rps", "{:.0f}")
        for rate in (200, 1000):
            row(f"p50 latency at {rate} req/s (ms)", f"p50_ms_at_{rate}", "{:.3f}", False)
            row(f"p99 latency at {rate} req/s (ms)", f"p99_ms_at_{rate}", "{:.3f}", False)
        row("first streamed chunk, p50 (ms)", "first_chunk_p50_ms", "{:.3f}", False)
        row("first streamed chunk, p99 (ms)", "first_chunk_p99_ms", "{:.3f}", False)
        row("peak RSS (MiB)", "peak_rss_mib")
        added = lambda g, key: g[key] - d[key]
        lines += ["",
                  f"Added over direct, p99 at 1000 req/s: nginx {added(n, 'p99_ms_at_1000'):.3f} ms, "
                  f"switchyard {added(s, 'p99_ms_at_1000'):.3f} ms. "
                  f"First streamed chunk, p50 over nginx: "
                  f"{s['first_chunk_p50_ms'] - n['first_chunk_p50_ms']:.3f} ms.", ""]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, to try the script")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "docs/performance-results.md"))
    args = parser.parse_args()
    seconds = 3 if args.quick else 10
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="switchyard-bench-") as work:
            print(f"round {i + 1}", flush=True)
            rounds.append(run_round(Path(work), seconds, args.quick))
    command = "bench/run.sh" + (" --quick" if args.quick else "")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report(rounds, command))
    print(json.dumps(rounds, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
