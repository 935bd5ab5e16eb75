"""Speed and memory of a GAN bundle, and what the framework costs over a hand-written PyTorch loop.

    python -m tools.benchmark {cyclegan,medgan,ae_gan,unit_gmm,deform_gan} [--sizes default,...] [--iterations N]
                                [--warmup K] [--threads 2] [--data data] [--skip-inference] [--infer-batches 4]
                                [--json OUT]
    python -m tools.benchmark deform_gan --pairs BUNDLE_DIR [--pair-seeds 3] [--baselines SyN,elastix]
        # T against ANTs SyN and elastix, side by side
        [--pair-overrides '{"pixdim": [1, 1, 1], "roi_size": [160, 192, 160], "lg_kernel_size": 7,
                            "refine_steps": [30, 10], "refine_downsample": [3, 2], "refine_lr": 0.5,
                            "refine_alpha": 2.5, "refine_grid_factor": 5}']

Run from the repository root. Per network size it reports:

* **framework**: training iterations/s of the real bundle, built from ``bundles/<bundle>/configs/train.json``
  by ``monai.bundle.ConfigWorkflow`` exactly as a user runs it (only size, epoch length, validation interval
  and output folders overridden). An iteration is timed from one ``ITERATION_COMPLETED`` to the next, so it
  includes drawing the batch from the ``CacheDataset`` (random slice + flip), the step and every handler.
* **plain**: the same step written by hand in plain PyTorch, with the same networks and initialisation and
  Adam(2e-4, (0.5, 0.999)); a ``for`` loop over pre-sampled uniform random tensors in [-1, 1] of the training
  shape (convolution cost does not depend on values).
* **overhead**: median framework seconds/iteration divided by median plain seconds/iteration.
* **peak RSS**: ``VmHWM`` of a separate process per measurement, so the numbers do not contaminate each other:
  during the training loop (reset as it starts; the framework's holds its cached training and validation
  volumes) and over the whole process (the framework's includes loading and resampling those volumes).

And, at the default network size, seconds per volume for ``inference.json`` on the bundle's sample input
(``tools/bundles.py``: the held-out TCGA-DU-7294 T1, 240x240x155, for the MRI bundles; the 30-slice non-contrast
CT for ``unit_gmm``), with randomly initialised weights (timing does not depend on them): the whole ``run()`` (load,
preprocessing, slice-wise inference, inversion, saving), the time spent inside the generator during that run, and
the plain generator time for the same number of patches (256x256 slices; UNIT's 64x64 tiles) in batches of 8 under
``no_grad`` (``--infer-batches`` batches timed and scaled to the volume, since a full pass takes minutes on a CPU).

Bundles (``BENCHMARKS``; another bundle joins with one ``Benchmark`` entry; each size is the named size of
``tools/bundles.py``, the one record of the bundles' sizes):

* ``cyclegan``: the plain step is the pytorch-CycleGAN-and-pix2pix reference's ``optimize_parameters``: LSGAN
  + L1 cycle x10 + identity x5, image pools of 50, G_A+G_B with D frozen then D_A+D_B. Sizes: ``default`` is the
  config as shipped (the paper's); ``release``, ``demo`` and ``test`` those of ``tools/bundles.py``. Without a
  GPU the default size runs at roughly 9 s/iteration on 2 cores: the whole benchmark takes ~6 minutes.
* ``medgan``: the plain step is ``MedGANStep`` written out: ``generator_updates`` updates of the CasNet (D
  frozen; BCE adversarial + 20 x L1 of the image and D's hidden features + 1e-4 x VGG-19 style (Gram) and
  content + ``lambda_pixel`` x pixel L1), then one of the spectrally normalised D. Sizes: ``default`` is the
  config as shipped (the paper's: 6 U-blocks of 8 levels, 256x256, 3 generator updates per iteration);
  ``release`` and ``test`` those of ``tools/bundles.py`` (with their schedules' ``generator_updates`` and
  ``lambda_pixel`` where set). The frozen VGG-19 is always randomly initialised (``vgg_weights: "random"``):
  no ImageNet weights file exists here, and its cost does not depend on its weights. A default-size iteration
  (3 updates of a 326M-parameter generator, each through VGG-19 at 256x256) is ~1.2 TFLOP, against CycleGAN's
  ~1.9, plus 3 Adam steps over those 326M parameters.
* ``ae_gan``: the plain step is ``AEGANStep`` written out (the authors' ``optimize_parameters``): the inputs (all
  three, as shipped, or a random non-empty subset with ``input_subsets: "random"``), then the autoencoder-discriminator A (BCE real against synthesised and
  reconstructed + 100 x reconstruction L1), then the synthesis network S with A frozen (BCE + 100 x L1 + 0.1 x
  the KL between A's and S's decoder features), Adam(1e-4). Sizes: ``default`` the paper's (64 filters, 6 residual
  blocks, 256x256, three input branches); ``release`` and ``test`` those of ``tools/bundles.py``.

* ``unit_gmm``: the plain step is ``UNITGMMStep`` written out: D1 and D2 (LSGAN, x10) on real patches against
  translations from the other domain, then the two VAEs with shared layers and the Gaussian-mixture prior (x10
  adversarial, 0.1 x KL + 100 x L1 reconstruction, 0.1 x KL of real and re-encoded translations + 100 x L1 cycle,
  the KL a one-draw Monte-Carlo estimate), Adam(1e-4, weight decay 1e-4). Sizes: ``default`` the paper's (64 filters,
  4 residual blocks per side, 64x64 patches); ``release`` and ``test`` those of ``tools/bundles.py``.
* ``deform_gan``: the plain step is ``DeformGANStep`` written out: D (BCE, conditional on the warped moving
  image), then G (BCE + local gradient to the warped moving image + 100 x L1 to the fixed image), then T (LNCC
  through the frozen G + local gradient to the fixed image + diffusion smoothness), each with the other two
  frozen, with MONAI's ``Warp``, LNCC and ``DiffusionLoss`` and ``LocalGradientLoss`` (the bundle's smoothness is
  ``common.registration.ops.diffusion``, tested equal to ``DiffusionLoss`` and faster to differentiate). Sizes:
  ``default`` the paper's (VoxelMorph's T on 1 mm whole brains cropped to 160x192x160); ``release`` and ``test``
  those of ``tools/bundles.py``. Inference is one forward pass of T on the whole volume (fixed and moving, 1 mm,
  padded to a multiple of 16). ``--pairs BUNDLE_DIR`` instead registers the bundle's evaluation pairs with its
  trained T and with the classical baselines (``tools/registration_baseline.py``: ANTs SyN from its own virtualenv,
  ``python3.11 -m tools.ants setup``; elastix from ``requirements-benchmark.txt``) and prints them side by side;
  ``--anatomical`` and ``--clinical`` add the labelled brains and the raw clinical pairs.

Medians, not means: the machine may be shared. This is a measuring tool; it asserts nothing about speed.

Where each part lives: the hand-written steps in ``tools/plain_steps.py``, what each bundle contributes and the
measurements in ``tools/speed.py``, the registration comparison in ``tools/registration_comparison.py``; this module
is the command line and the driver that runs each measurement in a process of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from tools.bundles import BUNDLES
from tools.plain_steps import (  # noqa: F401  (re-exported: the tests check the bundles' steps against these)
    ae_gan_networks, ae_gan_plain_step, cyclegan_plain_step, deform_gan_networks, deform_gan_plain_step,
    medgan_networks, medgan_plain_step, unit_gmm_networks, unit_gmm_plain_step,
)
from tools.registration_baseline import ANTS_VENV, SYN_OPTIONS, SYN_TRANSFORM
from tools.registration_comparison import (  # noqa: F401
    BASELINES, _baseline_registrations, measure_anatomical, measure_pairs, print_pairs, with_network_rows,
)
from tools.speed import (  # noqa: F401
    BENCHMARKS, INFER_BATCH, Benchmark, _PEAK_BEFORE_RESET, _device, _peak_rss_mib, measure_bundle_inference,
    measure_framework, measure_network_inference, measure_plain,
)

ROOT = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "BENCHMARK_RESULT "


def run_worker(args: argparse.Namespace) -> None:
    """Hidden entry point of the child process: one measurement, printed as one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    # as MedGAN's configs do (its "initialize"): denormal floats made its step up to 28x slower on the CPU; the
    # CycleGAN step is unaffected (measured)
    torch.set_flush_denormal(True)
    kind, _, size = args.worker.partition(":")
    if kind == "framework":
        result = measure_framework(args.bundle, size, args.warmup, args.iterations, args.data)
    elif kind == "plain":
        result = measure_plain(args.bundle, size, args.warmup, args.iterations)
    elif kind == "bundle_inference":
        result = measure_bundle_inference(args.bundle, args.data)
    elif kind == "anatomical":
        result = measure_anatomical(args.pairs, args.data, args.threads, args.pair_overrides, args.baselines,
                                    args.syn_transform, args.syn_options, args.ants_venv)
    elif kind == "clinical":
        from tools.clinical_pairs import measure_clinical

        from tools.registration_baseline import syn_arguments

        register = _baseline_registrations(args.threads, args.syn_transform, args.syn_options, args.ants_venv)
        result = measure_clinical(args.pairs, args.data, {b: register[b] for b in args.baselines}, args.pair_overrides)
        if "SyN" in args.baselines:
            result.update(syn_transform=args.syn_transform, syn_options=syn_arguments(args.syn_options))
    elif kind == "pairs":
        result = measure_pairs(args.pairs, args.data, args.pair_seeds, args.threads, args.pair_overrides, args.baselines,
                               args.syn_transform, args.syn_options, args.ants_venv)
    else:
        result = measure_network_inference(args.bundle, args.data, args.infer_batches)
    result["peak_rss_mib"] = max(_peak_rss_mib(), _PEAK_BEFORE_RESET[0])  # the whole process
    if torch.cuda.is_available():
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ---------------------------------------------------------------- driver


def spawn(worker: str, args: argparse.Namespace, warmup: int = 0, iterations: int = 0) -> dict:
    """Run one measurement in a fresh interpreter and return its result."""
    print(f"  measuring {args.bundle} {worker} ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "tools.benchmark", args.bundle, "--_worker", worker, "--threads", str(args.threads)]
    cmd += ["--data", str(args.data), "--warmup", str(warmup), "--iterations", str(iterations)]
    cmd += ["--infer-batches", str(args.infer_batches)]
    if args.pairs:
        cmd += ["--pairs", str(args.pairs), "--pair-seeds", str(args.pair_seeds), "--pair-overrides", json.dumps(args.pair_overrides),
                *(["--anatomical"] if args.anatomical else []), *(["--clinical"] if args.clinical else []),
                "--baselines", ",".join(args.baselines), "--syn-transform", args.syn_transform,
                "--syn-options", json.dumps(args.syn_options), "--ants-venv", str(args.ants_venv)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"measurement {worker} failed (exit status {proc.returncode})")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def benchmark_size(size: str, args: argparse.Namespace) -> dict:
    spec = BENCHMARKS[args.bundle]
    warmup = max(1, args.warmup if args.warmup is not None else spec.iterations[size][0])
    iterations = args.iterations if args.iterations is not None else spec.iterations[size][1]
    framework = spawn(f"framework:{size}", args, warmup, iterations)
    plain = spawn(f"plain:{size}", args, warmup, iterations)
    fw_s, plain_s = statistics.median(framework["seconds"]), statistics.median(plain["seconds"])
    return {
        "config": spec.config(size),
        "warmup": warmup,
        "iterations": iterations,
        "framework": {**framework, "median_seconds": fw_s, "iterations_per_second": 1 / fw_s,
                      "median_data_seconds": statistics.median(framework["data_seconds"])},
        "plain": {**plain, "median_seconds": plain_s, "iterations_per_second": 1 / plain_s},
        "overhead": fw_s / plain_s,
    }


def print_table(report: dict) -> None:
    spec = BENCHMARKS[report["bundle"]]
    cols = ("size", "framework it/s", "plain it/s", "overhead", "fw data ms/it", "loop RSS fw/plain", "process RSS fw/plain")
    head = f"{cols[0]:<8}" + "".join(f"{c:>{len(c) + 3}}" for c in cols[1:])
    print(f"\n{spec.title} training, {report['threads']} CPU threads, device {report['device']}, medians over timed iterations;")
    print("overhead = framework s/it / plain s/it; peak RSS in MiB, during the training loop and over the whole process")
    print(head)
    print("-" * len(head))
    for size, r in report["training"].items():
        fw, pl = r["framework"], r["plain"]
        cells = (
            f"{fw['iterations_per_second']:.3f}", f"{pl['iterations_per_second']:.3f}", f"{r['overhead']:.3f}x",
            f"{1000 * fw['median_data_seconds']:.1f}", f"{fw['loop_peak_rss_mib']:.0f} / {pl['loop_peak_rss_mib']:.0f}",
            f"{fw['peak_rss_mib']:.0f} / {pl['peak_rss_mib']:.0f}",
        )
        row = f"{size:<8}" + "".join(f"{c:>{len(h) + 3}}" for c, h in zip(cells, cols[1:]))
        print(f"{row}   ({r['warmup']} warm-up + {r['iterations']} timed)")
    inf = report.get("inference")
    if inf:
        b, n = inf["bundle"], inf["network"]
        roi = "x".join(str(s) for s in spec.sizes["default"]["roi_size"])
        what = ("the whole volume in one pass, padded to a multiple of 16" if spec.volumetric
                else f"{b['slices']} patches of {roi}, batches of {INFER_BATCH}")
        print(f"\nInference, default size, {BUNDLES[report['bundle']]['sample_input']} ({what})")
        print(f"  inference.json run():          {b['seconds']:8.1f} s/volume  (peak RSS {b['peak_rss_mib']:.0f} MiB)")
        print(f"    of which inside the generator: {b['network_seconds']:6.1f} s")
        print(f"  plain generator, no_grad:      {n['seconds']:8.1f} s/volume  (peak RSS {n['peak_rss_mib']:.0f} MiB;"
              f" {n['timed_slices']} patches timed, scaled to {n['slices']})")
        print(f"  run() / plain generator:       {b['seconds'] / n['seconds']:8.3f}x")


def _baselines(text: str) -> list[str]:
    known = {b.lower(): b for b in BASELINES}
    names = list(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))  # each once, in order
    if not names or any(n not in known for n in names):
        raise argparse.ArgumentTypeError(f"baselines are comma-separated names of {', '.join(BASELINES)}, got {text!r}")
    return [known[n] for n in names]


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e}): {text!r}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object of config values, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", choices=list(BENCHMARKS))
    sizes = "; ".join(f"{name}: {', '.join(spec.sizes)}" for name, spec in BENCHMARKS.items())
    defaults = "; ".join(f"{name}: {','.join(spec.default_sizes)}" for name, spec in BENCHMARKS.items())
    p.add_argument("--sizes", default=None, help=f"comma-separated, of the bundle's ({sizes}); default {defaults}")
    p.add_argument("--iterations", type=int, default=None, help="timed iterations (default: per bundle and size, "
                   "e.g. 5 at CycleGAN's 'default', 2 at MedGAN's)")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations first, at least 1 (default: per size)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every measurement")
    p.add_argument("--data", type=Path, default=ROOT / "data", help="dataset root with the datalists (python -m tools.sample_data)")
    p.add_argument("--skip-inference", action="store_true", help="training only")
    p.add_argument("--infer-batches", type=int, default=4, help="batches of 8 slices timed for the plain generator, "
                   "scaled to the whole volume (0: time all slices)")
    p.add_argument("--pairs", type=Path, default=None, help="deform_gan: a trained bundle folder (e.g. the demo's "
                   "outputs/demo/bundles/deform_gan); registers its evaluation pairs with its T and with the classical "
                   "baselines (--baselines) and prints them side by side")
    p.add_argument("--pair-seeds", type=int, default=3, help="deform_gan --pairs: seeded deformations per pair (0: "
                   "none, e.g. with --anatomical alone)")
    p.add_argument("--anatomical", action="store_true", help="deform_gan --pairs: also the inter-subject pairs of the "
                   "labelled brains, affinely aligned by ANTs first, scored by Dice over 30 anatomical structures "
                   "(tools/anatomical_pairs.py; T1 onto T1; needs python3.11 -m tools.ants setup)")
    p.add_argument("--clinical", action="store_true", help="deform_gan --pairs: also the raw clinical pairs (the sample "
                   "data's brain_mri_raw: T1W and T2W onto FLAIR of two studies, each on its own grid), scored by the "
                   "distance between each method's mapping and the database authors' ITK transforms over the head "
                   "(tools/clinical_pairs.py)")
    p.add_argument("--baselines", type=_baselines, default=list(BASELINES), help="deform_gan --pairs: the classical "
                   f"baselines run beside T, comma-separated, of {','.join(BASELINES)} (default all: SyN needs "
                   "python3.11 -m tools.ants setup, elastix pip install -r requirements-benchmark.txt)")
    p.add_argument("--syn-transform", default=SYN_TRANSFORM, help="deform_gan --pairs: ANTs' type_of_transform for the "
                   f"SyN baseline (default {SYN_TRANSFORM}: affine then SyN, Mattes mutual information; e.g. "
                   "antsRegistrationSyNQuick[s], the antsRegistrationSyNQuick.sh recipe)")
    p.add_argument("--syn-options", type=_json_object, default={}, help="deform_gan --pairs: ants.registration "
                   f"arguments for the SyN baseline as a JSON object, on top of its defaults ('{json.dumps(SYN_OPTIONS)}', "
                   "see tools/registration_baseline.py), e.g. '{\"reg_iterations\": [40, 20, 10]}' (SyN's iterations "
                   "per level, the last at full resolution) or '{\"total_sigma\": 0}' (antspyx's own default)")
    p.add_argument("--ants-venv", type=Path, default=ANTS_VENV, help="deform_gan --pairs: the virtualenv with antspyx "
                   f"for SyN and the anatomical pairs' affine alignment (default {ANTS_VENV.name}: python3.11 -m tools.ants "
                   "setup [--venv DIR])")
    p.add_argument("--pair-overrides", type=_json_object, default={}, help="deform_gan --pairs: config values as a "
                   "JSON object for the pairs' evaluation, e.g. '{\"pixdim\": [1, 1, 1], \"roi_size\": [160, 192, 160], "
                   "\"lg_kernel_size\": 7, \"refine_steps\": [30, 10], \"refine_downsample\": [3, 2], \"refine_lr\": 0.5, "
                   "\"refine_alpha\": 2.5, \"refine_grid_factor\": 5}' (1 mm pairs for a T trained at 3 mm, coarse to "
                   "fine: the model card's schedule)")
    p.add_argument("--json", type=Path, default=None, help="also write all numbers, per-iteration times included")
    p.add_argument("--_worker", dest="worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.data = args.data.resolve()
    spec = BENCHMARKS[args.bundle]
    if args.pairs and args.bundle != "deform_gan":
        p.error("--pairs is for deform_gan")
    if args.anatomical and not args.pairs:
        p.error("--anatomical needs --pairs (the trained bundle to evaluate)")
    if args.clinical and not args.pairs:
        p.error("--clinical needs --pairs (the trained bundle to evaluate)")
    if args.pairs and not (args.pair_seeds > 0 or args.anatomical or args.clinical):
        p.error("--pair-seeds 0 leaves nothing to register without --anatomical or --clinical")
    if args.pairs and args.sizes is None:  # only the registration comparison
        args.sizes, args.skip_inference = "", True
    args.sizes = args.sizes if args.sizes is not None else ",".join(spec.default_sizes)
    unknown = [s for s in args.sizes.split(",") if s and s not in spec.sizes]
    if unknown:
        p.error(f"unknown {args.bundle} sizes {unknown}; choose from {list(spec.sizes)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    import monai
    import torch

    report = {"bundle": args.bundle, "threads": args.threads, "device": str(_device()), "torch": torch.__version__,
              "monai": monai.__version__, "training": {}}
    if args.pairs:
        args.pairs = args.pairs.resolve()
        report["pairs_bundle"] = str(args.pairs)
        if args.pair_seeds:
            report["pairs"] = spawn("pairs", args)
        if args.anatomical:
            report["anatomical"] = spawn("anatomical", args)
        if args.clinical:
            report["clinical"] = spawn("clinical", args)
    for size in [s for s in args.sizes.split(",") if s]:
        report["training"][size] = benchmark_size(size, args)
    if not args.skip_inference:
        report["inference"] = {"bundle": spawn("bundle_inference", args), "network": spawn("network_inference", args)}
    if args.json:  # first: the numbers are kept whatever the printing does
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if report["training"]:
        print_table(report)
    if "pairs" in report:
        print_pairs(report)
    if "anatomical" in report:
        print_pairs(report, "anatomical")
    if "clinical" in report:
        print_pairs(report, "clinical")
    if args.json:
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
