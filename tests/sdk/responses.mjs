// Hold Responses API conversations through a Switchyard proxy with the official OpenAI Node SDK,
// unmodified but for baseURL and the key.
//
// Usage: SDK_DIR=... node responses.mjs BASE_URL KEY [ROUTE]; ROUTE goes in `x-test-route` (for
// the test policy) when given. Prints one JSON object with what the SDK saw, under the same names
// as responses.py: a text answer whole and streamed, a function-tool round trip (the follow-up
// naming the first response with previous_response_id), a structured answer parsed by
// `responses.parse` (or the error the proxy gave), a response read back, and an unknown id.

import { createRequire } from "node:module";

const require = createRequire(`${process.env.SDK_DIR}/package.json`);
const sdk = require("openai");
const OpenAI = sdk.OpenAI ?? sdk.default ?? sdk;

const [base, key, route] = process.argv.slice(2);
const client = new OpenAI({
  baseURL: `${base}/v1`,
  apiKey: key,
  maxRetries: 0,
  timeout: 30000,
  defaultHeaders: route ? { "x-test-route": route } : {},
});

const tools = [
  {
    type: "function",
    name: "get_weather",
    description: "The weather in a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
      additionalProperties: false,
    },
    strict: true,
  },
];

const { data: text, response } = await client.responses
  .create({ model: "auto", input: "Say hello", instructions: "Be brief." })
  .withResponse();

const kinds = [];
const deltas = [];
let streamed;
for await (const event of await client.responses.create({ model: "auto", input: "Say hello", stream: true })) {
  kinds.push(event.type);
  if (event.type === "response.output_text.delta") deltas.push(event.delta);
  if (event.type === "response.completed") streamed = event.response;
}

const first = await client.responses.create({ model: "auto", input: "What is the weather in Paris?", tools });
const call = first.output.find((item) => item.type === "function_call");
const second = await client.responses.create({
  model: "auto",
  previous_response_id: first.id,
  input: [{ type: "function_call_output", call_id: call.call_id, output: "sunny" }],
  tools,
});

let structured;
try {
  const parsed = await client.responses.parse({
    model: "auto",
    input: "The weather in Paris, as JSON",
    text: {
      format: {
        type: "json_schema",
        name: "weather",
        strict: true,
        schema: {
          type: "object",
          properties: { city: { type: "string" }, temperature_c: { type: "integer" } },
          required: ["city", "temperature_c"],
          additionalProperties: false,
        },
      },
    },
  });
  structured = { parsed: parsed.output_parsed };
} catch (e) {
  if (!(e instanceof sdk.BadRequestError)) throw e;
  structured = { status: e.status, param: e.error?.param ?? null };
}

const retrieved = await client.responses.retrieve(second.id);

let unknown = null;
try {
  await client.responses.retrieve("resp_unknown");
} catch (e) {
  if (!(e instanceof sdk.NotFoundError)) throw e;
  unknown = e.status;
}

console.log(
  JSON.stringify({
    model_header: response.headers.get("x-switchyard-model"),
    provider_header: response.headers.get("x-switchyard-provider"),
    text: text.output_text,
    text_id: text.id,
    usage: [text.usage.input_tokens, text.usage.output_tokens],
    stream_kinds: kinds,
    stream_text: deltas.join(""),
    stream_final: streamed.output_text ?? streamed.output[0].content[0].text,
    call: [call.name, call.arguments],
    follow_up: second.output_text,
    structured,
    retrieved: [retrieved.id === second.id, retrieved.output_text],
    unknown,
  }),
);
