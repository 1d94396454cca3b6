// openai-node: a tool call, the tool's result sent back, then the final answer.
import OpenAI from "openai";
import { apiKey, baseURL, model, report } from "./common.mjs";

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather in a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
];
const messages = [{ role: "user", content: "Weather in Oslo?" }];

const first = await client.chat.completions.create({ model, messages, tools });
const message = first.choices[0].message;
const call = message.tool_calls[0];
const args = JSON.parse(call.function.arguments);
messages.push(message, { role: "tool", tool_call_id: call.id, content: `-3C in ${args.city}` });
const second = await client.chat.completions.create({ model, messages, tools });

report({
  finish: first.choices[0].finish_reason,
  call: { id: call.id, name: call.function.name, arguments: args },
  answer: second.choices[0].message.content,
});
