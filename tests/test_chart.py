"""The Helm chart, rendered and linted by the real Helm engine (helm-python-sdk), every object checked against
the real Kubernetes schemas (kubernetes-validate, strict), RBAC and pod security asserted, and checkov run on
the rendered manifests."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path

import helm_python
import kubernetes_validate
import pytest
import yaml
from gemma_operator.settings import OperatorSettings

from tests.conftest import REPO
from tests.pss import assert_restricted, restricted_problems

CHART = REPO / "charts" / "gemma-finetune-operator"
K8S_VERSION = "1.32"
RELEASE, NAMESPACE = "gft", "gemmaft-system"
FULLNAME = f"{RELEASE}-gemma-finetune-operator"
CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"
DIGEST = "sha256:" + "ab" * 32

# Kinds the installed kubernetes-validate has no schema for (CRDs of other projects); the only ones skipped.
NO_SCHEMA_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

CASES: dict[str, dict] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["a", "b"]},
    "monitoring": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}, "scrapeTimeout": "10s"}},
    "custom": {
        "image": {"registry": "us-central1-docker.pkg.dev/proj/gemmaft", "repository": "operator",
                  "digest": DIGEST, "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "trainerImages": {"gpu": "us-central1-docker.pkg.dev/proj/gemmaft/trainer-gpu:1.2.3",
                          "tpu": "us-central1-docker.pkg.dev/proj/gemmaft/trainer-tpu:1.2.3",
                          "cpu": "us-central1-docker.pkg.dev/proj/gemmaft/trainer-cpu@" + DIGEST},
        "allowedImagePrefixes": ["us-central1-docker.pkg.dev/proj/", "ghcr.io/me/"],
        "logFormat": "plain", "runHistory": 25, "progressIntervalSeconds": 15,
        "health": {"port": 8081}, "metrics": {"port": 9191},
        "trainerServiceAccount": {"name": "trainer",
                                  "annotations": {"iam.gke.io/gcp-service-account": "t@proj.iam.gserviceaccount.com"}},
        "commonLabels": {"team": "ml"}, "podLabels": {"tier": "control"}, "podAnnotations": {"note": "x"},
        "nodeSelector": {"pool": "system"}, "priorityClassName": "system-cluster-critical",
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}},
        "networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "monitoring"}}}]},
    },
}

EXPECTED_NAMESPACED_RULES = {  # the calls the operator makes: runtime/reconciler.py, kopf watches and Events
    ("gemmaft.dev", "gemmafinetunes"): {"get", "list", "watch"},
    ("gemmaft.dev", "gemmafinetunes/status"): {"patch"},
    ("batch", "jobs"): {"list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"list", "watch"},
    ("", "configmaps"): {"create"},
    ("", "services"): {"create", "delete"},
    ("", "events"): {"create", "list", "watch"},  # watch: the Job controller's FailedCreate Events
}
EXPECTED_CLUSTER_READS = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("", "namespaces"): {"get", "list", "watch"},
}
ENV_NAMES = {
    "GEMMAFT_NAMESPACES", "GEMMAFT_IMAGE_GPU", "GEMMAFT_IMAGE_TPU", "GEMMAFT_IMAGE_CPU",
    "GEMMAFT_ALLOWED_IMAGE_PREFIXES", "GEMMAFT_TRAINER_SERVICE_ACCOUNT", "GEMMAFT_ALLOWED_SERVICE_ACCOUNTS",
    "GEMMAFT_METRICS_PORT",
    "GEMMAFT_HEALTH_PORT", "GEMMAFT_LOG_FORMAT", "GEMMAFT_RUN_HISTORY", "GEMMAFT_PROGRESS_INTERVAL_SECONDS",
}


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def chart():
    loaded = helm_python.Chart.load(str(CHART))
    yield loaded
    loaded.close()


def render_raw(chart, values: dict) -> dict[str, str]:
    return chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)


def objects_of(rendered: dict[str, str]) -> list[dict]:
    objs = []
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            objs += [doc for doc in yaml.safe_load_all(text) if doc]
    return objs


@pytest.fixture(scope="module")
def rendered(chart) -> dict[str, dict[str, str]]:
    return {case: render_raw(chart, values) for case, values in CASES.items()}


@pytest.fixture(scope="module")
def objects(rendered) -> dict[str, list[dict]]:
    return {case: objects_of(out) for case, out in rendered.items()}


def only(objs: list[dict], kind: str) -> dict:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def of_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def rule_map(rules: list[dict]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                key = (group, resource)
                assert key not in out, f"{key} granted by two rules"
                out[key] = set(rule["verbs"])
    return out


def container(objs: list[dict]) -> dict:
    return only(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env_of(objs: list[dict]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(objs)["env"]}


# ------------------------------------------------------------------------------ engine, schemas, lint


@pytest.mark.parametrize("case", CASES)
def test_lint_is_clean_in_strict_mode(case):
    report = helm_python.lint(str(CHART), copy.deepcopy(CASES[case]), strict=True, namespace=NAMESPACE,
                              kube_version=f"v{K8S_VERSION}.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("case", CASES)
def test_every_object_passes_the_kubernetes_schema_strictly(objects, case):
    skipped = set()
    for obj in objects[case]:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            skipped.add((obj["apiVersion"], obj["kind"]))
    assert skipped <= NO_SCHEMA_KINDS
    if case == "monitoring":
        assert skipped == NO_SCHEMA_KINDS


def test_each_case_renders_the_expected_objects(objects):
    kinds = {case: sorted(o["kind"] for o in objs) for case, objs in objects.items()}
    assert kinds["defaults"] == sorted(["ServiceAccount", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                        "Deployment", "Service", "NetworkPolicy"])
    assert kinds["namespaced"] == sorted(["ServiceAccount"] * 3 + ["Role", "RoleBinding"] * 2 + [
        "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "NetworkPolicy"])
    assert kinds["monitoring"] == sorted(kinds["defaults"] + ["ServiceMonitor"])
    for objs in objects.values():
        for obj in objs:
            if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
                assert obj["metadata"]["namespace"], obj["kind"]
            assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_chart_metadata():
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2" and meta["appVersion"] == "0.1.0" and meta["type"] == "application"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'version = "{meta["appVersion"]}"' in pyproject


def test_chart_crd_is_byte_identical_to_the_generated_one(chart):
    chart_crd = (CHART / "crds" / "gemmafinetunes.yaml").read_bytes()
    assert chart_crd == (REPO / "crds" / "gemmafinetunes.yaml").read_bytes(), (
        "charts/gemma-finetune-operator/crds/gemmafinetunes.yaml differs from crds/gemmafinetunes.yaml: "
        "run `make crd` and copy it into the chart")
    assert [c["name"] for c in chart.crds] == ["crds/gemmafinetunes.yaml"]


# ------------------------------------------------------------------------------------------ values


BAD_VALUES = [
    ({"bogus": 1}, "'bogus'"),
    ({"image": {"pullpolicy": "Always"}}, "'pullpolicy'"),
    ({"serviceMonitor": {"enable": True}}, "'enable'"),
    ({"resources": {"requests": {"gpu": "1"}}}, "'gpu'"),
    ({"trainerServiceAccount": {"annotation": {}}}, "'annotation'"),
    ({"containerSecurityContext": {"capabilities": {"drop": ["ALL"], "ad": []}}}, "'ad'"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"logFormat": "xml"}, "/logFormat"),
    ({"metrics": {"port": 70000}}, "/metrics/port"),
    ({"runHistory": 0}, "/runHistory"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0"),
    ({"watchNamespaces": "a,b"}, "/watchNamespaces"),
    ({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory"),
    ({"containerSecurityContext": {"allowPrivilegeEscalation": True}}, "/containerSecurityContext/allowPrivilegeEscalation"),
    ({"containerSecurityContext": {"privileged": True}}, "/containerSecurityContext/privileged"),
    ({"containerSecurityContext": {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}},
     "/containerSecurityContext/capabilities/add/0"),
    ({"containerSecurityContext": {"capabilities": {"drop": ["NET_RAW"]}}}, "/containerSecurityContext/capabilities/drop"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    ({"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}}, "/podSecurityContext/seccompProfile/type"),
    ({"trainerImages": {"gpu": "has space:1"}}, "/trainerImages/gpu"),
]


@pytest.mark.parametrize("values,named", BAD_VALUES, ids=[n for _, n in BAD_VALUES])
def test_schema_rejects_unknown_keys_and_bad_values_naming_the_key(chart, values, named):
    with pytest.raises(helm_python.HelmValuesError) as err:
        render_raw(chart, values)
    assert named in str(err.value)


def _schema_objects(node: dict, path: str = ""):
    if isinstance(node, dict):
        if "properties" in node:
            yield path, node
            for key, sub in node["properties"].items():
                yield from _schema_objects(sub, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            yield from _schema_objects(node["items"], f"{path}[]")


def test_schema_closes_every_object_with_declared_properties():
    schema = json.loads((CHART / "values.schema.json").read_text())
    found = list(_schema_objects(schema))
    assert len(found) > 20
    for path, node in found:
        assert node.get("additionalProperties") is False, f"{path or '(root)'} accepts unknown keys"
    # Objects without declared properties are string maps or Kubernetes pass-through structures.
    def walk(node, path=""):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" not in node:
                extra = node.get("additionalProperties")
                is_map = isinstance(extra, dict) and extra.get("type") == "string"
                assert is_map or path.startswith((".affinity.", ".networkPolicy.metricsFrom[].")), path
            for key, sub in node.get("properties", {}).items():
                walk(sub, f"{path}.{key}")
            if isinstance(node.get("items"), dict):
                walk(node["items"], f"{path}[]")
    walk(schema)


def _leaf_keys(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaf_keys(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_every_value_is_documented_with_a_param_line():
    text = (CHART / "values.yaml").read_text()
    documented = set(re.findall(r"^## @param (\S+) \S", text, flags=re.MULTILINE))
    leaves = set(_leaf_keys(yaml.safe_load(text)))
    assert leaves - documented == set(), "values without a ## @param line"
    assert documented - leaves == set(), "## @param lines naming no value"


# ------------------------------------------------------------------------------------ Deployment


def test_deployment_runs_one_operator_with_probes_ports_and_resources(objects):
    deploy = only(objects["defaults"], "Deployment")
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"] == {"type": "Recreate"}
    pod = deploy["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["command"] == ["gemmaft", "operator"]
    assert c["image"] == "gemmaft-operator:0.1.0"
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": 9090}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == FULLNAME
    selector = deploy["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deploy["spec"]["template"]["metadata"]["labels"].items()


def test_operator_pod_meets_the_restricted_pod_security_standard(objects):
    for case, objs in objects.items():
        pod = only(objs, "Deployment")["spec"]["template"]["spec"]
        assert_restricted(pod)
        assert pod["securityContext"]["runAsUser"] == 10001
        ctx = pod["containers"][0]["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True and ctx["runAsUser"] == 10001, case
        tmp = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}["/tmp"]
        assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}[tmp]


def test_restricted_checker_reports_each_violation():
    good = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}
    assert restricted_problems(good) == []
    cases = {
        "hostNetwork": lambda p: p.update(hostNetwork=True),
        "hostPID": lambda p: p.update(hostPID=True),
        "hostIPC": lambda p: p.update(hostIPC=True),
        "hostPath": lambda p: p.update(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
        "runAsNonRoot": lambda p: p["securityContext"].pop("runAsNonRoot"),
        "seccompProfile": lambda p: p["securityContext"].pop("seccompProfile"),
        "privileged": lambda p: p["containers"][0]["securityContext"].update(privileged=True),
        "allowPrivilegeEscalation": lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
        "drop must include ALL": lambda p: p["containers"][0]["securityContext"]["capabilities"].update(drop=[]),
        "SYS_ADMIN": lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        "initContainers['init']": lambda p: p.update(initContainers=[{"name": "init"}]),
    }
    for needle, breaks in cases.items():
        pod = copy.deepcopy(good)
        breaks(pod)
        problems = restricted_problems(pod)
        assert any(needle in problem for problem in problems), (needle, problems)
        with pytest.raises(AssertionError):
            assert_restricted(pod)
    # Container-level seccomp counts when the pod has none.
    pod = copy.deepcopy(good)
    pod["securityContext"].pop("seccompProfile")
    pod["containers"][0]["securityContext"]["seccompProfile"] = {"type": "Localhost", "localhostProfile": "p.json"}
    assert restricted_problems(pod) == []


def test_operator_settings_reach_the_environment(objects):
    env = env_of(objects["defaults"])
    assert set(env) - {"POD_NAMESPACE"} == ENV_NAMES
    assert env["GEMMAFT_NAMESPACES"] == ""
    # Never "any image": by default the repositories of the three trainer images, compared on path segments.
    assert env["GEMMAFT_ALLOWED_IMAGE_PREFIXES"] == "gemmaft-trainer-gpu,gemmaft-trainer-tpu,gemmaft-trainer-cpu"
    settings = OperatorSettings.from_env(env)
    assert settings.image_allowed("gemmaft-trainer-gpu:0.2.0") and not settings.image_allowed("docker.io/x/y:1")
    assert not settings.image_allowed("gemmaft-trainer-gpu-evil:1")
    assert env["GEMMAFT_ALLOWED_SERVICE_ACCOUNTS"] == "gemma-trainer"
    assert settings.service_accounts() == ("gemma-trainer",)
    assert env["GEMMAFT_IMAGE_GPU"] == "gemmaft-trainer-gpu:0.1.0"
    assert env["GEMMAFT_TRAINER_SERVICE_ACCOUNT"] == "gemma-trainer"
    assert (env["GEMMAFT_METRICS_PORT"], env["GEMMAFT_HEALTH_PORT"]) == ("9090", "8080")
    assert (env["GEMMAFT_LOG_FORMAT"], env["GEMMAFT_RUN_HISTORY"], env["GEMMAFT_PROGRESS_INTERVAL_SECONDS"]) == (
        "json", "10", "30")
    assert env_of(objects["namespaced"])["GEMMAFT_NAMESPACES"] == "a,b"
    custom = env_of(objects["custom"])
    values = CASES["custom"]
    assert custom["GEMMAFT_IMAGE_GPU"] == values["trainerImages"]["gpu"]
    assert custom["GEMMAFT_IMAGE_TPU"] == values["trainerImages"]["tpu"]
    assert custom["GEMMAFT_IMAGE_CPU"] == values["trainerImages"]["cpu"]
    assert custom["GEMMAFT_ALLOWED_IMAGE_PREFIXES"] == "us-central1-docker.pkg.dev/proj/,ghcr.io/me/"
    assert custom["GEMMAFT_TRAINER_SERVICE_ACCOUNT"] == "trainer"
    assert (custom["GEMMAFT_LOG_FORMAT"], custom["GEMMAFT_RUN_HISTORY"]) == ("plain", "25")
    assert (custom["GEMMAFT_METRICS_PORT"], custom["GEMMAFT_HEALTH_PORT"]) == ("9191", "8081")
    ports = {p["name"]: p["containerPort"] for p in container(objects["custom"])["ports"]}
    assert ports == {"health": 8081, "metrics": 9191}


def test_custom_image_scheduling_and_pod_metadata(objects, chart):
    objs = objects["custom"]
    c = container(objs)
    assert c["image"] == f"us-central1-docker.pkg.dev/proj/gemmaft/operator@{DIGEST}"
    assert c["imagePullPolicy"] == "Always"
    pod = only(objs, "Deployment")["spec"]["template"]
    spec = pod["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"pool": "system"} and spec["priorityClassName"] == "system-cluster-critical"
    assert spec["tolerations"] == CASES["custom"]["tolerations"] and spec["affinity"] == CASES["custom"]["affinity"]
    assert pod["metadata"]["labels"]["tier"] == "control" and pod["metadata"]["annotations"] == {"note": "x"}
    assert all(o["metadata"]["labels"]["team"] == "ml" for o in objs)
    tagged = objects_of(render_raw(chart, {"image": {"registry": "r.example/x/", "tag": "9.9.9"}}))
    assert container(tagged)["image"] == "r.example/x/gemmaft-operator:9.9.9"


# ------------------------------------------------------------------------------------------- RBAC


def test_cluster_wide_mode_uses_one_cluster_role_with_exactly_the_listed_verbs(objects):
    objs = objects["defaults"]
    assert of_kind(objs, "Role") == [] and of_kind(objs, "RoleBinding") == []
    role = only(objs, "ClusterRole")
    assert rule_map(role["rules"]) == EXPECTED_NAMESPACED_RULES | EXPECTED_CLUSTER_READS
    binding = only(objs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]


def test_namespaced_mode_uses_a_role_per_watched_namespace(objects, chart):
    objs = objects["namespaced"]
    roles = {r["metadata"]["namespace"]: r for r in of_kind(objs, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in of_kind(objs, "RoleBinding")}
    assert set(roles) == set(bindings) == {"a", "b"}
    for ns, role in roles.items():
        assert rule_map(role["rules"]) == EXPECTED_NAMESPACED_RULES
        assert bindings[ns]["roleRef"]["kind"] == "Role"
        assert bindings[ns]["roleRef"]["name"] == role["metadata"]["name"]
        assert bindings[ns]["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    discovery = only(objs, "ClusterRole")
    assert rule_map(discovery["rules"]) == EXPECTED_CLUSTER_READS
    assert only(objs, "ClusterRoleBinding")["roleRef"]["name"] == discovery["metadata"]["name"]
    strict = objects_of(render_raw(chart, {"watchNamespaces": ["a"], "rbac": {"clusterScopedReads": False}}))
    assert of_kind(strict, "ClusterRole") == [] and of_kind(strict, "ClusterRoleBinding") == []
    assert len(of_kind(strict, "Role")) == 1
    no_rbac = objects_of(render_raw(chart, {"rbac": {"create": False}}))
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} & {o["kind"] for o in no_rbac}


def test_rbac_has_no_wildcards_and_no_secrets(objects):
    rbac_objects = [o for objs in objects.values() for o in objs if o["kind"] in ("Role", "ClusterRole")]
    assert rbac_objects
    for role in rbac_objects:
        for rule in role["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
            for field in ("apiGroups", "resources", "verbs"):
                assert not any("*" in item for item in rule[field]), rule
            assert not {"secrets", "escalate", "bind", "impersonate"} & (set(rule["resources"]) | set(rule["verbs"]))


# ------------------------------------------------------------------------ service accounts, service


def test_trainer_service_account_per_namespace_with_workload_identity(objects, chart):
    def trainer_accounts(objs):
        return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in of_kind(objs, "ServiceAccount")
                if o["metadata"]["labels"]["app.kubernetes.io/component"] == "trainer"}

    assert set(trainer_accounts(objects["defaults"])) == {(NAMESPACE, "gemma-trainer")}
    assert set(trainer_accounts(objects["namespaced"])) == {("a", "gemma-trainer"), ("b", "gemma-trainer")}
    custom = trainer_accounts(objects["custom"])
    assert custom[(NAMESPACE, "trainer")]["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "t@proj.iam.gserviceaccount.com"}
    for sa in custom.values():
        assert sa["automountServiceAccountToken"] is False
    explicit = trainer_accounts(objects_of(render_raw(chart, {"trainerServiceAccount": {"namespaces": ["ml"]}})))
    assert set(explicit) == {("ml", "gemma-trainer")}
    none = objects_of(render_raw(chart, {"trainerServiceAccount": {"create": False}}))
    assert trainer_accounts(none) == {}
    operator_sa = only([o for o in objects["defaults"] if o["kind"] == "ServiceAccount"
                        and o["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"], "ServiceAccount")
    assert operator_sa["metadata"]["name"] == FULLNAME and operator_sa["automountServiceAccountToken"] is True


def test_metrics_service_and_optional_service_monitor(objects):
    assert of_kind(objects["defaults"], "ServiceMonitor") == []
    objs = objects["monitoring"]
    service = only(objs, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = only(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = only(objs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["scrapeTimeout"] == "10s"
    assert monitor["metadata"]["labels"]["release"] == "prom"


def test_network_policy_admits_only_the_metrics_port(objects):
    policy = only(objects["custom"], "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert policy["spec"]["ingress"][0]["from"] == CASES["custom"]["networkPolicy"]["metricsFrom"]
    assert "from" not in only(objects["defaults"], "NetworkPolicy")["spec"]["ingress"][0]


def test_notes_tell_the_next_commands(rendered):
    notes = rendered["defaults"]["gemma-finetune-operator/templates/NOTES.txt"]
    for needle in ("kubectl apply -f examples/", "kubectl get gft", "adapter", "gsutil ls",
                   "kubectl apply --server-side -f crds/gemmafinetunes.yaml"):
        assert needle in notes
    assert "a, b" in rendered["namespaced"]["gemma-finetune-operator/templates/NOTES.txt"]


# ----------------------------------------------------------------------------------------- checkov


def test_checkov_skips_each_carry_a_reason():
    text = (CHART / ".checkov.yaml").read_text()
    config = yaml.safe_load(text)
    skips = config["skip-check"]
    assert skips
    for check in skips:
        line = next(ln for ln in text.splitlines() if re.match(rf"\s*-\s*{check}\b", ln))
        reason = line.partition("# reason:")[2].strip()
        assert len(reason.split()) >= 8, f"{check} is skipped without a written reason"


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is not installed (make tools-venv installs it)")
def test_checkov_finds_no_failed_checks(rendered, tmp_path):
    for case, out in rendered.items():
        folder = tmp_path / case
        folder.mkdir()
        for path, text in out.items():
            if path.endswith(".yaml") and text.strip():
                (folder / Path(path).name).write_text(text)
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json", "--quiet",
         "--config-file", str(CHART / ".checkov.yaml")],
        check=False, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['check_name']} ({c['resource']})"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert failed == []
    summary = reports[0]["summary"]
    assert summary["parsing_errors"] == 0 and summary["passed"] > 50
    assert summary["resource_count"] >= len(objects_of(rendered["custom"]))


# ------------------------------------------------------------------------------------------ GitOps

GITOPS = REPO / "examples" / "gitops"


def _gitops_docs() -> dict[str, dict]:
    return {p.relative_to(GITOPS).as_posix(): yaml.safe_load(p.read_text())
            for p in sorted(GITOPS.glob("*/*.yaml"))}


def test_gitops_finetunes_are_valid_per_the_crd_and_the_operator():
    from gemma_operator.api import parse_finetune

    from tests.support.crd_schema import validate

    finetunes = sorted((GITOPS / "finetunes").glob("*.yaml"))
    assert len(finetunes) >= 2
    for path in finetunes:
        doc = yaml.safe_load(path.read_text())
        assert validate(doc) == [], path.name
        assert parse_finetune(doc).spec.output.uri.startswith("gs://")


def test_gitops_sources_point_at_real_paths_and_their_values_render(chart):
    docs = _gitops_docs()
    argo = {k: d for k, d in docs.items() if d["kind"] == "Application"}
    assert {d["spec"]["source"]["path"] for d in argo.values()} == {
        "charts/gemma-finetune-operator", "examples/gitops/finetunes"}
    for app in argo.values():
        assert (REPO / app["spec"]["source"]["path"]).is_dir()
        assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    release = next(d for d in docs.values() if d["kind"] == "HelmRelease")
    assert (REPO / release["spec"]["chart"]["spec"]["chart"]).resolve() == CHART
    kustomization = next(d for d in docs.values() if d["kind"] == "Kustomization")
    assert (REPO / kustomization["spec"]["path"]).resolve() == GITOPS / "finetunes"
    source = next(d for d in docs.values() if d["kind"] == "GitRepository")["metadata"]["name"]
    assert release["spec"]["chart"]["spec"]["sourceRef"]["name"] == kustomization["spec"]["sourceRef"]["name"] == source
    argo_values = next(a for a in argo.values() if "helm" in a["spec"]["source"])["spec"]["source"]["helm"]["valuesObject"]
    for values in (argo_values, release["spec"]["values"]):
        objs = objects_of(render_raw(chart, values))
        assert env_of(objs)["GEMMAFT_NAMESPACES"] == "ml"
        for obj in objs:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


# ---------------------------------------------------------------------------------------------- Argo CD health


def _argocd_health(obj: dict) -> dict:
    """Run the chart's Lua health check the way Argo CD does: ``obj`` in, a {status, message} table out."""
    lupa = pytest.importorskip("lupa")
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    script = (REPO / "charts/gemma-finetune-operator/argocd/health.lua").read_text()
    check = lua.eval(f"function(obj) {script} end")
    result = check(lua.table_from(json.loads(json.dumps(obj)), recursive=True))
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize(("phase", "stalled", "health"), [
    ("Pending", False, "Progressing"), ("Running", False, "Healthy"), ("Suspended", False, "Suspended"),
    ("Succeeded", False, "Healthy"), ("Failed", True, "Degraded"), ("Pending", True, "Degraded"),
])
def test_argocd_health_check_reads_the_operators_conditions(phase, stalled, health):
    from gemma_operator.reconcile import kstatus_conditions

    conditions = kstatus_conditions([], phase, "Why", f"{phase} because", stalled, "T", 3)
    obj = {"metadata": {"generation": 3}, "status": {"observedGeneration": 3, "phase": phase,
                                                     "conditions": conditions}}
    got = _argocd_health(obj)
    assert got["status"] == health and (got["message"] == f"{phase} because" or health == "Progressing")
    obj["metadata"]["generation"] = 4  # an edit the operator has not seen yet is never Healthy
    assert _argocd_health(obj)["status"] == "Progressing"
