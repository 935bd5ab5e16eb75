"""Deform-GAN's trained T against the classical registrations (ANTs SyN, elastix) on the same pairs, scored by the
same code: the bundle's seeded evaluation pairs (known deformation), the labelled brains (``tools/anatomical_pairs.py``)
and the raw clinical pairs (``tools/clinical_pairs.py``); every table shows T alone and T + its test-time
optimisation on separate rows. Run by ``python -m tools.benchmark deform_gan --pairs BUNDLE``."""

from __future__ import annotations

import functools
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tools.registration_baseline import ANTS_VENV, SYN_TRANSFORM

# the classical registration baselines of deform_gan --pairs (tools/registration_baseline.py)
BASELINES = ("SyN", "elastix")


def _baseline_registrations(threads: int, syn_transform: str, syn_options: dict | None, ants_venv: Path) -> dict:
    """The classical baselines by name: ``(fixed, moving, spacing) -> (ddf in voxels, seconds)``."""
    from tools.registration_baseline import elastix_register, syn_register

    return {"SyN": functools.partial(syn_register, threads=threads, transform=syn_transform, options=syn_options, venv=ants_venv),
            "elastix": elastix_register}  # elastix: 1 thread, see there


def _pair_settings(parser, baselines: Sequence[str], syn_transform: str, syn_options: dict | None) -> dict:
    """What the pairs ran with, for the report: T's test-time optimisation as the bundle's inferer has it (also for
    bundles older than a config key), the pairs' spacing, and SyN's transform and effective options."""
    from tools.registration_baseline import syn_arguments

    settings = {k: parser.get_parsed_content(k) for k in ("refine_steps", "refine_downsample", "pixdim")}
    inferer = parser.get_parsed_content("validate#inferer")
    settings.update({f"refine_{k}": getattr(inferer, k) for k in ("lr", "alpha", "grid_factor") if hasattr(inferer, k)})
    settings["refines"] = bool(getattr(inferer, "refines", False))  # whether T alone gets a row of its own
    if "SyN" in baselines:
        settings.update(syn_transform=syn_transform, syn_options=syn_arguments(syn_options))
    return settings


def measure_pairs(bundle_dir: Path, data_dir: Path, seeds: int, threads: int, overrides: dict | None = None,
                  baselines: Sequence[str] = BASELINES, syn_transform: str = SYN_TRANSFORM,
                  syn_options: dict | None = None, ants_venv: Path = ANTS_VENV) -> dict:
    """Deform-GAN's T (a trained bundle folder: its configs and ``models/model.pt``) and the classical baselines
    (``tools/registration_baseline.py``: ANTs SyN on ``threads`` threads, elastix on one) on the same evaluation
    pairs: the bundle's ``evaluate.json`` pairs under ``seeds`` different seeded deformations, each scored by
    ``registration_figures`` against the known field. ``overrides`` are config values for that evaluation (e.g.
    1 mm pairs for a T trained at 3 mm); ``syn_transform`` is ANTs' ``type_of_transform``, ``syn_options`` update
    ``SYN_OPTIONS``, its further arguments."""
    import csv

    import torch
    from monai.bundle import ConfigWorkflow
    from monai.data import MetaTensor

    from common.registration import registration_figures

    register = _baseline_registrations(threads, syn_transform, syn_options, ants_venv)
    configs = [str(bundle_dir / "configs" / f"{n}.json") for n in ("train", "evaluate")]
    rows = {"T": [], **{b: [] for b in baselines}}
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as tmp:
            wf = ConfigWorkflow(config_file=configs, workflow_type="eval", bundle_root=str(bundle_dir),
                                dataset_dir=str(data_dir), output_dir=tmp, tb_dir=tmp, eval_seed=seed, **(overrides or {}))
            wf.initialize()
            wf.run()
            rows["T"] += [{**r, "pair": f"{r['pair']} (seed {seed})"} for r in csv.DictReader(open(Path(tmp) / "pairs.csv", encoding="utf-8"))]
            for item in wf.parser.get_parsed_content("validate#dataset"):
                fixed, moving = item["fixed"], item["moving"]
                spacing = [float(v) for v in fixed.pixdim]
                name = Path(str(fixed.meta.get("filename_or_obj", "pair"))).name.split(".")[0]
                # what registration_figures reads besides the field, the same for every baseline
                pair = {"image": MetaTensor(torch.cat([fixed, moving]), meta=dict(fixed.meta)), "true_ddf": item["true_ddf"],
                        **{k: item[k] for k in ("label", "label_fixed") if k in item}}
                for baseline in baselines:
                    ddf, seconds = register[baseline](fixed[0].numpy(), moving[0].numpy(), spacing)
                    scored = {**pair, "pred": torch.as_tensor(ddf, dtype=torch.float32), "seconds": seconds}
                    rows[baseline].append({"pair": f"{name} (seed {seed})", **registration_figures(scored)})
            settings = _pair_settings(wf.parser, baselines, syn_transform, syn_options)
            wf.finalize()
    return {"rows": with_network_rows(rows, settings["refines"]), **settings}


def measure_anatomical(bundle_dir: Path, data_dir: Path, threads: int, overrides: dict | None = None,
                       baselines: Sequence[str] = BASELINES, syn_transform: str = SYN_TRANSFORM,
                       syn_options: dict | None = None, ants_venv: Path = ANTS_VENV) -> dict:
    """T (with the bundle's test-time optimisation, its ``inferer``) and the classical baselines on the inter-subject
    pairs of the labelled brains (``tools/anatomical_pairs.py``), affinely aligned first, at the bundle's ``pixdim``
    and ``roi_size`` after ``overrides``: Dice over anatomical structures, folding, seconds per pair."""
    import torch
    from monai.bundle import ConfigWorkflow
    from monai.data import MetaTensor

    from common.registration import registration_figures
    from tools.anatomical_pairs import anatomical_pairs

    register = _baseline_registrations(threads, syn_transform, syn_options, ants_venv)
    configs = [str(bundle_dir / "configs" / f"{n}.json") for n in ("train", "evaluate")]
    with tempfile.TemporaryDirectory() as tmp:
        wf = ConfigWorkflow(config_file=configs, workflow_type="eval", bundle_root=str(bundle_dir),
                            dataset_dir=str(data_dir), output_dir=tmp, tb_dir=tmp, **(overrides or {}))
        wf.initialize()
        get = wf.parser.get_parsed_content
        device, network, inferer = get("device"), get("T"), get("validate#inferer")
        network.load_state_dict(torch.load(get("network_path"), map_location=device, weights_only=True))
        network.to(device).eval()
        pixdim = [float(v) for v in get("pixdim")]
        pairs = anatomical_pairs(data_dir, pixdim, get("roi_size"), threads, get("intensity_percentile"), ants_venv)
        rows = {"T": [], **{b: [] for b in baselines}}
        for pair in pairs:
            fixed, moving = pair["fixed"], pair["moving"]
            scored = {"image": MetaTensor(torch.cat([fixed, moving]), meta=dict(fixed.meta)), "label": pair["label"],
                      "label_fixed": pair["label_fixed"]}
            with torch.no_grad():
                start = time.perf_counter()
                ddf = inferer(torch.cat([fixed, moving])[None].as_tensor().to(device), network)[0].cpu()
                seconds = time.perf_counter() - start
            refined = {"network_pred": inferer.network_ddf[0].cpu(), "network_seconds": inferer.network_seconds} if getattr(inferer, "refines", False) else {}
            figures = registration_figures({**scored, "pred": ddf, "seconds": seconds, **refined})  # dice_before: after the affine
            rows["T"].append({"pair": pair["pair"], **figures, "unaligned_dice": pair["unaligned_dice"]})
            for baseline in baselines:
                ddf, seconds = register[baseline](fixed[0].numpy(), moving[0].numpy(), pixdim)
                figures = registration_figures({**scored, "pred": torch.as_tensor(ddf, dtype=torch.float32), "seconds": seconds})
                rows[baseline].append({"pair": pair["pair"], **figures})
        settings = _pair_settings(wf.parser, baselines, syn_transform, syn_options)
        wf.finalize()
    return {"rows": with_network_rows(rows, settings["refines"]), **settings}


def with_network_rows(rows: dict, refined: bool) -> dict:
    """``rows`` with "T alone" (the network's own field, ``NETWORK_FIGURES``) before "T" (T + the test-time
    optimisation as configured) when the optimisation ran, so every table shows what the network does by itself."""
    from common.registration import NETWORK_FIGURES

    def alone(row: dict) -> dict:
        figures = {name.removeprefix("network_"): row[name] for name in NETWORK_FIGURES}
        return {**row, **figures}

    if not refined:
        return rows
    return {"T alone": [alone(r) for r in rows["T"]], **rows}


def print_pairs(report: dict, key: str = "pairs") -> None:
    """T and the baselines side by side: per pair, then the means and the time ratios. ``key``: the seeded
    evaluation pairs ("pairs", scored against the known deformation) or the labelled brains ("anatomical", Dice
    over anatomical structures after an affine alignment; no known deformation, so no endpoint error)."""
    import numpy as np

    result = report[key]
    rows = result["rows"]
    methods = list(rows)  # T alone (when optimised), T (+ its optimisation), then the baselines asked for
    label = {"T": "T + opt." if "T alone" in rows else "T"}
    keys = ("epe_mm", "epe_p95_mm", "dice_after", "folding_percent", "seconds")

    def number(value, digits: int = 2) -> str:
        return "-" if np.isnan(float(value)) else f"{float(value):.{digits}f}"  # NaN: not measured for these pairs

    def cells(figures: dict) -> str:
        return "".join(f"{number(figures[k], 3 if k == 'dice_after' else 2):>16}" for k in keys)

    def mean(values: list[float]) -> float:
        finite = [v for v in values if not np.isnan(v)]
        return float(np.mean(finite)) if finite else float("nan")

    what = {"anatomical": "the labelled brains, inter-subject, affinely aligned (no registration: Dice after the affine; "
                          "before it in brackets)",
            "clinical": "the raw clinical pairs, each on its own grid; EPE here: the distance between the method's "
                        "mapping and the database authors' ITK transform over the head (no registration: the "
                        "scanners' world coordinates as they are)",
            }.get(key, "the evaluation pairs, against the known deformation")
    print(f"\nRegistration of {what} ({report['pairs_bundle']});"
          f" {report['threads']} CPU threads (elastix: 1, see tools/registration_baseline.py); "
          + (f"ANTs {result.get('syn_transform', '')} {json.dumps(result.get('syn_options', {}))}; " if "SyN" in rows else "")
          + "T with "
          f"{result.get('refine_steps', 0)} steps of test-time optimisation (the bundle's refine_steps), "
          f"downsampled {result.get('refine_downsample', 1)}x, lr {result.get('refine_lr')}, smoothness "
          f"{result.get('refine_alpha')}, correction grid {result.get('refine_grid_factor')}x coarser; "
          f"pairs at {result.get('pixdim')} mm")
    width = max([len("pair"), *(len(r["pair"]) for r in rows["T"])]) + 2
    head = f"{'pair':<{width}}{'method':<10}" + "".join(f"{k:>16}" for k in ("EPE mean (mm)", "EPE p95 (mm)", "Dice", "folding %", "s/pair"))
    print(head)
    print("-" * len(head))
    for i, r in enumerate(rows["T"]):
        dice_before = number(r["dice_before"], 3) + (f" ({number(r['unaligned_dice'], 3)})" if "unaligned_dice" in r else "")
        print(f"{r['pair']:<{width}}{'none':<10}{number(r['epe_before_mm']):>16}{'':>16}{dice_before:>16}{0.0:>16.2f}{'':>16}")
        for method in methods:
            print(f"{'':<{width}}{label.get(method, method):<10}" + cells(rows[method][i]))
    means = {method: {k: mean([float(r[k]) for r in rows[method]]) for k in keys} for method in methods}
    for i, method in enumerate(methods):
        print(f"{'mean' if i == 0 else '':<{width}}{label.get(method, method):<10}" + cells(means[method]))
    for method in [m for m in methods if m not in ("T", "T alone")]:
        print(f"{method} s/pair / T s/pair: {means[method]['seconds'] / means['T']['seconds']:.1f}x")
