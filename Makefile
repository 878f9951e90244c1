# arrears: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ACCOUNTS ?= 3000

.PHONY: demo test install system-deps lint typecheck bench clean

$(BIN)/arrears: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(BIN)/arrears

install: $(BIN)/arrears

## Set up, build a demo portfolio in arrears.db (SQLite) and serve it on http://127.0.0.1:8000
demo: install
	$(BIN)/arrears demo --accounts $(ACCOUNTS)

# Rendering checks of printed letters use poppler's pdftoppm/pdftotext; install them where we can.
# The browser tests drive the system Chromium (Debian's chromium package); CJK fonts make the screenshots legible.
system-deps:
	@command -v pdftoppm >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && apt-get install -y -qq poppler-utils >/dev/null) || \
	  echo "note: poppler-utils not installed; letter rendering checks will be skipped"; }
	@[ -x /usr/bin/chromium ] || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "note: no /usr/bin/chromium; the browser tests will be skipped (they fail under CI=true)"; }
	@fc-list :lang=zh 2>/dev/null | grep -q . || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  apt-get install -y -qq fonts-noto-cjk >/dev/null || echo "note: no CJK font; screenshots show boxes for Chinese"; }

## Set up and run every check: lint, types, unit, integration (SQLite and PostgreSQL), end to end
test: install system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) arrears.db arrears.db-* demo-data .pytest_cache .mypy_cache .ruff_cache
