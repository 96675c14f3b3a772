# Every target bootstraps .venv (and reinstalls when pyproject.toml changes), so on a fresh
# machine `make run` and `make test` are all a newcomer needs. Settings come from the
# environment and .env (PORT=9000 make run); nothing here overrides them.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test migrate lint format bench bench-streams cleanup clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/chat-sessions serve --migrate --demo-tenant

migrate: $(STAMP)
	$(BIN)/chat-sessions migrate

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The benchmark (bench/run.py): the service against a bare Litestar app, under wrk (installed
# when missing, if it can be), then the live-events scenario (bench/streams.py: 1,000 open
# streams, an append every 10 ms). BENCH_ARGS="--quick" for a smoke check;
# BENCH_ARGS="--database-url postgresql+asyncpg://... --workers 1 2" for PostgreSQL, with
# STREAMS_ARGS="--database-url postgresql+asyncpg://... --workers 2" for its streams.
# `make bench-streams` runs the streams alone.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/streams.py $(STREAMS_ARGS)

bench-streams: $(STAMP)
	$(BIN)/python bench/streams.py $(STREAMS_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests migrations bench clients/python
	$(BIN)/ruff format --check src tests migrations bench clients/python
	$(BIN)/mypy src
	$(BIN)/mypy --strict clients/python/src

format: $(STAMP)
	$(BIN)/ruff format src tests migrations bench clients/python
	$(BIN)/ruff check --fix src tests migrations bench clients/python

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

cleanup: $(STAMP)
	$(BIN)/chat-sessions cleanup $(CLEANUP_ARGS)
