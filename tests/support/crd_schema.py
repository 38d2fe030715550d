"""Moved to ``gemma_local.crd_schema`` (the local API server validates with it): this name is that module."""

import sys

from gemma_local import crd_schema as _moved

sys.modules[__name__] = _moved
