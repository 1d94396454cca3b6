// Vercel AI SDK: generateText with a tool; the SDK runs it and asks again for the answer.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, tool } from "ai";
import { z } from "zod";
import { apiKey, baseURL, model, report } from "./common.mjs";

const openai = createOpenAI({ baseURL, apiKey });
const calls = [];
const result = await generateText({
  model: openai.chat(model),
  prompt: "Weather in Rome?",
  maxRetries: 0,
  stopWhen: stepCountIs(3),
  tools: {
    get_weather: tool({
      description: "Current weather in a city",
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => {
        calls.push(city);
        return `31C in ${city}`;
      },
    }),
  },
});

report({
  text: result.text,
  steps: result.steps.length,
  calls,
  toolCalls: result.steps.flatMap((s) =>
    s.toolCalls.map((c) => ({ id: c.toolCallId, name: c.toolName, input: c.input })),
  ),
});
