#!/usr/bin/env python3
"""The Responses API's pass-through against chat completions: Switchyard's CPU per request for
each, whole and streamed, in one run.

    bench/run.sh --quick             # once: installs nginx and oha, builds the release proxy
    python3 bench/responses.py       # several minutes

The gateway benchmark's nginx mock answers `/v1/chat/completions` with a fixed chat.completion
and `/v1/responses` with a fixed response object (and both as SSE streams under `/sse/v1`).
One Switchyard (the release build, the bundled cost-router policy, a provider with
`responses = true`) serves both kinds of request, alternated round by round so that the
machine's drift weighs on both alike, from the same load generator on its own core. It prints
each measurement, then each kind's median gateway CPU per request and the ratio of Responses to
chat.
"""

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import gateway as g

RESPONSE = json.dumps({
    "id": "resp_bench", "object": "response", "created_at": 1, "status": "completed", "error": None,
    "incomplete_details": None, "model": "gpt-4o-mini",
    "output": [{"id": "msg_bench", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "Paris is the capital of France.",
                             "annotations": []}]}],
    "usage": {"input_tokens": 14, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 8,
              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 22},
}, separators=(",", ":"))


def response_events():
    """A Responses stream as OpenAI sends it, the same text as the chat stream's."""
    events = []

    def event(kind, data):
        data = {"type": kind, "sequence_number": len(events), **data}
        events.append(f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n")

    started = {**json.loads(RESPONSE), "status": "in_progress", "output": [], "usage": None}
    event("response.created", {"response": started})
    event("response.in_progress", {"response": started})
    at = {"item_id": "msg_bench", "output_index": 0, "content_index": 0}
    event("response.output_item.added", {"output_index": 0, "item": {
        "id": "msg_bench", "type": "message", "status": "in_progress", "role": "assistant", "content": []}})
    event("response.content_part.added", {**at, "part": {"type": "output_text", "text": "", "annotations": []}})
    for piece in ("Paris is ", "the capital."):
        event("response.output_text.delta", {**at, "delta": piece, "logprobs": []})
    event("response.output_text.done", {**at, "text": "Paris is the capital.", "logprobs": []})
    done = json.loads(RESPONSE)
    event("response.output_item.done", {"output_index": 0, "item": done["output"][0]})
    event("response.completed", {"response": done})
    return "".join(events)


RESPONSES_REQUEST = json.dumps({"model": "auto", "instructions": "You are a helpful assistant.",
                                "input": "What is the capital of France?"}, separators=(",", ":"))
RESPONSES_STREAM_REQUEST = json.dumps({**json.loads(RESPONSES_REQUEST), "stream": True},
                                      separators=(",", ":"))

KINDS = {
    "chat": ("/v1/chat/completions", g.REQUEST, g.STREAM_REQUEST),
    "responses": ("/v1/responses", RESPONSES_REQUEST, RESPONSES_STREAM_REQUEST),
}


def cpu_per_request(proxy, port, kind, streamed, seconds):
    """Closed-loop gateway CPU per request (µs) for one kind of request, after a warm-up."""
    path, whole, stream = KINDS[kind]
    return g.closed_loop_cpu_us(proxy, port, path, stream if streamed else whole, seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        mock_port = g.free_port()
        chat_sse = g.sse_events().replace("'", "\\'")
        responses_sse = response_events().replace("'", "\\'")
        mock = g.nginx(work / "mock", g.CLIENT_CORE, f"""
    access_log off;
    server {{
        listen 127.0.0.1:{mock_port} reuseport backlog=4096;
        location = /v1/chat/completions {{ default_type application/json; return 200 '{g.ANSWER}'; }}
        location = /v1/responses {{ default_type application/json; return 200 '{RESPONSE}'; }}
        location = /sse/v1/chat/completions {{ default_type text/event-stream; return 200 '{chat_sse}'; }}
        location = /sse/v1/responses {{ default_type text/event-stream; return 200 '{responses_sse}'; }}
    }}""")
        g.wait_port(mock_port)
        figures = {}
        try:
            for streamed in (False, True):
                mode = "streamed" if streamed else "whole"
                config = g.switchyard_config(g.free_port(), mock_port, streamed)
                config = config.replace('kind = "openai"\n', 'kind = "openai"\nresponses = true\n')
                proxy, port = g.start_switchyard(work, mode, config)
                try:
                    for round_, kind in g.alternated(KINDS, args.rounds):
                        us = cpu_per_request(proxy, port, kind, streamed, args.seconds)
                        figures.setdefault((mode, kind), []).append(us)
                        print(f"{mode} round {round_}: {kind} {us:.1f} µs/request", flush=True)
                finally:
                    proxy.terminate()
                    proxy.wait()
        finally:
            mock.terminate()
            mock.wait()
    for mode in ("whole", "streamed"):
        chat = statistics.median(figures[(mode, "chat")])
        responses = statistics.median(figures[(mode, "responses")])
        print(f"{mode}: chat median {chat:.1f} µs/request, responses median {responses:.1f} "
              f"µs/request, responses/chat {responses / chat:.3f}")


if __name__ == "__main__":
    main()
