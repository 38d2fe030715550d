"""The operator's side effects: kopf handlers, Kubernetes API calls, progress reading, metrics and logs.

``main`` only registers kopf handlers; each delegates to one small module here, and every decision is made by
the pure :mod:`gemma_operator.reconcile`.
"""
