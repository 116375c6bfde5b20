#!/usr/bin/env python3
"""The training load of `cargo xtask dist`: run an instrumented proxy against a mock provider on
loopback and send it the request kinds a gateway serves, so that its profile says which code is
hot.

    python3 xtask/pgo_train.py PROXY_BINARY POLICY_WASM [SECONDS]
    python3 xtask/pgo_train.py --floor BARE_PROXY_BINARY [SECONDS]

The mock (a process of its own) answers every chat completion with a fixed completion, or with
a fixed SSE stream when the request asks for one. The proxy serves two teams with the given
policy: the anonymous one on a fresh sandbox per decision (the default), the other, reached
with a key, on reused instances of a copy of it. Client threads send, in turn, OpenAI chat completions whole
and streamed, Anthropic messages whole and streamed, Responses API requests, and the errors a
gateway answers often (a bad key, a body that is not JSON, a missing field). The proxy is then
stopped with SIGTERM, which writes its profile as it exits. Fails if any kind of request never
got the status it should, so a profile is never made of errors alone. Standard library only.

With --floor it trains the gateway benchmark's floor (host/examples/bare_proxy.rs) instead: each
of its four modes in turn, for a quarter of the time, forwarding OpenAI chat completions (the
only request the floor serves) to the same mock, and stopped with SIGTERM as above.
"""

import http.client
import http.server
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ANSWER = json.dumps({
    "id": "chatcmpl-train", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris is the capital."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22}}).encode()


def chunk(delta, finish=None, usage=None):
    body = {"id": "chatcmpl-train", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-mini",
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"


STREAM = (chunk({"role": "assistant", "content": ""}) + chunk({"content": "Paris is "})
          + chunk({"content": "the capital."}) + chunk({}, "stop")
          + chunk(None, usage={"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22})
          + "data: [DONE]\n\n").encode()

SYSTEM = "You are a helpful assistant."
QUESTION = "What is the capital of France?"
PLANNING = ("Plan a migration of our billing service from a monolith to three services: "
            "think step by step about the data each one owns and the order of the cut-over.")
CHAT = {"model": "auto", "messages": [{"role": "system", "content": SYSTEM},
                                      {"role": "user", "content": QUESTION}]}
KINDS = [
    # (name, path, body, team key or None, expected status); chat whole and streamed come
    # twice, so that the common case weighs double
    ("chat", "/v1/chat/completions", CHAT, None, 200),
    ("chat, streamed", "/v1/chat/completions", {**CHAT, "stream": True}, None, 200),
    ("chat, planning", "/v1/chat/completions",
     {"model": "auto", "messages": [{"role": "user", "content": PLANNING}]}, None, 200),
    ("chat, reused instance", "/v1/chat/completions", CHAT, "sk-train-reused", 200),
    ("chat", "/v1/chat/completions", CHAT, None, 200),
    ("anthropic", "/v1/messages", {"model": "auto", "max_tokens": 64, "system": SYSTEM,
                                   "messages": [{"role": "user", "content": QUESTION}]}, None, 200),
    ("anthropic, streamed", "/v1/messages",
     {"model": "auto", "max_tokens": 64, "stream": True,
      "messages": [{"role": "user", "content": QUESTION}]}, None, 200),
    ("chat, streamed", "/v1/chat/completions", {**CHAT, "stream": True}, None, 200),
    ("responses", "/v1/responses", {"model": "auto", "input": QUESTION}, None, 200),
    ("bad key", "/v1/chat/completions", CHAT, "sk-train-unknown", 401),
    ("not JSON", "/v1/chat/completions", b"{\"model\": ", None, 400),
    ("no messages", "/v1/chat/completions", {"model": "auto"}, None, 400),
]


class Mock(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the head and the body go out as two writes

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        streamed = b'"stream":true' in body.replace(b" ", b"")
        answer = STREAM if streamed else ANSWER
        self.send_response(200)
        self.send_header("content-type", "text/event-stream" if streamed else "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def serve_mock(port):
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Mock).serve_forever()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(port, mock_port, policy, policy_copy):
    models = [("gpt-4o-mini", 0.15, 0.6, '["cheap", "fast", "tools", "vision"]'),
              ("claude-haiku-4-5", 1.0, 5.0, '["cheap", "fast", "tools", "vision"]'),
              ("o3", 2.0, 8.0, '["reasoning", "tools"]'),
              ("claude-sonnet-4-5", 3.0, 15.0, '["reasoning", "tools", "vision"]')]
    text = f'''listen = "127.0.0.1:{port}"
[auth]
anonymous_team = "fresh"
[[policies]]
name = "fresh"
path = "{policy}"
[[policies]]
name = "reused"
path = "{policy_copy}"
reuse_instances = 1000
[[teams]]
name = "fresh"
policy = "fresh"
fallback = ["gpt-4o-mini"]
[[teams]]
name = "reused"
policy = "reused"
fallback = ["gpt-4o-mini"]
keys = ["sk-train-reused"]
[[providers]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:{mock_port}/v1"
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


def wait_ready(port, proxy, log):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            sys.exit(f"the proxy exited ({proxy.returncode}) before it was ready:\n"
                     f"{log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"the proxy did not become ready in two minutes:\n{log.read_text()[-2000:]}")


def load(port, until, seen, lock, kinds=KINDS):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    while time.monotonic() < until:
        name, path, body, key, expected = kinds[i % len(kinds)]
        i += 1
        headers = {"content-type": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            conn.request("POST", path, data, headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            status = None
        with lock:
            statuses = seen.setdefault(name, {})
            statuses[status] = statuses.get(status, 0) + 1


def run_load(port, seconds, kinds=KINDS):
    """Eight client threads send `kinds` in turn for `seconds`; the statuses each kind got."""
    seen, lock = {}, threading.Lock()
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=load, args=(port, until, seen, lock, kinds))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return seen


def stop(process):
    """SIGTERM `process` and wait for it (an instrumented build writes its profile as it
    exits); its exit code."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return "none: still running a minute after SIGTERM"


def check_exit(code, what):
    if code != 0:
        sys.exit(f"{what}'s exit code was {code} after SIGTERM, so it wrote no profile")


def report(seen, kinds):
    """Print the statuses each kind got; fail if a kind never got the one it should."""
    for name, statuses in sorted(seen.items()):
        print(f"  {name}: " + ", ".join(f"{s}: {n}" for s, n in statuses.items()))
    failed = [name for name, _, _, _, expected in kinds if not seen.get(name, {}).get(expected)]
    if failed:
        sys.exit(f"never answered as expected: {', '.join(failed)}")


def train_proxy(proxy_binary, policy, seconds, mock_port):
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        copy = work / "reused.wasm"
        shutil.copy(policy, copy)
        (work / "switchyard.toml").write_text(config(port, mock_port, policy, copy))
        log = work / "switchyard.log"
        with open(log, "w") as err:
            proxy = subprocess.Popen(
                [str(proxy_binary), "serve", "--config", str(work / "switchyard.toml")],
                stdout=subprocess.DEVNULL, stderr=err,
                env={**profile_env(), "PATH": "/usr/bin:/bin",
                     "XDG_CACHE_HOME": str(work / "cache"), "RUST_LOG": "info"})
        try:
            wait_ready(port, proxy, log)
            seen = run_load(port, seconds)
        finally:
            code = stop(proxy)
    check_exit(code, "the proxy")
    report(seen, KINDS)


# The floor's one kind of request, as the gateway benchmark sends it.
FLOOR_KINDS = [("chat", "/v1/chat/completions", CHAT, None, 200)]
# The floor's modes (host/examples/bare_proxy.rs): SERVER-CLIENT.
FLOOR_MODES = ("hyper-hyper", "axum-hyper", "hyper-reqwest", "axum-reqwest")


def train_floor(floor_binary, seconds, mock_port):
    for mode in FLOOR_MODES:
        port = free_port()
        floor = subprocess.Popen(
            [str(floor_binary), mode, f"127.0.0.1:{port}",
             f"http://127.0.0.1:{mock_port}/v1/chat/completions"], env=profile_env())
        try:
            wait_port(port, floor)
            seen = run_load(port, seconds / len(FLOOR_MODES), FLOOR_KINDS)
        finally:
            code = stop(floor)
        check_exit(code, f"bare_proxy {mode}")
        print(f" {mode}")
        report(seen, FLOOR_KINDS)


def wait_port(port, process):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"it exited ({process.returncode}) before it listened")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listened on port {port} within a minute")


def profile_env():
    """The environment's `LLVM_PROFILE_FILE` (where `cargo xtask dist` wants the profile), if
    it names one."""
    path = os.environ.get("LLVM_PROFILE_FILE")
    return {"LLVM_PROFILE_FILE": path} if path else {}


def main():
    args = sys.argv[1:]
    floor = args[:1] == ["--floor"]
    if floor:
        binary, rest = Path(args[1]), args[2:]
    else:
        binary, policy, rest = Path(args[0]), Path(args[1]).resolve(), args[2:]
    seconds = float(rest[0]) if rest else 20
    mock_port = free_port()
    mock = multiprocessing.Process(target=serve_mock, args=(mock_port,), daemon=True)
    mock.start()
    try:
        if floor:
            train_floor(binary, seconds, mock_port)
        else:
            train_proxy(binary, policy, seconds, mock_port)
    finally:
        mock.terminate()


if __name__ == "__main__":
    main()
