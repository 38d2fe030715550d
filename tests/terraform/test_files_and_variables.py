"""terraform/ has one file per concern, pinned providers, typed, described and validated variables that are all
used, described outputs, and an example tfvars that sets only declared variables with allowed values."""

from __future__ import annotations

import re

from tests.terraform.parse import EXAMPLE_TFVARS, TF, allowed_values, load_hcl

EXPECTED_FILES = {
    "versions.tf", "providers.tf", "variables.tf", "outputs.tf", "locals.tf", "apis.tf", "network.tf",
    "cluster.tf", "nodepools-system.tf", "nodepools-gpu.tf", "nodepools-tpu.tf", "storage.tf", "registry.tf",
    "iam.tf", "operator.tf",
}


def test_one_file_per_concern():
    present = {p.name for p in TF.glob("*.tf")}
    assert EXPECTED_FILES <= present, f"missing: {sorted(EXPECTED_FILES - present)}"
    assert (TF / "README.md").is_file()
    assert EXAMPLE_TFVARS.is_file()


def test_provider_versions_are_pinned(tf):
    assert len(tf["terraform"]) == 1, "exactly one terraform block (versions.tf)"
    block = tf["terraform"][0]
    assert "required_version" in block
    providers: dict = {}
    for entry in block["required_providers"]:
        providers.update(entry)
    assert providers["google"] == {"source": "hashicorp/google", "version": ">= 7.17, < 8"}
    assert providers["google-beta"] == {"source": "hashicorp/google-beta", "version": ">= 7.17, < 8"}
    for name in ("helm", "kubernetes"):
        assert providers[name]["source"] == f"hashicorp/{name}"
    for name, p in providers.items():
        assert re.search(r">=\s*[\d.]+", p["version"]) and re.search(r"<\s*[\d.]+", p["version"]), (
            f"{name}: version {p['version']!r} needs a lower and an upper bound")


def test_every_variable_has_type_description_and_validation_when_constrained(tf):
    assert len(tf["variable"]) > 20
    for name, v in tf["variable"].items():
        assert v.get("type"), f"variable {name} has no type"
        assert isinstance(v.get("description"), str) and len(v["description"]) > 15, f"{name}: no description"
        if v["type"] not in ("bool", "${bool}"):
            assert v.get("validation"), f"variable {name} ({v['type']}) takes constrained values but has no validation"
            for rule in v["validation"]:
                assert f"var.{name}" in rule["condition"], f"{name}: validation does not test var.{name}"
                assert rule["error_message"].strip(), f"{name}: empty error_message"


def test_variables_used_and_references_declared(tf):
    text = "\n".join(tf["files"].values())
    used_vars = set(re.findall(r"\bvar\.(\w+)", text))
    assert used_vars - set(tf["variable"]) == set(), "referenced but not declared"
    elsewhere = "\n".join(t for f, t in tf["files"].items() if f != "variables.tf")
    unused = {name for name in tf["variable"] if not re.search(rf"\bvar\.{name}\b", elsewhere)}
    assert unused == set(), f"declared but never used: {sorted(unused)}"
    used_locals = set(re.findall(r"\blocal\.(\w+)", text))
    assert used_locals - set(tf["locals"]) == set(), "locals referenced but not declared"


def test_outputs_have_descriptions(tf):
    for name in ("cluster_name", "bucket_name", "registry_url", "trainer_service_account_email",
                 "operator_service_account_email", "tpu_v3_slice_hosts", "get_credentials_command"):
        assert name in tf["output"], name
    for name, o in tf["output"].items():
        assert o.get("description"), f"output {name} has no description"


def test_example_tfvars_sets_only_declared_variables_with_allowed_values(tf):
    example = load_hcl(EXAMPLE_TFVARS)
    declared = set(tf["variable"])
    assert set(example) - declared == set(), "example sets undeclared variables"
    required = {n for n, v in tf["variable"].items() if "default" not in v}
    assert required <= set(example), f"example misses required variables {sorted(required - set(example))}"
    for name in ("t4_gpus_per_node", "t4_gpu_driver_version", "tpu_v3_slice_topology", "release_channel"):
        if name in example:
            assert example[name] in allowed_values(tf, name), name
    assert re.fullmatch(r"n1-[a-z]+-\d+", example["t4_machine_type"])
