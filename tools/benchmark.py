"""Speed and memory of the CycleGAN bundle, and what the framework costs over a hand-written PyTorch loop.

    python -m tools.benchmark cyclegan [--sizes default,demo,test] [--iterations N] [--warmup K]
                                       [--threads 2] [--data data] [--skip-inference] [--infer-batches 4]
                                       [--json OUT]

Run from the repository root. Per network size it reports:

* **framework**: training iterations/s of the real bundle, built from ``bundles/cyclegan/configs/train.json``
  by ``monai.bundle.ConfigWorkflow`` exactly as a user runs it (only size, epoch length, validation interval
  and output folders overridden). An iteration is timed from one ``ITERATION_COMPLETED`` to the next, so it
  includes drawing the batch from the ``CacheDataset`` (random slice + flip), the step and every handler.
* **plain**: the same step written by hand, as in the pytorch-CycleGAN-and-pix2pix reference
  (``optimize_parameters``): the same networks and initialisation, Adam(2e-4, (0.5, 0.999)), LSGAN + L1 cycle
  x10 + identity x5, image pools of 50, G_A+G_B with D frozen then D_A+D_B; a ``for`` loop over pre-sampled
  uniform random tensors in [-1, 1] of the training shape (convolution cost does not depend on values).
* **overhead**: median framework seconds/iteration divided by median plain seconds/iteration.
* **peak RSS**: ``VmHWM`` of a separate process per measurement, so the numbers do not contaminate each other:
  during the training loop (reset as it starts; the framework's holds its cached training and validation
  volumes) and over the whole process (the framework's includes loading and resampling those volumes).

And, at the default network size, seconds per 240x240x155 volume for ``inference.json`` on the held-out
TCGA-DU-7294 T1 (randomly initialised weights: timing does not depend on them): the whole ``run()`` (load,
preprocessing, slice-wise inference, inversion, saving), the time spent inside the generator during that
run, and the plain generator time for the same number of 256x256 slices in batches of 8 under ``no_grad``
(``--infer-batches`` batches timed and scaled to the volume, since a full pass takes minutes on a CPU).

Sizes: ``default`` is the config as shipped (the paper's); ``test`` what the tests use; ``demo`` the quick start's.
Without a GPU the default size runs at roughly 9 s/iteration on 2 cores: the whole benchmark takes ~6 minutes.

Medians, not means: the machine may be shared. This is a measuring tool; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "cyclegan"
HELD_OUT = "brain_mri/TCGA-DU-7294/TCGA-DU-7294_t1_bet_normalized.nii.gz"

SIZES = {  # overrides of the bundle's config; "default" is the config as shipped (the paper's setting)
    "default": {"num_filters": 64, "num_res_blocks": 9, "disc_filters": 64, "pixdim": [1.0, 1.0, 1.0], "roi_size": [256, 256]},
    "2mm": {"num_filters": 32, "num_res_blocks": 6, "disc_filters": 32, "pixdim": [2.0, 2.0, 2.0], "roi_size": [128, 128]},
    "demo": {"num_filters": 32, "num_res_blocks": 6, "disc_filters": 32, "pixdim": [3.0, 3.0, 3.0], "roi_size": [84, 84]},
    "test": {"num_filters": 8, "num_res_blocks": 2, "disc_filters": 8, "pixdim": [4.0, 4.0, 4.0], "roi_size": [64, 64]},
}
ITERATIONS = {"default": (2, 5), "2mm": (3, 20), "demo": (3, 40), "test": (10, 100)}  # (warmup, timed) unless given; ~9 s/it at default on 2 cores
INFER_BATCH = 8  # the bundle's SliceInferer sw_batch_size
RESULT_PREFIX = "BENCHMARK_RESULT "


# ---------------------------------------------------------------- measurements (each in its own process)


def _peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_PEAK_BEFORE_RESET = [0.0]


def _reset_peak_rss() -> None:
    """Start VmHWM afresh (Linux: ``5`` to clear_refs), so that the next reading covers only what follows."""
    _PEAK_BEFORE_RESET[0] = max(_PEAK_BEFORE_RESET[0], _peak_rss_mib())
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # then the reading covers the whole process


def _device():
    """Where the bundle puts everything (its config's ``device``)."""
    import torch

    return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")


def _networks(size: str):
    """G_A, G_B, D_A, D_B as the bundle builds them."""
    from monai.networks.nets import PatchDiscriminator

    from common.networks import ResnetGenerator

    s = SIZES[size]
    gens = [ResnetGenerator(2, 1, 1, num_filters=s["num_filters"], num_res_blocks=s["num_res_blocks"]) for _ in range(2)]
    discs = [
        PatchDiscriminator(2, channels=s["disc_filters"], in_channels=1, num_layers_d=3, norm="INSTANCE", bias=True)
        for _ in range(2)
    ]
    return tuple(net.to(_device()) for net in (*gens, *discs))


def measure_framework(size: str, warmup: int, iterations: int, data_dir: Path) -> dict:
    """Run the bundle's trainer for warmup+iterations iterations (one epoch, no validation)."""
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    with tempfile.TemporaryDirectory() as tmp:
        overrides = {
            **SIZES[size],
            "bundle_root": tmp,
            "dataset_dir": str(data_dir),
            "iterations_per_epoch": warmup + iterations,
            "n_epochs": 1,
            "n_epochs_decay": 1,
            "train#trainer#max_epochs": 1,
            "val_interval": 10**6,
        }
        wf = ConfigWorkflow(config_file=str(BUNDLE / "configs" / "train.json"), workflow_type="train", **overrides)
        wf.initialize()
        trainer = wf.parser.get_parsed_content("train#trainer")  # the instance that "run" runs
        completed, batch_start, batch_time, loop_peak = [], [], [], []
        trainer.add_event_handler(Events.STARTED, lambda _: _reset_peak_rss())  # after the dataset is cached
        trainer.add_event_handler(Events.COMPLETED, lambda _: loop_peak.append(_peak_rss_mib()))
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: completed.append(time.perf_counter()))
        trainer.add_event_handler(Events.GET_BATCH_STARTED, lambda _: batch_start.append(time.perf_counter()))
        trainer.add_event_handler(
            Events.GET_BATCH_COMPLETED, lambda _: batch_time.append(time.perf_counter() - batch_start[-1])
        )
        wf.run()
        wf.finalize()
    periods = [b - a for a, b in zip(completed, completed[1:])][warmup - 1 :]
    return {"seconds": periods, "data_seconds": batch_time[warmup : warmup + iterations], "loop_peak_rss_mib": loop_peak[0]}


def _lsgan(logits, target: float):
    import torch.nn.functional as F

    return F.mse_loss(logits, logits.new_full(logits.shape, target))


def plain_step(nets, opt_g, opt_d, pools, real_a, real_b) -> tuple[float, float]:
    """One CycleGAN iteration as the reference's ``optimize_parameters``; returns (loss_G, loss_D)."""
    import torch.nn.functional as F

    g_a, g_b, d_a, d_b = nets
    fake_b, fake_a = g_a(real_a), g_b(real_b)
    rec_a, rec_b = g_b(fake_b), g_a(fake_a)
    d_a.requires_grad_(False)
    d_b.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    loss_g = (
        _lsgan(d_b(fake_b)[-1], 1.0)
        + _lsgan(d_a(fake_a)[-1], 1.0)
        + 10.0 * (F.l1_loss(rec_a, real_a) + F.l1_loss(rec_b, real_b))
        + 5.0 * (F.l1_loss(g_a(real_b), real_b) + F.l1_loss(g_b(real_a), real_a))
    )
    loss_g.backward()
    opt_g.step()
    d_a.requires_grad_(True)
    d_b.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    loss_d = 0.0
    for d, real, fake, pool in ((d_a, real_a, fake_a, pools[0]), (d_b, real_b, fake_b, pools[1])):
        loss_d = loss_d + 0.5 * (_lsgan(d(real)[-1], 1.0) + _lsgan(d(pool.query(fake))[-1], 0.0))
    loss_d.backward()
    opt_d.step()
    return loss_g.item(), loss_d.item()


def measure_plain(size: str, warmup: int, iterations: int) -> dict:
    """The same iteration in a plain loop over pre-sampled tensors."""
    import itertools

    import torch

    from common.engines import ImagePool

    torch.manual_seed(0)
    nets = _networks(size)
    for net in nets:
        net.train()
    adam = {"lr": 2e-4, "betas": (0.5, 0.999)}
    opt_g = torch.optim.Adam(itertools.chain(nets[0].parameters(), nets[1].parameters()), **adam)
    opt_d = torch.optim.Adam(itertools.chain(nets[2].parameters(), nets[3].parameters()), **adam)
    pools = (ImagePool(50), ImagePool(50))
    shape = (1, 1, *SIZES[size]["roi_size"])
    batches = [(torch.rand(shape, device=_device()) * 2 - 1, torch.rand(shape, device=_device()) * 2 - 1) for _ in range(8)]
    seconds = []
    _reset_peak_rss()
    for i in range(warmup + iterations):
        start = time.perf_counter()
        plain_step(nets, opt_g, opt_d, pools, *batches[i % len(batches)])
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds[warmup:], "loop_peak_rss_mib": _peak_rss_mib()}


def measure_bundle_inference(data_dir: Path) -> dict:
    """``inference.json``'s ``run()`` on the held-out volume at the default size, and the generator's share."""
    import torch
    from monai.bundle import ConfigWorkflow

    from common.networks import ResnetGenerator

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        torch.save(ResnetGenerator(2, 1, 1, num_filters=64, num_res_blocks=9).state_dict(), f"{tmp}/model.pt")
        overrides = {"bundle_root": tmp, "ckpt_path": f"{tmp}/model.pt", "output_dir": f"{tmp}/out",
                     "dataset_dir": str(data_dir), "input": str(data_dir / HELD_OUT)}
        wf = ConfigWorkflow(config_file=str(BUNDLE / "configs" / "inference.json"), workflow_type="infer", **overrides)
        wf.initialize()
        network, inside, slices = wf.parser.get_parsed_content("network"), [], []

        def started(_module, inputs):  # a pre-hook returning non-None would replace the inputs
            slices.append(len(inputs[0]))
            inside.append(-time.perf_counter())

        network.register_forward_pre_hook(started)
        network.register_forward_hook(lambda *_: inside.append(inside.pop() + time.perf_counter()))
        start = time.perf_counter()
        wf.run()
        seconds = time.perf_counter() - start
        wf.finalize()
    return {"seconds": seconds, "network_seconds": sum(inside), "slices": sum(slices)}


def measure_network_inference(data_dir: Path, n_batches: int) -> dict:
    """The default-size generator alone on 256x256 slices in batches of 8, scaled to the held-out volume's slices.

    ``n_batches`` full batches are timed (0: all the volume's slices, the last batch partial) to keep it short.
    """
    import nibabel as nib
    import torch

    from common.networks import ResnetGenerator

    n_slices = nib.load(data_dir / HELD_OUT).shape[2]
    torch.manual_seed(0)
    net = ResnetGenerator(2, 1, 1, num_filters=64, num_res_blocks=9).to(_device()).eval()
    timed = min(n_slices, n_batches * INFER_BATCH) if n_batches > 0 else n_slices
    slices = torch.rand(timed, 1, 256, 256, device=_device()) * 2 - 1
    with torch.no_grad():
        net(slices[:INFER_BATCH]).sum().item()  # warm-up batch, not timed
        start = time.perf_counter()
        for batch in slices.split(INFER_BATCH):
            net(batch).sum().item()  # .item(): wait for the device
        seconds = time.perf_counter() - start
    return {"seconds": seconds * n_slices / timed, "timed_slices": timed, "slices": n_slices}


def run_worker(args: argparse.Namespace) -> None:
    """Hidden entry point of the child process: one measurement, printed as one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    kind, _, size = args.worker.partition(":")
    if kind == "framework":
        result = measure_framework(size, args.warmup, args.iterations, args.data)
    elif kind == "plain":
        result = measure_plain(size, args.warmup, args.iterations)
    elif kind == "bundle_inference":
        result = measure_bundle_inference(args.data)
    else:
        result = measure_network_inference(args.data, args.infer_batches)
    result["peak_rss_mib"] = max(_peak_rss_mib(), _PEAK_BEFORE_RESET[0])  # the whole process
    if torch.cuda.is_available():
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ---------------------------------------------------------------- driver


def spawn(worker: str, args: argparse.Namespace, warmup: int = 0, iterations: int = 0) -> dict:
    """Run one measurement in a fresh interpreter and return its result."""
    print(f"  measuring {worker} ...", file=sys.stderr, flush=True)
    cmd = [sys.executable, "-m", "tools.benchmark", "cyclegan", "--_worker", worker, "--threads", str(args.threads)]
    cmd += ["--data", str(args.data), "--warmup", str(warmup), "--iterations", str(iterations)]
    cmd += ["--infer-batches", str(args.infer_batches)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"measurement {worker} failed (exit status {proc.returncode})")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def benchmark_size(size: str, args: argparse.Namespace) -> dict:
    warmup = max(1, args.warmup if args.warmup is not None else ITERATIONS[size][0])
    iterations = args.iterations if args.iterations is not None else ITERATIONS[size][1]
    framework = spawn(f"framework:{size}", args, warmup, iterations)
    plain = spawn(f"plain:{size}", args, warmup, iterations)
    fw_s, plain_s = statistics.median(framework["seconds"]), statistics.median(plain["seconds"])
    return {
        "config": SIZES[size],
        "warmup": warmup,
        "iterations": iterations,
        "framework": {**framework, "median_seconds": fw_s, "iterations_per_second": 1 / fw_s,
                      "median_data_seconds": statistics.median(framework["data_seconds"])},
        "plain": {**plain, "median_seconds": plain_s, "iterations_per_second": 1 / plain_s},
        "overhead": fw_s / plain_s,
    }


def print_table(report: dict) -> None:
    cols = ("size", "framework it/s", "plain it/s", "overhead", "fw data ms/it", "loop RSS fw/plain", "process RSS fw/plain")
    head = f"{cols[0]:<8}" + "".join(f"{c:>{len(c) + 3}}" for c in cols[1:])
    print(f"\nCycleGAN training, {report['threads']} CPU threads, device {report['device']}, medians over timed iterations;")
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
        print(f"\nInference, default size, {HELD_OUT} ({b['slices']} slices of 256x256, batches of {INFER_BATCH})")
        print(f"  inference.json run():          {b['seconds']:8.1f} s/volume  (peak RSS {b['peak_rss_mib']:.0f} MiB)")
        print(f"    of which inside the generator: {b['network_seconds']:6.1f} s")
        print(f"  plain generator, no_grad:      {n['seconds']:8.1f} s/volume  (peak RSS {n['peak_rss_mib']:.0f} MiB;"
              f" {n['timed_slices']} slices timed, scaled to {n['slices']})")
        print(f"  run() / plain generator:       {b['seconds'] / n['seconds']:8.3f}x")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", choices=["cyclegan"])
    p.add_argument("--sizes", default="default,demo,test", help=f"comma-separated, of {', '.join(SIZES)}")
    p.add_argument("--iterations", type=int, default=None, help="timed iterations (default: per size, 5 at 'default')")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations first, at least 1 (default: per size)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every measurement")
    p.add_argument("--data", type=Path, default=ROOT / "data", help="dataset root with datalists/brain_mri.json")
    p.add_argument("--skip-inference", action="store_true", help="training only")
    p.add_argument("--infer-batches", type=int, default=4, help="batches of 8 slices timed for the plain generator, "
                   "scaled to the whole volume (0: time all slices)")
    p.add_argument("--json", type=Path, default=None, help="also write all numbers, per-iteration times included")
    p.add_argument("--_worker", dest="worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.data = args.data.resolve()
    unknown = [s for s in args.sizes.split(",") if s not in SIZES]
    if unknown:
        p.error(f"unknown sizes {unknown}; choose from {list(SIZES)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    import monai
    import torch

    report = {"bundle": args.bundle, "threads": args.threads, "device": str(_device()), "torch": torch.__version__,
              "monai": monai.__version__, "training": {}}
    for size in args.sizes.split(","):
        report["training"][size] = benchmark_size(size, args)
    if not args.skip_inference:
        report["inference"] = {"bundle": spawn("bundle_inference", args), "network": spawn("network_inference", args)}
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
