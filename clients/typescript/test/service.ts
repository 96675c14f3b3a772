// A live chat-sessions service for the tests: `python -m chat_sessions serve --migrate` on a
// free port with a throwaway SQLite file (the repository's .venv, or CHAT_SESSIONS_PYTHON),
// and a tenant of its own.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ADMIN_TOKEN = "typescript-smoke-admin-token";
const REPOSITORY = fileURLToPath(new URL("../../../../", import.meta.url));

export interface LiveService {
  baseUrl: string;
  apiKey: string;
  stop(): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject()));
    });
  });
}

async function healthy(baseUrl: string, server: ChildProcess, log: string[]): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (server.exitCode !== null) break;
    try {
      if ((await fetch(`${baseUrl}/health`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100)); // waits for the process to listen
  }
  server.kill();
  throw new Error(`the service did not start:\n${log.join("")}`);
}

export async function startService(): Promise<LiveService> {
  const folder = mkdtempSync(join(tmpdir(), "chat-sessions-ts-"));
  const port = await freePort();
  const python = process.env.CHAT_SESSIONS_PYTHON ?? join(REPOSITORY, ".venv", "bin", "python");
  const server = spawn(python, ["-m", "chat_sessions", "serve", "--migrate"], {
    cwd: folder,
    env: {
      PATH: process.env.PATH,
      DATABASE_PATH: join(folder, "sessions.db"),
      PORT: String(port),
      ADMIN_TOKEN,
      LOG_LEVEL: "warning",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log: string[] = [];
  server.stdout?.on("data", (chunk) => log.push(String(chunk)));
  server.stderr?.on("data", (chunk) => log.push(String(chunk)));
  const baseUrl = `http://127.0.0.1:${port}`;
  await healthy(baseUrl, server, log);
  const tenant = await fetch(`${baseUrl}/v1/admin/tenants`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "typescript" }),
  });
  const { api_key: apiKey } = (await tenant.json()) as { api_key: string };
  return { baseUrl, apiKey, stop: () => server.kill() };
}
