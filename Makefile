# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.qdistill-installed
# torch comes from the machine's local wheel store; pin it so pip never reaches
# for a newer (multi-GB) build.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: venv demo test test-all bench fpga lint format clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH_PINS) 2>&1 | grep -v "is ignored: it is neither" || true
	$(PIP) -e ".[dev]" $(TORCH_PINS) 2>&1 | grep -v "is ignored: it is neither" || true
	$(PY) -c "import qdistill, torch; print('qdistill', qdistill.__version__, 'torch', torch.__version__)"
	touch $(STAMP)

$(VENV)/.qdistill-bench: $(STAMP)
	$(PIP) -e ".[dev,bench,fpga,ray]" $(TORCH_PINS) 2>&1 | grep -v "is ignored: it is neither" || true
	touch $@

# finn-plus pins exact versions of torch, onnx and onnxruntime that differ from ours; its
# estimate-only flow runs beside our stack, so it is installed without its dependencies
# (the pure-Python ones it imports come with the `fpga` extra).
$(VENV)/.qdistill-fpga: $(VENV)/.qdistill-bench
	$(PIP) --no-deps finn-plus==1.6.1
	touch $@

fpga: $(VENV)/.qdistill-fpga

demo: $(STAMP)
	$(VENV)/bin/qdistill run configs/demo-digits.yaml --out runs/demo

test: $(STAMP)
	$(PY) -m pytest

test-all: $(VENV)/.qdistill-fpga
	$(PY) -m pytest -m "slow or not slow"

bench: $(VENV)/.qdistill-fpga
	for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
