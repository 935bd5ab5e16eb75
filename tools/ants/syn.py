"""Runs in the ANTs virtualenv (``python3.11 -m tools.ants setup``): registers one pair with ANTs SyN.

    .venv-ants/bin/python tools/ants/syn.py PAIR.npz FIELD.npz [--transform SyN] [--options '{"reg_iterations": [40, 20, 10]}'] [--threads 2]

``PAIR.npz`` holds ``fixed`` and ``moving`` (3D float arrays on one grid) and ``spacing`` (mm per array axis);
``FIELD.npz`` receives ``ddf``, the pull-back displacement (3, *shape) in voxels along the array axes
(``warped(x) = moving(x + ddf(x))``, the convention of ``common.registration``), and ``seconds``, the time of
``ants.registration`` alone. The arrays are handed to ANTs with zero origin and identity direction, so ANTs'
physical axes are the array's axes and the composed displacement in mm divided by the spacing is the voxel field.
Called by ``tools.registration_baseline.syn_register``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pair", help=".npz with fixed, moving, spacing")
    p.add_argument("field", help=".npz to write ddf (voxels) and seconds into")
    p.add_argument("--transform", default="SyN", help="ants.registration's type_of_transform (default SyN: affine, "
                   "then SyN, both with Mattes mutual information)")
    p.add_argument("--options", type=json.loads, default={}, help="ants.registration's further arguments as a JSON "
                   "object, e.g. '{\"total_sigma\": 3, \"reg_iterations\": [40, 20, 10]}' (SyN's iterations per level, the last "
                   "at full resolution)")
    p.add_argument("--threads", type=int, default=2, help="ITK threads")
    p.add_argument("--seed", type=int, default=1, help="seed of the random sampling of the affine stage's metric "
                   "(non-zero: ANTs takes 0 as no seed)")
    args = p.parse_args()
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)  # read when ANTs starts its threads
    import ants
    import numpy as np

    # antsRegistration's --random-seed (the affine metric's random sampling): on one thread a pair then gives the
    # same field every run (on more, each thread samples on its own and the field varies slightly from run to run);
    # on=False keeps the threads (on=True would force one)
    ants.config.set_ants_deterministic(False, args.seed)

    pair = np.load(args.pair)
    spacing = tuple(float(s) for s in pair["spacing"])
    fixed, moving = (ants.from_numpy(np.asarray(pair[k], np.float32), origin=(0.0, 0.0, 0.0), spacing=spacing,
                                     direction=np.eye(3)) for k in ("fixed", "moving"))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = ants.registration(fixed, moving, type_of_transform=args.transform, outprefix=f"{tmp}/syn_",
                                   **args.options)
        seconds = time.perf_counter() - start
        # the forward transforms composed into one displacement field on the fixed grid: (x, y, z, 3) in mm
        composed = ants.apply_transforms(fixed, moving, result["fwdtransforms"], compose=f"{tmp}/composed_")
        if composed is None:
            raise SystemExit(f"ANTs composed no displacement field from {result['fwdtransforms']}")
        mm = ants.image_read(composed).numpy()
    ddf = np.moveaxis(mm, -1, 0) / np.asarray(spacing).reshape(3, 1, 1, 1)  # (x, y, z, 3) mm -> (3, x, y, z) voxels
    np.savez(args.field, ddf=ddf.astype(np.float32), seconds=seconds)  # into the caller's temporary folder


if __name__ == "__main__":
    main()
