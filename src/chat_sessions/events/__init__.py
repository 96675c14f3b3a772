"""Live sessions: `GET /v1/sessions/{id}/events`, a resumable stream of a session's changes.

- follow.py: what one stream's client has been told, the catch-up from the database that
  turns a change into events, and the event ids that let a client resume;
- stream.py: one open stream (its wake-ups, keep-alives, backlog bound and end);
- hub.py: a process's streams, fed by the changes its requests commit (`Database`'s
  after-commit hook) and, on PostgreSQL, by the other processes' (relay.py);
- relay.py: PostgreSQL LISTEN/NOTIFY between processes;
- routes.py: the route.
"""
