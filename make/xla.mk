# The TPU (torch-xla) lane, run on XLA's CPU backend. Included by the Makefile.
# torch-xla 2.9.0 needs torch 2.9.0 exactly: its own venv (7.7 GiB installed, 11.6 GiB at the install's peak: the
# torch wheel pulls CUDA libraries; make/disk.mk), installed from locks/xla-test.txt: the TPU image's versions
# (locks/trainer-tpu.txt) without libtpu, which only real TPUs need. --no-cache-dir: pip's cache would keep a second
# copy of the downloaded wheels (the 3.9 GiB between the peak and the installed size are those wheels, unpacking).
XLA_VENV ?= .venv-xla

$(XLA_VENV)/.installed: pyproject.toml make/xla.mk locks/xla-test.txt
	$(call require_free_disk,$(XLA_VENV),$(XLA_VENV_PEAK_GB),torch-xla and torch 2.9.0 with its CUDA libraries,XLA_VENV)
	$(PYTHON) -m venv $(XLA_VENV)
	$(XLA_VENV)/bin/pip install -q --upgrade pip
	$(XLA_VENV)/bin/pip install -q --no-cache-dir --require-hashes -r locks/xla-test.txt
	$(XLA_VENV)/bin/pip install -q -e . --no-deps
	touch $@

xla-venv: $(XLA_VENV)/.installed

test-xla: $(XLA_VENV)/.installed
	PJRT_DEVICE=CPU CPU_NUM_DEVICES=4 $(XLA_VENV)/bin/python -m pytest tests/xla -q -p no:cacheprovider
