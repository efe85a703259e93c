# The two commands of the quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: demo test lint browser-deps clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# installs once, and again whenever the pins change
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

demo: $(VENV)/.installed
	$(BIN)/snakemake --cores $(CORES)
	@echo "report: results/digits/report.html"

# Chromium (for the report's browser test) and LaTeX (to compile the tables) come from
# Debian's packages when this runs as root with apt; otherwise those tests skip and say why.
browser-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! command -v pdflatex >/dev/null; }; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver texlive-latex-base texlive-latex-recommended >/dev/null) \
	  || echo "could not install chromium/texlive: the browser and LaTeX tests will skip"; \
	fi

test: $(VENV)/.installed browser-deps
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow

clean:
	rm -rf results logs .snakemake
