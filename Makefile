# SegForge: the two commands a newcomer runs (see README.md).
#   make demo   set up .venv, run the vessel workflow on the bundled CE-MRA -> out/demo/
#   make test   set up .venv, run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.segforge-installed

.PHONY: demo test bench venv clean

venv: $(STAMP)

# Re-run the install whenever the declared dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py --out out/demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	mkdir -p out/bench
	$(PY) benchmarks/worker_roundtrip.py --json out/bench/worker_roundtrip.json

clean:
	rm -rf $(VENV) out build dist
