// npm run generate [-- URL_OR_FILE]: writes src/schema.ts from the service's OpenAPI document
// (default: a service on http://127.0.0.1:8000, as `make run` starts it).
import { readFile, writeFile } from "node:fs/promises";
import { typesFrom } from "./schema-types.mjs";

const source = process.argv[2] ?? "http://127.0.0.1:8000/schema/openapi.json";
const document = source.startsWith("http")
  ? await (await fetch(source)).json()
  : JSON.parse(await readFile(source, "utf8"));
await writeFile(new URL("../src/schema.ts", import.meta.url), await typesFrom(document));
console.log(`src/schema.ts written from ${source}`);
