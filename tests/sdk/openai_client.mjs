// Drive a Switchyard proxy with the official OpenAI Node SDK, changing only baseURL and the key.
//
// Usage: SDK_DIR=<folder with node_modules/openai> node openai_client.mjs BASE_URL
// Prints one JSON object with what the SDK saw.

import { createRequire } from "node:module";

const require = createRequire(`${process.env.SDK_DIR}/package.json`);
const sdk = require("openai");
const OpenAI = sdk.OpenAI ?? sdk.default ?? sdk;

const client = new OpenAI({ baseURL: `${process.argv[2]}/v1`, apiKey: "sk-switchyard-demo", maxRetries: 0, timeout: 30_000 });

const { data: completion, response } = await client.chat.completions
  .create({ model: "auto", messages: [{ role: "user", content: "What is 2 + 2?" }] })
  .withResponse();

const stream = await client.chat.completions.create({
  model: "auto",
  stream: true,
  messages: [{ role: "user", content: "Prove step by step that the square root of 2 is irrational." }],
});
let streamText = "";
for await (const chunk of stream) {
  streamText += chunk.choices[0]?.delta?.content ?? "";
}

const models = [];
for await (const model of client.models.list()) {
  models.push(model.id);
}

const retrieved = (await client.models.retrieve("o3")).id;
let missing = null;
try {
  await client.models.retrieve("no-such-model");
} catch (e) {
  if (e.status === 404) missing = e.code;
}

console.log(
  JSON.stringify({
    model_header: response.headers.get("x-switchyard-model"),
    content: completion.choices[0].message.content,
    total_tokens: completion.usage.total_tokens,
    stream_text: streamText,
    models,
    retrieved,
    missing,
  }),
);
