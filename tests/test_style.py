"""The shared `common` package (vendored into every bundle) passes the MONAI model zoo's code-style checks: flake8
with the zoo's plugins and settings (setup.cfg), black and isort (pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [["flake8", "common"], ["black", "--check", "--quiet", "common"], ["isort", "--check-only", "--quiet", "common"]],
    ids=["flake8", "black", "isort"],
)
def test_common_passes_the_zoo_style_checks(command):
    proc = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(command)} on common/:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"


def test_flake8_runs_the_zoo_plugins():
    """The zoo selects bugbear (B, B9) and pep8-naming (N): without the plugins flake8 would pass them silently."""
    proc = subprocess.run([sys.executable, "-m", "flake8", "--version"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and "flake8-bugbear" in proc.stdout and "pep8-naming" in proc.stdout, proc.stdout
