#!/usr/bin/env bash
# The OpenAPI document against the running service: schemathesis, every check, every phase.
# Starts the service on a free port with a throwaway SQLite file, creates a tenant with the
# CLI, runs `st run` once with its key on the tenant routes and once with the admin token on
# the admin routes. Exits non-zero on any failure. ST_ARGS adds options (e.g. ST_ARGS="-n 200").
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
MAX_EXAMPLES="${ST_MAX_EXAMPLES:-50}"
WORK="$(mktemp -d)"
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export DATABASE_PATH="$WORK/sessions.db" DATABASE_URL= HOST=127.0.0.1 PORT="$PORT" WORKERS=1
export ADMIN_TOKEN="st-admin-$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(24))')"
export LOG_LEVEL=warning
# schemathesis sends hundreds of requests without a key and expects 401 for each; past 30 a
# minute the service answers 429 instead, as it should (tests/http/test_edges.py).
export AUTH_FAILURES_PER_MINUTE=0

"$BIN/chat-sessions" migrate >/dev/null
KEY="$("$BIN/chat-sessions" tenants create schemathesis | sed -n 's/^api_key: *//p')"
"$BIN/chat-sessions" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

SCHEMA="http://127.0.0.1:$PORT/schema/openapi.json"
common=(--checks all --phases examples,coverage,fuzzing,stateful -n "$MAX_EXAMPLES"
        --wait-for-schema 30 --workers 1 --seed 1 --warnings off ${ST_ARGS:-})
status=0
# An event stream (/events) of a session that exists never ends, so a check would wait on it
# forever: its answers before the stream begins are tested in tests/events/test_routes.py.
"$BIN/st" --config-file scripts/schemathesis.toml run "$SCHEMA" "${common[@]}" --exclude-path-regex '^/v1/admin/|/events$' \
  -H "Authorization: Bearer $KEY" || status=1
"$BIN/st" --config-file scripts/schemathesis.toml run "$SCHEMA" "${common[@]}" --include-path-regex '^/v1/admin/' \
  -H "Authorization: Bearer $ADMIN_TOKEN" || status=1
if grep -q Traceback "$WORK/server.log"; then
  echo "the server logged a traceback:"; cat "$WORK/server.log"; status=1
fi
exit "$status"
