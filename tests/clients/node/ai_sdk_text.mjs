// Vercel AI SDK: createOpenAI({ baseURL, apiKey }) and openai.chat(model) (Chat Completions),
// with generateText and streamText.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";
import { apiKey, baseURL, model, report } from "./common.mjs";

const openai = createOpenAI({ baseURL, apiKey });

const generated = await generateText({ model: openai.chat(model), prompt: "hello", maxRetries: 0 });
const streamed = streamText({ model: openai.chat(model), prompt: "count", maxRetries: 0 });
const parts = [];
for await (const part of streamed.textStream) parts.push(part);

report({
  text: generated.text,
  finishReason: generated.finishReason,
  inputTokens: generated.usage.inputTokens,
  streamed: parts.join(""),
  parts: parts.length,
  streamedFinish: await streamed.finishReason,
});
