// Vercel AI SDK over Responses (openai(model) is the Responses model): generateText and
// streamText with one tool each; the SDK runs the tool and sends its output back.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";
import { apiKey, baseURL, model, report } from "./common.mjs";

const openai = createOpenAI({ baseURL, apiKey });
const calls = [];
const tools = {
  get_weather: tool({
    description: "Current weather in a city",
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => {
      calls.push(city);
      return `31C in ${city}`;
    },
  }),
};
const summary = (steps) =>
  steps.flatMap((s) =>
    s.toolCalls.map((c) => ({ id: c.toolCallId, name: c.toolName, input: c.input })),
  );

const generated = await generateText({
  model: openai(model),
  prompt: "Weather in Rome?",
  maxRetries: 0,
  stopWhen: stepCountIs(2),
  tools,
});

const streamed = streamText({
  model: openai(model),
  prompt: "Weather in Oslo?",
  maxRetries: 0,
  stopWhen: stepCountIs(2),
  tools,
});
let text = "";
for await (const delta of streamed.textStream) text += delta;
const streamedSteps = await streamed.steps;

report({
  calls,
  generate: { text: generated.text, steps: generated.steps.length, toolCalls: summary(generated.steps) },
  stream: { text, steps: streamedSteps.length, toolCalls: summary(streamedSteps) },
});
