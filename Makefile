# Two entry points, each self-contained on a fresh machine with Python 3.11 + pip:
#   make demo  - set up .venv and run the main job
#   make test  - set up .venv and run lint + the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench protos clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/sbx run -- echo hello

lint: $(BIN)/.installed
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	for b in eventstore agent lifecycle recovery; do $(BIN)/python bench/$${b}_bench.py || exit 1; done

protos: $(BIN)/.installed
	$(BIN)/python -m protos.generate

clean:
	rm -rf $(VENV) build *.egg-info
