"""Real cross-modal pairs of raw clinical scans, scored against their authors' transforms
(``python -m tools.benchmark deform_gan --pairs BUNDLE --clinical``).

The sample data's ``brain_mri_raw`` holds two studies of the Ljubljana MS longitudinal database as they come off the
scanner: T1W, T2W and FLAIR on grids and positions of their own (thick slices, skull on). The database's authors
give, per study, ITK transforms that map each point of the FLAIR (fixed) onto the T1W and the T2W (moving), in LPS
millimetres (``*_intrastudy_to_FLAIR.txt``). Each pair (T1W onto FLAIR, T2W onto FLAIR) goes through the bundle's own
inference preprocessing (the moving image resampled onto the fixed grid through the two affines, both to RAS at the
bundle's ``pixdim``, scaled, padded); each method then registers the pair, and its mapping of a fixed point x,
``x + u(x)`` in world millimetres, is compared with the authors' ``A(x)`` over the fixed image's head (where the
resampled moving image also has signal). The authors' transforms are affine: a reference from an established
pipeline, not a ground truth, so the figure is an agreement, not an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STUDIES = {"OpenMS-long-patient03-study2": "study2", "OpenMS-long-patient04-study1": "study1"}
FOLDER = "brain_mri_raw"
MOVING_CONTRASTS = ("T1W", "T2W")
HEAD_THRESHOLD = 0.1  # of the scaled (0..1) fixed and moving images: the head, not the background noise


def read_itk_affine(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """An ITK transform file's affine as ``(matrix, offset)``: ``T(p) = matrix @ p + offset`` for points in ITK's LPS
    millimetres, mapping the fixed image's points onto the moving image's (ITK's registration convention).

    ``MatrixOffsetTransformBase`` and ``AffineTransform`` (what the database's authors wrote; ITK's Python wrapping
    cannot read the first) are parsed from the text: 9 matrix entries and a translation t, and the centre c as fixed
    parameters, so T(p) = M (p - c) + c + t. Other affine kinds (Euler, versor, similarity) are read by ITK."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
    kind = fields.get("Transform", "").strip()
    if kind.startswith(("MatrixOffsetTransformBase_", "AffineTransform_")):
        parameters = np.array(fields["Parameters"].split(), dtype=np.float64)
        centre = np.array(fields.get("FixedParameters", "0 0 0").split(), dtype=np.float64)
        if parameters.size != 12 or centre.size != 3:
            raise ValueError(f"{path}: {kind} with {parameters.size} parameters and {centre.size} fixed parameters; "
                             f"a 3D affine has 12 and 3.")
        matrix = parameters[:9].reshape(3, 3)
        return matrix, parameters[9:] + centre - matrix @ centre
    import itk

    transform = itk.transformread(str(path))[0]
    if not (hasattr(transform, "GetMatrix") and hasattr(transform, "GetOffset")) or transform.GetInputSpaceDimension() != 3:
        raise ValueError(f"{path}: expected a 3D affine (matrix and offset) ITK transform, got {transform.GetNameOfClass()}.")
    matrix = np.array([[transform.GetMatrix()(i, j) for j in range(3)] for i in range(3)], dtype=np.float64)
    return matrix, np.array([transform.GetOffset()[i] for i in range(3)], dtype=np.float64)


def map_ras_points(points_ras: np.ndarray, path: str | Path) -> np.ndarray:
    """(N, 3) world points in RAS (nibabel's and MONAI's) mapped by the ITK transform at ``path`` (which works in
    LPS): flip to LPS, apply, flip back."""
    matrix, offset = read_itk_affine(path)
    flip = np.array([-1.0, -1.0, 1.0])
    return ((np.asarray(points_ras, dtype=np.float64) * flip) @ matrix.T + offset) * flip


def voxel_points(affine: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """World points (N, 3) of the voxels where the (X, Y, Z) ``mask`` is true, through the 4 x 4 ``affine``."""
    index = np.argwhere(mask).astype(np.float64)
    return index @ np.asarray(affine, dtype=np.float64)[:3, :3].T + np.asarray(affine, dtype=np.float64)[:3, 3]


def agreement(ddf_world: np.ndarray, affine: np.ndarray, mask: np.ndarray, transform: str | Path) -> np.ndarray:
    """Distances (mm) between a method's mapping of each masked fixed voxel, x + u(x) with ``ddf_world`` (3, X, Y, Z)
    in RAS mm on the grid of ``affine``, and the authors' ITK transform's."""
    points = voxel_points(affine, mask)
    ours = points + np.asarray(ddf_world)[:, mask].T
    return np.linalg.norm(ours - map_ras_points(points, transform), axis=1)


def clinical_pairs(data_dir: Path) -> list[dict]:
    """The raw studies' pairs present under ``data_dir``: ``{"pair", "fixed", "moving", "transform"}`` (file paths);
    a clear error when the sample data's ``brain_mri_raw`` is missing."""
    pairs = []
    for folder, study in STUDIES.items():
        base = Path(data_dir) / FOLDER / folder
        for contrast in MOVING_CONTRASTS:
            files = {"fixed": base / f"{study}_FLAIR.nii.gz", "moving": base / f"{study}_{contrast}.nii.gz",
                     "transform": base / f"{study}_{contrast}_intrastudy_to_FLAIR.txt"}
            missing = [str(p) for p in files.values() if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"the raw clinical pairs need {', '.join(missing)}: fetch the sample data's "
                                        f"'brain_mri_raw' group (python -m tools.sample_data --help).")
            pairs.append({"pair": f"{folder} {contrast}->FLAIR", **{k: str(v) for k, v in files.items()}})
    return pairs


def score(ddf_voxels, pair: dict, image, seconds: float, transform: str | Path) -> dict:
    """``registration_figures``-shaped figures of one method on one clinical pair: ``epe_mm`` / ``epe_p95_mm`` hold
    the mean / 95th percentile distance to the authors' mapping over the head, ``epe_before_mm`` the same for no
    registration (the two scanners' world coordinates as they are), ``folding_percent``, ``seconds``."""
    import torch

    from common.registration import ddf_to_world, folding_percent

    image = image.detach().cpu()
    affine = np.asarray(image.affine, dtype=np.float64)
    mask = ((image[0] > HEAD_THRESHOLD) & (image[1] > HEAD_THRESHOLD)).numpy()
    ddf = torch.as_tensor(ddf_voxels, dtype=torch.float32).cpu()
    world = ddf_to_world(ddf, affine).numpy()
    distances = agreement(world, affine, mask, transform)
    before = agreement(np.zeros_like(world), affine, mask, transform)
    nan = float("nan")
    return {"pair": pair["pair"], "epe_mm": float(distances.mean()), "epe_p95_mm": float(np.percentile(distances, 95)),
            "epe_before_mm": float(before.mean()), "dice_before": nan, "dice_after": nan,
            "folding_percent": folding_percent(ddf[None], torch.as_tensor(mask)[None, None]), "seconds": float(seconds)}


def measure_clinical(bundle_dir: Path, data_dir: Path, register: dict, overrides: dict | None = None) -> dict:
    """T alone, T + the bundle's test-time optimisation and the baselines in ``register`` (name -> ``(fixed,
    moving, spacing) -> (ddf voxels, seconds)``) on every clinical pair, through the bundle's inference
    preprocessing at its settings after ``overrides``. Returns ``{"rows": {method: [figures]}, ...settings}``."""
    import time

    import torch
    from monai.bundle import ConfigWorkflow

    wf = ConfigWorkflow(config_file=str(bundle_dir / "configs" / "inference.json"), workflow_type="infer",
                        bundle_root=str(bundle_dir), **(overrides or {}))
    wf.initialize()
    get = wf.parser.get_parsed_content
    device, network, inferer, preprocessing = get("device"), get("network"), get("inferer"), get("preprocessing")
    network.load_state_dict(torch.load(get("ckpt_path"), map_location=device, weights_only=True))
    network.eval()
    refines = getattr(inferer, "refines", False)
    rows: dict[str, list[dict]] = {**({"T alone": []} if refines else {}), "T": [], **{name: [] for name in register}}
    for pair in clinical_pairs(data_dir):
        image = preprocessing({"image": pair["fixed"], "moving": pair["moving"]})["image"]  # (2, *S) on one RAS grid
        with torch.no_grad():
            start = time.perf_counter()
            ddf = inferer(image[None].as_tensor().to(device), network)[0].cpu()
            seconds = time.perf_counter() - start
        if refines:  # "T" is T alone otherwise
            rows["T alone"].append(score(inferer.network_ddf[0].cpu(), pair, image, inferer.network_seconds, pair["transform"]))
        rows["T"].append(score(ddf, pair, image, seconds, pair["transform"]))
        spacing = [float(v) for v in image.pixdim]
        for name, method in register.items():
            baseline_ddf, baseline_seconds = method(image[0].numpy(), image[1].numpy(), spacing)
            rows[name].append(score(baseline_ddf, pair, image, baseline_seconds, pair["transform"]))
    settings = {k: get(k) for k in ("refine_steps", "refine_downsample", "pixdim")}
    settings.update({f"refine_{k}": getattr(inferer, k) for k in ("lr", "alpha", "grid_factor") if hasattr(inferer, k)})
    wf.finalize()
    return {"rows": rows, **settings}
