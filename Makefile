# caisse — `make help` lists the targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test lint typecheck unit bench serve migrate lock clean browser fonts screenshots

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(UV): $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"

$(STAMP): pyproject.toml constraints.txt build-constraints.txt | $(UV)
	$(UV) pip install --python $(BIN)/python --quiet -c constraints.txt \
		--build-constraint build-constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install caisse with its dev tools (pinned by constraints.txt)

demo: install fonts ## Run the end-to-end demo on a fresh SQLite data folder
	$(BIN)/caisse demo

lint: install ## ruff (lint + format check)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: install ## mypy --strict on src/
	$(BIN)/mypy

browser: ## Install Debian's Chromium for the extranet browser tests, when missing (as root)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || (DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

fonts: install ## Install Debian's DejaVu Sans (live Factur-X invoices need it) when caisse finds none (as root)
	$(BIN)/python -c "from caisse.invoices.render import unicode_fonts_available as ok; raise SystemExit(not ok())" \
		|| (apt-get update -qq && apt-get install -y -qq fonts-dejavu-core)

screenshots: install browser ## Retake the extranet screenshots in docs/img/
	$(BIN)/python scripts/screenshots.py

test: install browser fonts lint typecheck ## Lint, type-check and run the whole suite (SQLite and PostgreSQL)
	$(BIN)/pytest -q

unit: install ## Fast tests only (no database)
	$(BIN)/pytest -q tests/unit

bench: install ## Benchmarks; figures go to docs/benchmarks.md
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/run.py

serve: install ## Serve on http://127.0.0.1:8000 (SQLite in ./.caisse)
	$(BIN)/caisse serve

migrate: install ## Apply database migrations
	$(BIN)/caisse migrate

lock: $(UV) ## Re-pin dependencies into constraints.txt
	$(UV) pip compile pyproject.toml --extra dev -o constraints.txt --python $(BIN)/python

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
