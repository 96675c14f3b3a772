// The TypeScript client of chat-sessions: `paths` and `components` are generated from the
// service's OpenAPI document (src/schema.ts, `npm run generate`), and every call goes
// through openapi-fetch, so a path, a body or an answer that does not match the document is a
// compile error. What is written by hand is only what no document says:
//   - the API key on every request;
//   - safe retries: an append (POST .../messages, .../messages/batch) gets an Idempotency-Key
//     unless it has one, and is retried under it, with reads, after a network error, a 5xx
//     or a 429, so a retry after a lost answer never stores twice;
//   - `unwrap`, which answers the data or throws a ChatSessionsError carrying the problem JSON.
// The event stream (GET .../events) is events.ts's `followSession`, written by hand too.
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, paths } from "./schema.js";
export { type FollowOptions, type SessionEvent, followSession } from "./events.js";
export type Schemas = components["schemas"];
export type Session = Schemas["SessionRead"];
export type Message = Schemas["MessageRead"];
export type MessageCreate = Schemas["MessageCreate"];
export type Problem = Schemas["Problem"];
export type ChatSessionsClient = Client<paths>;

export interface ClientOptions {
  baseUrl: string;
  apiKey: string;
  /** Attempts in all for a call that is safe to repeat (default 4; 1 never retries). */
  attempts?: number;
  /** First wait between attempts, doubled each time (default 250 ms). */
  backoffMs?: number;
  /** The fetch to use (default: the global one). */
  fetch?: typeof globalThis.fetch;
}

/** An error answer of the service, with its problem document. */
export class ChatSessionsError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem | Record<string, unknown>,
  ) {
    super(`${status}: ${String((problem as { detail?: unknown }).detail ?? "")}`);
    this.name = "ChatSessionsError";
  }
}

const APPEND = /\/v1\/sessions\/[^/]+\/messages(\/batch)?$/;

function isAppend(request: Request): boolean {
  return request.method === "POST" && APPEND.test(new URL(request.url).pathname);
}

function retryingFetch(options: ClientOptions): typeof globalThis.fetch {
  const send = options.fetch ?? globalThis.fetch;
  const attempts = options.attempts ?? 4;
  const backoffMs = options.backoffMs ?? 250;
  return async (input, init) => {
    const request = new Request(input, init);
    if (isAppend(request) && !request.headers.has("Idempotency-Key")) {
      request.headers.set("Idempotency-Key", `ts-${crypto.randomUUID()}`);
    }
    const repeatable = request.method === "GET" || request.headers.has("Idempotency-Key");
    for (let attempt = 1; ; attempt++) {
      const last = !repeatable || attempt >= attempts;
      try {
        const response = await send(request.clone());
        if (last || (response.status < 500 && response.status !== 429)) return response;
      } catch (error) {
        if (last) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, backoffMs * 2 ** (attempt - 1)));
    }
  };
}

/** An openapi-fetch client on the service, with the API key and safe retries. */
export function createChatSessionsClient(options: ClientOptions): ChatSessionsClient {
  return createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/$/, ""),
    headers: { Authorization: `Bearer ${options.apiKey}` },
    fetch: retryingFetch(options),
  });
}

/** The data of an openapi-fetch result, or a ChatSessionsError with the problem JSON. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || result.data === undefined) {
    const problem = (result.error ?? {}) as Record<string, unknown>;
    throw new ChatSessionsError(result.response.status, problem);
  }
  return result.data;
}
