# Two commands do all the set-up: `make demo` and `make test`. Each bootstraps .venv first
# (idempotent: it reinstalls only when pyproject.toml or setup.py changed).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The browser viewer's JavaScript (three.js, pinned in web/package-lock.json), installed into
# web/node_modules (git-ignored) when npm exists; without it the viewer and its tests skip.
WEB_STAMP := web/node_modules/.installed
# The CPU build of torch: a local wheel where the machine has one, else PyTorch's CPU index.
TORCH_SRC := $(if $(wildcard /opt/wheels/torch-2.13.0*),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu)
PYTEST_ARGS ?=

.PHONY: setup demo test test-slow test-gpu lint format clean

setup: $(STAMP) $(WEB_STAMP)

$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SRC) "torch==2.13.0"
	$(BIN)/python -m pip install -q $(TORCH_SRC) -e ".[dev]"
	@touch $(STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	@if command -v npm >/dev/null; then \
	  (npm ci --prefix web --no-audit --no-fund --silent && touch $(WEB_STAMP)) \
	    || echo "note: npm ci in web/ failed; the browser viewer and its tests are skipped"; \
	else \
	  echo "note: npm not found; web/node_modules (three.js) not installed: the browser viewer,"; \
	  echo "      viewer.html and their tests are skipped (install Node.js + npm, then make setup)"; \
	fi

demo: setup
	$(BIN)/mmface4d demo -o out

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

test: lint
	$(BIN)/python -m pytest -n 2 -m "not slow and not gpu" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-gpu: $(STAMP)
	$(BIN)/python -m pytest -m gpu $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
