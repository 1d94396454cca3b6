// openai-node: a streamed answer whose content carries a markdown data-URI image.
import OpenAI from "openai";
import { apiKey, baseURL, model, report } from "./common.mjs";

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Draw a fox" }],
  stream: true,
});
let content = "";
for await (const chunk of stream) content += chunk.choices[0]?.delta?.content ?? "";
report({ content });
