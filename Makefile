# JointSeg / ISA-1 — two set-up commands on a fresh Debian 12 machine (as root):
#   make demo   # install what is missing, then run the DAG on the simulated demo region
#   make test   # install what is missing, then lint + the test suite
# Both are idempotent: a second run installs nothing and prints little.

SHELL       := /bin/bash
PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
PIP         := $(PY) -m pip --disable-pip-version-check -q
CORES       ?= $(shell nproc)
# The stamp changes whenever the dependency list changes, so `make` re-installs then.
DEPS_HASH   := $(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
STAMP       := $(VENV)/.installed-$(DEPS_HASH)
EXTRAS      := cpu,train,serve,view,s2cloudless,workflow,dev
SNAKEMAKE   := $(VENV)/bin/snakemake

.PHONY: setup demo demo-change test lint unit e2e clean-demo help

help:
	@echo "make demo  - run the workflow on the simulated demo region (results/demo/...)"
	@echo "make demo-change - the same over four epochs 2017-2023 + change + paper tables"
	@echo "make test  - lint + tests (what CI runs)"

setup: $(STAMP) slurm

# `snakemake --profile slurm` from the repository root finds ./slurm -> profiles/slurm
slurm:
	@bash scripts/install_profile.sh 2>/dev/null

# --- system packages (Debian): GDAL command-line tools + headers for the bindings
/usr/bin/gdal-config:
	@echo ">> installing Debian gdal-bin + libgdal-dev (once)"
	@apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    gdal-bin libgdal-dev python3-venv > /dev/null

# --- Debian chromium for the viewer's browser test (Playwright drives this binary:
# executable_path=/usr/bin/chromium; no browser is ever downloaded)
/usr/bin/chromium:
	@echo ">> installing Debian chromium (once, for the viewer's browser test)"
	@apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium > /dev/null

# --- Debian QGIS (python3-qgis, for /usr/bin/python3 only) for the test that opens the
# .qgs projects in real QGIS and renders every layer (tests/test_qgis_render.py)
/usr/lib/python3/dist-packages/qgis/__init__.py:
	@echo ">> installing Debian python3-qgis (once, for the QGIS render test)"
	@apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    python3-qgis > /dev/null

$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
	    && $(PYTHON) -m venv $(VENV); }

$(STAMP): /usr/bin/gdal-config | $(PY)
	@echo ">> installing Python dependencies into $(VENV) (once per dependency change)"
	@$(PIP) install --upgrade pip setuptools wheel
	@# CPU build of torch from the pinned release; an unpinned torch pulls a multi-GB CUDA build
	@$(PIP) install "torch==2.13.0" numpy
	@$(PIP) install -e ".[$(EXTRAS)]"
	@# GDAL Python bindings matching Debian's libgdal; needs numpy visible at build time
	@$(PY) -c "from osgeo import gdal_array" 2>/dev/null || \
	    $(PIP) install --no-build-isolation --no-cache-dir --no-deps "gdal==$$(gdal-config --version)"
	@rm -f $(VENV)/.installed-*
	@touch $@

# rules call the `jointseg` CLI: put the venv first on PATH
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# A run killed with -9 leaves .snakemake/locks behind: unlock it first unless a live
# snakemake works in this directory (then snakemake stops with its usual lock message).
# The demo's settings are config/demo.yaml; a config file given with --configfile
# replaces config.yaml (the template of a run of your own, README "Run on real data").
DEMO_CONFIG := config/demo.yaml
DEMO_RUN    := $(SNAKEMAKE) --profile profiles/local --cores $(CORES) --configfile $(DEMO_CONFIG)
demo: setup
	@$(PY) scripts/unlock_if_stale.py -- $(DEMO_RUN)
	@$(DEMO_RUN)
	@echo ">> demo products under results/demo/ (simulated region: see README)"

# All four simulated epochs (2017, 2019, 2021, 2023), the change step and the paper tables
# (make demo maps two; the simulation and the trained models are shared, nothing reruns).
DEMO_YEARS  := --config 'years=[2017,2019,2021,2023]'
demo-change: setup
	@$(PY) scripts/unlock_if_stale.py -- $(DEMO_RUN) $(DEMO_YEARS)
	@$(DEMO_RUN) $(DEMO_YEARS) -- all paper_tables
	@echo ">> four epochs under results/demo/<year>/, change under results/demo/change/2017-2019-2021-2023/, tables under results/paper_tables/2017-2019-2021-2023/"

lint: setup
	@$(VENV)/bin/ruff check jointseg tests benchmarks
	@$(VENV)/bin/snakefmt --check Snakefile rules/ 2>&1 | tail -n 1
	@$(SNAKEMAKE) --lint --cores 1 --configfile $(DEMO_CONFIG) > .lint.log 2>&1 || { cat .lint.log; exit 1; }
	@rm -f .lint.log

QGIS        := /usr/lib/python3/dist-packages/qgis/__init__.py

unit: setup /usr/bin/chromium $(QGIS)
	@$(VENV)/bin/pytest -q -m "not e2e"

e2e: setup
	@$(VENV)/bin/pytest -q -m e2e

test: setup lint /usr/bin/chromium $(QGIS)
	@$(VENV)/bin/pytest -q -ra --durations=15

clean-demo:
	rm -rf results/demo resources/demo .jointseg
