// openai-node: chat.completions.create, without and with stream.
import OpenAI from "openai";
import { apiKey, baseURL, model, report } from "./common.mjs";

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const messages = [{ role: "user", content: "hello" }];

const plain = await client.chat.completions.create({ model, messages });
const stream = await client.chat.completions.create({ model, messages, stream: true });
const deltas = [];
let streamFinish = null;
for await (const chunk of stream) {
  const choice = chunk.choices[0];
  if (choice?.delta?.content) deltas.push(choice.delta.content);
  if (choice?.finish_reason) streamFinish = choice.finish_reason;
}

report({
  text: plain.choices[0].message.content,
  finish: plain.choices[0].finish_reason,
  object: plain.object,
  streamed: deltas.join(""),
  deltas: deltas.length,
  streamFinish,
});
