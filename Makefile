# llmproxy: `make run` serves on embedded defaults, `make test` runs the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test install check lint typecheck bench migrate clean agents agents-latest conformance

$(STAMP): pyproject.toml
	@echo "Installing llmproxy and its dependencies into $(VENV) (once, or after pyproject.toml changes)..."
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@# -qq: errors only. pip's warnings here are about the machine (an index or find-links
	@# directory in its pip.conf that lacks a package), setuptools' about packaging: neither is
	@# something to act on when starting the proxy, and a failed install still prints its error.
	@$(BIN)/python -m pip install -qq --upgrade pip
	@PYTHONWARNINGS=ignore $(BIN)/python -m pip install -qq -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput -v0

run: migrate
	$(BIN)/python manage.py bootstrap
	@if [ -n "$$LLMPROXY_CONFIG" ]; then $(BIN)/python manage.py import_config "$$LLMPROXY_CONFIG"; fi
	$(BIN)/python manage.py serve

# PYTHONNODEBUGRANGES: CPython 3.11 keeps one AST recursion counter for all threads, so a
# traceback formatted on a server thread (its carets parse source) can break an ast.parse
# on the test's thread with "AST constructor recursion depth mismatch"; no carets, no race.
test: install
	PYTHONNODEBUGRANGES=1 $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy llmproxy proxy accounts llmproxy_site

check: lint typecheck test

# The real agent CLIs (pinned in tests/agents/package.json), installed into ~/.cache.
agents:
	bash tests/agents/install.sh

# The agent-CLI tests against the newest published CLI releases; reports which pass.
agents-latest: install
	$(BIN)/python -m tests.agents.latest

# Runs the contract tests and writes docs/conformance.md (client x upstream x scenario).
conformance: install agents
	$(BIN)/python -m tests.conformance

bench: install
	$(BIN)/python -m bench.run

clean:
	rm -rf var/test.sqlite3 .pytest_cache
