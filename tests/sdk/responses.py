"""Hold Responses API conversations through a Switchyard proxy with the official OpenAI Python SDK,
unmodified but for base_url and the key.

Usage: python responses.py BASE_URL KEY [ROUTE]; ROUTE goes in `x-test-route` (for the test
policy) when given. Prints one JSON object with what the SDK saw: a text
answer (whole, streamed, and through the SDK's stream helper), a function-tool round trip whole
and streamed (the follow-up naming the first response with previous_response_id), a parsed
structured answer (or the error the proxy gave), a response read back, and an unknown id.
"""

import json
import sys

import openai
import pydantic
from openai import OpenAI

base, key = sys.argv[1], sys.argv[2]
headers = {"x-test-route": sys.argv[3]} if len(sys.argv) > 3 else None
client = OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30, default_headers=headers)

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
]


class Weather(pydantic.BaseModel):
    city: str
    temperature_c: int


def call_of(response):
    calls = [item for item in response.output if item.type == "function_call"]
    return calls[0]


def completed(stream):
    """The events' types, the text deltas, and the response of `response.completed`."""
    kinds, text, final = [], [], None
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            text.append(event.delta)
        if event.type == "response.completed":
            final = event.response
    return kinds, "".join(text), final


raw = client.responses.with_raw_response.create(model="auto", input="Say hello", instructions="Be brief.")
text = raw.parse()

kinds, streamed_text, streamed = completed(client.responses.create(model="auto", input="Say hello", stream=True))

with client.responses.stream(model="auto", input="Say hello") as helper:
    for _ in helper:
        pass
    helped = helper.get_final_response()

first = client.responses.create(model="auto", input="What is the weather in Paris?", tools=TOOLS)
call = call_of(first)
second = client.responses.create(
    model="auto",
    previous_response_id=first.id,
    input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    tools=TOOLS,
)

_, _, streamed_first = completed(
    client.responses.create(model="auto", input="What is the weather in Paris?", tools=TOOLS, stream=True)
)
streamed_call = call_of(streamed_first)
_, streamed_second_text, streamed_second = completed(
    client.responses.create(
        model="auto",
        previous_response_id=streamed_first.id,
        input=[{"type": "function_call_output", "call_id": streamed_call.call_id, "output": "rainy"}],
        tools=TOOLS,
        stream=True,
    )
)

try:
    parsed = client.responses.parse(model="auto", input="The weather in Paris, as JSON", text_format=Weather)
    structured = {"parsed": parsed.output_parsed.model_dump()}
except openai.BadRequestError as e:
    structured = {"status": e.status_code, "param": e.body.get("param")}

retrieved = client.responses.retrieve(second.id)

try:
    client.responses.retrieve("resp_unknown")
    unknown = None
except openai.NotFoundError as e:
    unknown = e.status_code

print(
    json.dumps(
        {
            "model_header": raw.headers["x-switchyard-model"],
            "provider_header": raw.headers["x-switchyard-provider"],
            "text": text.output_text,
            "text_id": text.id,
            "usage": [text.usage.input_tokens, text.usage.output_tokens],
            "stream_kinds": kinds,
            "stream_text": streamed_text,
            "stream_final": streamed.output_text,
            "helper_text": helped.output_text,
            "call": [call.name, call.arguments],
            "follow_up": second.output_text,
            "streamed_call": [streamed_call.name, streamed_call.arguments],
            "streamed_follow_up": [streamed_second_text, streamed_second.output_text],
            "structured": structured,
            "retrieved": [retrieved.id == second.id, retrieved.output_text],
            "unknown": unknown,
        }
    )
)
