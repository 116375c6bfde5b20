"""Count a prompt's tokens through a Switchyard proxy with the official Anthropic Python SDK.

Usage: python count_tokens.py BASE_URL KEY MODEL. Prints one JSON object: the count, and where it
came from (`x-switchyard-token-count`).
"""

import json
import sys

from anthropic import Anthropic

client = Anthropic(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0, timeout=30)
counted = client.messages.with_raw_response.count_tokens(
    model=sys.argv[3],
    system="Answer briefly.",
    messages=[{"role": "user", "content": "Count the tokens of this sentence, please."}],
)
print(
    json.dumps(
        {
            "input_tokens": counted.parse().input_tokens,
            "source": counted.headers["x-switchyard-token-count"],
            "model": counted.headers.get("x-switchyard-model"),
        }
    )
)
