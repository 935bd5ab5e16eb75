"""Side virtualenvs for tools whose packages cannot install beside the project's pinned stack (standard library
only: runs with a bare Python 3.11).

``tools/monailabel`` (MONAI Label imports torchvision, which does not install beside torch 2.13.0) and
``tools/ants`` (antspyx pins numpy < 2.4) each keep a ``requirements.txt`` and set up their own virtualenv with
``python3.11 -m tools.<name> setup``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from pathlib import Path


def setup(venv_dir: Path, requirements: Path, import_check: str, quiet: bool = False) -> Path:
    """Creates (or completes) ``venv_dir`` with ``requirements`` and runs ``import_check`` (Python code) in it;
    returns its python."""
    if sys.version_info[:2] != (3, 11):
        print(f"warning: {requirements} is pinned for Python 3.11, this is {sys.version.split()[0]}", file=sys.stderr)
    python = venv_dir / "bin" / "python"
    if not python.exists():
        print(f"creating {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    pip = [str(python), "-m", "pip", "install", "-r", str(requirements)] + (["-q"] if quiet else [])
    print("$ " + " ".join(pip), flush=True)
    subprocess.run(pip, check=True)
    subprocess.run([str(python), "-c", import_check], check=True)
    return python


def setup_command(argv: list[str] | None, prog: str, description: str, default_venv: Path, requirements: Path,
                  import_check: str) -> Path:
    """``python3.11 -m tools.<name> setup [--venv DIR] [-q]``: parses ``argv``, sets the virtualenv up (``setup``)
    and returns its folder."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup", help=f"create the virtualenv with {requirements.parent.name}/{requirements.name}")
    p.add_argument("--venv", type=Path, default=default_venv, help=f"virtualenv folder (default: {default_venv.name})")
    p.add_argument("-q", "--quiet", action="store_true", help="quiet pip")
    args = parser.parse_args(argv)
    venv_dir = args.venv.resolve()
    setup(venv_dir, requirements, import_check, args.quiet)
    return venv_dir


def shown(path: Path) -> Path:
    """``path`` relative to the working directory where it lies below it (for printed commands)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
