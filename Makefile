# SegForge: the two commands a newcomer runs (see README.md).
#   make demo   set up .venv, run the vessel workflow on the bundled CE-MRA -> out/demo/
#   make test   set up .venv, lint with ruff, run the whole test suite (installs Debian's Chromium for the browser
#               tests, and Orthanc with its DICOMweb plugin and dicom3tools for the DICOM tests)
#   make app    set up .venv, start the web app on loopback with the sample CT, print its URL
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.segforge-installed

APP_HOST ?= 127.0.0.1
APP_PORT ?= 8080
CHROMIUM := /usr/bin/chromium
# The DICOM tests' real components: a PACS (Orthanc + its DICOMweb plugin) and dciodvfy (dicom3tools).
ORTHANC := /usr/sbin/Orthanc
ORTHANC_DICOMWEB := /usr/share/orthanc/plugins/libOrthancDicomWeb.so
DCIODVFY := /usr/bin/dciodvfy

.PHONY: demo test lint bench venv clean app browser dicom-tools screenshots

venv: $(STAMP)

# Re-run the install whenever the declared dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py --out out/demo --overwrite

# ruff first (its rules are in pyproject.toml): a finding stops the run before the long suite.
test: lint browser dicom-tools
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The web app on loopback (a random secret is in the URL it prints); segforge app --help for more.
app: $(STAMP)
	$(VENV)/bin/segforge app --host $(APP_HOST) --port $(APP_PORT)

# The README's screenshots of each workflow's result, taken by the browser tests themselves.
screenshots: $(STAMP) browser
	SEGFORGE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest -q Testing/test_app_vessel.py \
		Testing/test_app_organ.py Testing/test_app_interactive.py

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work
# here). Installed when missing and we are root (CI); otherwise say how, and the tests fail.
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "make: $(CHROMIUM) is missing; install it as root (apt-get install -y chromium), the browser tests need it" >&2; \
	fi

# Debian's Orthanc (started by the tests themselves as a plain process, never as a service: a
# policy-rc.d answering 101 keeps the package from starting one) and dciodvfy. Installed when
# missing and we are root; otherwise say how, and the DICOM tests are skipped, saying why.
dicom-tools:
	@if [ -x $(ORTHANC) ] && [ -e $(ORTHANC_DICOMWEB) ] && [ -x $(DCIODVFY) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && if [ -e /usr/sbin/policy-rc.d ]; then \
			DEBIAN_FRONTEND=noninteractive apt-get install -y orthanc orthanc-dicomweb dicom3tools; \
		else \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y orthanc orthanc-dicomweb dicom3tools; \
			status=$$?; rm -f /usr/sbin/policy-rc.d; exit $$status; \
		fi; \
	else \
		echo "make: Orthanc, its DICOMweb plugin or dciodvfy is missing; install them as root (apt-get install -y orthanc orthanc-dicomweb dicom3tools), the DICOM tests need them" >&2; \
	fi

bench: $(STAMP)
	mkdir -p out/bench
	$(PY) benchmarks/worker_roundtrip.py --json out/bench/worker_roundtrip.json

clean:
	rm -rf $(VENV) out build dist
