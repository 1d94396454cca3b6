// What every script shares: the gateway settings from the environment, and one JSON line out.
export const baseURL = process.env.GATEWAY_BASE_URL;
export const apiKey = process.env.GATEWAY_API_KEY;
export const model = process.env.GATEWAY_MODEL;

if (!baseURL || !apiKey || !model) {
  throw new Error("GATEWAY_BASE_URL, GATEWAY_API_KEY and GATEWAY_MODEL must be set");
}

export function report(result) {
  process.stdout.write(JSON.stringify(result) + "\n");
}
