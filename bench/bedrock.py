#!/usr/bin/env python3
"""A chat request translated for AWS Bedrock against one passed through to an OpenAI-compatible
provider: Switchyard's CPU per request for each, whole and streamed, in one run.

    bench/run.sh --quick             # once: installs nginx and oha, builds the release proxy
    python3 bench/bedrock.py         # several minutes

The gateway benchmark's nginx mock answers `/v1/chat/completions` with a fixed chat.completion
(and an SSE stream under `/sse/v1`), and Bedrock's `/model/bench-model/converse` with the same
answer in Converse's JSON (and `/converse-stream` under `/sse` with the same text in AWS's
event-stream frames, their CRCs included). One Switchyard (the release build, the bundled
cost-router policy, which honours the model a client names) has both providers; the OpenAI
client asks for `gpt-4o-mini` (passed through) or `bedrock-model` (translated to Converse by
way of Anthropic Messages, signed with SigV4, the answer translated back), alternated round by
round so that the machine's drift weighs on both alike. It prints each measurement, then each
kind's median gateway CPU per request and the ratio of Bedrock to pass-through.
"""

import argparse
import http.client
import json
import statistics
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import gateway as g

CONVERSE = json.dumps({
    "output": {"message": {"role": "assistant", "content": [{"text": "Paris is the capital of France."}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 14, "outputTokens": 8, "totalTokens": 22},
    "metrics": {"latencyMs": 100},
}, separators=(",", ":"))


def frame(event_type, payload):
    """One AWS event-stream frame: prelude (lengths and CRC), string headers, payload, CRC."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        name, value = name.encode(), value.encode()
        headers += struct.pack(">B", len(name)) + name + struct.pack(">BH", 7, len(value)) + value
    body = json.dumps(payload, separators=(",", ":")).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def converse_stream():
    """A ConverseStream answer with the chat stream's text."""
    events = [("messageStart", {"role": "assistant"})]
    events += [("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
               for piece in ("Paris is ", "the capital.")]
    events += [("contentBlockStop", {"contentBlockIndex": 0}), ("messageStop", {"stopReason": "end_turn"}),
               ("metadata", {"usage": {"inputTokens": 14, "outputTokens": 8, "totalTokens": 22},
                             "metrics": {"latencyMs": 100}})]
    return b"".join(frame(kind, payload) for kind, payload in events)


def request(model, streamed):
    body = json.loads(g.STREAM_REQUEST if streamed else g.REQUEST)
    body["model"] = model
    return json.dumps(body, separators=(",", ":"))


KINDS = {"passthrough": "gpt-4o-mini", "bedrock": "bedrock-model"}


def config(port, mock_port, streamed):
    sse = "/sse" if streamed else ""
    return f'''listen = "127.0.0.1:{port}"
[auth]
anonymous_team = "bench"
[[policies]]
name = "cost-router"
path = "{g.POLICY}"
[[teams]]
name = "bench"
policy = "cost-router"
fallback = ["gpt-4o-mini"]
[[providers]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:{mock_port}{sse}/v1"
[[providers]]
name = "bedrock"
kind = "bedrock"
region = "us-east-1"
base_url = "http://127.0.0.1:{mock_port}{sse}"
[[models]]
id = "gpt-4o-mini"
provider = "mock"
input_cost_per_mtok = 0.15
output_cost_per_mtok = 0.6
context_window = 128000
tags = ["cheap", "fast"]
[[models]]
id = "bedrock-model"
provider = "bedrock"
upstream_model = "bench-model"
input_cost_per_mtok = 0.15
output_cost_per_mtok = 0.6
context_window = 128000
tags = ["cheap", "fast"]
'''


def check_answer(port, body, streamed):
    """Exit unless the proxy answers `body` with the mock's text (and a whole stream)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    answer = conn.getresponse().read().decode()
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in answer.splitlines()
                   if line.startswith("data: {") and '"choices":[{' in line) if streamed \
        else json.loads(answer)["choices"][0]["message"]["content"]
    if "Paris is" not in text or (streamed and "data: [DONE]" not in answer):
        sys.exit(f"unexpected answer to {body}: {answer}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "frames").mkdir()
        (work / "frames/converse-stream").write_bytes(converse_stream())
        mock_port = g.free_port()
        chat_sse = g.sse_events().replace("'", "\\'")
        # nginx serves no file to a POST (405); the error page turns it into the file's GET.
        mock = g.nginx(work / "mock", g.CLIENT_CORE, f"""
    access_log off;
    server {{
        listen 127.0.0.1:{mock_port} reuseport backlog=4096;
        location = /v1/chat/completions {{ default_type application/json; return 200 '{g.ANSWER}'; }}
        location = /sse/v1/chat/completions {{ default_type text/event-stream; return 200 '{chat_sse}'; }}
        location = /model/bench-model/converse {{ default_type application/json; return 200 '{CONVERSE}'; }}
        location = /sse/model/bench-model/converse-stream {{
            default_type application/vnd.amazon.eventstream;
            error_page 405 =200 $uri;
            alias {work}/frames/converse-stream;
        }}
    }}""")
        g.wait_port(mock_port)
        env = {"AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench-secret",
               "AWS_CONFIG_FILE": str(work / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(work / "none"),
               "AWS_EC2_METADATA_DISABLED": "true"}
        figures = {}
        try:
            for streamed in (False, True):
                mode = "streamed" if streamed else "whole"
                proxy, port = g.start_switchyard(work, mode, config(g.free_port(), mock_port, streamed), env)
                try:
                    for round_, kind in g.alternated(KINDS, args.rounds):
                        body = request(KINDS[kind], streamed)
                        if round_ == 0:
                            check_answer(port, body, streamed)
                        us = g.closed_loop_cpu_us(proxy, port, "/v1/chat/completions", body, args.seconds)
                        figures.setdefault((mode, kind), []).append(us)
                        print(f"{mode} round {round_}: {kind} {us:.1f} µs/request", flush=True)
                finally:
                    proxy.terminate()
                    proxy.wait()
        finally:
            mock.terminate()
            mock.wait()
    for mode in ("whole", "streamed"):
        passthrough = statistics.median(figures[(mode, "passthrough")])
        bedrock = statistics.median(figures[(mode, "bedrock")])
        print(f"{mode}: pass-through median {passthrough:.1f} µs/request, bedrock median {bedrock:.1f} "
              f"µs/request, bedrock/pass-through {bedrock / passthrough:.3f}")


if __name__ == "__main__":
    main()
