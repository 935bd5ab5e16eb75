"""Release packaging of the bundles: weights, TorchScript/ONNX export, model-zoo checks, metrics, zip, index.

    python -m tools.release <bundle|all> (--train | --checkpoint PATH) [--size release|test] [--version X.Y.Z]
                            [--repo OWNER/REPO [--tag bundles] | --url-base URL] [--out DIR] [--index FILE]
                            [--data-dir data] [--changelog TEXT] [--allow-dirty] [--update-source] [--keep-work]
                            [--threads N]
    python -m tools.release download --url URL --sha256 HEX [--dest DIR] [--name NAME]

Run from the repository root. For each bundle (the list is ``tools/bundles.py``) a release build:

1. refuses a bundle folder, ``common/`` or ``tools/bundles.py`` with uncommitted changes (``--allow-dirty``
   skips that) and a version already in the index; the version is ``--version`` or the patch bump of the
   newest of the source metadata's version and the index's versions of that bundle;
2. stages a copy of ``bundles/<name>/`` (configs, docs, LICENSE; no weights, checkpoints, logs or results) in a
   temporary folder, with ``common/`` vendored as ``<name>/common/`` (``"$import common"`` in the configs then
   resolves inside the bundle: ``python -m monai.bundle run`` puts its working directory on ``sys.path``), and
   bakes the size's ``settings`` into the staged configs' top-level values (the released ``inference.json``
   builds the network the weights fit) and the patch size into the metadata's ``network_data_format``;
   metadata ``version``, ``changelog`` and a ``release`` record (size, settings, schedule, weights' origin);
3. weights: ``--train`` runs the staged ``train.json`` (``python -m monai.bundle run``) with the size's schedule
   on ``--data-dir``; ``--checkpoint`` takes a ``models/model.pt`` state_dict or a training checkpoint's
   network entry (``network_key``); either is loaded with ``weights_only=True`` into ``network_def`` (strict)
   and written as ``models/model.pt`` (the ``state_dict`` only);
4. metrics: the staged ``train.json`` + ``evaluate.json`` on the dataset's validation list (held out); the
   ``metrics.csv`` values go into the metadata's ``eval_metrics`` and the model card's release-metrics section;
5. exports ``models/model.ts`` (``monai.bundle ckpt_export``, scripted with ``torch.jit.script``: the input checks
   and every branch of ``forward`` are kept, and any batch and spatial size runs; a bundle whose network cannot
   script is traced instead by ``"torchscript": "trace"`` in ``tools/bundles.py``) and ``models/model.onnx``
   (``monai.bundle onnx_export``, dynamic batch and spatial sizes; MONAI's ``use_trace=True`` path, the one that
   passes the exporter options on to ``torch.onnx.export``);
6. checks: ``verify_metadata`` against ``tools/schema/bundle_metadata.schema.json`` (no network),
   ``verify_net_in_out network_def``, and TorchScript and ONNX Runtime outputs equal to eager (atol 1e-4)
   on a real patch: the held-out ``sample_input`` through the released ``preprocessing``, middle axial slice,
   padded/cropped to ``roi_size``;
7. packs ``<out>/<name>_v<version>.zip`` (top-level ``<name>/``, with ``large_files.yml`` listing each weight
   file's URL and SHA-256) beside the weight files as flat release assets ``<name>_v<version>_model.{pt,ts,onnx}``
   and records the zip's URL, SHA-256, size and metrics in the index (``releases/index.json`` for
   ``--size release``, ``<out>/index.json`` otherwise).

Assets go to ``outputs/releases`` by default (ignored by git): weights are never committed. Upload every file
of a release to the GitHub release tagged ``--tag`` (default ``bundles``) of ``--repo``; then
``python -m monai.bundle download --name <name> --version <v> --source github --repo OWNER/REPO/<tag>``
(MONAI builds ``https://github.com/OWNER/REPO/releases/download/<tag>/<name>_v<v>.zip``) or ``--url <index url>``
fetches it. ``--update-source`` (release size only) then writes the version and changelog into the source
``metadata.json`` and regenerates the README's release table, for the owner to commit with the index.

MONAI 1.6.1's ``monai.bundle download`` has no hash option (it ignores the index's checksum and extracts member
by member, leaving a half bundle when it meets an unsafe member); ``download`` here fetches to a temporary
file, checks the SHA-256 and Content-Length, refuses absolute, ``..``, symlink or out-of-bundle members,
checks the weights against ``large_files.yml``, extracts into a temporary folder and renames it into place.
"""

from __future__ import annotations
import argparse
import csv
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.data.files import sha256_of, write_text_atomic

from tools.release_download import MAX_UNPACKED, ReleaseError, _download_main, check_archive, download  # noqa: F401
from tools.release_staging import (  # noqa: F401  (the parts, under the names the tests and tools use)
    BUNDLE_OUTPUTS, EXPORT_ATOL, SCHEMA, WEIGHT_FILES, _cli_value, _fill_results, _ignore,
    _overrides, _trained_weights, bake_settings,
    export_checks, github_url_base, load_index, load_weights, next_version, parse_version, release_table,
    results_section, stage_bundle, torchscript_mode, update_metadata, write_large_files, write_zip,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INDEX = ROOT / "releases" / "index.json"
DEFAULT_OUT = ROOT / "outputs" / "releases"
DEFAULT_TAG = "bundles"
RELEASES_BEGIN, RELEASES_END = "<!-- releases:begin -->", "<!-- releases:end -->"


def git_dirty(paths: list[str]) -> list[str]:
    """``git status --porcelain`` lines for ``paths`` (relative to the repository root)."""
    try:
        result = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True,
                                text=True, encoding="utf-8", errors="replace", check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise ReleaseError(f"cannot tell whether {paths} are committed ({e}); use --allow-dirty to build anyway.") from e
    return [line for line in result.stdout.splitlines() if line.strip()]


def git_commit() -> str | None:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace")
    return result.stdout.strip() or None if result.returncode == 0 else None


# ------------------------------------------------------------------------------------------- weights


class Steps:
    """Runs the release's commands in the staged bundle (cwd and ``PYTHONPATH`` = the staged bundle, so
    ``import common`` finds the vendored copy), echoing each and keeping its output in ``<work>/logs``."""

    def __init__(self, stage: Path, logs: Path, quiet: bool = False, threads: int | None = None):
        self.stage, self.logs, self.quiet = stage, logs, quiet
        self.logs.mkdir(parents=True, exist_ok=True)
        # children write UTF-8 whatever the locale (libraries print non-ASCII marks), read back as UTF-8
        self.env = {**os.environ, "PYTHONPATH": str(stage), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
        if threads:  # on a shared machine, more OpenMP threads than free cores can slow torch down 100-fold
            self.env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.seconds: dict[str, float] = {}

    def monai_bundle(self, step: str, *args: str) -> str:
        cmd = [sys.executable, "-m", "monai.bundle", *args]
        if not self.quiet:
            print(f"[{step}] (in {self.stage}) $ " + " ".join(shlex.quote(c) for c in cmd[1:]), flush=True)
        return self._run(step, cmd)

    def _run(self, step: str, cmd: list[str]) -> str:
        """Runs ``cmd`` in the staged bundle, timing it and keeping its output in ``logs/<step>.log``."""
        start = time.monotonic()
        result = subprocess.run(cmd, cwd=self.stage, env=self.env, capture_output=True, text=True, encoding="utf-8", errors="replace")
        self.seconds[step] = round(time.monotonic() - start, 1)
        output = result.stdout + result.stderr
        (self.logs / f"{step}.log").write_text(output, encoding="utf-8")
        if result.returncode != 0:
            raise ReleaseError(f"step '{step}' failed (exit {result.returncode}):\n{output[-4000:]}")
        return output

    def scripts(self, step: str, calls: list[tuple[str, dict]]) -> str:
        """Calls ``monai.bundle.scripts`` functions -- what ``python -m monai.bundle <function> ...`` runs -- one
        after the other in a single process (one interpreter start instead of one per command)."""
        if not self.quiet:
            for fn, kwargs in calls:
                args = [f"--{k} {shlex.quote(v if isinstance(v, str) else repr(v))}" for k, v in kwargs.items() if k != "net_id"]
                net_id = [kwargs["net_id"]] if "net_id" in kwargs else []
                print(f"[{step}] (in {self.stage}) $ -m monai.bundle " + " ".join([fn, *net_id, *args]), flush=True)
        driver = ("import ast, sys\nfrom monai.bundle import scripts\n"
                  "for fn, kwargs in ast.literal_eval(open(sys.argv[1], encoding='utf-8').read()):\n    getattr(scripts, fn)(**kwargs)\n")
        calls_file = self.logs / f"{step}.calls"
        calls_file.write_text(repr(calls), encoding="utf-8")
        return self._run(step, [sys.executable, "-c", driver, str(calls_file)])


def update_source(name: str, version: str, changelog: str, index: Mapping[str, Any]) -> None:
    """Writes the released version and changelog line into the source metadata (a text edit that keeps its
    layout) and regenerates the README's release table between its markers."""
    meta_path = ROOT / "bundles" / name / "configs" / "metadata.json"
    text = meta_path.read_text(encoding="utf-8")
    text, n_version = re.subn(r'^(\s*"version"\s*:\s*")[^"]*(")', rf"\g<1>{version}\g<2>", text, count=1, flags=re.M)
    text, n_log = re.subn(r'^(\s*)("changelog"\s*:\s*\{)', lambda m: f'{m.group(1)}{m.group(2)}\n{m.group(1)}    '
                          f'{json.dumps(version)}: {json.dumps(changelog)},', text, count=1, flags=re.M)
    meta = json.loads(text) if n_version and n_log else None
    if not meta or meta.get("version") != version or meta["changelog"].get(version) != changelog:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["version"] = version
        meta["changelog"] = {version: changelog, **meta.get("changelog", {})}
        text = json.dumps(meta, indent=4) + "\n"
    write_text_atomic(meta_path, text)
    readme = ROOT / "README.md"
    content = readme.read_text(encoding="utf-8")
    if RELEASES_BEGIN in content and RELEASES_END in content:
        head, rest = content.split(RELEASES_BEGIN, 1)
        _, tail = rest.split(RELEASES_END, 1)
        write_text_atomic(readme, f"{head}{RELEASES_BEGIN}\n{release_table(index)}\n{RELEASES_END}{tail}")


# ------------------------------------------------------------------------------------------- release


def build_release(
    name: str,
    *,
    train: bool = False,
    checkpoint: str | os.PathLike | None = None,
    size: str = "release",
    version: str | None = None,
    out: str | os.PathLike = DEFAULT_OUT,
    index_path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike = "data",
    url_base: str | None = None,
    repo: str | None = None,
    tag: str = DEFAULT_TAG,
    changelog: str | None = None,
    allow_dirty: bool = False,
    update_src: bool = False,
    keep_work: bool = False,
    quiet: bool = False,
    threads: int | None = None,
) -> dict:
    """Builds one bundle's release (see the module docstring); returns its index entry plus local paths."""
    from tools.bundles import BUNDLES, datalist_override, size_settings, training_overrides

    if name not in BUNDLES:
        raise ReleaseError(f"unknown bundle '{name}'; tools/bundles.py lists {sorted(BUNDLES)}.")
    spec = BUNDLES[name]
    if size not in spec["sizes"] or size == "default":
        known = sorted(set(spec["sizes"]) - {"default"})
        raise ReleaseError(f"unknown size '{size}' for {name}; known: {known} (the default size is the configs as shipped).")
    if train == (checkpoint is not None):
        raise ReleaseError("give exactly one of --train and --checkpoint.")
    if update_src and size != "release":
        raise ReleaseError("--update-source is for release-size builds only.")
    if url_base is None and repo is None:
        raise ReleaseError("give --repo OWNER/REPO (GitHub release assets under --tag) or --url-base URL.")
    if repo is not None and len(repo.split("/")) != 2:
        raise ReleaseError(f"--repo must be OWNER/REPO, got '{repo}'.")
    url_base = (url_base or github_url_base(repo, tag)).rstrip("/")
    out = Path(out).resolve()
    index_path = Path(index_path) if index_path else (DEFAULT_INDEX if size == "release" else out / "index.json")
    data_dir = Path(data_dir).resolve()
    sample = data_dir / spec["sample_input"]
    extras = {k: data_dir / v for k, v in spec.get("extra_inputs", {}).items()}
    settings, schedule = size_settings(name, size), training_overrides(name, size) if train else {}

    watched = [f"bundles/{name}", "common", "tools/bundles.py"]
    dirty = git_dirty(watched) if not allow_dirty else []
    if dirty:
        raise ReleaseError(f"uncommitted changes in {watched} (commit them or use --allow-dirty):\n" + "\n".join(dirty))
    source_meta = json.loads((ROOT / "bundles" / name / "configs" / "metadata.json").read_text(encoding="utf-8"))
    index = load_index(index_path)
    released = list(index.get(name, {}))
    version = version or next_version(source_meta["version"], released)
    parse_version(version)
    if version in released:
        raise ReleaseError(f"{name} {version} is already in the index '{index_path}'.")
    asset_prefix = f"{name}_v{version}"
    zip_path = out / f"{asset_prefix}.zip"
    if zip_path.exists():
        raise ReleaseError(f"'{zip_path}' exists already.")
    for path in (sample, *extras.values()):
        if not path.is_file():
            raise ReleaseError(f"sample input '{path}' not found (give --data-dir, see tools/sample_data.py).")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ReleaseError(f"checkpoint '{checkpoint}' not found.")

    work = Path(tempfile.mkdtemp(prefix=f"release_{name}_"))
    try:
        stage = stage_bundle(name, work / "stage")
        steps = Steps(stage, work / "logs", quiet=quiet, threads=threads)
        bake_settings(stage, settings)
        changelog = changelog or (f"release {version}: weights of the '{size}' size "
                                  + ("trained on the sample data" if train else "from a given checkpoint"))
        release = {"size": size, "settings": settings, "schedule": schedule,
                   "weights": "trained with configs/train.json on the sample data" if train else "from a given checkpoint",
                   "commit": git_commit(), "dirty": bool(allow_dirty and git_dirty_safe(watched))}
        meta_path = stage / "configs" / "metadata.json"
        meta = update_metadata(json.loads(meta_path.read_text(encoding="utf-8")), version, changelog, settings, release)
        meta_path.write_text(json.dumps(meta, indent=4) + "\n", encoding="utf-8")
        configs = {n: str(stage / "configs" / f"{n}.json") for n in {*spec["train"], *spec["evaluate"], spec["inference"]}}

        # weights
        if train:
            train_root = work / "train"
            steps.monai_bundle("train", "run", "--config_file", _cli_list([configs[n] for n in spec["train"]]),
                               "--bundle_root", str(train_root), "--dataset_dir", str(data_dir), *_overrides(schedule))
            checkpoint = _trained_weights(train_root, spec["network_key"])
        weights = load_weights(checkpoint, spec["network_key"])
        _check_fits(stage, spec, weights, size)
        import torch

        torch.save(weights, stage / "models" / "model.pt")
        # histogram landmarks learned in training (intensity_scaling 'nyul') travel with the weights they fit
        for landmarks in (Path(checkpoint).parent / "landmarks.json", Path(checkpoint).parent.parent / "landmarks.json"):
            if landmarks.is_file():
                shutil.copyfile(landmarks, stage / "models" / "landmarks.json")
                break

        # held-out metrics of the released weights, into the metadata and the model card
        eval_dir = work / "eval"
        steps.monai_bundle("evaluate", "run", "--config_file", _cli_list([configs[n] for n in spec["evaluate"]]),
                           "--bundle_root", str(stage), "--dataset_dir", str(data_dir), "--output_dir", str(eval_dir),
                           "--ckpt_dir", str(work / "ckpt"), "--tb_dir", str(work / "tb"),
                           *_overrides(datalist_override(name, size)))
        rows = dict(csv.reader(open(eval_dir / "metrics.csv", encoding="utf-8")))
        metrics = {k: float(rows[k]) for k in spec["metrics"]}
        meta["eval_metrics"] = {**metrics, "note": meta.get("eval_metrics", {}).get("note", "held-out evaluation")}
        meta_path.write_text(json.dumps(meta, indent=4) + "\n", encoding="utf-8")

        # exports (the metadata and inference config are embedded in model.ts)
        net_in = next(iter(meta["network_data_format"]["inputs"].values()))
        shape = [1, int(net_in["num_channels"]), *(int(s) for s in net_in["spatial_shape"])]
        names = ["batch", "channel", *(f"dim{i}" for i in range(len(shape) - 2))]
        dynamic = {k: {i: names[i] for i in range(len(shape)) if i != 1} for k in ("image", "pred")}
        inference = f"configs/{spec['inference']}.json"
        export = {"ckpt_file": "models/model.pt", "meta_file": "configs/metadata.json", "config_file": inference,
                  "input_shape": shape}
        # ONNX: MONAI's use_trace=False would script the network first (PyTorch < 2.9) or drop the exporter options
        # (>= 2.9, where torch.onnx.export captures the module with torch.export); use_trace=True hands both the
        # module and the options (one file: external_data=False) to torch.onnx.export
        onnx_kwargs = {"input_names": ["image"], "output_names": ["pred"], "dynamic_axes": dynamic, "external_data": False}
        steps.scripts("export_and_verify", [
            ("ckpt_export", {"net_id": "network_def", "filepath": "models/model.ts", **export,
                             "use_trace": torchscript_mode(name) == "trace"}),
            ("onnx_export", {"net_id": "network_def", "filepath": "models/model.onnx", **export, "use_trace": True,
                             "converter_kwargs": onnx_kwargs}),
            # model-zoo checks
            ("verify_metadata", {"meta_file": "configs/metadata.json", "filepath": str(SCHEMA)}),
            ("verify_net_in_out", {"net_id": "network_def", "meta_file": "configs/metadata.json", "config_file": inference}),
        ])
        stray = sorted(p.name for p in (stage / "models").iterdir() if p.name not in WEIGHT_FILES)
        if stray:
            raise ReleaseError(f"the exports left unexpected files in models/: {stray}")
        start = time.monotonic()
        checks = export_checks(stage, spec, sample, extras)
        steps.seconds["export_checks"] = round(time.monotonic() - start, 1)

        readme = stage / "docs" / "README.md"
        if readme.is_file():
            results = results_section(name, version, size, release, metrics, checks, str(sample))
            readme.write_text(_fill_results(readme.read_text(encoding="utf-8"), results), encoding="utf-8")

        # pack: zip (weights included) + the weights as flat release assets
        src = ROOT / "bundles" / name
        expected = {p.name for p in src.iterdir()} - _ignore(src)(str(src), [p.name for p in src.iterdir()])
        stray = sorted({p.name for p in stage.iterdir()} - expected - {"common", "models"})
        if stray:
            raise ReleaseError(f"the release steps left unexpected files in the staged bundle: {stray}")
        assets = write_large_files(stage, url_base, asset_prefix)
        out.mkdir(parents=True, exist_ok=True)
        write_zip(stage, zip_path)
        for fname in WEIGHT_FILES:
            shutil.copyfile(stage / "models" / fname, out / f"{asset_prefix}_{fname}")
        entry = {
            "url": f"{url_base}/{zip_path.name}",
            "sha256": sha256_of(zip_path),
            "size": zip_path.stat().st_size,
            "metrics": metrics,
            "size_name": size,
            "settings": settings,
            "schedule": schedule,
            "export_checks": checks,
            "assets": assets,
            "monai_version": meta.get("monai_version"),
            "pytorch_version": meta.get("pytorch_version"),
            "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "source": {"github_repo_tag": f"{repo}/{tag}" if repo else None, "commit": release["commit"],
                       "dirty": release["dirty"]},
        }
        index = load_index(index_path)  # re-read: another bundle of an `all` run may have been added meanwhile
        if version in index.get(name, {}):
            raise ReleaseError(f"{name} {version} appeared in the index '{index_path}' during the build.")
        index.setdefault(name, {})[version] = entry
        write_text_atomic(index_path, json.dumps(index, indent=2) + "\n")
        if update_src:
            update_source(name, version, changelog, index)
        if keep_work:
            print(f"[{name}] work folder kept: {work}")
        return {**entry, "name": name, "version": version, "zip": str(zip_path), "index": str(index_path),
                "work": str(work) if keep_work else None, "seconds": steps.seconds}
    finally:
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)


def git_dirty_safe(paths: list[str]) -> list[str]:
    try:
        return git_dirty(paths)
    except ReleaseError:
        return ["unknown"]


def _cli_list(files: list[str]) -> str:
    return files[0] if len(files) == 1 else "[" + ",".join(repr(f) for f in files) + "]"


def _check_fits(stage: Path, spec: Mapping[str, Any], weights: Mapping[str, Any], size: str) -> None:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(stage / "configs" / f"{spec['inference']}.json"))
    net = parser.get_parsed_content("network_def")
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise ReleaseError(f"the weights do not fit network_def at size '{size}' ({stage.name}): {str(e)[:1500]}") from e


# ------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["download"]:
        return _download_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m tools.release", description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="a bundle of tools/bundles.py, or 'all'")
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--train", action="store_true", help="train with the bundle's train.json and the size's schedule")
    weights.add_argument("--checkpoint", help="models/model.pt state_dict or a training checkpoint_*.pt")
    parser.add_argument("--size", default="release", help="a size of tools/bundles.py: release (default) or test")
    parser.add_argument("--version", help="X.Y.Z (default: patch bump of the newest of metadata and index)")
    parser.add_argument("--changelog", help="changelog line of this version")
    parser.add_argument("--repo", help="OWNER/REPO on GitHub whose release (tag --tag) holds the assets")
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"release tag of the assets (default: {DEFAULT_TAG})")
    parser.add_argument("--url-base", help="URL the assets are served under (instead of --repo/--tag)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where the zip and weight assets go (default: outputs/releases)")
    parser.add_argument("--index", help="release index JSON (default: releases/index.json for --size release, else <out>/index.json)")
    parser.add_argument("--data-dir", default="data", help="dataset root with datalists/ (tools/sample_data.py)")
    parser.add_argument("--allow-dirty", action="store_true", help="build although the bundle has uncommitted changes")
    parser.add_argument("--update-source", action="store_true",
                        help="write version + changelog into the source metadata and the README's release table")
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary staging folder (logs, eval)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of the training/evaluation/export processes")
    args = parser.parse_args(argv)

    from tools.bundles import BUNDLES

    names = list(BUNDLES) if args.bundle == "all" else [args.bundle]
    if args.bundle == "all" and (args.checkpoint or args.version):
        parser.error("--checkpoint and --version name one bundle's release, not 'all'.")
    results = []
    for name in names:
        try:
            result = build_release(name, train=args.train, checkpoint=args.checkpoint, size=args.size, version=args.version,
                                   out=args.out, index_path=args.index, data_dir=args.data_dir, url_base=args.url_base,
                                   repo=args.repo, tag=args.tag, changelog=args.changelog, allow_dirty=args.allow_dirty,
                                   update_src=args.update_source, keep_work=args.keep_work, threads=args.threads)
        except ReleaseError as e:
            print(f"error: {name}: {e}", file=sys.stderr)
            return 1
        results.append(result)
        print(f"\n{name} v{result['version']}: {result['zip']}\n  sha256 {result['sha256']}  {result['size']} bytes\n"
              f"  metrics {json.dumps(result['metrics'])}\n  export checks {json.dumps(result['export_checks'])}\n"
              f"  index {result['index']}  url {result['url']}\n  seconds {json.dumps(result['seconds'])}")
        for path, asset in result["assets"].items():
            print(f"  {path}: {asset['size']} bytes sha256 {asset['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
