"""Kubernetes operator for Gemma 2 fine-tunes (GemmaFineTune, gemmaft.dev/v1alpha1).

Layers, each importing only the ones above it:

* ``gemma_operator.api``: the pydantic model, its rules and the CRD (needs only pydantic; the trainer uses it).
* ``gemma_operator.render``: pure functions from a spec to Kubernetes objects (Jinja2 templates).
* ``gemma_operator.reconcile``: pure decisions from observed state to actions.
* ``gemma_operator.runtime``: kopf handlers and the side effects at the edges.
* ``gemma_operator.cli``: the ``gemmaft`` command on top.

``.importlinter`` holds these rules as contracts (tests/test_layering.py runs them). The local cluster and demo
are the separate package ``gemma_local``, which nothing here imports.
"""

__version__ = "0.1.0"
