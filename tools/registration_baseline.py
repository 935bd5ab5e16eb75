"""The classical baselines for Deform-GAN: ANTs SyN and elastix (B-spline), both with Mattes mutual information.

    python3.11 -m tools.ants setup                     # ANTs SyN: antspyx in a virtualenv of its own (.venv-ants)
    pip install -r requirements-benchmark.txt          # elastix: itk-elastix, an optional dependency of the benchmark
    python -m tools.benchmark deform_gan --pairs outputs/demo/bundles/deform_gan

``syn_register`` and ``elastix_register`` register one pair of volumes given as arrays on one grid and return the
pull-back displacement in voxels along the array axes, the convention of ``common.registration`` (``warped(x) =
moving(x + u(x))``), so that the same ``registration_figures`` score every method on the same pairs. The arrays
are handed to ANTs and ITK with the grid's spacing, zero origin and identity direction: the displacement they
write (in mm along their physical axes, which are the array's axes in that case) divided by the spacing is the
voxel field.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ANTS_VENV = Path(__file__).resolve().parents[1] / ".venv-ants"
ANTS_SCRIPT = Path(__file__).resolve().parent / "ants" / "syn.py"
# antspyx's "SyN": an affine stage (up to 2100, 1200, 1200 iterations at 4x, 2x, 2x down-sampling) then SyN (40 and
# 20 iterations at 4x and 2x, none at full resolution), both with Mattes mutual information (32 bins). Its default
# total_sigma 0 (no smoothing of the total field) follows the cross-modal edges too closely; total_sigma 3 (a
# variance in voxels: chosen at 1 mm, smoother in mm on coarser grids) was the middle of the plateau on the held-out
# 1 mm pair (seed 0's deformation: mean endpoint error 1.51, 1.12, 0.98, 0.94, 0.92, 0.91 mm for total_sigma 0, 1,
# 2, 3, 4, 6), as elastix's grid below was chosen on that pair
SYN_TRANSFORM = "SyN"
SYN_OPTIONS = {"total_sigma": 3}

# elastix's default maps with a cross-modal metric: an affine stage, then a B-spline stage, 4 resolutions each,
# Mattes mutual information (the defaults' metric), 256 iterations per resolution (the default). The B-spline
# control points every 40 mm: the best of 10, 20, 30 and 40 mm on the held-out T1 -> T2 pair at 3 mm (mean endpoint
# error 18.3, 5.2, 3.3 and 3.0 mm; finer grids fold and diverge with mutual information on these images)
ELASTIX_STAGES = ("affine", "bspline")
ELASTIX_ITERATIONS = 256
ELASTIX_GRID_MM = 40.0


def _itk_image(array: np.ndarray, spacing: Sequence[float]):
    import itk

    # ITK's numpy view is (z, y, x): transposing makes ITK's axis i the array's axis i
    image = itk.image_from_array(np.ascontiguousarray(np.asarray(array, dtype=np.float32).T))  # a copy: a view would outlive its array
    image.SetSpacing([float(s) for s in spacing])
    return image


def syn_arguments(options: dict | None = None) -> dict:
    """The further ``ants.registration`` arguments SyN runs with: ``SYN_OPTIONS`` updated by ``options``."""
    return {**SYN_OPTIONS, **(options or {})}


def syn_register(fixed: np.ndarray, moving: np.ndarray, spacing: Sequence[float], threads: int = 2,
                 transform: str = SYN_TRANSFORM, options: dict | None = None,
                 venv: Path = ANTS_VENV) -> tuple[np.ndarray, float]:
    """Registers ``moving`` onto ``fixed`` (3D arrays on one grid of ``spacing`` mm) with ANTs
    (``ants.registration``'s ``type_of_transform``, SyN by default, with ``syn_arguments(options)``, e.g. options
    ``{"reg_iterations": [40, 20, 10]}``) in the ANTs virtualenv; returns the displacement (3, *shape) in
    voxels and the seconds the registration took (start-up and the field's composition excluded)."""
    python = venv / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"the ANTs SyN baseline needs its virtualenv, {venv} is missing: python3.11 -m tools.ants setup")
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(f"{tmp}/pair.npz", fixed=np.asarray(fixed, np.float32), moving=np.asarray(moving, np.float32),
                 spacing=np.asarray(spacing, np.float64))
        cmd = [str(python), str(ANTS_SCRIPT), f"{tmp}/pair.npz", f"{tmp}/field.npz", "--transform", transform,
               "--options", json.dumps(syn_arguments(options)), "--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace")
        if proc.returncode:
            raise RuntimeError(f"ANTs ({' '.join(cmd)}) failed with exit status {proc.returncode}:\n{proc.stderr[-2000:]}")
        with np.load(f"{tmp}/field.npz") as result:
            return result["ddf"].astype(np.float64), float(result["seconds"])


def elastix_register(fixed: np.ndarray, moving: np.ndarray, spacing: Sequence[float], threads: int = 1,
                     stages: Sequence[str] = ELASTIX_STAGES, iterations: int = ELASTIX_ITERATIONS,
                     grid_mm: float = ELASTIX_GRID_MM) -> tuple[np.ndarray, float]:
    """Registers ``moving`` onto ``fixed`` (3D arrays on one grid of ``spacing`` mm); returns the displacement
    (3, *shape) in voxels and the seconds the registration took (the displacement field's computation excluded).

    One thread by default: itk-elastix 0.25.4 (and 0.24.0) crash with a segmentation fault in the B-spline stage
    with two threads on this machine (reproducible on a synthetic 48^3 cube; the affine stage alone runs), so the
    baseline's time is single-threaded where the network's uses two."""
    import itk

    try:
        itk.ElastixRegistrationMethod  # noqa: B018 (the attribute exists only with itk-elastix installed)
    except AttributeError as e:
        raise RuntimeError("the elastix baseline needs itk-elastix: pip install -r requirements-benchmark.txt") from e
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)
    fixed_image, moving_image = _itk_image(fixed, spacing), _itk_image(moving, spacing)
    parameters = itk.ParameterObject.New()
    for stage in stages:
        pmap = parameters.GetDefaultParameterMap(stage)
        pmap["MaximumNumberOfIterations"] = [str(iterations)]
        if stage == "bspline":
            pmap["FinalGridSpacingInPhysicalUnits"] = [str(grid_mm)]
        parameters.AddParameterMap(pmap)
    start = time.perf_counter()
    _, result = itk.elastix_registration_method(fixed_image, moving_image, parameter_object=parameters,
                                                number_of_threads=threads, log_to_console=False)
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:  # transformix writes deformationField.nii into its output directory
        transformix = itk.TransformixFilter.New(moving_image, transform_parameter_object=result, output_directory=tmp,
                                                log_to_console=False)
        transformix.SetComputeDeformationField(True)
        transformix.UpdateLargestPossibleRegion()
        mm = np.array(itk.array_from_image(transformix.GetOutputDeformationField())).transpose(3, 2, 1, 0)  # (z,y,x,3) -> (3,x,y,z)
    return mm / np.asarray(spacing, dtype=np.float64).reshape(3, 1, 1, 1), seconds
