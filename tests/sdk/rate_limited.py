"""Send one request through a Switchyard proxy whose upstreams all answer 429, with the official
OpenAI or Anthropic Python SDK (no retries), and report the error the SDK raised.

Usage: python rate_limited.py openai|anthropic BASE_URL. Prints one JSON object: the error's
class, status and Retry-After.
"""

import json
import sys

sdk, base = sys.argv[1], sys.argv[2]
if sdk == "openai":
    import openai as module

    client = module.OpenAI(base_url=base + "/v1", api_key="sk-rate-limited-01", max_retries=0)
    send = lambda: client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "hello"}]
    )
else:
    import anthropic as module

    client = module.Anthropic(base_url=base, api_key="sk-rate-limited-01", max_retries=0)
    send = lambda: client.messages.create(
        model="auto", max_tokens=100, messages=[{"role": "user", "content": "hello"}]
    )

try:
    send()
    print(json.dumps({"error": None}))
except module.APIStatusError as e:
    print(
        json.dumps(
            {
                "error": type(e).__name__,
                "status": e.status_code,
                "retry_after": e.response.headers.get("retry-after"),
            }
        )
    )
