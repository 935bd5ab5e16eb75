"""tools/benchmark.py without benchmarking: its bundle table and CLI, its networks, and the plain MedGAN step against
MedGANStep."""

import json

import pytest
import torch

from common.engines import MedGANStep, MultiNetworkTrainer
from common.registration import folding_percent
from tools import benchmark
from tools.benchmark import BENCHMARKS


def test_every_bundle_has_a_complete_spec():
    assert set(BENCHMARKS) == {"cyclegan", "medgan", "ae_gan", "unit_gmm", "deform_gan"}
    for spec in BENCHMARKS.values():
        assert "default" in spec.sizes and set(spec.iterations) == set(spec.sizes)
        assert set(spec.default_sizes) <= set(spec.sizes)
    # the shipped config at "default"; the VGG-19 weights file does not exist here
    assert BENCHMARKS["medgan"].config("default")["generator_updates"] == 3
    assert all(BENCHMARKS["medgan"].config(s)["vgg_weights"] == "random" for s in BENCHMARKS["medgan"].sizes)


def test_cli_bundles_and_sizes(monkeypatch):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["pix2pix"])
    with pytest.raises(SystemExit):
        benchmark.parse_args(["medgan", "--sizes", "demo"])  # a CycleGAN size
    args = benchmark.parse_args(["medgan"])
    assert args.sizes == "default,release,test"
    # the child process measures the bundle asked for
    calls = []

    class Done:
        returncode, stdout, stderr = 0, benchmark.RESULT_PREFIX + "{}", ""

    monkeypatch.setattr(benchmark.subprocess, "run", lambda cmd, **_: calls.append(cmd) or Done())
    benchmark.spawn("plain:test", args, 1, 2)
    assert calls[0][3:6] == ["medgan", "--_worker", "plain:test"]
    # the registration comparison: Deform-GAN only, and alone unless sizes are asked for too
    with pytest.raises(SystemExit):
        benchmark.parse_args(["cyclegan", "--pairs", "outputs/demo/bundles/cyclegan"])
    args = benchmark.parse_args(["deform_gan", "--pairs", "outputs/demo/bundles/deform_gan"])
    assert args.sizes == "" and args.skip_inference and args.pair_seeds == 3 and args.pair_overrides == {}
    benchmark.spawn("pairs", args)
    assert calls[1][3:6] == ["deform_gan", "--_worker", "pairs"] and benchmark.parse_args(calls[1][3:]).pairs == args.pairs
    # config overrides for the pairs (1 mm pairs for a T trained at 3 mm) reach the child unchanged
    overrides = {"pixdim": [1.0, 1.0, 1.0], "refine_downsample": 3}
    args = benchmark.parse_args(["deform_gan", "--pairs", "b", "--pair-overrides", json.dumps(overrides)])
    benchmark.spawn("pairs", args)
    assert benchmark.parse_args(calls[2][3:]).pair_overrides == overrides
    for bad in ("{pixdim: 1}", "[1, 2]"):  # not JSON; not an object
        with pytest.raises(SystemExit):
            benchmark.parse_args(["deform_gan", "--pairs", "b", "--pair-overrides", bad])
    # the classical baselines: both by default, any subset by name (any case), and they reach the child
    assert args.baselines == ["SyN", "elastix"]
    args = benchmark.parse_args(["deform_gan", "--pairs", "b", "--baselines", "syn", "--syn-transform", "SyNRA",
                                 "--syn-options", json.dumps({"reg_iterations": [40, 20, 10]})])
    benchmark.spawn("pairs", args)
    child = benchmark.parse_args(calls[3][3:])
    assert args.baselines == child.baselines == ["SyN"] and child.syn_transform == "SyNRA"
    assert child.syn_options == {"reg_iterations": [40, 20, 10]}
    for bad in ("", "syn,demons"):
        with pytest.raises(SystemExit):
            benchmark.parse_args(["deform_gan", "--pairs", "b", "--baselines", bad])
    assert benchmark.parse_args(["deform_gan", "--pairs", "b", "--baselines", "syn,elastix,SyN"]).baselines == ["SyN", "elastix"]


def test_plain_medgan_step_matches_medgan_step():
    """The hand-written step computes MedGANStep's losses and updates on the same networks, weights and batch."""
    config = {**BENCHMARKS["medgan"].config("test"), "roi_size": [32, 32]}
    torch.manual_seed(0)
    g, d, vgg = benchmark.medgan_networks(config)
    torch.manual_seed(1)
    g2, d2, _ = benchmark.medgan_networks(config)
    g2.load_state_dict(g.state_dict())
    d2.load_state_dict(d.state_dict())  # spectral-norm power-iteration vectors included
    source, target = torch.rand(2, 1, 1, 32, 32) * 2 - 1

    adam = {"lr": 2e-4, "betas": (0.5, 0.999)}
    step = MedGANStep(vgg, lambda_pixel=5.0, generator_updates=2)
    trainer = MultiNetworkTrainer(
        device="cpu", max_epochs=1, data_loader=[{}], networks={"G": g, "D": d},
        optimizers={"G": torch.optim.Adam(g.parameters(), **adam), "D": torch.optim.Adam(d.parameters(), **adam)},
        step=step,
    )
    expected = step(trainer, {"image": source, "label": target})
    got = benchmark.medgan_plain_step(
        (g2, d2, vgg), torch.optim.Adam(g2.parameters(), **adam), torch.optim.Adam(d2.parameters(), **adam),
        source, target, generator_updates=2, lambda_pixel=5.0,
    )
    assert set(got) <= set(expected)
    for key, value in got.items():  # the second generator update's terms (after the first's Adam step), and D's
        assert value == pytest.approx(expected[key], rel=1e-5, abs=0), key
    assert all(got[k] > 0 for k in ("loss_style", "loss_content", "loss_pixel"))  # every term took part
    for net, net2 in ((g, g2), (d, d2)):  # and both networks were updated alike
        for (name, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("bundle", list(BENCHMARKS))
def test_generator_is_the_inference_network(bundle):
    """The network timed alone is ``inference.json``'s ``network_def`` (checked at the test size: same weights fit)."""
    from monai.bundle import ConfigParser

    config = BENCHMARKS[bundle].config("test")
    parser = ConfigParser()
    parser.read_config(str(benchmark.ROOT / "bundles" / bundle / "configs" / "inference.json"))
    parser.update({k: v for k, v in config.items() if k in parser.get()})
    expected, got = parser.get_parsed_content("network_def"), BENCHMARKS[bundle].generator(config)
    assert type(got) is type(expected)
    assert {k: v.shape for k, v in got.state_dict().items()} == {k: v.shape for k, v in expected.state_dict().items()}


def test_plain_ae_gan_step_matches_ae_gan_step():
    """The hand-written AE-GAN step computes AEGANStep's losses and updates on the same networks, weights and batch."""
    from common.engines import AEGANStep

    config = {**BENCHMARKS["ae_gan"].config("test"), "num_filters": 4, "num_res_blocks": 1}
    torch.manual_seed(0)
    s, a = benchmark.ae_gan_networks(config)
    s2, a2 = benchmark.ae_gan_networks(config)
    s2.load_state_dict(s.state_dict())
    a2.load_state_dict(a.state_dict())
    for net in (s, s2):  # dropout off: the two runs draw different masks
        for m in net.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    source = torch.cat([torch.rand(2, 3, 32, 32) * 2 - 1, torch.zeros(2, 3, 32, 32)], dim=1)
    target = torch.rand(2, 1, 32, 32) * 2 - 1
    # SGD, not the bundle's Adam: Adam turns the float noise of gradients that are zero in exact arithmetic (the
    # biases before instance norm) into full-size steps, which would differ between two equal computations
    sgd = {"lr": 1e-2}
    step = AEGANStep(input_subsets="random")
    trainer = MultiNetworkTrainer(
        device="cpu", max_epochs=1, data_loader=[{}], networks={"S": s, "A": a},
        optimizers={"S": torch.optim.SGD(s.parameters(), **sgd), "A": torch.optim.SGD(a.parameters(), **sgd)},
        step=step,
    )
    trainer.state.iteration = 1
    torch.manual_seed(5)  # the same input subsets drawn
    expected = step(trainer, {"image": source, "label": target})
    torch.manual_seed(5)
    got = benchmark.ae_gan_plain_step((s2, a2), torch.optim.SGD(s2.parameters(), **sgd),
                                      torch.optim.SGD(a2.parameters(), **sgd), source, target)
    for key, value in got.items():
        assert value == pytest.approx(expected[key], rel=1e-5, abs=0), key
    for net, net2 in ((s, s2), (a, a2)):
        for (name, p), q in zip(net.state_dict().items(), net2.state_dict().values()):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)


def test_plain_unit_gmm_step_matches_unit_gmm_step():
    """The hand-written UNIT step (its KL written out too) computes UNITGMMStep's losses and updates on the same
    networks, weights, batch and random draws."""
    from common.engines import UNITGMMStep

    config = {**BENCHMARKS["unit_gmm"].config("test"), "num_filters": 4, "num_res_blocks": 2, "disc_filters": 4}
    torch.manual_seed(0)
    nets = benchmark.unit_gmm_networks(config)
    nets2 = benchmark.unit_gmm_networks(config)
    for net, net2 in zip(nets, nets2):
        net2.load_state_dict(net.state_dict())
    x1, x2 = torch.rand(2, 1, 1, 32, 32) * 2 - 1
    sgd = {"lr": 1e-2}  # SGD, not Adam: see the AE-GAN test above
    g, prior, d1, d2 = nets
    trainer = MultiNetworkTrainer(
        device="cpu", max_epochs=1, data_loader=[{}], networks={"G": g, "prior": prior, "D1": d1, "D2": d2},
        optimizers={"G": torch.optim.SGD([*g.parameters(), *prior.parameters()], **sgd),
                    "D": torch.optim.SGD([*d1.parameters(), *d2.parameters()], **sgd)},
        step=UNITGMMStep(),
    )
    torch.manual_seed(5)  # the same noise and Monte-Carlo draws
    expected = trainer.step(trainer, {"A": x1, "B": x2})
    torch.manual_seed(5)
    g2, prior2, d12, d22 = nets2
    got = benchmark.unit_gmm_plain_step(nets2, torch.optim.SGD([*g2.parameters(), *prior2.parameters()], **sgd),
                                        torch.optim.SGD([*d12.parameters(), *d22.parameters()], **sgd), x1, x2)
    assert set(got) <= set(expected)
    for key, value in got.items():
        assert value == pytest.approx(expected[key], rel=1e-5, abs=0), key
    for net, net2 in zip(nets, nets2):
        for (name, p), q in zip(net.state_dict().items(), net2.state_dict().values()):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("gen_kernel_size", [3, 1])
def test_plain_deform_gan_step_matches_deform_gan_step(gen_kernel_size):
    """The hand-written D -> G -> T step computes DeformGANStep's losses and updates on the same networks and batch,
    with the paper's U-Net G and with the pointwise one."""
    from common.engines import DeformGANStep

    config = {**BENCHMARKS["deform_gan"].config("test"), "t_channels": [4, 8, 8, 8], "t_final_channels": [4],
              "gen_channels": [4, 8], "gen_kernel_size": gen_kernel_size, "disc_filters": 4, "disc_layers": 2,
              "lg_kernel_size": 3}
    torch.manual_seed(0)
    nets, nets2 = benchmark.deform_gan_networks(config), benchmark.deform_gan_networks(config)
    for net, net2 in zip(nets, nets2):
        net2.load_state_dict(net.state_dict())
    with torch.no_grad():  # a T that moves things, so that every term has a gradient
        [m for m in nets[0].modules() if isinstance(m, torch.nn.Conv3d)][-1].weight.normal_(0, 0.01)
        [m for m in nets2[0].modules() if isinstance(m, torch.nn.Conv3d)][-1].weight.copy_(
            [m for m in nets[0].modules() if isinstance(m, torch.nn.Conv3d)][-1].weight)
    fixed = torch.nn.functional.avg_pool3d(torch.rand(1, 1, 24, 24, 24), 3, 1, 1)
    moving = torch.roll(fixed, 1, dims=2) ** 2
    sgd = {"lr": 1e-2}  # SGD, not Adam: see the AE-GAN test above
    names = ("T", "G", "D")
    step = DeformGANStep(alpha=config["alpha"], beta=config["beta"], mu=config["mu"], lambda_pixel=config["lambda_pixel"],
                         lcc_kernel_size=config["lcc_kernel_size"], lg_kernel_size=config["lg_kernel_size"])
    trainer = MultiNetworkTrainer(device="cpu", max_epochs=1, data_loader=[{}], networks=dict(zip(names, nets)),
                                  optimizers={n: torch.optim.SGD(m.parameters(), **sgd) for n, m in zip(names, nets)},
                                  step=step)
    expected = trainer.step(trainer, {"fixed": fixed, "moving": moving})
    from monai.losses import DiffusionLoss, LocalNormalizedCrossCorrelationLoss
    from monai.networks.blocks import Warp

    from common.losses import LocalGradientLoss

    losses = (Warp("bilinear", "border"), LocalNormalizedCrossCorrelationLoss(3, kernel_size=config["lcc_kernel_size"]),
              LocalGradientLoss(config["lg_kernel_size"]), DiffusionLoss())
    got = benchmark.deform_gan_plain_step(nets2, tuple(torch.optim.SGD(m.parameters(), **sgd) for m in nets2), losses,
                                          tuple(config[k] for k in ("alpha", "beta", "mu", "lambda_pixel")), fixed, moving)
    for key, value in got.items():
        assert value == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key
    for net, net2 in zip(nets, nets2):
        for (name, p), q in zip(net.state_dict().items(), net2.state_dict().values()):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)


SHIFT = (2.0, 3.0, -2.0)  # voxels along the array axes, on a (3, 2, 1) mm grid


def _shifted_cube():
    """A noisy cube and the same moved by ``SHIFT``: moving(x + SHIFT) = fixed(x)."""
    import numpy as np

    rng = np.random.default_rng(0)
    fixed = np.zeros((40, 48, 56), np.float32)
    fixed[8:30, 10:36, 12:40] = 1.0
    fixed += rng.random(fixed.shape).astype(np.float32) * 0.1
    return fixed, np.roll(fixed, [int(v) for v in SHIFT], (0, 1, 2))


def test_elastix_baseline_finds_a_known_shift():
    """tools/registration_baseline.py's field follows common.registration's convention (voxels, pull-back, the
    array's axes): a cube moved by (+2, +3, -2) voxels on an anisotropic grid."""
    import numpy as np

    from tools.registration_baseline import elastix_register

    fixed, moving = _shifted_cube()
    ddf, seconds = elastix_register(fixed, moving, [3.0, 2.0, 1.0], stages=("affine",), iterations=200)
    assert ddf.shape == (3, 40, 48, 56) and seconds > 0
    np.testing.assert_allclose(ddf[:, 20, 24, 28], SHIFT, atol=0.1)


@pytest.mark.parametrize("transform, atol", [("Affine", 0.2), ("SyN", 0.25)])
def test_syn_baseline_finds_a_known_shift(transform, atol):
    """ANTs, run in its own virtualenv (python3.11 -m tools.ants setup), returns its composed field in the same
    convention: the affine stage alone and SyN (affine + SyN's warp composed) find the cube's shift at its centre and
    on average over it, within a fifth of a voxel (the affine's own error along the coarse 3 mm axis is 0.13 voxel);
    a wrong sign, axis order or unit (mm for voxels) would be off by voxels."""
    import numpy as np

    from tools.registration_baseline import ANTS_VENV, syn_register

    if not (ANTS_VENV / "bin" / "python").exists():
        pytest.fail(f"no ANTs virtualenv at {ANTS_VENV}: run `python3.11 -m tools.ants setup` (the README's test command does)")
    fixed, moving = _shifted_cube()
    # one thread: with a fixed seed ANTs then gives the same field every run (with two its threads sample differently)
    ddf, seconds = syn_register(fixed, moving, [3.0, 2.0, 1.0], transform=transform, threads=1)
    assert ddf.shape == (3, 40, 48, 56) and seconds > 0
    np.testing.assert_allclose(ddf[:, 20, 24, 28], SHIFT, atol=atol)
    # over the whole cube, not just its centre
    np.testing.assert_allclose(ddf[:, 8:30, 10:36, 12:40].mean((1, 2, 3)), SHIFT, atol=atol)
    assert folding_percent(torch.as_tensor(ddf[None], dtype=torch.float32)) == 0  # SyN's map is diffeomorphic


def test_syn_options_update_the_defaults(monkeypatch, tmp_path):
    """The ANTs process gets SYN_OPTIONS (total_sigma 3) unless told otherwise, and given options on top of them."""
    import numpy as np

    from tools import registration_baseline as rb

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").touch()
    sent = []

    def fake_run(cmd, **_):
        sent.append(json.loads(cmd[cmd.index("--options") + 1]))
        np.savez(cmd[3], ddf=np.zeros((3, 2, 2, 2), np.float32), seconds=1.5)
        return type("Done", (), {"returncode": 0, "stderr": ""})

    monkeypatch.setattr(rb.subprocess, "run", fake_run)
    pair = np.zeros((2, 2, 2))
    assert rb.syn_register(pair, pair, [1, 1, 1], venv=tmp_path)[1] == 1.5
    rb.syn_register(pair, pair, [1, 1, 1], options={"reg_iterations": [40, 20, 10]}, venv=tmp_path)
    rb.syn_register(pair, pair, [1, 1, 1], options={"total_sigma": 0}, venv=tmp_path)
    assert sent == [{"total_sigma": 3}, {"total_sigma": 3, "reg_iterations": [40, 20, 10]}, {"total_sigma": 0}]


def test_syn_baseline_refuses_a_missing_virtualenv(tmp_path):
    import numpy as np

    from tools.registration_baseline import syn_register

    with pytest.raises(RuntimeError, match="tools.ants setup"):
        syn_register(np.zeros((8, 8, 8)), np.zeros((8, 8, 8)), [1.0, 1.0, 1.0], venv=tmp_path / "none")


def test_print_pairs_sets_every_method_side_by_side(capsys):
    """Per pair the identity, T and each baseline; then the means and each baseline's time over T's."""
    def row(pair, epe, seconds):
        return {"pair": pair, "epe_mm": epe, "epe_p95_mm": 2 * epe, "epe_before_mm": 4.0, "dice_before": 0.9,
                "dice_after": 0.95, "folding_percent": 0.0, "seconds": seconds}

    rows = {"T": [row("a", 1.0, 3.0), row("b", 2.0, 5.0)], "SyN": [row("a", 1.5, 30.0), row("b", 0.5, 50.0)],
            "elastix": [row("a", 3.0, 60.0), row("b", 1.0, 100.0)]}
    report = {"threads": 2, "pairs_bundle": "x", "pairs": {"rows": rows, "syn_transform": "SyN", "syn_options": {}}}
    benchmark.print_pairs(report)
    out = capsys.readouterr().out.splitlines()
    means = out[out.index(next(ln for ln in out if ln.startswith("mean"))):]
    assert [ln.split()[-6:-4] for ln in means[:3]] == [["T", "1.50"], ["SyN", "1.00"], ["elastix", "2.00"]]
    assert means[3:] == ["SyN s/pair / T s/pair: 10.0x", "elastix s/pair / T s/pair: 20.0x"]


def test_print_pairs_shows_t_alone_beside_t_with_its_optimisation(capsys):
    """With test-time optimisation configured, the network's own figures get a row of their own ("T alone") before
    "T + opt.", and the time ratios stay against T + optimisation."""
    def row(pair, epe, network_epe, seconds):
        return {"pair": pair, "epe_mm": epe, "epe_p95_mm": 2 * epe, "epe_before_mm": 4.0, "dice_before": 0.9,
                "dice_after": 0.95, "folding_percent": 0.0, "seconds": seconds, "network_epe_mm": network_epe,
                "network_epe_p95_mm": 2 * network_epe, "network_dice_after": 0.93, "network_folding_percent": 0.0,
                "network_seconds": 0.5}

    rows = {"T": [row("a", 1.0, 3.5, 3.0), row("b", 2.0, 4.5, 5.0)], "SyN": [row("a", 1.5, 1.5, 40.0), row("b", 0.5, 0.5, 40.0)]}
    assert benchmark.with_network_rows(rows, refined=False) is rows
    split = benchmark.with_network_rows(rows, refined=True)
    assert list(split) == ["T alone", "T", "SyN"]
    assert [r["epe_mm"] for r in split["T alone"]] == [3.5, 4.5] and [r["seconds"] for r in split["T alone"]] == [0.5, 0.5]
    report = {"threads": 2, "pairs_bundle": "x", "pairs": {"rows": split, "syn_transform": "SyN", "syn_options": {}}}
    benchmark.print_pairs(report)
    out = capsys.readouterr().out.splitlines()
    means = out[out.index(next(ln for ln in out if ln.startswith("mean"))):]
    assert [ln.split()[-6:-4] for ln in means[:3]] == [["alone", "4.00"], ["opt.", "1.50"], ["SyN", "1.00"]]
    assert means[3:] == ["SyN s/pair / T s/pair: 10.0x"]


def test_print_pairs_of_the_clinical_pairs(capsys):
    """The clinical pairs' report (no known deformation, no Dice) prints with its own title, T alone beside T +
    optimisation and SyN, even without SyN's settings in the report."""
    def row(epe, seconds):
        nan = float("nan")
        return {"pair": "OpenMS-long-patient03-study2 T1W->FLAIR", "epe_mm": epe, "epe_p95_mm": 2 * epe,
                "epe_before_mm": 5.6, "dice_before": nan, "dice_after": nan, "folding_percent": 0.0, "seconds": seconds}

    rows = {"T alone": [row(5.0, 0.5)], "T": [row(1.0, 4.0)], "SyN": [row(0.8, 40.0)]}
    report = {"threads": 2, "pairs_bundle": "x", "clinical": {"rows": rows, "refine_steps": [30, 10]}}
    benchmark.print_pairs(report, "clinical")
    out = capsys.readouterr().out
    assert "raw clinical pairs" in out and "authors' ITK transform" in out
    means = out.splitlines()[out.splitlines().index(next(ln for ln in out.splitlines() if ln.startswith("mean"))):]
    assert [ln.split()[-6:-4] for ln in means[:3]] == [["alone", "5.00"], ["opt.", "1.00"], ["SyN", "0.80"]]
    assert means[3:] == ["SyN s/pair / T s/pair: 10.0x"]
