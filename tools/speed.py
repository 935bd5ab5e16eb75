"""Speed and memory of a bundle's training and inference, each measured in a process of its own: the real bundle
built from its configs as a user runs it ("framework"), the same step written by hand (``tools/plain_steps.py``,
"plain"), and inference of a volume. ``BENCHMARKS`` says what each bundle contributes; ``python -m
tools.benchmark`` drives it (its docstring says what is measured and how)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tools.bundles import BUNDLES, datalist_override, shipped_value, size_settings
from tools.plain_steps import (
    _ae_gan_plain, _ae_gan_synthesis, _casnet, _cyclegan_plain, _deform_gan_plain, _device, _medgan_plain,
    _resnet_generator, _shared_latent_vaes, _transformation_network, _unit_gmm_plain,
)

ROOT = Path(__file__).resolve().parents[1]
INFER_BATCH = 8  # the bundles' SliceInferer sw_batch_size


@dataclass(frozen=True)
class Benchmark:
    """What one bundle contributes; the measurements, the driver and the report are shared.

    Args:
        title: the bundle's name in the report.
        sizes: size name -> overrides of ``train.json``'s top-level keys. ``"default"`` is the config as shipped;
            its network also runs the inference measurements (``inference.json`` as shipped).
        iterations: size name -> (warm-up, timed) iterations unless given on the command line.
        default_sizes: what ``--sizes`` measures when not given.
        plain: a size's config -> ``step(source, target)``, one training iteration in plain PyTorch on networks
            and optimisers it builds (after the caller's seed) as the bundle does.
        generator: a size's config -> the deployable network, ``inference.json``'s ``network_def`` at that size.
        overrides: ``train.json`` overrides at every size (not a size: e.g. a weights file that does not exist).
        source_channels: channels of the network's input (1; AE-GAN's stack of three contrasts and flags: 6).
        volumetric: the deployable network sees the whole volume at once (Deform-GAN's T, on the fixed and the
            moving image), not 2D patches: inference is one forward pass on the padded volume.
    """

    title: str
    sizes: dict[str, dict]
    iterations: dict[str, tuple[int, int]]
    default_sizes: tuple[str, ...]
    plain: Callable[[dict], Callable]
    generator: Callable[[dict], object]
    overrides: dict = field(default_factory=dict)
    source_channels: int = 1
    volumetric: bool = False

    def config(self, size: str) -> dict:
        """All that a size overrides in ``train.json``."""
        return {**self.overrides, **self.sizes[size]}


def _size(bundle: str, size: str, schedule_keys: tuple[str, ...] = ()) -> dict:
    """A named size of ``tools/bundles.py``: its network settings and the named keys of its training schedule."""
    schedule = BUNDLES[bundle]["sizes"][size]["schedule"]
    return {**size_settings(bundle, size), **{k: schedule[k] for k in schedule_keys if k in schedule}}


def _shipped(bundle: str, keys: tuple[str, ...]) -> dict:
    """Top-level values of the bundle's ``train.json`` as shipped."""
    return {k: shipped_value(bundle, k) for k in keys}


# the plain step needs these at every size (the release schedule turns the VGG-19 losses off)
_MEDGAN_LOSS = _shipped("medgan", ("generator_updates", "lambda_pixel", "lambda_style", "lambda_content"))

# the input combinations the plain AE-GAN step draws (the shipped "all", or "random" where a size's schedule says so)
_AE_GAN_INPUTS = _shipped("ae_gan", ("input_subsets",))

# the mixture's size and the discriminators' depth, as shipped unless a size sets them
_UNIT_GMM_SHIPPED = _shipped("unit_gmm", ("num_components", "disc_layers", "gen_norm", "gen_output_activation"))

# T's and the step's settings as shipped unless a size sets them
_DEFORM_GAN_SHIPPED = _shipped("deform_gan", ("t_channels", "t_final_channels", "integration_steps", "gen_channels",
                                              "gen_kernel_size", "disc_filters", "disc_layers", "alpha", "beta", "mu",
                                              "lambda_pixel", "lcc_kernel_size", "lg_kernel_size"))

BENCHMARKS: dict[str, Benchmark] = {
    "cyclegan": Benchmark(
        title="CycleGAN",
        sizes={size: _size("cyclegan", size) for size in ("default", "release", "demo", "test")},
        # ~9 s/it at default on 2 cores
        iterations={"default": (2, 5), "release": (3, 20), "demo": (3, 40), "test": (10, 100)},
        default_sizes=("default", "demo", "test"),
        plain=_cyclegan_plain,
        generator=_resnet_generator,
    ),
    "medgan": Benchmark(
        title="MedGAN",
        sizes={size: {**_MEDGAN_LOSS, **_size("medgan", size, tuple(_MEDGAN_LOSS))} for size in ("default", "release", "test")},
        iterations={"default": (1, 2), "release": (2, 10), "test": (5, 30)},
        default_sizes=("default", "release", "test"),
        plain=_medgan_plain,
        generator=_casnet,
        overrides={"vgg_weights": "random"},
    ),
    "ae_gan": Benchmark(
        title="AE-GAN",
        sizes={size: {**_AE_GAN_INPUTS, **_size("ae_gan", size, tuple(_AE_GAN_INPUTS))} for size in ("default", "release", "test")},
        # ~17 s/it at default on 2 cores
        iterations={"default": (1, 3), "release": (3, 20), "test": (10, 50)},
        default_sizes=("default", "release", "test"),
        plain=_ae_gan_plain,
        generator=_ae_gan_synthesis,
        source_channels=6,
    ),
    "unit_gmm": Benchmark(
        title="patch-based GMM UNIT",
        sizes={size: {**_UNIT_GMM_SHIPPED, **_size("unit_gmm", size)} for size in ("default", "release", "test")},
        iterations={"default": (2, 10), "release": (5, 50), "test": (10, 100)},
        default_sizes=("default", "release", "test"),
        plain=_unit_gmm_plain,
        generator=_shared_latent_vaes,
    ),
    "deform_gan": Benchmark(
        title="Deform-GAN",
        sizes={size: {**_DEFORM_GAN_SHIPPED, **_size("deform_gan", size)} for size in ("default", "release", "test")},
        iterations={"default": (1, 3), "release": (3, 20), "test": (5, 30)},
        default_sizes=("default", "release", "test"),
        plain=_deform_gan_plain,
        generator=_transformation_network,
        source_channels=1,
        volumetric=True,
    ),
}


# ---------------------------------------------------------------- measurements (each in its own process)


def _peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
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


def _config_file(bundle: str, name: str) -> str:
    return str(ROOT / "bundles" / bundle / "configs" / f"{name}.json")


def measure_framework(bundle: str, size: str, warmup: int, iterations: int, data_dir: Path) -> dict:
    """Run the bundle's trainer for warmup+iterations iterations (one epoch, no validation)."""
    from ignite.engine import Events
    from monai.bundle import ConfigWorkflow

    with tempfile.TemporaryDirectory() as tmp:
        overrides = {
            **BENCHMARKS[bundle].config(size),
            **datalist_override(bundle),  # the test subset: the speed of an iteration does not depend on the count
            "bundle_root": tmp,
            "dataset_dir": str(data_dir),
            "iterations_per_epoch": warmup + iterations,
            "n_epochs": 1,
            "n_epochs_decay": 1,
            "train#trainer#max_epochs": 1,
            "val_interval": 10**6,
        }
        wf = ConfigWorkflow(config_file=_config_file(bundle, "train"), workflow_type="train", **overrides)
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


def measure_plain(bundle: str, size: str, warmup: int, iterations: int) -> dict:
    """The same iteration in a plain loop over pre-sampled (source, target) tensors."""
    import torch

    config = BENCHMARKS[bundle].config(size)
    torch.manual_seed(0)
    step = BENCHMARKS[bundle].plain(config)
    shape = (1, 1, *config["roi_size"])
    source_shape = (1, BENCHMARKS[bundle].source_channels, *config["roi_size"])
    batches = [(torch.rand(source_shape, device=_device()) * 2 - 1, torch.rand(shape, device=_device()) * 2 - 1) for _ in range(8)]
    if BENCHMARKS[bundle].source_channels > 1:  # a stack of contrasts and their missing flags: every contrast given
        for source, _ in batches:
            source[:, source.shape[1] // 2 :] = 0.0
    seconds = []
    _reset_peak_rss()
    for i in range(warmup + iterations):
        start = time.perf_counter()
        step(*batches[i % len(batches)])
        seconds.append(time.perf_counter() - start)
    return {"seconds": seconds[warmup:], "loop_peak_rss_mib": _peak_rss_mib()}


def _default_generator(bundle: str):
    """The deployable network at the default size (``inference.json`` as shipped), seeded."""
    import torch

    torch.manual_seed(0)
    return BENCHMARKS[bundle].generator(BENCHMARKS[bundle].sizes["default"])


def measure_bundle_inference(bundle: str, data_dir: Path) -> dict:
    """``inference.json``'s ``run()`` on the held-out volume at the default size, and the generator's share."""
    import torch
    from monai.bundle import ConfigWorkflow

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(_default_generator(bundle).state_dict(), f"{tmp}/model.pt")
        overrides = {"bundle_root": tmp, "ckpt_path": f"{tmp}/model.pt", "output_dir": f"{tmp}/out",
                     "dataset_dir": str(data_dir), BUNDLES[bundle]["input_arg"]: str(data_dir / BUNDLES[bundle]["sample_input"]),
                     **{k: str(data_dir / v) for k, v in BUNDLES[bundle].get("extra_inputs", {}).items()}}
        wf = ConfigWorkflow(config_file=_config_file(bundle, "inference"), workflow_type="infer", **overrides)
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


def _volume_extent(bundle: str, data_dir: Path) -> list[float]:
    """The sample volume's size in voxels after resampling to the default size's spacing."""
    import nibabel as nib

    image = nib.load(data_dir / BUNDLES[bundle]["sample_input"])
    return [n * z / p for n, z, p in zip(image.shape, image.header.get_zooms(), BENCHMARKS[bundle].sizes["default"]["pixdim"])]


def _network_input(bundle: str, data_dir: Path, count: int):
    """``count`` random network inputs: 2D patches of the default ``roi_size``, or for a volumetric network the whole
    resampled volume padded to a multiple of 2**levels (T's fixed and moving channels)."""
    import math

    import torch

    spec = BENCHMARKS[bundle]
    if spec.volumetric:
        net = _default_generator(bundle)
        factor = 2 ** net.levels
        shape = [factor * math.ceil(round(e) / factor) for e in _volume_extent(bundle, data_dir)]
        return torch.rand(count, 2, *shape, device=_device())
    return torch.rand(count, spec.source_channels, *spec.sizes["default"]["roi_size"], device=_device()) * 2 - 1


def volume_patches(bundle: str, data_dir: Path) -> int:
    """How many 2D patches of the default ``roi_size`` the inferer tiles the bundle's sample volume into: its axial
    slices at the default spacing, each covered with the inferer's overlap of 0.25 (one patch where the slice is no
    larger than the patch, as for the MRI bundles' 256x256 on 240x240 slices)."""
    import math

    if BENCHMARKS[bundle].volumetric:
        return 1
    size = BENCHMARKS[bundle].sizes["default"]
    extent = _volume_extent(bundle, data_dir)
    per_axis = [1 if e <= r else math.ceil((e - r) / max(int(r * 0.75), 1)) + 1 for e, r in zip(extent, size["roi_size"])]
    return math.ceil(extent[2]) * per_axis[0] * per_axis[1]


def measure_network_inference(bundle: str, data_dir: Path, n_batches: int) -> dict:
    """The default-size generator alone on its 2D patches (e.g. 256x256) in batches of 8, scaled to the patches of
    the bundle's sample volume (``volume_patches``; one per slice for the MRI bundles).

    ``n_batches`` full batches are timed (0: all the volume's patches, the last batch partial) to keep it short.
    """
    import torch

    n_slices = volume_patches(bundle, data_dir)
    net = _default_generator(bundle).to(_device()).eval()
    timed = min(n_slices, n_batches * INFER_BATCH) if n_batches > 0 else n_slices
    slices = _network_input(bundle, data_dir, timed)
    with torch.no_grad():
        net(slices[:INFER_BATCH]).sum().item()  # warm-up batch, not timed
        start = time.perf_counter()
        for batch in slices.split(INFER_BATCH):
            net(batch).sum().item()  # .item(): wait for the device
        seconds = time.perf_counter() - start
    return {"seconds": seconds * n_slices / timed, "timed_slices": timed, "slices": n_slices}
