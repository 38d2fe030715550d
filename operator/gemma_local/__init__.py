"""A cluster and a cloud on one machine, for ``gemmaft demo`` and the tests.

The real kmock Kubernetes emulator with a small cluster-behaviour layer, the real fake-gcs-server, and a pod
runner that executes trainer pods as local processes. It ships in the package (not in tests/) because
``gemmaft demo`` runs the very same layer the integration tests use. Needs the ``dev`` extra.
"""
