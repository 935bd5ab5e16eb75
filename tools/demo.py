"""Quick-start demo: sample data -> short training of a bundle on CPU -> held-out evaluation -> NIfTI output.

Runs the bundle's own commands (``python -m monai.bundle run ...``), prints each one so it can be re-run by hand,
and finishes with PSNR / SSIM / MAE / correlation inside the brain of each held-out subject (TCGA-DU-7294, a glioma;
OpenMS-patient26, multiple sclerosis, also inside its lesions), beside the two trivial baselines
(``common.baselines``), having trained on the three training subjects of the sample data's quick-start subset
(``brain_mri_quick``: 49 MB rather than the full set's 210 MB; MedGAN: the full set's 18 subjects with a T1, where
histogram standardisation makes the many sites help; the CT bundle: the HU inside the organ labels of the non-contrast scan before and after translation,
beside a global HU-histogram mapping; ``common.ct_evaluation``; the registration bundle: the endpoint error against
a known deformation of the held-out subject's T2, beside no registration; ``common.registration``). The demo schedules are small enough for two CPU
cores (about 10 minutes); the papers' schedules are the bundles' defaults (``configs/train.json``).

    python -m tools.demo [cyclegan|medgan|ae_gan|unit_gmm|deform_gan]   # downloads the sample data (pinned commits, SHA-256 checked)
    python -m tools.demo medgan --data-from ../shared/data   # or takes it from a local copy
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tools import sample_data
from tools.bundles import BUNDLES, config_keys, size_settings, training_overrides
from tools.release_staging import sized_metadata

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_{}_bet_normalized.nii.gz"
QUICK_DATALIST = "datalists/brain_mri_quick.json"  # the MRI demos' subjects (tools/sample_datalists.py)
HELD_OUT_T1 = HELD_OUT.format("t1")

# what each demo shows and prints; its size, schedule and length are tools/bundles.py's "demo" size
DEMOS = {
    "cyclegan": {
        "output": "synthetic_t2",
        "titles": "T1 | synthetic T2 | real T2 | their difference, with its colour bar",
    },
    "medgan": {
        # the full brain MRI set (210 MB): its 18 training subjects with a T1; the same two held out
        "groups": ["brain_mri"],
        "datalist": "datalists/brain_mri.json",
        "output": "synthetic_t2",
        "titles": "T1 | synthetic T2 | real T2 | their difference, with its colour bar",
    },
    "ae_gan": {
        # the full brain MRI set (210 MB): its 21 training subjects; the same two held out
        "groups": ["brain_mri"],
        "datalist": "datalists/brain_mri.json",
        "output": "synthetic_t2",
        "titles": "T1 | T1c | FLAIR | synthetic T2 | real T2 | their difference, with its colour bar",
        # inference from the three contrasts; the evaluation scores all seven combinations
        "inputs": {"t1": HELD_OUT.format("t1"), "t1c": HELD_OUT.format("t1c"), "flair": HELD_OUT.format("fla")},
        "panel": "TCGA-DU-7294_t1_bet_normalized_t1_t1c_flair_panel.png",
        "combinations": True,
    },
    "unit_gmm": {
        "groups": ["ct"],
        "output": "synthetic_contrast",
        "titles": "non-contrast | synthetic contrast | cycle back to non-contrast (soft-tissue window)",
        "inputs": {"input": "ct/example_ct_sm.nii.gz"},
        "scored_on": "Non-contrast CT example_ct_sm (30 slices of the training scan: the sample data has no other "
                     "non-contrast scan), HU inside its TotalSegmentator organ labels",
        "figures": [("vessel HU", "val_vessel_hu", "{:.0f}"), ("vessel gain", "val_vessel_gain_hu", "{:+.0f} HU"),
                    ("kidney/liver/spleen gain", "val_organ_gain_hu", "{:+.0f} HU"),
                    ("bone/muscle/lung |change|", "val_stable_change_hu", "{:.0f} HU"),
                    ("cycle MAE", "val_cycle_mae_hu", "{:.0f} HU")],
    },
    "deform_gan": {
        "output": "warped",
        "titles": "fixed T2 (deformed) | moving T1 | T1 warped by T | warped grid | |warped - true|",
        "inputs": {"fixed": HELD_OUT.format("t2"), "moving": HELD_OUT.format("t1")},
        "nifti": "TCGA-DU-7294_t1_bet_normalized_warped.nii.gz",
        "panel": "TCGA-DU-7294_t2_bet_normalized_registration.png",
        "scored_on": "Held-out subjects TCGA-DU-7294 and OpenMS-patient26 (mean of the two; each on its own row below): "
                     "each one's T1 registered onto its T2 deformed by a known (seeded) smooth deformation and small "
                     "affine; endpoint errors inside the brain (TCGA-DU-7294's mask, OpenMS-patient26's skull-stripped "
                     "foreground), Dice of the brain mask where there is one",
        "figures": [("T alone: endpoint error", "val_network_epe_mm", "{:.2f} mm"),
                    ("T + test-time optimisation: endpoint error", "val_epe_mm", "{:.2f} mm"),
                    ("95th percentile", "val_epe_p95_mm", "{:.2f} mm"), ("Dice", "val_dice_after", "{:.3f}"),
                    ("folding", "val_folding_percent", "{:.2f} %"), ("time", "val_seconds", "{:.2f} s/pair")],
        "baselines": "Beside no registration at all (the identity; python -m tools.benchmark deform_gan --pairs adds ANTs SyN and elastix):",
    },
}
# what the MRI demos print: the held-out subject's masked metrics
MRI_SCORED_ON = ("Held-out subjects TCGA-DU-7294 and OpenMS-patient26 (mean of the two), inside the brain, intensities "
                 "scaled to 0..1")
MRI_FIGURES = [("PSNR", "val_psnr", "{:.2f} dB"), ("SSIM", "val_ssim", "{:.3f}"), ("MAE", "val_mae", "{:.3f}"),
               ("correlation", "val_ncc", "{:.3f}")]


LEGEND = ("oracle line: the source contrast mapped onto the real target by a least-squares line fitted on that "
          "target itself (it sees the answer); histogram matching: a look-up table fitted on the training subjects; "
          "r: correlation with the real target inside the brain")


def verdicts(comparison: dict, group: str | None = None) -> list[str]:
    """One plain sentence per held-out subject: the model's PSNR and r against the better of the two baselines."""
    subjects = comparison["subjects_by_group"][group] if group else comparison["subjects"]
    lines = []
    for subject, methods in subjects.items():
        model = methods["model"]
        best = max(("linear", "histogram"), key=lambda m: methods[m]["psnr"])
        name = {"linear": "the oracle line", "histogram": "histogram matching"}[best]
        gap = model["psnr"] - methods[best]["psnr"]
        verdict = "above" if gap > 0 else "below"
        line = (f"{subject}: the model is {verdict} the better baseline ({name}) by {abs(gap):.2f} dB PSNR "
                f"({model['psnr']:.2f} against {methods[best]['psnr']:.2f} dB; r {model['ncc']:+.2f} against "
                f"{methods[best]['ncc']:+.2f})")
        if "lesion_psnr" in model:
            line += (f"; inside its lesions {model['lesion_psnr']:.2f} dB, r {model['lesion_ncc']:+.2f} against "
                     f"{methods[best]['lesion_psnr']:.2f} dB, r {methods[best]['lesion_ncc']:+.2f}")
        lines.append(line + ".")
    return lines


STACK = ("torch", "monai", "ignite", "nibabel")  # what the bundle commands import: checked before anything runs


def missing_stack() -> list[str]:
    """The packages of ``STACK`` this interpreter cannot import."""
    import importlib.util

    return [m for m in STACK if importlib.util.find_spec(m) is None]


def shell_word(word: str) -> str:
    """``word`` as a person would type it in a POSIX shell: bare when safe, else in double quotes when nothing in it
    is special there (a config list: ``"['a.json','b.json']"``), else single-quoted."""
    if shlex.quote(word) == word:
        return word
    if not any(c in word for c in '"$`\\!'):
        return f'"{word}"'
    return shlex.quote(word)


def _args(overrides: dict) -> list[str]:
    return [a for k, v in overrides.items() for a in (f"--{k}", json.dumps(v).replace(" ", "") if not isinstance(v, str) else v)]


def run_bundle(config_files: list[Path], overrides: dict) -> None:
    """``python -m monai.bundle run`` with the given configs and overrides, echoed first."""
    files = [str(f.relative_to(ROOT)) for f in config_files]
    config = files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config, *_args(overrides)]
    interpreter = Path(sys.executable)
    shown = os.path.relpath(interpreter, ROOT) if interpreter.is_relative_to(ROOT) else str(interpreter)
    print("\n$ " + " ".join(shell_word(c) for c in [shown, *cmd[1:]]), flush=True)  # pasteable from the repository root
    # MONAI warns on every config file that `_target_` and `$` run code; the README says once why these are trusted
    warnings = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:parsing config_file"]))
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "PYTHONWARNINGS": warnings})


def write_servable_bundle(name: str, weights: Path, dest: Path, size: dict) -> Path:
    """The trained demo as a self-contained bundle folder ``dest/<name>``: configs with the demo's ``size`` baked in,
    its metadata's network format the trained one, ``common`` vendored, ``models/model.pt``. MONAI Label serves it
    (``--conf bundle_dirs dest``) and it runs outside the repository like a downloaded release. Built beside
    ``dest`` and renamed into place."""
    from tools import release

    dest.mkdir(parents=True, exist_ok=True)
    final, work = dest / name, dest / f".{name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    bundle = release.stage_bundle(name, work)
    release.bake_settings(bundle, size)
    metadata = bundle / "configs" / "metadata.json"  # its network_data_format as trained (patch shape, 2.5D channels)
    meta = sized_metadata(json.loads(metadata.read_text(encoding="utf-8")), size)
    metadata.write_text(json.dumps(meta, indent=4) + "\n", encoding="utf-8")
    shutil.copyfile(weights, bundle / "models" / "model.pt")
    if (weights.parent / "landmarks.json").is_file():  # histogram landmarks (intensity_scaling 'nyul')
        shutil.copyfile(weights.parent / "landmarks.json", bundle / "models" / "landmarks.json")
    shutil.rmtree(final, ignore_errors=True)
    bundle.rename(final)
    work.rmdir()
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", default="cyclegan", choices=sorted(DEMOS), help="which bundle (default: cyclegan)")
    parser.add_argument("--data-dir", default="data", help="where the sample data goes (default: data)")
    parser.add_argument("--data-from", help="import the sample data from this local folder instead of downloading")
    parser.add_argument("--output-dir", default="outputs/demo",
                        help="the run goes to <output-dir>/<bundle> (weights, logs, results), the servable bundle to "
                             "<output-dir>/bundles/<bundle>")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations (default: per bundle)")
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed (default 0; the model cards report how much results move between seeds)")
    args = parser.parse_args(argv)
    missing = missing_stack()
    if missing:
        print(f"error: this Python ({sys.executable}) cannot import {', '.join(missing)}: run the demo with the project's "
              f"virtualenv, .venv/bin/python -m tools.demo (set it up with the README's first Quick start command)",
              file=sys.stderr)
        return 1
    try:
        return _run_demo(args)
    except subprocess.CalledProcessError as exc:  # the bundle command printed its own error above
        print(f"error: the bundle command above stopped with exit status {exc.returncode}; its message is above it",
              file=sys.stderr)
        return 1


def _run_demo(args: argparse.Namespace) -> int:
    name, demo = args.bundle, DEMOS[args.bundle]
    size = size_settings(name, "demo")
    iterations = args.iterations or BUNDLES[name]["sizes"]["demo"]["iterations"]
    configs = ROOT / "bundles" / name / "configs"

    data_dir, out = Path(args.data_dir).resolve(), (Path(args.output_dir) / name).resolve()
    start = time.time()
    groups = demo.get("groups", ["brain_mri_quick"])
    try:
        if args.data_from:
            sample_data.import_from(Path(args.data_from), data_dir, groups=groups)
        else:
            sample_data.download(data_dir, groups=groups)
    except sample_data.SampleDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if isinstance(exc, sample_data.NoNetworkError):
            print(f"this demo from a local copy: {sample_data.python_command()} -m tools.demo {name} --data-from DIR",
                  file=sys.stderr)
        return 1

    datalist = demo.get("datalist", None if "groups" in demo else QUICK_DATALIST)  # the CT and registration: their own
    common = {"dataset_dir": str(data_dir), "bundle_root": str(out), **size,
              **({"datalist": str(data_dir / datalist)} if datalist else {})}
    run_bundle([configs / "train.json"], {**common, **training_overrides(name, "demo", iterations), "seed": args.seed})
    run_bundle([configs / "train.json", configs / "evaluate.json"], common)
    keys = config_keys(name, "inference")
    inputs = {k: str(data_dir / v) for k, v in demo.get("inputs", {"input": HELD_OUT_T1}).items()}
    run_bundle([configs / "inference.json"], {**{k: v for k, v in common.items() if k in keys}, **inputs,
                                              "output_dir": str(out / "eval")})

    served = write_servable_bundle(name, out / "models" / "model.pt", out.parent / "bundles", size)
    metrics = {k: float(v) for k, v in csv.reader(open(out / "eval" / "metrics.csv", encoding="utf-8"))}
    first_input = Path(next(iter(inputs.values())))
    nifti = out / "eval" / demo.get("nifti", first_input.name.replace(".nii.gz", f"_{demo['output']}.nii.gz"))
    panel = out / "eval" / demo.get("panel", first_input.name.replace(".nii.gz", "_panel.png"))
    print(f"\n{demo.get('scored_on', MRI_SCORED_ON)} ({name}, {iterations} training iterations on the training "
          f"scans, {time.time() - start:.0f} s in all):")
    print("  " + "   ".join(f"{label} {fmt.format(metrics[key])}" for label, key, fmt in demo.get("figures", MRI_FIGURES))
          + ("   (the mean over the input combinations; each one in the table below)" if demo.get("combinations") else ""))
    print(demo.get("baselines", "Beside the trivial baselines (a model below them has learnt nothing a look-up table could not do):"))
    print((out / "eval" / "comparison.md").read_text(encoding="utf-8").rstrip())
    if demo["output"] == "synthetic_t2":  # the MRI translation demos: a verdict per held-out subject
        comparison = json.loads((out / "eval" / "comparison.json").read_text(encoding="utf-8"))
        print("In one sentence each (" + LEGEND + "):")
        print("\n".join("  " + v for v in verdicts(comparison, "t1+t1c+flair" if demo.get("combinations") else None)))
    print(f"  output (NIfTI, input's grid and affine): {nifti}")
    print(f"  panel {demo['titles']}:   {panel}")
    print(f"  the trained bundle, self-contained:       {served}")
    print("Serve it through MONAI Label (README, 'Serving through MONAI Label'; after python3.11 -m tools.monailabel setup):")
    print(f"  source .venv-monailabel/bin/activate && monailabel start_server --app tools/monailabel "
          f"--studies {first_input.parent} --conf models {name} --conf bundle_dirs {served.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
