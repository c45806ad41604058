# Two commands do everything on a fresh Debian machine (root, Python 3.11):
#   make quickstart   set up, then run the embedded miniature scaling study on this machine
#   make test         set up, then run the test suite (what .ci/run calls)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export DS_ACCELERATOR ?= cpu
export TORCH_EXTENSIONS_DIR ?= $(CURDIR)/.cache/torch_extensions
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
PYTEST_ARGS ?=

.PHONY: setup system venv test test-unit quickstart bench gpu-check lint clean

setup: system venv

# System parts the integration tests use: Open MPI (mpi4py) and the Slurm daemons with munge.
system:
	@bash tests/slurm/install.sh

$(STAMP): setup.cfg constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: a newer torch would pull several GB of CUDA wheels (see constraints.txt).
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[test,mpi]'
	# DeepSpeed's CPU communication op, compiled once here (into TORCH_EXTENSIONS_DIR) rather than inside
	# the first test or run that starts DeepSpeed, where a loaded machine can spend minutes of its time limit
	$(PY) -c "from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder as B; B().load()" >/dev/null
	@touch $@

venv: $(STAMP)

# Style is checked before the tests (CI runs this target): ruff check and ruff format --check.
test: setup lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

quickstart: venv
	$(PY) launch/sweep.py sweeps/quickstart.yaml

bench: venv
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# On one CUDA GPU with mamba_ssm (pip install -e '.[gpu]'): fused vs reference, tokens/s, MFU, GPU-hours.
GPU_CHECK_OUT ?= runs/gpu-check
gpu-check: venv
	$(PY) -m benchmarks.gpu_check --out $(GPU_CHECK_OUT)

lint: venv
	$(VENV)/bin/ruff check scaling launch analysis tests benchmarks
	$(VENV)/bin/ruff format --check scaling launch analysis tests benchmarks

clean:
	rm -rf $(VENV) .cache .pytest_cache
