// Drive a Switchyard proxy with the official Anthropic Node SDK, changing only baseURL and the key.
//
// Usage: SDK_DIR=<folder with node_modules/@anthropic-ai/sdk> node anthropic_client.mjs BASE_URL
// Prints one JSON object with what the SDK saw.

import { createRequire } from "node:module";

const require = createRequire(`${process.env.SDK_DIR}/package.json`);
const sdk = require("@anthropic-ai/sdk");
const Anthropic = sdk.Anthropic ?? sdk.default ?? sdk;

const client = new Anthropic({ baseURL: process.argv[2], apiKey: "sk-switchyard-demo", maxRetries: 0, timeout: 30_000 });

const { data: message, response } = await client.messages
  .create({
    model: "auto",
    max_tokens: 200,
    system: "Answer briefly.",
    messages: [{ role: "user", content: "What is 2 + 2?" }],
  })
  .withResponse();

const stream = client.messages.stream({
  model: "auto",
  max_tokens: 2000,
  messages: [{ role: "user", content: "Prove step by step that the square root of 2 is irrational." }],
});
let streamText = "";
stream.on("text", (text) => {
  streamText += text;
});
const final = await stream.finalMessage();

const models = [];
for await (const model of client.models.list()) {
  models.push(model.id);
}

const { data: counted, response: countResponse } = await client.messages
  .countTokens({
    model: "auto",
    messages: [{ role: "user", content: "Count the tokens of this sentence, please." }],
  })
  .withResponse();

console.log(
  JSON.stringify({
    model_header: response.headers.get("x-switchyard-model"),
    content: message.content[0].text,
    stop_reason: message.stop_reason,
    total_tokens: message.usage.input_tokens + message.usage.output_tokens,
    stream_text: streamText,
    stream_stop_reason: final.stop_reason,
    stream_output_tokens: final.usage.output_tokens,
    models,
    counted: counted.input_tokens,
    count_source: countResponse.headers.get("x-switchyard-token-count"),
  }),
);
