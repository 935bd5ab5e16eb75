"""Shared fixtures: the real sample data from ../shared/data (imported once per session), small sizes."""

from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The commands the tests start write UTF-8 whatever the locale (libraries print marks such as a check mark), and
# the tests read their output as UTF-8: a C/ASCII locale (as on some CI machines) must not fail a test.
os.environ["PYTHONIOENCODING"] = "utf-8"


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
    sample_data.import_from(SHARED, dest, groups=["brain_mri_quick", "ct"])
    return dest


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; ``/truncated/<file>`` announces the whole file's Content-Length and sends half of it,
    ``/nolength/<file>`` sends half with no Content-Length; both then close the connection."""

    def do_GET(self):
        for mode in ("truncated", "nolength"):
            if self.path.startswith(f"/{mode}/"):
                data = (Path(self.directory) / self.path[len(mode) + 2:]).read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                if mode == "truncated":
                    self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def release_server(tmp_path_factory):
    """(base URL, served folder) of an HTTP server on 127.0.0.1 in a thread, shut down after the session."""
    served = tmp_path_factory.mktemp("served")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def release_build(data_dir, release_server, tmp_path_factory):
    """``release_build(name)``: a test-size release of a bundle (a short training run on the real data) served by
    ``release_server``; built once per session, shared by the release and the MONAI Label tests."""
    from bundle_utils import source_files
    from tools import release

    url, served = release_server
    bundles = ROOT / "bundles"

    @functools.cache
    def build(name: str) -> dict:
        before = source_files(bundles / name, ROOT / "common")
        source_meta = (bundles / name / "configs/metadata.json").read_text(encoding="utf-8")
        index = tmp_path_factory.mktemp(f"{name}_index") / "index.json"
        result = release.build_release(name, train=True, size="test", out=served, index_path=index,
                                       data_dir=data_dir, url_base=url, allow_dirty=True, quiet=True, threads=1)
        # built in a temporary folder: no weights, logs or results in the source tree, its metadata not bumped
        assert source_files(bundles / name, ROOT / "common") == before
        assert (bundles / name / "configs/metadata.json").read_text(encoding="utf-8") == source_meta
        return result

    return build
