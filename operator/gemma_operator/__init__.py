"""Kubernetes operator for Gemma fine-tunes (GemmaFineTune, gemmaft.dev/v1alpha1).

Layers, each importing only the ones below it:

* ``gemma_operator.runtime``: kopf handlers and the side effects at the edges.
* ``gemma_operator.reconcile``: pure decisions from observed state to actions.
* ``gemma_operator.render``: pure functions from a spec to Kubernetes objects (Jinja2 templates).

All of them build on the contract package ``gemma_api`` (spec, status, run config, facts, memory model), which
the trainer shares; nothing here imports the trainer (``gemma_trainer``) or the local cluster and demo
(``gemma_local``). ``gemmaft.cli``, the ``gemmaft`` command, dispatches to both from above. ``.importlinter``
holds these rules as contracts (tests/test_layering.py runs them).
"""

__version__ = "0.1.0"
