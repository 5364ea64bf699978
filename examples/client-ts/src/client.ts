// A TypeScript client of the example system, written against the types
// openapi-typescript generates from the OpenAPI 3 document the gateway
// serves (src/schema.d.ts, written by `make client-ts`), calling through
// openapi-fetch. tsc checks every path, parameter and body below against
// the document; Node then runs it against the running example system
// (PURISTA_GATEWAY_URL): create, get, 404, a validation error whose field
// violations are read, and a server stream read line by line.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Status = components["schemas"]["rpcStatus"];
type StreamLine = paths["/v1/users:export"]["get"]["responses"][200]["content"]["application/x-ndjson"];

const baseUrl = process.env.PURISTA_GATEWAY_URL;
if (!baseUrl) {
  throw new Error("PURISTA_GATEWAY_URL is not set: run this through make client-ts");
}
const client = createClient<paths>({ baseUrl });

let passed = 0;
let failed = 0;
async function check(name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
function expect(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

// The field violations of a google.rpc.BadRequest detail, as "field: reason".
function fieldViolations(st: Status | undefined): string[] {
  const out: string[] = [];
  for (const d of st?.details ?? []) {
    if (d["@type"] !== "type.googleapis.com/google.rpc.BadRequest") continue;
    const list = (d as { fieldViolations?: { field?: string; reason?: string }[] }).fieldViolations ?? [];
    for (const v of list) out.push(`${v.field}: ${v.reason}`);
  }
  return out;
}

const email = `ts-${Date.now()}@example.com`;
let userId = "";

await check("create a user", async () => {
  const { data, error, response } = await client.POST("/v1/users", {
    body: { email, displayName: "TypeScript" },
  });
  expect(response.status === 200, `status ${response.status}: ${JSON.stringify(error)}`);
  expect(data?.user?.email === email, `created ${JSON.stringify(data)}`);
  userId = data.user.userId ?? "";
  expect(userId !== "", "no userId in the reply");
  expect(response.headers.get("X-Request-Id") !== null, "no X-Request-Id header");
});

await check("get the user", async () => {
  const { data, response } = await client.GET("/v1/users/{userId}", { params: { path: { userId } } });
  expect(response.status === 200, `status ${response.status}`);
  expect(data?.user?.displayName === "TypeScript" && data.user.email === email, `got ${JSON.stringify(data)}`);
});

await check("a missing user is 404 NOT_FOUND", async () => {
  const { data, error, response } = await client.GET("/v1/users/{userId}", {
    params: { path: { userId: "u-does-not-exist" } },
  });
  expect(response.status === 404 && data === undefined, `status ${response.status}`);
  expect(error?.code === 5, `error ${JSON.stringify(error)}`);
});

await check("a request breaking the contract's rules is 400 with field violations", async () => {
  const { error, response } = await client.POST("/v1/users", {
    body: { email: "not an address", displayName: "x".repeat(65) },
  });
  expect(response.status === 400 && error?.code === 3, `status ${response.status}, error ${JSON.stringify(error)}`);
  const got = fieldViolations(error).sort().join(", ");
  expect(got === "user.display_name: string.max_len, user.email: string.email", `field violations: ${got}`);
});

await check("a query parameter out of range is 400 with field violations", async () => {
  const { error, response } = await client.GET("/v1/users", { params: { query: { pageSize: 1000 } } });
  expect(response.status === 400, `status ${response.status}`);
  const got = fieldViolations(error).join(", ");
  expect(got === "page_size: int32.gte_lte", `field violations: ${got}`);
});

await check("a server stream read line by line", async () => {
  for (const i of [1, 2]) {
    const { response } = await client.POST("/v1/users", {
      body: { email: `ts-${Date.now()}-${i}@example.com`, displayName: `Stream ${i}` },
    });
    expect(response.status === 200, `creating user ${i}: status ${response.status}`);
  }
  const { response } = await client.GET("/v1/users:export", { params: { query: { limit: 3 } }, parseAs: "stream" });
  expect(response.status === 200, `status ${response.status}`);
  expect(response.headers.get("Content-Type") === "application/x-ndjson", `content type ${response.headers.get("Content-Type")}`);
  expect(response.body !== null, "no body");
  const lines: StreamLine[] = [];
  let rest = "";
  const decoder = new TextDecoder();
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    rest += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      if (line.trim() !== "") lines.push(JSON.parse(line) as StreamLine);
    }
  }
  expect(rest.trim() === "", `an unterminated last line: ${rest}`);
  expect(lines.length === 3, `${lines.length} lines, want 3 (limit 3)`);
  expect(lines.every((l) => l.error === undefined && l.result?.user?.userId), `lines ${JSON.stringify(lines)}`);
  expect(lines[0]?.result?.user?.email === email, `first line ${JSON.stringify(lines[0])}, want the first user created here`);
});

console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
