"""What the bundles' commands need around MONAI's runner: where the bundle is, whether its weights exist, and
inference file by file.

- ``bundle_root``: the folder of the config file given to ``python -m monai.bundle run --config_file ...``, so a
  bundle (the repository's or a self-contained copy such as the demo's) finds its own ``models/`` wherever the
  command is typed; ``--bundle_root DIR`` overrides it as in the model zoo.
- ``require_weights``: missing weights end the command with one line that names the file and how to get it,
  not a traceback through the config parser.
- ``infer_each``: runs an inference evaluator one input at a time with per-file progress, so one bad file does
  not stop the others, then says what was written and what failed (exit status 1 if anything failed).
- ``one_line_errors``: under ``python -m monai.bundle``, an error this package raised on purpose (a missing input,
  a bad datalist, images on different grids) ends the command with its own message on one line and exit status 1,
  not a traceback through MONAI's config parser (``COMMON_TRACEBACK=1`` shows the traceback).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def _config_files_from_argv(argv: list[str]) -> list[str]:
    """The value of ``--config_file`` on a ``monai.bundle`` command line: one path, a comma-separated list or a
    Python-style list string (``"['a.json','b.json']"``)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config_file="):
            value = arg.split("=", 1)[1]
        elif arg == "--config_file" and i + 1 < len(argv):
            value = argv[i + 1]
        else:
            continue
        value = value.strip().strip("[]")
        return [part.strip().strip("'\"") for part in value.split(",") if part.strip().strip("'\"")]
    return []


def bundle_root(name: str, argv: list[str] | None = None) -> str:
    """The bundle's root folder: the parent of the ``configs/`` folder holding the first ``--config_file`` of this
    command; without one (e.g. a config parsed by MONAI Label, which sets ``bundle_root`` itself), ``bundles/<name>``
    when typed from the repository root, else the current folder."""
    files = _config_files_from_argv(sys.argv if argv is None else argv)
    if files:
        folder = Path(files[0]).parent
        return str(folder.parent if folder.name == "configs" else folder)
    return f"bundles/{name}" if os.path.isdir(f"bundles/{name}") else "."


def require_weights(path: str | os.PathLike, root: str | os.PathLike, name: str) -> str:
    """``path`` if it is a file; otherwise stops the command with a message naming it and commands that, pasted,
    give bundle ``name`` rooted at ``root`` weights its command can use."""
    if os.path.isfile(path):
        return str(path)
    root = Path(root)
    given = _config_files_from_argv(sys.argv)  # train.json beside the config the command ran, wherever that is
    train = Path(given[0]).parent / "train.json" if given else root / "configs" / "train.json"
    raise SystemExit(
        f"error: no trained weights at '{path}'. Either:\n"
        f"  train them at this config's sizes (the paper's by default: days on a CPU) on the sample data (data/):\n"
        f"    python -m tools.sample_data && python -m monai.bundle run training --config_file {train} "
        f"--bundle_root {root} --dataset_dir data\n"
        f"  or run the demo (about 10 min on two CPU cores), then your command again with its --config_file files taken "
        f"from the demo's bundle, whose configs carry the demo's sizes:\n"
        f"    python -m tools.demo {name}    then: --config_file outputs/demo/bundles/{name}/configs/<the same file>.json\n"
        f"  or give weights trained at this config's sizes: --ckpt_path FILE (a release: README, Pretrained bundles)"
    )


_MONAI_WRAPPERS = ("applying transform", "Failed to evaluate")


def root_error(exc: BaseException) -> BaseException:
    """The error to report: the first in the chain that is not one of MONAI's wrappers ("applying transform ...",
    "Failed to evaluate ..."), which say where an error passed, not what it was."""
    chain = []
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return next((e for e in chain if not str(e).startswith(_MONAI_WRAPPERS)), chain[-1])


_PACKAGE = str(Path(__file__).resolve().parent)
_USER_ERRORS = (ValueError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError)


def user_error(exc: BaseException) -> BaseException | None:
    """The root error if this package raised it on purpose (one of ``_USER_ERRORS`` from a frame under ``common/``:
    a message for the user), else None (a bug or a library's error: its traceback is what helps)."""
    root = root_error(exc)
    if not isinstance(root, _USER_ERRORS) or root.__traceback__ is None:
        return None
    tb = root.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return root if str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(_PACKAGE) else None


def one_line_errors() -> None:
    """Installs a ``sys.excepthook`` that prints ``error: <message>`` for ``user_error`` exceptions (exit status 1,
    as for any uncaught exception); other exceptions keep the full traceback. Only under ``python -m monai.bundle``."""
    main = sys.modules.get("__main__")
    if getattr(main, "__spec__", None) is None or main.__spec__.name not in ("monai.bundle.__main__", "monai.bundle"):
        return
    previous = sys.excepthook

    def hook(kind, exc, tb):
        root = user_error(exc) if not os.environ.get("COMMON_TRACEBACK") else None
        if root is None:
            previous(kind, exc, tb)
            return
        message = root.args[0] if isinstance(root, KeyError) and root.args else str(root)
        print(f"error: {message}", file=sys.stderr)

    sys.excepthook = hook


def _files_under(folder: str | os.PathLike) -> dict[Path, float]:
    folder = Path(folder)
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}


def _input_name(item: dict) -> str:
    """The input's file(s), e.g. ``fixed.nii.gz + moving.nii.gz`` for a registration pair."""
    return " + ".join(str(v) for v in item.values() if isinstance(v, (str, os.PathLike))) or str(item)


class InferenceFailed(SystemExit):
    """Some inputs of an inference run failed; ``failures`` holds (input, reason) pairs, the message one line each."""

    def __init__(self, failures: list[tuple[str, str]]):
        self.failures = failures
        lines = [f"inference failed for {len(failures)} input(s):"] + [
            f"  {name}: {reason}" for name, reason in failures
        ]
        super().__init__("\n".join(lines))


def infer_each(evaluator, output_dir: str | os.PathLike) -> list[Path]:
    """Runs ``evaluator`` (an inference ``SupervisedEvaluator`` whose data loader reads a ``Dataset`` of input items)
    on each item in turn, logging ``[i/n] input: written files (seconds)`` or ``[i/n] FAILED input: reason``.

    Ends with a summary; after trying every input, raises ``InferenceFailed`` (a ``SystemExit``: status 1, the
    failures printed one per line) if any failed. Returns the files written (new or changed under ``output_dir``).
    """
    from monai.data import DataLoader, Dataset

    dataset = evaluator.data_loader.dataset
    items = list(dataset.data)
    written: list[Path] = []
    failed: list[tuple[str, str]] = []
    for i, item in enumerate(items, 1):
        name = _input_name(item)
        before = _files_under(output_dir)
        # one item per run: the same evaluator, handlers and (already loaded) network, a loader over this input only
        evaluator.data_loader = DataLoader(Dataset([item], transform=dataset.transform), batch_size=1, num_workers=0)
        evaluator.state.epoch_length = 1  # else the engine keeps the whole list's length and repeats this input
        start = time.perf_counter()
        try:
            evaluator.run()
        except Exception as exc:  # noqa: BLE001 -- reported and counted; the other inputs still run
            # ignite keeps its finished run generator after an exception: drop it so that the next run() starts
            evaluator._internal_run_generator = None
            cause = root_error(exc)
            failed.append((name, f"{type(cause).__name__}: {cause}"))
            logger.error("[%d/%d] FAILED %s: %s", i, len(items), name, failed[-1][1])
            continue
        new = sorted(p for p, t in _files_under(output_dir).items() if before.get(p) != t)
        written += new
        logger.info(
            "[%d/%d] %s -> %s (%.1f s)",
            i,
            len(items),
            name,
            ", ".join(map(str, new)) or "nothing written",
            time.perf_counter() - start,
        )
    logger.info("inference done: %d of %d inputs written to '%s'.", len(items) - len(failed), len(items), output_dir)
    if failed:
        raise InferenceFailed(failed)
    return written


__all__ = ["InferenceFailed", "bundle_root", "infer_each", "require_weights", "root_error"]
