// openai-node over Responses: a turn, then a streamed turn chained by previous_response_id,
// then a third chained to the streamed one (so a streamed turn is stored too).
import OpenAI from "openai";
import { apiKey, baseURL, model, report } from "./common.mjs";

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const first = await client.responses.create({ model, input: "Name a river in France." });

const stream = await client.responses.create({
  model,
  input: "How long is it?",
  previous_response_id: first.id,
  stream: true,
});
let streamed = "";
let second = null;
for await (const event of stream) {
  if (event.type === "response.output_text.delta") streamed += event.delta;
  if (event.type === "response.completed") second = event.response;
}

const third = await client.responses.create({
  model,
  input: "And where does it end?",
  previous_response_id: second.id,
});

report({
  first: { id: first.id, text: first.output_text },
  second: { id: second.id, streamed, previous: second.previous_response_id },
  third: { text: third.output_text, previous: third.previous_response_id },
});
