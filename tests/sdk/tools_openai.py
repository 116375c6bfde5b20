"""Call a tool through a Switchyard proxy with the official OpenAI Python SDK, streamed and not.

Usage: python tools_openai.py BASE_URL MODEL KEY. The model is asked a question with one tool; the
tool's call is answered and the model asked again. Prints one JSON object with what the SDK saw.
"""

import json
import sys

from openai import OpenAI

client = OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[3], max_retries=0, timeout=30)
model = sys.argv[2]
tools = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
question = [{"role": "user", "content": "What is the weather in Paris?"}]

raw = client.chat.completions.with_raw_response.create(model=model, messages=question, tools=tools)
asked = raw.parse()
call = asked.choices[0].message.tool_calls[0]
answered = question + [
    {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
    {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"},
]
final = client.chat.completions.create(model=model, messages=answered, tools=tools)

name, arguments, stream_finish = "", "", None
for chunk in client.chat.completions.create(model=model, messages=question, tools=tools, stream=True):
    if not chunk.choices:
        continue
    choice = chunk.choices[0]
    for delta in choice.delta.tool_calls or []:
        name += delta.function.name or ""
        arguments += delta.function.arguments or ""
    stream_finish = choice.finish_reason or stream_finish
text = "".join(
    chunk.choices[0].delta.content or ""
    for chunk in client.chat.completions.create(model=model, messages=answered, tools=tools, stream=True)
    if chunk.choices
)

print(
    json.dumps(
        {
            "model_header": raw.headers["x-switchyard-model"],
            "call_name": call.function.name,
            "call_arguments": json.loads(call.function.arguments),
            "finish": asked.choices[0].finish_reason,
            "answer": final.choices[0].message.content,
            "prompt_tokens": final.usage.prompt_tokens,
            "stream_call_name": name,
            "stream_call_arguments": json.loads(arguments),
            "stream_finish": stream_finish,
            "stream_text": text,
        }
    )
)
