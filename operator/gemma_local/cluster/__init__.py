"""A Kubernetes API server and cluster on one machine, for ``gemmaft demo``, the tests and stock ``kubectl``.

kmock (the Kubernetes emulator by kopf's author) serves HTTP, parses and records requests (iterating the
emulator yields them) and answers discovery; this package answers every resource request and runs the
controllers a real cluster runs, thinly, in-process:

* ``store``: objects, one resourceVersion counter, an ordered watch-event log (watches resume from a
  resourceVersion, ``410 Gone`` past the log; a deleted object's last event is ``DELETED``).
* ``server``/``writes``/``admission``: get, list (``kind: XList``), watch, create, PUT, patch (merge, JSON
  patch, strategic read as merge), ``status`` subresource, delete (finalizers; Background, Foreground and
  Orphan propagation, Orphan being batch/v1 Jobs' default), delete-collection, ``pods/log``; label selectors
  (``=``, ``!=``, ``in``, ``notin``, exists) and field selectors on list and watch; server-side Tables
  (``kubectl get``, ``get -w``) with the CRD's printer columns; generation, server-set metadata, 409 on a stale
  resourceVersion; GemmaFineTune schema + CEL validation (``422 Invalid`` with the field), Job defaults and
  immutable fields. Core discovery answers ``groupVersion: v1`` (kmock's ``/v1`` is corrected).
* ``jobs``: Job controller (Kubernetes 1.32 semantics: Indexed, podFailurePolicy, backoffLimit,
  FailureTarget/SuccessCriteriaMet then Failed/Complete, suspend) and the TTL-after-finished controller.
* ``objects``: owner-reference garbage collection, Events recorded by the controllers and the kubelet.
* ``nodes``: a scheduler over Node objects made from node pools (selectors, required node affinity, taints,
  resource requests; ``Unschedulable`` with the scheduler's message) and a kubelet (volumes, image pull
  failures, CreateContainerConfigError, OOMKilled, node-shutdown disruption) that hands pods to a
  ``PodRunner`` (``SchedulingOnly`` here, local processes in ``gemma_local.pods``).

Driving it (``LocalCluster``, synchronous): ``succeed_pod``, ``fail_pod(name, exit_code)``, ``preempt_pod``,
``oom``, ``fail_image_pull(prefix)``/``allow_image_pull``, ``set_node_pools([NodePool(...)])`` or
``LocalCluster(node_pools=...)``, ``LocalCluster(service_accounts=...)`` (every namespace has ``default``;
pods naming another account are refused to the Job controller: ``FailedCreate``), ``create``/``delete``,
``inject`` (answer chosen requests with 409/429/500..., optionally after acting).

What it is NOT: no authentication or RBAC (any token is accepted), no admission webhooks, Pod Security,
quotas or LimitRanges; no server-side apply or managedFields; strategic merge patches are applied as merge
patches (lists replaced, not merged by key); no API aggregation, no OpenAPI schemas (``kubectl explain``),
no protobuf (kubectl's imperative ``create namespace/secret/configmap`` send it: use ``apply -f``); field
selectors accept any dotted path (a real server only a few per kind); no pagination (``limit`` is ignored,
everything is returned at once); no bookmarks except the watch-list end marker; no container restarts or
image pull back-off doubling; no pod failure back-off delay in the Job controller; one event loop, so all
writes are serialised. Objects live in memory and vanish with the process.
"""

from .controllers import ClusterEmulator, PodRunner, SchedulingOnly
from .jobs import INDEX_KEY
from .local import LocalCluster, kubectl_cache_dir, kubectl_flags
from .nodes import NodePool
from .objects import RESOURCES
from .server import Fault
from .store import merge_patch

__all__ = ["INDEX_KEY", "RESOURCES", "ClusterEmulator", "Fault", "LocalCluster", "NodePool", "PodRunner",
           "SchedulingOnly", "kubectl_cache_dir", "kubectl_flags", "merge_patch"]
