# Lock files (locks/*.txt): one per image and one per test lane, every pin with its sha256 hashes. ONE command
# regenerates all of them after a dependency change in pyproject.toml: `make locks` (uv pip compile; existing pins
# are kept unless a change needs another version, so the locks stay what the lanes test). Included by the Makefile.
#
# torch, the one stated difference between locks: the main lane and the CPU image use the CPU build of the same
# version the GPU image takes as its CUDA build (dev.txt torch==X+cpu, trainer-gpu.txt torch==X); the TPU image and
# the XLA lane use torch 2.9.0 (torch-xla 2.9.0 needs it). Everything else in an image lock equals the lane lock:
#   operator.txt, trainer-cpu.txt  <- dev.txt (main lane)      trainer-gpu.txt <- dev.txt, torch as CUDA build
#   trainer-tpu.txt                <- xla-test.txt (XLA lane)  (tests/test_images.py checks all of this)
LOCKS_VENV := .venv-locks
UV := $(LOCKS_VENV)/bin/uv
LOCK = $(UV) pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_31
# Where the CPU build of torch comes from: the find-links folder of this environment, else PyTorch's CPU index.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_CPU_SOURCE := $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS),--extra-index-url $(TORCH_CPU_INDEX))
PINS = sed -nE 's/^([A-Za-z0-9._-]+==[^ ;\\]+).*/\1/p'

.PHONY: locks

$(LOCKS_VENV)/.installed:
	$(PYTHON) -m venv $(LOCKS_VENV)
	$(LOCKS_VENV)/bin/pip install -q uv
	touch $@

locks: $(LOCKS_VENV)/.installed
	$(LOCK) $(TORCH_CPU_SOURCE) pyproject.toml --extra operator --extra trainer --extra dev --extra real-gemma \
		-o locks/dev.txt
	$(PINS) locks/dev.txt > $(LOCKS_VENV)/dev-pins.txt
	grep -v '^torch==' $(LOCKS_VENV)/dev-pins.txt > $(LOCKS_VENV)/gpu-pins.txt
	sed -nE 's/^torch==([^+]+)\+cpu$$/torch==\1/p' $(LOCKS_VENV)/dev-pins.txt >> $(LOCKS_VENV)/gpu-pins.txt
	$(LOCK) pyproject.toml locks/build.in --extra operator -c $(LOCKS_VENV)/dev-pins.txt -o locks/operator.txt
	$(LOCK) $(TORCH_CPU_SOURCE) pyproject.toml locks/build.in --extra trainer -c $(LOCKS_VENV)/dev-pins.txt \
		-o locks/trainer-cpu.txt
	$(LOCK) pyproject.toml locks/build.in --extra trainer --extra gpu -c $(LOCKS_VENV)/gpu-pins.txt \
		-o locks/trainer-gpu.txt
	$(LOCK) pyproject.toml locks/xla-test.in --extra trainer -o locks/xla-test.txt
	$(PINS) locks/xla-test.txt > $(LOCKS_VENV)/xla-pins.txt
	$(LOCK) pyproject.toml locks/build.in --extra trainer --extra tpu -c $(LOCKS_VENV)/xla-pins.txt \
		-o locks/trainer-tpu.txt

# Base images by digest. Needs a Docker client with registry access (not available where the Dockerfiles were
# written): resolves the tag's current digest and writes tag@sha256:DIGEST into every Dockerfile's ARG.
# tests/test_images.py::test_bases_are_pinned_by_digest is a strict xfail until this has run.
BASE_IMAGE := python:3.11.14-slim-bookworm
DOCKERFILES := operator/Dockerfile trainer_image/Dockerfile.gpu trainer_image/Dockerfile.tpu trainer_image/Dockerfile.cpu

.PHONY: pin-bases
pin-bases:
	digest=$$(docker buildx imagetools inspect $(BASE_IMAGE) --format '{{json .Manifest.Digest}}' | tr -d '"'); \
	case "$$digest" in sha256:*) ;; *) echo "pin-bases: no digest for $(BASE_IMAGE)"; exit 1;; esac; \
	sed -i -E "s|^ARG PYTHON_BASE=.*|ARG PYTHON_BASE=$(BASE_IMAGE)@$$digest|" $(DOCKERFILES)
