#!/usr/bin/env python3
"""The gateway benchmark (run it through bench/run.sh, which installs and builds what it needs).

A mock upstream that is much faster than any gateway (nginx answering a fixed chat.completion,
and a fixed SSE stream on another path) runs on core 1 with the load generator (oha). Three
setups are measured one after the other, the gateway alone on core 0:
  - direct: oha talks to the mock;
  - nginx: nginx as a plain reverse proxy with keep-alive to the mock (the cost of one hop);
  - four floors (host/examples/bare_proxy.rs, no policy, no log, nothing of Switchyard's): a
    proxy on hyper's server and client alone, with axum's server or reqwest's client in their
    place, and on the axum + reqwest stack Switchyard is built on, to split the gap to nginx
    into the stack's share (and each layer's) and Switchyard's own;
  - switchyard: the release build with the bundled cost-router policy, a fresh sandbox per
    request, its one log line per request written to a file;
  - switchyard, reused: the same with `reuse_instances` on (one policy instance serves many
    requests: the opt-in trade-off of docs/performance.md).
For each: the gateway's CPU time per request (from /proc) in a closed loop and at each fixed
rate (a gateway that is busy spends less per request on waking up), the most requests per
second in a closed loop, latency p50/p99 at fixed rates of 200 and 1000 requests per second (added latency is
read against direct), peak RSS, and time to the first chunk of a streamed answer. Every 2xx a
client saw is checked against the mock's access log, so a gateway that answered errors fast cannot
look fast. Then Switchyard's resident memory with ten policies loaded and idle. Results go to
docs/performance-results.md, as ratios to nginx measured in the same run.

With --dist it measures the builds `cargo xtask dist --floor` makes (target/dist/): the proxy as
deployed, optimized with a profile of its request path, and the floors built the same way, each
from a profile of its own; results go to docs/performance-results-dist.md.

With --soak MINUTES it instead runs Switchyard at 1000 requests per second for that long and
samples its resident memory every 15 seconds, to show it stays flat after warm-up.
"""

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
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
BARE_PROXY = ROOT / "target/release/examples/bare_proxy"
# The floors (host/examples/bare_proxy.rs, SERVER-CLIENT): hyper alone, each of Switchyard's
# two layers over it, and the stack Switchyard is built on.
BARE = ("hyper-hyper", "axum-hyper", "hyper-reqwest", "axum-reqwest")
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


def closed_loop_cpu_us(process, port, path, body, seconds, warmup=2):
    """Gateway CPU per request (µs) of `process` over a closed loop of 32 connections posting
    `body` to `path`, after a warm-up; every answer must be a 2xx."""
    oha(port, path, body, warmup, 32)
    before = cpu_seconds(process)
    result = oha(port, path, body, seconds, 32)
    served = ok_count(result)
    if served == 0 or served != sum(result.get("statusCodeDistribution", {}).values()):
        sys.exit(f"{path}: not every answer was a 2xx: {result.get('statusCodeDistribution')}")
    return (cpu_seconds(process) - before) / served * 1e6


def fixed_rate_cpu_us(process, port, seconds, rate):
    """Gateway CPU per request (µs) of `process` at `rate` chat requests a second over 16
    connections, and oha's result (for its latency percentiles); every answer must be a 2xx."""
    before = cpu_seconds(process)
    result = oha(port, "/v1/chat/completions", REQUEST, seconds, 16, rate)
    served = ok_count(result)
    if served == 0 or served != sum(result.get("statusCodeDistribution", {}).values()):
        sys.exit(f"at {rate}/s not every answer was a 2xx: {result.get('statusCodeDistribution')}")
    return (cpu_seconds(process) - before) / served * 1e6, result


def chat_mock(work):
    """The nginx mock answering a fixed chat.completion on the client core; (process, port)."""
    port = free_port()
    mock = nginx(work / "mock", CLIENT_CORE, f"""
    access_log off;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location = /v1/chat/completions {{ default_type application/json; return 200 '{ANSWER}'; }}
    }}""")
    wait_port(port)
    return mock, port


@contextlib.contextmanager
def mocked(prefix=None):
    """A private folder with the chat mock running, for the length of a `with`: (folder, mock
    port). The mock is stopped and the folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        work = Path(folder)
        mock, port = chat_mock(work)
        try:
            yield work, port
        finally:
            mock.terminate()
            mock.wait()


def nginx_proxy(work, mock_port):
    """nginx as a plain reverse proxy with keep-alive to the mock, on the gateway core;
    (process, port)."""
    port = free_port()
    proxy = nginx(work / "proxy", GATEWAY_CORE, f"""
    access_log off;
    upstream mock {{ server 127.0.0.1:{mock_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}""")
    wait_port(port)
    return proxy, port


def alternated(names, rounds):
    """(round, name) for `rounds` rounds over `names`, the order reversed every other round, so
    that the machine's drift weighs on each alike."""
    for round_ in range(rounds):
        for name in (list(names) if round_ % 2 == 0 else list(names)[::-1]):
            yield round_, name


def cpu_and_latency(proxy, port, seconds):
    """Closed-loop gateway CPU per request (µs), and latency p50 and p99 at 500 req/s (ms)."""
    cpu = closed_loop_cpu_us(proxy, port, "/v1/chat/completions", REQUEST, seconds)
    fixed = oha(port, "/v1/chat/completions", REQUEST, seconds, 16, 500)
    latency = fixed["latencyPercentiles"]
    return cpu, latency["p50"] * 1000, latency["p99"] * 1000


def alternating_rounds(proxies, rounds, seconds):
    """Measure each of `proxies` (name -> (process, port)) with `cpu_and_latency`, in turn, the
    order reversed every other round; print each measurement and return each one's medians."""
    figures = {name: [] for name in proxies}
    for round_, name in alternated(proxies, rounds):
        proxy, port = proxies[name]
        figures[name].append(cpu_and_latency(proxy, port, seconds))
        cpu, p50, p99 = figures[name][-1]
        print(f"round {round_}: {name}: {cpu:.1f} µs/request, p50 {p50:.2f} ms, "
              f"p99 {p99:.2f} ms at 500/s", flush=True)
    medians = {name: [statistics.median(f[i] for f in values) for i in range(3)]
               for name, values in figures.items()}
    for name, (cpu, p50, p99) in medians.items():
        print(f"{name}: median {cpu:.1f} µs/request, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    return medians


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
        cpu_before = cpu_seconds(process) if process else 0.0
        fixed = oha(port, path, REQUEST, seconds, 16, rate)
        if process and ok_count(fixed):
            result[f"cpu_us_at_{rate}"] = (cpu_seconds(process) - cpu_before) / ok_count(fixed) * 1e6
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


EXAMPLES = ["cost_router", "latency_balancer", "budget_guard", "task_classifier", "scripted_policy"]


def switchyard_config(port, mock_port, sse, reuse=False, policies=1, copies=None, option=""):
    """Switchyard in front of the mock: `policies` policies (the bundled one first, then the
    example policies in turn, each a file of its own copied into `copies`), each bound to a team
    of its own; the first team is anonymous. `option` is added to every policy's entry."""
    base = f"http://127.0.0.1:{mock_port}/{'sse/' if sse else ''}v1"
    models = [("gpt-4o-mini", 0.15, 0.6, '["cheap", "fast", "tools", "vision"]'),
              ("claude-haiku-4-5", 1.0, 5.0, '["cheap", "fast", "tools", "vision"]'),
              ("o3", 2.0, 8.0, '["reasoning", "tools"]'),
              ("claude-sonnet-4-5", 3.0, 15.0, '["reasoning", "tools", "vision"]')]
    text = f'''listen = "127.0.0.1:{port}"
[auth]
anonymous_team = "bench"
'''
    for i in range(policies):
        wasm = POLICY.parent / f"{EXAMPLES[i % len(EXAMPLES)]}.wasm"
        if i > 0:
            wasm = Path(shutil.copy(wasm, copies / f"policy-{i}.wasm"))
        name, team = ("cost-router", "bench") if i == 0 else (f"policy-{i}", f"team-{i}")
        keys = "" if i == 0 else f'keys = ["sk-bench-team-key-{i:04}"]\n'
        text += f'''[[policies]]
name = "{name}"
path = "{wasm}"
{"reuse_instances = 1000" if reuse else ""}
{option}
[[teams]]
name = "{team}"
policy = "{name}"
fallback = ["gpt-4o-mini"]
{keys}'''
    text += f'''[[providers]]
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

        proxy, proxy_port = nginx_proxy(work, mock_port)
        try:
            print("nginx", flush=True)
            results["nginx"] = measure("nginx", proxy_port, "/v1/chat/completions",
                                       "/sse/v1/chat/completions", proxy, access_log, seconds, quick)
        finally:
            proxy.terminate()
            proxy.wait()

        for mode in BARE:
            results[mode] = run_bare(work, mode, mock_port, access_log, seconds, quick)
        results["switchyard"] = run_switchyard(work, mock_port, access_log, seconds, quick)
        results["reused"] = run_switchyard(work, mock_port, access_log, seconds, quick, reuse=True)
        results["ten_policies_rss_mib"] = idle_rss_with_ten_policies(work, mock_port)
    finally:
        mock.terminate()
        mock.wait()
    return results


def start_floor(binary, mode, mock_port):
    """The floor: `binary` (a build of `bare_proxy`) in `mode` (no policy, no log, nothing of
    Switchyard's) in front of the mock on the gateway core, once it listens; (process, port)."""
    port = free_port()
    floor = subprocess.Popen(["taskset", "-c", GATEWAY_CORE, str(binary), mode,
                              f"127.0.0.1:{port}",
                              f"http://127.0.0.1:{mock_port}/v1/chat/completions"])
    try:
        wait_port(port)
    except BaseException:
        floor.terminate()
        floor.wait()
        raise
    return floor, port


def run_bare(work, mode, mock_port, access_log, seconds, quick):
    """The floor in `mode` (`start_floor`), measured."""
    proxy, port = start_floor(BARE_PROXY, mode, mock_port)
    try:
        print(mode, flush=True)
        return measure(mode, port, "/v1/chat/completions", None, proxy, access_log, seconds, quick)
    finally:
        proxy.terminate()
        proxy.wait()


def start_switchyard(work, name, config_text, extra_env=None):
    """Start the release proxy on the gateway core with `config_text` (and `extra_env` in its
    environment); wait until it is ready."""
    port = int(config_text.split('listen = "127.0.0.1:', 1)[1].split('"', 1)[0])
    config = work / f"{name}.toml"
    config.write_text(config_text)
    log = open(work / f"{name}.log", "w")
    env = {"PATH": os.environ["PATH"], "XDG_CACHE_HOME": str(work / "cache"), "RUST_LOG": "info"}
    env.update(extra_env or {})
    gateway = subprocess.Popen(["taskset", "-c", GATEWAY_CORE, str(SWITCHYARD), "serve",
                                "--config", str(config)], stdout=subprocess.DEVNULL,
                               stderr=log, env=env)
    log.close()
    wait_port(port)
    ready_deadline = time.monotonic() + 60
    while time.monotonic() < ready_deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return gateway, port
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{name} did not become ready: see {work / name}.log")


def decision_times(log: Path, team=None):
    """The `decision_us` of the request lines in the proxy's log `log` (of `team`'s requests
    only, if given), in order."""
    times = []
    for line in log.read_text().splitlines():
        found = re.search(r'team="([^"]*)".*decision_us=(\d+)', line)
        if found and team in (None, found.group(1)):
            times.append(int(found.group(2)))
    return times


def rss_mib(process):
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def run_switchyard(work, mock_port, access_log, seconds, quick, reuse=False):
    """Switchyard twice: once for plain answers, once with the mock's SSE path for streams."""
    label = "switchyard, reused" if reuse else "switchyard"
    figures = None
    for sse in (False, True):
        name = f"switchyard-{'reused-' if reuse else ''}{'sse' if sse else 'json'}"
        gateway, port = start_switchyard(
            work, name, switchyard_config(free_port(), mock_port, sse, reuse))
        try:
            if not sse:
                print(label, flush=True)
                figures = measure(label, port, "/v1/chat/completions", None, gateway,
                                  access_log, seconds, quick)
            else:
                p50, p99 = first_chunk_ms(port, "/v1/chat/completions", 100 if quick else 500)
                figures["first_chunk_p50_ms"], figures["first_chunk_p99_ms"] = p50, p99
                print(f"  switchyard streams: first chunk p50 {p50:.3f} ms, p99 {p99:.3f} ms",
                      flush=True)
        finally:
            gateway.terminate()
            gateway.wait()
    return figures


def idle_rss_with_ten_policies(work, mock_port):
    """Resident memory of Switchyard with ten policies loaded (every canary run), then idle."""
    gateway, _ = start_switchyard(
        work, "switchyard-ten",
        switchyard_config(free_port(), mock_port, False, policies=10, copies=work))
    try:
        time.sleep(3)
        rss = rss_mib(gateway)
        print(f"  switchyard, ten policies, idle: {rss:.1f} MiB resident", flush=True)
        return rss
    finally:
        gateway.terminate()
        gateway.wait()


def soak(work, minutes):
    """Switchyard at 1000 req/s for `minutes`; its resident memory every 15 s."""
    mock, mock_port = chat_mock(work)
    gateway, port = start_switchyard(work, "switchyard-soak",
                                     switchyard_config(free_port(), mock_port, False))
    seconds = int(minutes * 60)
    load = subprocess.Popen(
        ["taskset", "-c", CLIENT_CORE, "oha", "--no-tui", "--output-format", "json", "-z",
         f"{seconds}s", "-c", "16", "-q", "1000", "-m", "POST", "-H",
         "content-type: application/json", "-d", REQUEST,
         f"http://127.0.0.1:{port}/v1/chat/completions"],
        stdout=subprocess.PIPE, text=True)
    samples = []
    try:
        started = time.monotonic()
        while load.poll() is None:
            time.sleep(15)
            samples.append((round(time.monotonic() - started), rss_mib(gateway)))
            print(f"  {samples[-1][0]:>4} s: {samples[-1][1]:.1f} MiB", flush=True)
        result = json.loads(load.stdout.read())
    finally:
        gateway.terminate()
        gateway.wait()
        mock.terminate()
        mock.wait()
    return samples, ok_count(result), sum(result.get("statusCodeDistribution", {}).values())


SETUPS = [("direct", "direct"), ("nginx", "nginx"), ("hyper-hyper", "floor: hyper, hyper"),
          ("axum-hyper", "floor: axum, hyper"), ("hyper-reqwest", "floor: hyper, reqwest"),
          ("axum-reqwest", "floor: axum, reqwest"), ("switchyard", "switchyard"),
          ("reused", "switchyard, reused instances")]


def report(rounds, command):
    lines = ["# Gateway benchmark: results of the last run", "",
             "Measured by `" + command + "` (see `bench/gateway.py` for what each figure is). "
             "The machine is shared and noisy, so the figures are ratios within one run, and "
             "the benchmark runs twice. The floors are `host/examples/bare_proxy.rs`: a proxy "
             "with nothing of Switchyard's in it, named by its server and its upstream client "
             "(`axum, reqwest` is the stack Switchyard is built on)."
             + (" Switchyard and the floors are the builds of `cargo xtask dist --floor`: each "
                "optimized with a profile of its own training load (profile-guided "
                "optimization)." if "--dist" in command else ""), ""]
    for i, r in enumerate(rounds, 1):
        d, n, s, u = r["direct"], r["nginx"], r["switchyard"], r["reused"]
        lines += [f"## Run {i}", "",
                  "| figure | " + " | ".join(label for _, label in SETUPS) + " |",
                  "|---|" + "---|" * len(SETUPS)]

        def row(label, key, fmt="{:.1f}"):
            vals = [r[setup].get(key) for setup, _ in SETUPS]
            lines.append(f"| {label} | "
                         + " | ".join("-" if v is None else fmt.format(v) for v in vals) + " |")

        row("gateway CPU per request, closed loop (µs)", "cpu_us_per_request")
        for rate in (200, 1000):
            row(f"gateway CPU per request at {rate} req/s (µs)", f"cpu_us_at_{rate}")
        row("requests/s, closed loop, 32 connections", "rps", "{:.0f}")
        for rate in (200, 1000):
            row(f"p50 latency at {rate} req/s (ms)", f"p50_ms_at_{rate}", "{:.3f}")
            row(f"p99 latency at {rate} req/s (ms)", f"p99_ms_at_{rate}", "{:.3f}")
        row("first streamed chunk, p50 (ms)", "first_chunk_p50_ms", "{:.3f}")
        row("first streamed chunk, p99 (ms)", "first_chunk_p99_ms", "{:.3f}")
        row("peak RSS (MiB)", "peak_rss_mib")

        def ratio(key):
            return ", ".join(f"{label} {r[setup][key] / n[key]:.2f}×"
                             for setup, label in SETUPS[2:] if r[setup].get(key))
        added = lambda g, key: g[key] - d[key]
        lines += ["",
                  f"CPU per request against nginx: closed loop {ratio('cpu_us_per_request')}; "
                  f"at 1000 req/s {ratio('cpu_us_at_1000')}.",
                  "",
                  f"Added over direct, p99 at 1000 req/s: nginx {added(n, 'p99_ms_at_1000'):.3f} ms, "
                  + ", ".join(f"{label} {added(r[setup], 'p99_ms_at_1000'):.3f} ms"
                              for setup, label in SETUPS[2:]) + ". "
                  f"First streamed chunk, p50 over nginx: switchyard "
                  f"{s['first_chunk_p50_ms'] - n['first_chunk_p50_ms']:.3f} ms, reused "
                  f"{u['first_chunk_p50_ms'] - n['first_chunk_p50_ms']:.3f} ms. "
                  f"Resident memory with ten policies loaded and idle: {r['ten_policies_rss_mib']:.1f} MiB.",
                  ""]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, to try the script")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dist", action="store_true",
                        help="the profile-optimized builds of `cargo xtask dist --floor`")
    parser.add_argument("--out", help="the report (default docs/performance-results.md, "
                                      "or performance-results-dist.md with --dist)")
    parser.add_argument("--soak", type=float, metavar="MINUTES",
                        help="only the memory soak: this long at 1000 req/s")
    args = parser.parse_args()
    if args.dist:
        global SWITCHYARD, BARE_PROXY
        SWITCHYARD, BARE_PROXY = ROOT / "target/dist/switchyard", ROOT / "target/dist/bare_proxy"
    out = Path(args.out or ROOT / "docs" / ("performance-results-dist.md" if args.dist
                                            else "performance-results.md"))
    if args.soak:
        with tempfile.TemporaryDirectory(prefix="switchyard-soak-") as work:
            samples, ok, total = soak(Path(work), args.soak)
        warm = [rss for t, rss in samples if t >= 60] or [rss for _, rss in samples]
        summary = (f"{args.soak:g} minutes at 1000 req/s: {ok} of {total} answers 2xx; resident "
                   f"memory after the first minute from {warm[0]:.1f} to {warm[-1]:.1f} MiB "
                   f"(min {min(warm):.1f}, max {max(warm):.1f})")
        print(summary)
        out = out.with_name("performance-soak.md")
        out.write_text("# Memory under a long load\n\nMeasured by `bench/run.sh --soak "
                       f"{args.soak:g}`.\n\n{summary}.\n\n| seconds | resident MiB |\n|---|---|\n"
                       + "".join(f"| {t} | {rss:.1f} |\n" for t, rss in samples))
        print(f"written to {out}")
        return
    seconds = 3 if args.quick else 10
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="switchyard-bench-") as work:
            print(f"round {i + 1}", flush=True)
            rounds.append(run_round(Path(work), seconds, args.quick))
    command = "bench/run.sh" + (" --dist" if args.dist else "") + (" --quick" if args.quick else "")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report(rounds, command))
    print(json.dumps(rounds, indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
