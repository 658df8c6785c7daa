# Two commands for a fresh machine: `make demo` and `make test`.
# Both create the virtual environment in .venv on first use (and again when
# pyproject.toml changes), so `.venv/bin/aiops` exists after either.

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/aiops demo $(DEMO_ARGS)

# Most tests wait on real processes and sockets, so they run on TEST_WORKERS workers
# (one file per worker at a time); the real-time, latency-sensitive ones (marked
# `serial`) run alone afterwards. Exit code 5 means "nothing selected" (a PYTEST_ARGS
# that picks only one kind), which is not a failure.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not serial" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(VENV)/bin/python -m pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

notebooks: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,notebooks]'
	$(VENV)/bin/jupyter lab notebooks/

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy suite proxy_addons

bench: $(STAMP)
	$(VENV)/bin/python bench/ingest.py
	$(VENV)/bin/python bench/gateway_overhead.py
	$(VENV)/bin/python bench/llm_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
