"""Drive a Switchyard proxy with the official Anthropic Python SDK, changing only base_url and the key.

Usage: python anthropic_client.py BASE_URL. Prints one JSON object with what the SDK saw.
"""

import json
import sys

from anthropic import Anthropic

client = Anthropic(base_url=sys.argv[1], api_key="sk-switchyard-demo", max_retries=0, timeout=30)

raw = client.messages.with_raw_response.create(
    model="auto",
    max_tokens=200,
    system="Answer briefly.",
    messages=[{"role": "user", "content": "What is 2 + 2?"}],
)
message = raw.parse()

with client.messages.stream(
    model="auto",
    max_tokens=2000,
    messages=[{"role": "user", "content": "Prove step by step that the square root of 2 is irrational."}],
) as stream:
    stream_text = "".join(stream.text_stream)
    final = stream.get_final_message()

models = [m.id for m in client.models.list()]
counted = client.messages.with_raw_response.count_tokens(
    model="auto", messages=[{"role": "user", "content": "Count the tokens of this sentence, please."}]
)

print(
    json.dumps(
        {
            "model_header": raw.headers["x-switchyard-model"],
            "content": message.content[0].text,
            "stop_reason": message.stop_reason,
            "total_tokens": message.usage.input_tokens + message.usage.output_tokens,
            "stream_text": stream_text,
            "stream_stop_reason": final.stop_reason,
            "stream_output_tokens": final.usage.output_tokens,
            "models": models,
            "counted": counted.parse().input_tokens,
            "count_source": counted.headers["x-switchyard-token-count"],
        }
    )
)
