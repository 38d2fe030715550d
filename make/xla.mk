# The TPU (torch-xla) lane, run on XLA's CPU backend. Included by the Makefile.
# torch-xla 2.9.0 needs torch 2.9.0 exactly: its own venv (about 7.5 GB: the torch wheel pulls CUDA
# libraries). No [tpu] extra: libtpu is only for real TPUs.
XLA_VENV ?= .venv-xla
XLA_PIP_PACKAGES := torch==2.9.0 torch-xla==2.9.0
XLA_PY_PACKAGES := "transformers==5.23.0" "peft==0.21.2" "accelerate==1.15.0" "datasets>=3" "pyyaml>=6" \
	"pydantic>=2.7,<3" "pytest>=8" "pytest-timeout>=2.3" "safetensors" "tokenizers" "pyarrow>=15" \
	"matplotlib>=3.8" "google-cloud-storage>=2.18,<4"

$(XLA_VENV)/.installed: pyproject.toml make/xla.mk
	$(PYTHON) -m venv $(XLA_VENV)
	$(XLA_VENV)/bin/pip install -q --upgrade pip
	$(XLA_VENV)/bin/pip install -q $(XLA_PIP_PACKAGES)
	$(XLA_VENV)/bin/pip install -q $(XLA_PY_PACKAGES)
	$(XLA_VENV)/bin/pip install -q -e . --no-deps
	touch $@

xla-venv: $(XLA_VENV)/.installed

test-xla: $(XLA_VENV)/.installed
	PJRT_DEVICE=CPU CPU_NUM_DEVICES=4 $(XLA_VENV)/bin/python -m pytest tests/xla -q -p no:cacheprovider
