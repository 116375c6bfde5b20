"""Call a tool through a Switchyard proxy with the official Anthropic Python SDK, streamed and not.

Usage: python tools_anthropic.py BASE_URL MODEL KEY. The model is asked a question with one tool;
the tool's call is answered and the model asked again. Prints one JSON object with what the SDK
saw.
"""

import json
import sys

import anthropic

client = anthropic.Anthropic(base_url=sys.argv[1], api_key=sys.argv[3], max_retries=0, timeout=30)
model = sys.argv[2]
tools = [
    {
        "name": "get_weather",
        "description": "The weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
question = [{"role": "user", "content": "What is the weather in Paris?"}]

asked = client.messages.create(model=model, max_tokens=200, system="Be brief.", messages=question, tools=tools)
call = next(block for block in asked.content if block.type == "tool_use")
answered = question + [
    {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in asked.content]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C and sunny"}]},
]
final = client.messages.create(model=model, max_tokens=200, messages=answered, tools=tools)

with client.messages.stream(model=model, max_tokens=200, messages=question, tools=tools) as stream:
    streamed_call = next(block for block in stream.get_final_message().content if block.type == "tool_use")
with client.messages.stream(model=model, max_tokens=200, messages=answered, tools=tools) as stream:
    text = "".join(stream.text_stream)
    streamed_final = stream.get_final_message()

print(
    json.dumps(
        {
            "call_name": call.name,
            "call_input": call.input,
            "stop_reason": asked.stop_reason,
            "answer": final.content[0].text,
            "input_tokens": final.usage.input_tokens,
            "stream_call_name": streamed_call.name,
            "stream_call_input": streamed_call.input,
            "stream_text": text,
            "stream_stop_reason": streamed_final.stop_reason,
            "stream_output_tokens": streamed_final.usage.output_tokens,
        }
    )
)
