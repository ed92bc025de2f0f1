# The two commands of the README: `make run` and `make test`. Both set up .venv first:
# `make run` installs the package, `make test` also its development extras.
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEV    := $(VENV)/.installed-dev-stamp

.PHONY: install run test lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	# the CPU build of torch first: a bare `torch` requirement could pull a multi-GB CUDA build
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e .
	touch $(STAMP)

$(DEV): $(STAMP)
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(DEV)

install: $(DEV)

run: $(STAMP)
	$(VENV)/bin/blockident run

test: $(DEV)
	$(VENV)/bin/pytest -q

lint: $(DEV)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs
