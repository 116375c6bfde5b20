"""Drive a Switchyard proxy with the official OpenAI Python SDK, changing only base_url and the key.

Usage: python openai_client.py BASE_URL. Prints one JSON object with what the SDK saw.
"""

import json
import sys

import openai
from openai import OpenAI

client = OpenAI(base_url=sys.argv[1] + "/v1", api_key="sk-switchyard-demo", max_retries=0, timeout=30)

raw = client.chat.completions.with_raw_response.create(
    model="auto",
    messages=[{"role": "user", "content": "What is 2 + 2?"}],
)
completion = raw.parse()

stream = client.chat.completions.create(
    model="auto",
    stream=True,
    messages=[{"role": "user", "content": "Prove step by step that the square root of 2 is irrational."}],
)
parts = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]

try:
    client.models.retrieve("no-such-model")
    missing = None
except openai.NotFoundError as e:
    missing = e.body["code"]

print(
    json.dumps(
        {
            "model_header": raw.headers["x-switchyard-model"],
            "content": completion.choices[0].message.content,
            "total_tokens": completion.usage.total_tokens,
            "stream_text": "".join(parts),
            "models": [m.id for m in client.models.list()],
            "retrieved": client.models.retrieve("o3").id,
            "missing": missing,
        }
    )
)
