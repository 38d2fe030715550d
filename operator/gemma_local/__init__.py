"""A cluster and a cloud on one machine, for ``gemmaft demo`` and the tests.

The real kmock Kubernetes emulator with a small cluster-behaviour layer, the real fake-gcs-server, and a pod
runner that executes trainer pods as local processes. It is a package (not in tests/) because ``gemmaft demo``
runs the very same layer the integration tests use, and its own one (not in ``gemma_operator``) because the
operator never runs it: not in the operator image, never imported by ``gemma_operator`` (``.importlinter``;
``gemmaft demo`` loads it by name). Needs the ``demo`` extra (``dev`` includes it).
"""
