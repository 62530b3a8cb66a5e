# make run: set up and start the whole embedded stack (PORT=…, SANDBOX_PORT=… to choose ports).  make test: set up and run the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench bench-delivery bench-console bench-isolation chaos screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# make run PORT=8100 SANDBOX_PORT=8865: the console's and the vendor sandbox's ports (defaults 8000 and 8765).
PORT ?= 8000
SANDBOX_PORT ?= 8765

run: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runstack --port $(PORT) --sandbox-port $(SANDBOX_PORT)

test: export HUB_VAR_DIR ?= $(CURDIR)/var/test
test: setup
	$(BIN)/ruff check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# make screenshots: every console page per role from the demo's data, into docs/screenshots/ (pngquant, when
# installed, shrinks them to about a third).
screenshots: export HUB_VAR_DIR ?= $(CURDIR)/var/test
screenshots: setup
	rm -f docs/screenshots/*.png
	HUB_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q -p no:cacheprovider tests/test_screenshots_browser.py
	@if command -v pngquant >/dev/null; then \
		pngquant --force --skip-if-larger --ext .png --quality 70-95 docs/screenshots/*.png || true; \
	else echo "pngquant is not installed: the screenshots stay as Chromium wrote them"; fi
	@du -ch docs/screenshots/*.png | tail -1

# make bench: issue 12's table (delivery, ingest over HTTP, console at BENCH_CONSOLE_EVENTS, default 100,000),
# each row against a baseline measured in the same run; Markdown and JSON in var/bench/ (COMPARE=old.json puts an
# earlier run's ratios beside). PostgreSQL + Redis when DATABASE_URL and CELERY_BROKER_URL are set.
bench: setup
	$(BIN)/python bench/table.py $(if $(COMPARE),--compare $(COMPARE))

bench-delivery: setup
	$(BIN)/python bench/delivery.py

# The console's pages at 1,000 and 1,000,000 events (loading the million takes about two minutes on SQLite).
bench-console: setup
	$(BIN)/python bench/console.py

# One vendor hanging or answering 500: the healthy vendors' delivery rate against all up (target >= 0.9).
bench-isolation: setup
	$(BIN)/python bench/isolation.py

# Chaos run: workers SIGKILLed, Redis, the sandbox and PostgreSQL restarted under 30 % vendor faults; then isolation,
# back-pressure and replay. Its own PostgreSQL (port 5441) and Redis (6391); CHAOS_STACK=embedded for SQLite + the
# SQLAlchemy broker (no restarts of those), CHAOS_EVENTS=… (default 10,000), CHAOS_PHASES=chaos for the run alone.
CHAOS_STACK ?= pg
CHAOS_EVENTS ?= 10000
CHAOS_PHASES ?= chaos,isolation,backpressure,replay
chaos: export HUB_VAR_DIR ?= $(CURDIR)/var/chaos-$(CHAOS_STACK)
chaos: setup
	CHAOS_STACK=$(CHAOS_STACK) CHAOS_EVENTS=$(CHAOS_EVENTS) CHAOS_PHASES=$(CHAOS_PHASES) $(BIN)/python bench/chaos.py

clean:
	rm -rf $(VENV) var staticfiles
