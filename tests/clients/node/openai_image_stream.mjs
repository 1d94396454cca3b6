// openai-node: images.generate and images.edit with stream: true, partial images then the image.
// Each event is checked here (PNG magic, IHDR width and height); the completed images' base64
// goes back too, so the test decodes them with Pillow as well.
import { readFile } from "node:fs/promises";
import OpenAI, { toFile } from "openai";
import { apiKey, baseURL, report } from "./common.mjs";

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function describe(event) {
  const bytes = Buffer.from(event.b64_json, "base64");
  const png = bytes.subarray(0, 8).equals(PNG_MAGIC);
  return {
    type: event.type,
    index: event.partial_image_index ?? null,
    png,
    // IHDR is the first chunk: width and height at bytes 16..23, big-endian
    width: png ? bytes.readUInt32BE(16) : null,
    height: png ? bytes.readUInt32BE(20) : null,
    size: event.size,
    b64: event.type.endsWith(".completed") ? event.b64_json : undefined,
  };
}

async function collect(stream) {
  const events = [];
  for await (const event of stream) events.push(describe(event));
  return events;
}

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const generated = await collect(
  await client.images.generate({
    prompt: "Draw a fox",
    stream: true,
    partial_images: 2,
    size: "96x64",
  }),
);
const image = await toFile(await readFile(process.env.EDIT_IMAGE), "a.png", { type: "image/png" });
const edited = await collect(
  await client.images.edit({
    image,
    prompt: "Add a hat",
    stream: true,
    partial_images: 1,
    size: "64x48",
  }),
);

report({ generated, edited });
