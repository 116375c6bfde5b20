// Create embeddings through a Switchyard proxy with the official OpenAI Node SDK, unmodified.
//
// Usage: SDK_DIR=... node embeddings.mjs BASE_URL KEY. Prints one JSON object: the routed model,
// the vectors asked for as floats, the vectors the SDK decoded from base64 (what it asks for by
// default), and the prompt tokens reported.

import { createRequire } from "node:module";

const require = createRequire(`${process.env.SDK_DIR}/package.json`);
const sdk = require("openai");
const OpenAI = sdk.OpenAI ?? sdk.default ?? sdk;

const [base, key] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 30000 });
const texts = ["the first text", "the second text"];

const { data: floats, response } = await client.embeddings
  .create({ model: "auto", input: texts, encoding_format: "float" })
  .withResponse();
const decoded = await client.embeddings.create({ model: "auto", input: texts });

console.log(
  JSON.stringify({
    model_header: response.headers.get("x-switchyard-model"),
    float: floats.data.map((d) => d.embedding),
    base64: decoded.data.map((d) => Array.from(d.embedding)),
    prompt_tokens: floats.usage.prompt_tokens,
  }),
);
