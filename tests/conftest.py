"""Shared fixtures: the real sample data from ../shared/data (imported once per session), small sizes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: trains for more than a few seconds")
    config.addinivalue_line("markers", "monailabel: needs the MONAI Label virtualenv (python3.11 -m tools.monailabel setup)")
    if not SHARED.is_dir():
        raise pytest.UsageError(
            f"the real sample data is expected at {SHARED} (the repository's sibling 'shared/data'); "
            "tests never download it."
        )


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A dataset root laid out as `python -m tools.sample_data import` leaves it, with datalists."""
    from tools import sample_data

    dest = tmp_path_factory.mktemp("sample_data")
    sample_data.import_from(SHARED, dest, groups=["brain_mri"])
    return dest
