"""MONAI Label infer task for a bundle whose output is an image (synthesis now, registration later).

MONAI Label's ``BundleInferTask`` reads ``bundle_root``, ``device``, ``network_def``, ``preprocessing``,
``inferer`` and ``postprocessing`` from the bundle's ``inference.json`` and the weights from ``models/model.pt``
(the checkpoint's ``model`` key, or the plain ``state_dict``). It is written for segmentation; this task changes
what an image result needs, so that ``inference.json`` stays the one definition of the pipeline:

* result type ``others``, no label names, ``dimension`` 3 (the request is a volume, whatever the network sees);
* no MONAI Label ``Restored``: the bundle's own ``Invertd`` already puts the output on the input's grid;
* the bundle's ``SaveImaged`` is dropped from the post-transforms and its ``SaveImage`` (writer, dtype,
  extension) writes the result file, so the server returns what ``inference.json`` would write;
* images beyond ``image`` named in the metadata's inputs (``extra_inputs``) come as request parameters; the app
  resolves them from image ids to files before the task runs; optional ones may be absent, so the bundle's own
  ``LoadImaged`` (which may allow missing keys) replaces MONAI Label's ``LoadImageTensord`` wrapper (which reads
  every key) where the bundle's allows missing keys;
* a request whose input cannot be read or checked raises :class:`InputImageError` naming the file.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

import numpy as np
from monai.transforms import Compose, SaveImage, SaveImaged
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.transform.pre import LoadImageTensord

from bundle_discovery import BundleEntry

logger = logging.getLogger(__name__)


class InputImageError(ValueError):
    """The request's image (or an extra input) cannot be read or fails the bundle's input checks."""


class ImageBundleInferTask(BundleInferTask):
    """Serves ``entry``'s ``inference.json``; the result is the output image as the bundle itself writes it."""

    def __init__(self, entry: BundleEntry, conf: dict[str, str]):
        super().__init__(str(entry.path), conf, type=InferType.OTHERS, add_post_restore=False, post_filter=[SaveImaged])
        self.model_name = entry.name
        self.extra_inputs = list(entry.extra_inputs)
        self.optional_inputs = list(entry.optional_inputs)
        self.labels = {}  # an image, not classes (BundleInferTask took the output's channel names as labels)
        self.dimension = 3

    def info(self) -> dict[str, Any]:
        i = super().info()
        i["result"] = "image"
        i["inputs"] = {"image": "the request's image", **{
            k: f"request parameter '{k}': an image id{' (optional)' if k in self.optional_inputs else ''}" for k in self.extra_inputs}}
        return i

    def pre_transforms(self, data=None):
        return [t.load_image_d if isinstance(t, LoadImageTensord) and getattr(t.load_image_d, "allow_missing_keys", False)
                else t for t in super().pre_transforms(data)]

    def run_pre_transforms(self, data: dict[str, Any], transforms):
        # MONAI's Spacingd updates every `<key>_*` entry as a meta dict; MONAI Label's request has `image_path`
        # (a str) and would break it, so such entries are set aside while the bundle's preprocessing runs
        inputs = ("image", *self.extra_inputs)
        files = [data[k] for k in ("image_path", *self.extra_inputs) if isinstance(data.get(k), str)]
        aside = {k: data.pop(k) for k in list(data) if k.startswith(tuple(f"{i}_" for i in inputs))
                 and not isinstance(data[k], dict)}
        try:
            return {**super().run_pre_transforms(data, transforms), **aside}
        except Exception as e:
            # reading or checking the input: the client's file, not the server, is at fault
            logger.warning(f"{self.model_name}: pre-transforms failed on {files}", exc_info=True)
            cause = e  # MONAI's Compose wraps a transform's error in "applying transform ...": report the innermost
            while cause.__cause__ is not None and str(cause.__cause__).strip():
                cause = cause.__cause__
            reason = (str(cause).strip().splitlines() or [""])[0]  # MONAI's LoadImage appends every reader's traceback
            raise InputImageError(f"model '{self.model_name}' cannot use the input {', '.join(files)}: "
                                  f"{type(cause).__name__}: {reason}") from e

    def _bundle_saver(self) -> SaveImage:
        """The ``SaveImage`` of the bundle's ``SaveImaged`` (float32 NIfTI for the translation bundles)."""
        post = self.bundle_config.get_parsed_content("postprocessing", instantiate=True)
        for t in post.transforms if isinstance(post, Compose) else post:
            if isinstance(t, SaveImaged):
                return t.saver
        return SaveImage(output_dtype=np.float32, resample=False, separate_folder=False)

    def writer(self, data: dict[str, Any], extension=None, dtype=None):
        """Writes ``data[pred]`` (channel-first, on the input's grid) to a temporary file the server sends back."""
        stem = tempfile.NamedTemporaryFile(prefix=f"{self.model_name}_").name
        saver = self._bundle_saver()
        saver(data[self.output_label_key], filename=stem)
        return f"{stem}{saver.output_ext}", dict(data.get(self.output_json_key, {}))
