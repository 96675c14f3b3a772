// The event stream of a session (GET /v1/sessions/{id}/events), written by hand: the OpenAPI
// document cannot type a text/event-stream body, and EventSource cannot send the
// Authorization header. `followSession` reads it with fetch and a streaming body and yields
// typed events; when the connection drops (a network error, or the server ending the response,
// as it does to a reader that fell too far behind) it connects again with `Last-Event-ID`, so
// the service sends what was missed and nothing is repeated. It ends after `session.deleted`.
import { ChatSessionsError, type Message, type Session } from "./index.js";

export type SessionEvent = { id: string } & (
  | { type: "message.created"; data: Message }
  | { type: "message.delta"; data: { id: string; seq: number; delta: string } }
  | { type: "message.updated"; data: Message }
  | { type: "messages.deleted"; data: { after_seq: number } }
  | { type: "session.updated"; data: Session }
  | { type: "session.deleted"; data: { id: string } }
);

export interface FollowOptions {
  baseUrl: string;
  apiKey: string;
  sessionId: string;
  /** Start after this event (an `id` you kept), or... */
  lastEventId?: string;
  /** ...after this seq (e.g. the last of the history you read); neither: from now on. */
  afterSeq?: number;
  /** Connections in a row that bring nothing before giving up (default 4). */
  attempts?: number;
  /** First wait before connecting again, doubled each time (default 250 ms). */
  backoffMs?: number;
  /** Stops following (the iteration then ends). */
  signal?: AbortSignal;
  fetch?: typeof globalThis.fetch;
}

/** The blocks of an event-stream body: `\r\n`, `\n` or `\r` end a line; a blank line an event. */
async function* blocks(body: ReadableStream<Uint8Array>): AsyncGenerator<Map<string, string>> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let fields = new Map<string, string>();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let match: RegExpExecArray | null;
      while ((match = /\r\n|\n|\r(?!$)/.exec(buffer)) !== null) {
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        if (line === "") {
          // An id alone (no data) is a position: it moves the last event id, dispatches nothing.
          if (fields.has("data") || fields.has("id")) yield fields;
          fields = new Map();
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const name = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          const before = fields.get(name);
          fields.set(name, name === "data" && before !== undefined ? `${before}\n${value}` : value);
        }
      }
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}

/** The session's events, as they happen, resumed after a dropped connection. */
export async function* followSession(options: FollowOptions): AsyncGenerator<SessionEvent> {
  const send = options.fetch ?? globalThis.fetch;
  const attempts = options.attempts ?? 4;
  const backoffMs = options.backoffMs ?? 250;
  const url = new URL(
    `${options.baseUrl.replace(/\/$/, "")}/v1/sessions/${encodeURIComponent(options.sessionId)}/events`,
  );
  let lastEventId = options.lastEventId;
  for (let failures = 0; !options.signal?.aborted; ) {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${options.apiKey}`,
      Accept: "text/event-stream",
    };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    else if (options.afterSeq !== undefined) url.searchParams.set("after_seq", String(options.afterSeq));
    let problem: ChatSessionsError | undefined;
    try {
      const response = await send(url, { headers, signal: options.signal });
      if (!response.ok || response.body === null) {
        const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
        problem = new ChatSessionsError(response.status, body);
        // Only "not now" is worth another try: too many streams (429) or a failing server.
        if (response.status !== 429 && response.status < 500) throw problem;
      } else {
        for await (const fields of blocks(response.body)) {
          failures = 0;
          const id = fields.get("id");
          if (id) lastEventId = id;
          if (!fields.has("data")) continue;
          const event = {
            id: fields.get("id") ?? "",
            type: fields.get("event") ?? "message",
            data: JSON.parse(fields.get("data") ?? "null") as unknown,
          } as SessionEvent;
          yield event;
          if (event.type === "session.deleted") return;
        }
      }
    } catch (error) {
      if (options.signal?.aborted) return;
      if (error === problem) throw error;
      // a dropped connection: connect again below
    }
    if (++failures >= attempts) {
      throw problem ?? new Error(`the event stream of ${options.sessionId} keeps dropping`);
    }
    await new Promise((resolve) => setTimeout(resolve, backoffMs * 2 ** (failures - 1)));
  }
}
