# The two commands of the quick start: `make demo` and `make test`; `make check` (the fast unit
# tests) and `make lint` while developing.
PYTHON ?= python3
# uv leaves the bytecode to be compiled on first import; where the environment turns writing it
# off (PYTHONDONTWRITEBYTECODE, as many containers do), every job and test process would compile
# torch and the rest again (19 s instead of 12 s to import them), so the venv's bytecode is kept
export PYTHONDONTWRITEBYTECODE :=
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: demo test check lint rehearsal system-deps browser-deps latex-deps slurm-deps clean gpu-wheels

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# installs once, and again whenever the pins change. uv installs the same pins as pip, in
# parallel: 21 s instead of 3 min 15 s for the 6 GB of torch's CUDA build and the rest
# (docs/benchmarks.md, "Installing"); bytecode is written on first import (below).
UV := $(BIN)/uv pip install --quiet --python $(BIN)/python
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet uv==0.13.9
	$(UV) -r requirements.txt
	$(UV) --no-deps -e .
	touch $@

# the job server starts (imports torch and the rest) while Snakemake plans the DAG
demo: $(VENV)/.installed
	$(BIN)/python -c "from dds.jobs import warm_up; warm_up()" &
	$(BIN)/snakemake --cores $(CORES)
	@echo "report: results/digits/report.html"

# The Debian packages some tests need, installed when this runs as root with apt; otherwise
# those tests skip and say why.
system-deps: browser-deps latex-deps slurm-deps

APT_INSTALL := apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
ROOT_WITH_APT := [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null

# Chromium, for the report's browser test
browser-deps:
	@if $(ROOT_WITH_APT) && { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; }; then \
	  ($(APT_INSTALL) chromium chromium-driver >/dev/null) \
	  || echo "could not install chromium: the browser test will skip"; \
	fi

# LaTeX, for the tests that compile the tables
latex-deps:
	@if $(ROOT_WITH_APT) && ! command -v pdflatex >/dev/null; then \
	  ($(APT_INSTALL) texlive-latex-base texlive-latex-recommended >/dev/null) \
	  || echo "could not install texlive: the LaTeX tests will skip"; \
	fi

# SLURM and munge, for the test that starts a one-node SLURM cluster (tests/test_slurm.py)
slurm-deps:
	@if $(ROOT_WITH_APT) && ! { command -v slurmctld && command -v slurmd && command -v sbatch && \
	    command -v munged; } >/dev/null; then \
	  ($(APT_INSTALL) slurm-wlm slurmctld slurmd slurm-client munge >/dev/null) \
	  || echo "could not install slurm/munge: the SLURM test will skip"; \
	fi

# the whole suite (what CI runs: .ci/run)
test: $(VENV)/.installed system-deps
	$(BIN)/python -m pytest -q -n 2

# the unit tests: no Snakemake run end to end (workflow, the SLURM cluster), no browser
check: $(VENV)/.installed latex-deps
	$(BIN)/python -m pytest -q -n 2 -m "not workflow and not browser"

lint: $(VENV)/.installed
	$(BIN)/ruff format --check
	$(BIN)/ruff check
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint

# both presets' whole workflows on stand-ins made offline (docs/presets.md, "Rehearsal");
# REHEARSAL_DIR keeps the run (default: a new temporary folder)
rehearsal: $(VENV)/.installed latex-deps
	$(BIN)/python -m dds.rehearsal --cores 2 --summary results/rehearsal.json \
	  $(if $(REHEARSAL_DIR),--workdir $(REHEARSAL_DIR))

# the wheels (Python 3.12, manylinux x86_64) of what a GPU machine with PyTorch but without
# network lacks, for benchmarks/gpu_check.sh (docs/benchmarks.md, "GPU check"); fails when
# the working tree would travel with more than 64 MiB
gpu-wheels: $(VENV)/.installed
	$(BIN)/python benchmarks/gpu_check.py wheels gpu-wheels

clean:
	rm -rf results logs .snakemake
