"""``gemmaft train``: read the run config, launch data-parallel workers when asked, map errors to exit codes.

Exit codes (gemma_api.run): 0 done; 2 invalid config, data or model (one line naming the file/field,
no stack trace); 3 the loss or gradients became non-finite (gemma_trainer.guard: not retried); 4 trained, but the
evaluation gate (spec.evaluation) failed: the log names the check, its score and minScore; 5 a data file pinned at
the run's first start is gone or changed (gemma_trainer.inputs); 1 transient (storage, no accelerator visible) or
unexpected; 143 preempted after a committed checkpoint.

With ``accelerator.count > 1`` on CUDA, this process starts ``torch.distributed.run`` with one worker per GPU
(``python -m gemma_trainer.cli --worker ...``), forwards SIGTERM to it and returns the exit code that rank 0
left in ``$GEMMAFT_EXIT_FILE``. ``GEMMAFT_NPROC`` overrides the number of workers (CPU tests of the launcher).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from gemma_api.run import (
    EXIT_FAILED,
    EXIT_INPUTS_CHANGED,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    EXIT_PREEMPTED,
)

from .backends import device_setup, emulated_setup
from .checkpoints import CheckpointError
from .config import load_run_config, stage_spec
from .errors import AcceleratorUnavailable, ConfigError, ModelError
from .inputs import InputsChanged
from .logs import setup_logging
from .object_store import StorageError
from .process import Rank, invocation_scratch
from .rows import DataError

log = logging.getLogger("gemma_trainer")

EXIT_FILE_ENV = "GEMMAFT_EXIT_FILE"
NPROC_ENV = "GEMMAFT_NPROC"


def _fail(code: int, message: str, command: str = "train") -> int:
    print(f"gemmaft {command}: {message}", file=sys.stderr, flush=True)
    return code


def train_main(args: argparse.Namespace) -> int:
    """Entry point of ``gemmaft train`` (args.file, args.output_uri, args.max_steps)."""
    setup_logging()
    with invocation_scratch():
        return _mapped(_train, args)


def _train(args: argparse.Namespace) -> int:
    cfg = load_run_config(args.file, getattr(args, "output_uri", None), getattr(args, "max_steps", None),
                          local_run=getattr(args, "emulate_accelerator", False))
    make_setup = setup_maker(args)
    setup = make_setup(stage_spec(cfg))
    nproc = int(os.environ.get(NPROC_ENV) or setup.nproc)
    if nproc > 1 and not getattr(args, "worker", False) and "LOCAL_RANK" not in os.environ:
        return launch_workers(args, nproc)
    from .evaluation.run import staged_run  # torch and transformers: the launcher needs neither

    rank = Rank.from_env()
    code = staged_run(cfg, rank, setup, make_setup)  # training, then the evaluation gate when the spec has one
    _leave_exit_code(rank.rank, code)
    return code


def _mapped(body, args: argparse.Namespace, command: str = "train") -> int:
    """``body(args)``'s exit code, with the expected errors mapped to theirs (one line, no stack trace)."""
    try:
        return body(args)
    except ConfigError as err:
        return _fail(EXIT_INVALID_INPUT, err.describe(), command)
    except (ModelError, DataError) as err:
        return _fail(EXIT_INVALID_INPUT, str(err), command)
    except InputsChanged as err:
        return _fail(EXIT_INPUTS_CHANGED, str(err), command)
    except (StorageError, CheckpointError, AcceleratorUnavailable) as err:
        return _fail(EXIT_FAILED, str(err), command)
    except KeyboardInterrupt:
        return _fail(EXIT_FAILED, "interrupted", command)
    except Exception:
        log.exception("unexpected error")
        return EXIT_FAILED


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation.run import evaluate  # torch and transformers

    cfg = load_run_config(args.file, getattr(args, "output_uri", None), local_run=True)
    if cfg.spec.evaluation is None:
        return _fail(EXIT_INVALID_INPUT, f"{args.file}: spec.evaluation: add the checks to run", "evaluate")
    return evaluate(cfg, Rank(), setup_maker(args)(stage_spec(cfg)), getattr(args, "adapter", None))


def evaluate_main(args: argparse.Namespace) -> int:
    """Entry point of ``gemmaft evaluate -f SPEC [--adapter PATH]``: the evaluation stage alone (exit 0 when the
    gate passed, 4 when not)."""
    setup_logging()
    with invocation_scratch():
        return _mapped(_evaluate, args, "evaluate")


def setup_maker(args: argparse.Namespace):
    """spec -> DeviceSetup as the command line asks: the accelerator's own setup, or (``--emulate-accelerator``)
    its arithmetic on the CPU; ``--precision`` names a policy of the precision table instead of the default."""
    precision = getattr(args, "precision", None)
    if getattr(args, "emulate_accelerator", False):
        return lambda spec: emulated_setup(spec, override=precision)
    return lambda spec: device_setup(spec, precision=precision)


def numerics_main(args: argparse.Namespace) -> int:
    """``gemmaft check-numerics -f SPEC [--rows N] [-o json] [--precision NAME]``: 0 safe, 1 unsafe, 2 bad input."""
    setup_logging()
    try:
        from .numerics import check, render_text  # torch and transformers

        spec = stage_spec(load_run_config(args.file, local_run=True))
        report = check(spec, rows=args.rows, precision=args.precision)
    except ConfigError as err:
        return _fail(EXIT_INVALID_INPUT, err.describe(), "check-numerics")
    except (ModelError, DataError) as err:
        return _fail(EXIT_INVALID_INPUT, str(err), "check-numerics")
    except (StorageError, CheckpointError) as err:
        return _fail(EXIT_FAILED, str(err), "check-numerics")
    print(json.dumps(report.to_json(), indent=1) if args.output == "json" else render_text(report), flush=True)
    return EXIT_OK if report.safe else EXIT_FAILED


def _leave_exit_code(rank: int, code: int) -> None:
    path = os.environ.get(EXIT_FILE_ENV)
    if path and rank == 0:
        Path(path).write_text(str(code))


def launch_workers(args: argparse.Namespace, nproc: int) -> int:
    """Run ``nproc`` data-parallel workers with torch.distributed.run and return rank 0's exit code."""
    fd, exit_file = tempfile.mkstemp(prefix="gemmaft-exit-")
    os.close(fd)
    Path(exit_file).write_text("")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "gemma_trainer.cli", "--worker", "-f", args.file]
    if getattr(args, "output_uri", None):
        cmd += ["--output-uri", args.output_uri]
    if getattr(args, "max_steps", None) is not None:
        cmd += ["--max-steps", str(args.max_steps)]
    if getattr(args, "precision", None):
        cmd += ["--precision", args.precision]
    env = dict(os.environ, **{EXIT_FILE_ENV: exit_file})
    env.pop(NPROC_ENV, None)
    log.info("launching %d data-parallel workers", nproc)
    child = subprocess.Popen(cmd, env=env, start_new_session=True)

    def forward(signum, frame):
        try:
            os.killpg(child.pid, signum)
        except ProcessLookupError:
            pass

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        rc = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    text = Path(exit_file).read_text().strip()
    os.unlink(exit_file)
    if text:
        return int(text)
    log.error("workers exited with %s and rank 0 left no exit code", rc)
    return EXIT_FAILED if rc != EXIT_PREEMPTED else EXIT_PREEMPTED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gemma_trainer.cli")
    parser.add_argument("-f", "--file", required=True)
    parser.add_argument("--output-uri")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--precision")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return train_main(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["EXIT_OK", "main", "train_main"]
