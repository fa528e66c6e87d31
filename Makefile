# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench reference-models clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/robustq demo --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check robustq tests bench
	$(BIN)/ruff format --check robustq tests bench
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/perturb.py

# Regenerate the reference variants in tflite_models/ from a full demo run.
reference-models: $(STAMP)
	$(BIN)/robustq demo --out runs/reference
	cp runs/reference/variants/*.tflite runs/reference/variants/manifest.json tflite_models/
	cp runs/reference/summary.csv runs/reference/training_metrics.csv tflite_models/

clean:
	rm -rf runs .pytest_cache
