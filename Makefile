# The two commands of the README:
#   make start   install everything, generate the small demo city on first run, start the console
#   make test    install what the tests need (venv, map assets, chromium, PostGIS) and run every check
# .ci/run runs `make test`.

VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
PYTHON ?= python3

.PHONY: start test install install-dev assets lint typecheck pytest city

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

assets: $(VENV)/.installed
	$(PY) -m console assets

start: install assets
	$(PY) -m console demo --size small --if-empty
	$(PY) -m console serve --port $(PORT)

city: install
	$(PY) -m console demo --size city

lint: install-dev
	$(VENV)/bin/ruff check .

typecheck: install-dev
	$(VENV)/bin/mypy geo layers store services demo console api

pytest: install-dev assets
	bash .ci/ensure-browser
	bash .ci/ensure-postgis || [ "$$CI" != "true" ]
	$(VENV)/bin/pytest -q -ra

test: lint typecheck pytest

# Benchmarks: installs what they need (requirements-bench.txt, pinned) into the venv, then runs
# them. `make bench BENCH="bench/partition_vs_spopt.py bench/demo_generation.py"` picks others.
BENCH ?= bench/partition_vs_spopt.py bench/planning_speed.py
.PHONY: bench

$(VENV)/.installed-bench: $(VENV)/.installed requirements-bench.txt
	$(PY) -m pip install -q -r requirements-bench.txt
	touch $@

bench: $(VENV)/.installed-bench
	@for script in $(BENCH); do echo "== $$script"; $(PY) $$script || exit 1; done
