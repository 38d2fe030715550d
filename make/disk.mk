# Free disk a virtual environment needs while pip installs it. pip holds every downloaded wheel while it unpacks
# them, so the peak is well above the folder's final size. Peaks measured by sampling `df` once a second during a
# fresh install from the lock (2026-11-22, with the locks of that day):
#   .venv-xla  (locks/xla-test.txt: torch 2.9.0 with its CUDA libraries)  peak 11.6 GiB, 7.7 GiB once installed
#   .venv      (locks/dev.txt: torch 2.13.0 CPU build, from a local file)   peak 2.8 GiB, 2.4 GiB once installed
# CI once failed with "No space left on device" halfway through the XLA install, on a disk with 14 GiB free for
# everything; the check below says so before pip starts, and names the fix.
XLA_VENV_PEAK_GB := 12
MAIN_VENV_PEAK_GB := 3

# $(call require_free_disk,FOLDER,GB,WHAT,VARIABLE): stop with a message naming the fix unless FOLDER's disk has
# GB GiB free.
define require_free_disk
@mkdir -p "$(dir $(abspath $(1)))"; \
set -- $$(df -Pk "$(dir $(abspath $(1)))" | awk 'NR == 2 {print int($$4 / 1048576), $$6}'); free=$$1; mount=$$2; \
if [ "$${free:-$(2)}" -lt "$(2)" ]; then \
	echo "make: installing $(3) into $(1) needs about $(2) GiB free while pip runs, and $$mount has $$free GiB free." >&2; \
	echo "      Free space there (old clones and their .venv* folders, pip's cache: pip cache purge) or set" >&2; \
	echo "      $(4)=<a folder on a disk with $(2) GiB free>." >&2; \
	exit 1; \
fi
endef
