// The client against a live service: create a session, append a message with content parts,
// read it back typed; an append whose answer is lost is retried and stored once; branches, a
// flip, a fork and a snapshot read; errors carry the problem JSON; and the committed generated
// types are what the service's OpenAPI document makes today (a change to the document that
// breaks them fails here).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import {
  ChatSessionsError,
  type MessageCreate,
  createChatSessionsClient,
  followSession,
  type SessionEvent,
  unwrap,
} from "../src/index.js";
import { type LiveService, startService } from "./service.js";

let service: LiveService;

before(async () => {
  service = await startService();
});

after(() => service?.stop());

test("create a session, append content parts, read them back", async () => {
  const client = createChatSessionsClient({ baseUrl: service.baseUrl, apiKey: service.apiKey });
  const session = unwrap(
    await client.POST("/v1/sessions", { body: { user_id: "u-1", external_id: "ts-1" } }),
  );
  const question: MessageCreate = {
    role: "user",
    content: [
      { type: "text", text: "What is in this picture?" },
      { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
    ],
  };
  const stored = unwrap(
    await client.POST("/v1/sessions/{session_id}/messages", {
      params: { path: { session_id: session.id } },
      body: question,
    }),
  );
  assert.equal(stored.seq, 1);
  const history = unwrap(
    await client.GET("/v1/sessions/{session_id}/messages", {
      params: { path: { session_id: session.id }, query: { order: "desc", limit: 10 } },
    }),
  );
  assert.deepEqual(
    history.data.map((message) => [message.role, message.content]),
    [["user", question.content]],
  );
});

test("an append whose answer was lost is retried under one key and stored once", async () => {
  const keys: (string | null)[] = [];
  const losesFirstAnswer: typeof fetch = async (input, init) => {
    const request = new Request(input, init);
    const response = await fetch(request);
    if (request.method === "POST" && request.url.endsWith("/messages")) {
      keys.push(request.headers.get("Idempotency-Key"));
      if (keys.length === 1) {
        await response.arrayBuffer(); // stored by the service; the answer never arrives
        throw new TypeError("fetch failed: connection reset");
      }
    }
    return response;
  };
  const client = createChatSessionsClient({
    baseUrl: service.baseUrl,
    apiKey: service.apiKey,
    backoffMs: 0,
    fetch: losesFirstAnswer,
  });
  const session = unwrap(await client.POST("/v1/sessions", { body: {} }));
  const path = { params: { path: { session_id: session.id } } };
  const message = await client.POST("/v1/sessions/{session_id}/messages", {
    ...path,
    body: { role: "user", content: "once" },
  });
  assert.equal(message.response.headers.get("Idempotent-Replayed"), "true");
  assert.equal(keys.length, 2);
  assert.equal(keys[0], keys[1]);
  const read = unwrap(await client.GET("/v1/sessions/{session_id}", path));
  assert.equal(read.message_count, 1);
});

test("stream two events, resume after the first, end on deletion", async () => {
  const client = createChatSessionsClient({ baseUrl: service.baseUrl, apiKey: service.apiKey });
  const session = unwrap(await client.POST("/v1/sessions", { body: {} }));
  const path = { params: { path: { session_id: session.id } } };
  const follow = { baseUrl: service.baseUrl, apiKey: service.apiKey, sessionId: session.id };
  const events = followSession({ ...follow, afterSeq: 0 }); // nothing is missed, whenever it connects
  const created: SessionEvent[] = [];
  const reading = (async () => {
    for await (const event of events) {
      if (event.type === "message.created") created.push(event);
      if (created.length === 2) return;
    }
  })();
  for (const content of ["Find me a hotel", "Here are three."]) {
    unwrap(await client.POST("/v1/sessions/{session_id}/messages", { ...path, body: { role: "user", content } }));
  }
  await reading;
  assert.deepEqual(
    created.map((event) => event.type === "message.created" && [event.data.seq, event.data.content]),
    [[1, "Find me a hotel"], [2, "Here are three."]],
  );
  const resumed = followSession({ ...follow, lastEventId: created[0]?.id });
  const next = await resumed.next();
  assert.ok(!next.done && next.value.type === "message.created" && next.value.data.seq === 2);
  await client.DELETE("/v1/sessions/{session_id}", path);
  const rest: string[] = [];
  for await (const event of resumed) rest.push(event.type);
  assert.equal(rest.at(-1), "session.deleted");
});

test("regenerate an answer, flip back, fork, and read it all in one snapshot", async () => {
  const client = createChatSessionsClient({ baseUrl: service.baseUrl, apiKey: service.apiKey });
  const session = unwrap(await client.POST("/v1/sessions", { body: { title: "trip" } }));
  const path = { path: { session_id: session.id } };
  for (const body of [
    { role: "user", content: "Paris?" },
    { role: "assistant", content: "Lovely." },
    { role: "assistant", content: "Rainy.", parent_seq: 1 },
  ] as const) {
    unwrap(await client.POST("/v1/sessions/{session_id}/messages", { params: path, body }));
  }
  const alternatives = unwrap(
    await client.GET("/v1/sessions/{session_id}/messages", {
      params: { ...path, query: { parent_seq: 1 } },
    }),
  );
  assert.deepEqual(alternatives.data.map((m) => [m.seq, m.parent_seq]), [[2, 1], [3, 1]]);
  const flipped = unwrap(
    await client.PATCH("/v1/sessions/{session_id}", { params: path, body: { head_seq: 2 } }),
  );
  assert.equal(flipped.head_seq, 2);
  const snapshot = unwrap(
    await client.GET("/v1/sessions/{session_id}/snapshot", {
      params: { ...path, query: { messages: 5, user_traits: ["nobody"] } },
    }),
  );
  assert.deepEqual(snapshot.messages.data.map((m) => m.content), ["Lovely.", "Paris?"]);
  assert.deepEqual(snapshot.user_traits.map((u) => [u.user_id, u.version]), [["nobody", 0]]);
  const forked = unwrap(
    await client.POST("/v1/sessions/{session_id}/fork", { params: path, body: { at_seq: 3 } }),
  );
  assert.deepEqual([forked.title, forked.message_count, forked.head_seq], ["trip", 2, 2]);
});

test("an error answer is a ChatSessionsError with the problem JSON", async () => {
  const client = createChatSessionsClient({ baseUrl: service.baseUrl, apiKey: service.apiKey });
  const missing = await client.GET("/v1/sessions/{session_id}", {
    params: { path: { session_id: "no-such-session" } },
  });
  assert.throws(() => unwrap(missing), (error: unknown) => {
    assert.ok(error instanceof ChatSessionsError);
    assert.equal(error.status, 404);
    assert.equal(error.problem.detail, "session not found");
    return true;
  });
});

test("the committed types are the ones the service's OpenAPI document makes", async () => {
  const document = await (await fetch(`${service.baseUrl}/schema/openapi.json`)).json();
  const generator = new URL("../../scripts/schema-types.mjs", import.meta.url).href;
  const { typesFrom } = (await import(generator)) as {
    typesFrom(document: unknown): Promise<string>;
  };
  const committed = await readFile(new URL("../../src/schema.ts", import.meta.url), "utf8");
  assert.ok(
    (await typesFrom(document)) === committed,
    "src/schema.ts is not what the service's OpenAPI document makes: run `npm run generate`",
  );
});
