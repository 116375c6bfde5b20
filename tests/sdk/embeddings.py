"""Create embeddings through a Switchyard proxy with the official OpenAI Python SDK, unmodified.

Usage: python embeddings.py BASE_URL KEY. Prints one JSON object: the routed model, the vectors
asked for as floats, the vectors the SDK decoded from base64 (what it asks for by default), and
the prompt tokens reported.
"""

import json
import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2], max_retries=0, timeout=30)
texts = ["the first text", "the second text"]

raw = client.embeddings.with_raw_response.create(model="auto", input=texts, encoding_format="float")
floats = raw.parse()
decoded = client.embeddings.create(model="auto", input=texts)

print(
    json.dumps(
        {
            "model_header": raw.headers["x-switchyard-model"],
            "float": [d.embedding for d in floats.data],
            "base64": [list(d.embedding) for d in decoded.data],
            "prompt_tokens": floats.usage.prompt_tokens,
        }
    )
)
