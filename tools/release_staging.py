"""The parts of a release build (``tools/release.py``): versions, the trained weights, the staged bundle with
``common`` vendored and the size baked into its configs and metadata, the model card's results, the TorchScript and
ONNX export checks, and the zip with its ``large_files.yml``."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.data.files import atomic_path, sha256_of

from tools.release_download import ReleaseError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tools" / "schema" / "bundle_metadata.schema.json"
WEIGHT_FILES = ("model.pt", "model.ts", "model.onnx")
EXPORT_ATOL = 1e-4
BUNDLE_OUTPUTS = ("models", "eval", "logs")  # top-level folders of a bundle that runs write; never released


# ------------------------------------------------------------------------------------------------ helpers


def parse_version(version: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", str(version))
    if not match:
        raise ReleaseError(f"version must be X.Y.Z, got '{version}'.")
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


def next_version(source_version: str, released: list[str]) -> str:
    """Patch bump of the newest of the source metadata's version and the versions already released."""
    major, minor, patch = max([parse_version(source_version), *(parse_version(v) for v in released)])
    return f"{major}.{minor}.{patch + 1}"


def load_index(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() and path.read_text(encoding="utf-8").strip() else {}


def _cli_value(value: Any) -> str:
    """A config override as `python -m monai.bundle` (fire) parses it."""
    return value if isinstance(value, str) else json.dumps(value).replace(" ", "")


def _overrides(values: Mapping[str, Any]) -> list[str]:
    return [a for k, v in values.items() for a in (f"--{k}", _cli_value(v))]


def load_weights(path: str | os.PathLike, network_key: str) -> OrderedDict:
    """The network's ``state_dict`` from a ``models/model.pt`` or a training checkpoint's ``network_key`` entry,
    loaded with ``weights_only=True`` (a pickle that needs anything but tensors and containers is refused)."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for arbitrary objects, OSError/RuntimeError for bad files
        raise ReleaseError(f"cannot load weights from '{path}' with weights_only=True: {e}") from e
    if isinstance(obj, Mapping) and isinstance(obj.get(network_key), Mapping):
        obj = obj[network_key]
    if not (isinstance(obj, Mapping) and obj and all(torch.is_tensor(v) for v in obj.values())):
        raise ReleaseError(f"'{path}' holds neither a state_dict nor a training checkpoint with a '{network_key}' entry.")
    return OrderedDict(obj)


def _trained_weights(train_root: Path, network_key: str) -> Path:
    final = train_root / "models" / "model.pt"
    if final.is_file():
        return final
    ckpts = sorted(train_root.glob("models/checkpoints/checkpoint_*.pt"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    if not ckpts:
        raise ReleaseError(f"training left neither models/model.pt nor a checkpoint under '{train_root}'.")
    return ckpts[-1]


# ------------------------------------------------------------------------------------------- staging


def _ignore(top: Path | None):
    """copytree's ignore: caches and hidden files everywhere, and ``BUNDLE_OUTPUTS`` directly under ``top``."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n == "__pycache__" or n.endswith(".pyc") or n.startswith(".")}
        if top is not None and Path(folder) == top:
            skip |= {n for n in names if n in BUNDLE_OUTPUTS}
        return skip

    return ignore


def github_url_base(repo: str, tag: str) -> str:
    """Where GitHub serves a release's assets; ``monai.bundle download --source github --repo OWNER/REPO/<tag>``
    fetches ``<this>/<name>_v<version>.zip``."""
    return f"https://github.com/{repo}/releases/download/{tag}"


def stage_bundle(name: str, stage_parent: Path) -> Path:
    """Copy of ``bundles/<name>/`` without weights, checkpoints, logs or results, with ``common/`` vendored."""
    src = ROOT / "bundles" / name
    if not (src / "configs" / "metadata.json").is_file():
        raise ReleaseError(f"'{src}' is not a bundle (no configs/metadata.json).")
    if (src / "common").exists():
        raise ReleaseError(f"'{src}/common' exists: the release vendors the repository's common/ there.")
    stage = stage_parent / name
    shutil.copytree(src, stage, ignore=_ignore(src))
    shutil.copytree(ROOT / "common", stage / "common", ignore=_ignore(None))
    (stage / "models").mkdir()
    return stage


def bake_settings(stage: Path, settings: Mapping[str, Any]) -> list[str]:
    """Writes ``settings`` into the top-level values of the staged configs that define them; every setting
    must be defined by at least one config. Returns the config files changed."""
    used, changed = set(), []
    for path in sorted((stage / "configs").glob("*.json")):
        if path.name == "metadata.json":
            continue
        config = json.loads(path.read_text(encoding="utf-8"))
        keys = [k for k in settings if k in config]
        if keys:
            for k in keys:
                config[k] = settings[k]
            path.write_text(json.dumps(config, indent=4) + "\n", encoding="utf-8")
            used.update(keys)
            changed.append(path.name)
    missing = sorted(set(settings) - used)
    if missing:
        raise ReleaseError(f"settings {missing} are not top-level values of any config in '{stage / 'configs'}'.")
    return changed


def update_metadata(meta: dict, version: str, changelog: str, settings: Mapping[str, Any], release: dict) -> dict:
    meta = sized_metadata(meta, settings)
    meta["version"] = version
    meta["changelog"] = {version: changelog, **{k: v for k, v in meta.get("changelog", {}).items() if k != version}}
    meta["release"] = release
    return meta


def sized_metadata(meta: dict, settings: Mapping[str, Any]) -> dict:
    """``meta`` (a bundle's metadata.json) with its ``network_data_format`` made true to a trained size's
    ``settings``: the patch shape the network sees (``roi_size``) and, for 2.5D input (``context_slices`` k), k input
    channels per channel, named by slice. A release and the demo's servable bundle both describe their network so."""
    meta = copy.deepcopy(meta)
    roi = settings.get("roi_size")
    if roi is not None:  # the patch size the network sees (metadata's spatial_shape follows the trained roi_size)
        for group in ("inputs", "outputs"):
            for tensor in meta.get("network_data_format", {}).get(group, {}).values():
                shape = tensor.get("spatial_shape", [])
                if len(shape) == len(roi) and any(int(v) > 0 for v in shape):  # not a file input of any size (-1)
                    tensor["spatial_shape"] = list(roi)
    context = int(settings.get("context_slices") or 1)
    if context > 1:  # 2.5D input: the network reads each channel with its neighbouring slices (slice_context's order)
        for tensor in meta.get("network_data_format", {}).get("inputs", {}).values():
            if any(int(v) < 0 for v in tensor.get("spatial_shape", [])):
                continue  # a file the preprocessing stacks into the network's input (MONAI Label parameters)
            names = tensor.get("channel_def", {})
            tensor["num_channels"] = int(tensor.get("num_channels", 1)) * context
            tensor["channel_def"] = {
                str(c * context + j): f"{names.get(str(c), f'channel {c}')}, slice {j - context // 2:+d}"
                for c in range(len(names) or 1)
                for j in range(context)
            }
    return meta


RESULTS_BEGIN, RESULTS_END = "<!-- release-metrics:begin -->", "<!-- release-metrics:end -->"


def _fill_results(readme: str, table: str) -> str:
    """Puts ``table`` between the model card's release-metrics markers (replacing an earlier release's)."""
    if RESULTS_BEGIN not in readme or RESULTS_END not in readme:
        raise ValueError(f"the model card has no '{RESULTS_BEGIN}' ... '{RESULTS_END}' section for the release metrics.")
    head, rest = readme.split(RESULTS_BEGIN, 1)
    return head + RESULTS_BEGIN + "\n" + table + "\n" + RESULTS_END + rest.split(RESULTS_END, 1)[1]


_METRIC_LABELS = {"val_psnr": "PSNR (dB)", "val_ssim": "SSIM", "val_mae": "MAE (intensities scaled to 0..1)",
                  "val_ncc": "correlation (Pearson r)", "val_vessel_gain_hu": "vessel HU gain",
                  "val_vessel_hu": "vessel HU after translation", "val_organ_gain_hu": "kidney/liver/spleen HU gain",
                  "val_stable_change_hu": "bone/muscle/lung mean absolute HU change", "val_cycle_mae_hu": "cycle MAE (HU)",
                  "val_epe_mm": "T + test-time optimisation: mean endpoint error (mm)",
                  "val_epe_p95_mm": "T + test-time optimisation: 95th-percentile endpoint error (mm)",
                  "val_epe_before_mm": "mean endpoint error before registration (mm)",
                  "val_dice_before": "Dice before registration", "val_dice_after": "T + test-time optimisation: Dice after registration",
                  "val_folding_percent": "brain voxels with a non-positive Jacobian determinant (%)",
                  "val_seconds": "seconds per pair (T and any test-time optimisation)",
                  "val_network_epe_mm": "T alone: mean endpoint error (mm)",
                  "val_network_epe_p95_mm": "T alone: 95th-percentile endpoint error (mm)",
                  "val_network_dice_after": "T alone: Dice after registration",
                  "val_network_seconds": "T alone: seconds per pair (its forward pass)"}


def results_section(name: str, version: str, size: str, release: dict, metrics: Mapping[str, float],
                    checks: Mapping[str, float], sample: str) -> str:
    settings = ", ".join(f"`{k}={_cli_value(v)}`" for k, v in release["settings"].items())
    schedule = ", ".join(f"`{k}={_cli_value(v)}`" for k, v in release["schedule"].items()) or "none (given checkpoint)"
    rows = "\n".join(f"| {_METRIC_LABELS.get(k, k)} | {v:.4f} |" for k, v in metrics.items())
    from tools.bundles import BUNDLES

    input_arg = BUNDLES[name]["input_arg"]
    extras = "".join(f" --{k} {Path(v).name}" for k, v in BUNDLES[name].get("extra_inputs", {}).items())
    return (
        f"Release **v{version}** (size `{size}`; weights {release['weights']}). Network settings baked into "
        f"`configs/*.json`: {settings}. Training schedule: {schedule}. Evaluation "
        f"(`configs/evaluate.json` on the datalist's validation list; the sections above say what each figure "
        f"measures):\n\n"
        f"| metric | value |\n|---|---|\n{rows}\n\n"
        f"Export checks on a real slice of `{Path(sample).name}` (the released preprocessing, middle axial slice): "
        f"max |TorchScript - eager| = {checks['torchscript_max_abs_diff']:.2e}, "
        f"max |ONNX Runtime - eager| = {checks['onnx_max_abs_diff']:.2e} (tolerance {EXPORT_ATOL:g}).\n\n"
        "Run the downloaded bundle from its own folder (`common` is vendored in it; nothing else than the "
        "project's requirements is needed):\n\n"
        "```bash\n"
        f"python -m monai.bundle download --name {name} --version {version} --url <release zip URL> --bundle_dir bundles\n"
        f"cd bundles/{name} && python -m monai.bundle run --config_file configs/inference.json --{input_arg} "
        f"{Path(BUNDLES[name]['sample_input']).name}{extras} --output_dir out\n"
        "```\n"
        "From another folder add `PYTHONPATH=<bundle>` (the bundle's root is where its `configs/` folder is)."
    )


# ------------------------------------------------------------------------------------------- checks


TORCHSCRIPT_MODES = ("script", "trace")


def torchscript_mode(name: str) -> str:
    """How ``models/model.ts`` of bundle ``name`` is made: ``"script"`` (``torch.jit.script``, the default) or
    ``"trace"`` where its ``tools/bundles.py`` entry says ``"torchscript": "trace"`` (a network that cannot script)."""
    from tools.bundles import BUNDLES

    mode = BUNDLES[name].get("torchscript", "script")
    if mode not in TORCHSCRIPT_MODES:
        raise ReleaseError(f"tools/bundles.py: {name}'s 'torchscript' must be one of {TORCHSCRIPT_MODES}, got {mode!r}.")
    return mode


def export_checks(stage: Path, spec: Mapping[str, Any], sample: Path, extras: Mapping[str, Path] | None = None) -> dict[str, float]:
    """TorchScript and ONNX Runtime outputs against eager ``network_def`` on a real, preprocessed patch (``extras``:
    the further input files the preprocessing reads, by key)."""
    import numpy as np
    import onnxruntime
    import torch
    from monai.bundle import ConfigParser
    from monai.transforms import ResizeWithPadOrCrop

    parser = ConfigParser()
    parser.read_config(str(stage / "configs" / f"{spec['inference']}.json"))
    parser.read_meta(str(stage / "configs" / "metadata.json"))
    if "imports" in parser.get():
        parser.get_parsed_content("imports")
    roi = [int(r) for r in parser.get_parsed_content("roi_size")]
    key = spec["image_key"]
    image = parser.get_parsed_content("preprocessing")({key: str(sample), **{k: str(v) for k, v in (extras or {}).items()}})[key]
    image = torch.as_tensor(image.as_tensor() if hasattr(image, "as_tensor") else image).float()
    if image.ndim - 1 == len(roi) + 1:  # a volume for a 2D network: its middle axial slice
        image = image[..., image.shape[-1] // 2]
    patch = torch.as_tensor(ResizeWithPadOrCrop(roi, mode="constant", value=float(image.min()))(image)).float()[None]
    if float((patch > patch.min()).float().mean()) < 0.05:
        raise ReleaseError(f"the check patch of '{sample}' is almost all background.")

    net = parser.get_parsed_content("network_def")
    net.load_state_dict(load_weights(stage / "models" / "model.pt", spec["network_key"]))
    net.eval()
    with torch.no_grad():
        eager = net(patch).numpy()
        scripted = torch.jit.load(str(stage / "models" / "model.ts"), map_location="cpu")(patch).numpy()
    session = onnxruntime.InferenceSession(str(stage / "models" / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: patch.numpy()})[0]
    diffs = {"torchscript_max_abs_diff": float(np.abs(scripted - eager).max()),
             "onnx_max_abs_diff": float(np.abs(onnx_out - eager).max())}
    if onnx_out.shape != eager.shape or scripted.shape != eager.shape:
        raise ReleaseError(f"export output shapes {scripted.shape}, {onnx_out.shape} differ from eager {eager.shape}.")
    bad = {k: v for k, v in diffs.items() if not v <= EXPORT_ATOL}
    if bad:
        raise ReleaseError(f"exported models differ from eager on a real patch by more than {EXPORT_ATOL}: {bad}")
    return diffs


# ------------------------------------------------------------------------------------------- packing


def write_zip(bundle_dir: Path, zip_path: Path) -> None:
    """Deterministic zip (sorted members, fixed timestamps) with ``bundle_dir``'s name as its top-level folder; whole
    or absent (``atomic_path``)."""
    with atomic_path(zip_path, suffix=".zip") as part, zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in bundle_dir.rglob("*") if p.is_file() and not _ignored(p.relative_to(bundle_dir))):
            info = zipfile.ZipInfo(path.relative_to(bundle_dir.parent).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f, zf.open(info, "w") as out:
                shutil.copyfileobj(f, out, 1 << 20)


def _ignored(rel: Path) -> bool:
    return any(part == "__pycache__" for part in rel.parts) or rel.suffix == ".pyc"


def write_large_files(stage: Path, url_base: str, asset_prefix: str) -> dict[str, dict]:
    """``large_files.yml`` in the model zoo's format; returns path -> {url, sha256, size}."""
    import yaml

    assets, entries = {}, []
    for fname in WEIGHT_FILES:
        path = stage / "models" / fname
        digest = sha256_of(path)
        url = f"{url_base}/{asset_prefix}_{fname}"
        entries.append({"path": f"models/{fname}", "url": url, "hash_val": digest, "hash_type": "sha256"})
        assets[f"models/{fname}"] = {"url": url, "sha256": digest, "size": path.stat().st_size}
    (stage / "large_files.yml").write_text(yaml.safe_dump({"large_files": entries}, sort_keys=False), encoding="utf-8")
    return assets


def release_table(index: Mapping[str, Any]) -> str:
    rows = []
    for name in sorted(index):
        for version, e in sorted(index[name].items(), key=lambda kv: parse_version(kv[0]), reverse=True):
            metrics = ", ".join(f"{_METRIC_LABELS.get(k, k)} {v:.3f}" for k, v in e.get("metrics", {}).items())
            rows.append(f"| `{name}` | [{version}]({e['url']}) | {e.get('size_name', '')} | {metrics} | "
                        f"{e['size'] / 2**20:.1f} MiB | `{e['sha256']}` |")
    if not rows:
        return "No release published yet."
    return ("| bundle | version (zip) | size | evaluation (the model card says on what) | zip size | SHA-256 |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(rows))
