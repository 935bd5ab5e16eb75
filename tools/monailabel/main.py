"""MONAI Label app that serves this project's bundles: a volume in, the synthesised (or registered) image out.

    monailabel start_server --app tools/monailabel --studies <folder of NIfTI> --conf models cyclegan
                            [--conf bundle_dirs <folder of downloaded bundles>]

``models``: comma-separated bundle names, or ``all`` (default). ``bundle_dirs``: folders of bundles searched
before the repository's ``bundles/`` (``bundle_discovery.py``). Every bundle is served by the same task
(``bundle_infer_task.py``), driven by its own ``inference.json`` and ``metadata.json``: a new bundle needs no
change here. A bundle that cannot serve (no weights, unreadable config) is listed with the reason under
``unavailable_models`` in ``/info``. Errors reach the client as JSON ``{"detail": ...}``: 404 for an unknown
model or image id, 503 for an unavailable model, 422 for an input the bundle cannot read or check.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(APP_DIR))  # the app's own modules
# `common` for bundles of the repository's bundles/. Python imports it once per server: a downloaded bundle's
# vendored copy is used if that bundle loads first (MONAI Label puts a bundle's folder first on sys.path while
# loading it), unless the `monailabel` launcher already put the repository on PYTHONPATH (it adds the folder
# above its virtualenv, which is the repository for .venv-monailabel; it may be newer than a bundle's copy).
sys.path.append(str(APP_DIR.parents[1]))

from fastapi import HTTPException  # noqa: E402
from monailabel.interfaces.app import MONAILabelApp  # noqa: E402

from bundle_discovery import bundle_dirs, select_bundles  # noqa: E402
from bundle_infer_task import ImageBundleInferTask, InputImageError  # noqa: E402

logger = logging.getLogger(__name__)


class BundleServingApp(MONAILabelApp):
    """One :class:`ImageBundleInferTask` per bundle named in ``--conf models``."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]):
        self.bundle_dirs = bundle_dirs(conf.get("bundle_dirs"))
        self.entries = select_bundles(conf.get("models"), self.bundle_dirs)
        self.unavailable: dict[str, str] = {}
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="MONAI bundles: image translation and registration",
            description="Synthesised contrasts (and registered images) from this project's MONAI bundles",
        )

    def init_infers(self):
        infers = {}
        for entry in self.entries:
            problem = entry.problem
            if problem is None:
                try:
                    task = ImageBundleInferTask(entry, self.conf)
                    if task.is_valid():
                        infers[entry.name] = task
                    else:
                        problem = f"{entry.path}: MONAI Label rejected the bundle (see the server log)."
                except Exception as e:  # a broken config must not take the other bundles down
                    problem = f"{entry.path}: cannot load inference.json and the weights: {type(e).__name__}: {e}"
            if problem is not None:
                logger.warning(f"bundle '{entry.name}' is not served: {problem}")
                self.unavailable[entry.name] = problem
        return infers

    def info(self):
        info = super().info()
        info["unavailable_models"] = dict(self.unavailable)
        info["bundle_dirs"] = [str(d) for d in self.bundle_dirs]
        return info

    def _image_file(self, image_id: str, datastore, what: str) -> str:
        path = datastore.get_image_uri(image_id)
        if not path:
            raise HTTPException(404, f"{what}: no image '{image_id}' in the studies folder.")
        return path

    def infer(self, request, datastore=None):
        model = request.get("model")
        task = self._infers.get(model)
        if task is None:
            if model in self.unavailable:
                raise HTTPException(503, f"model '{model}' is not available: {self.unavailable[model]}")
            raise HTTPException(404, f"no model '{model}'; this server serves {sorted(self._infers)}"
                                     f" (unavailable: {sorted(self.unavailable)}).")
        datastore = datastore or self.datastore()
        request = dict(request)
        image = request.get("image")
        if isinstance(image, str) and not Path(image).exists():  # an id (an uploaded file arrives as a path)
            self._image_file(image, datastore, "image")
        for key in task.extra_inputs:  # e.g. the moving image of a registration bundle: ids only, never paths
            if not request.get(key):
                if key in task.optional_inputs:  # e.g. a contrast the user does not have
                    request.pop(key, None)
                    continue
                raise HTTPException(422, f"model '{model}' needs the request parameter '{key}': an image id.")
            request[key] = self._image_file(str(request[key]), datastore, key)
        try:
            return super().infer(request, datastore)
        except InputImageError as e:
            raise HTTPException(422, str(e)) from e
