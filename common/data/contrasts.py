"""Multi-contrast inputs with missing contrasts: one tensor of the given contrasts (zero-filled where missing) and
their missing flags, the input combinations of an evaluation, and random input subsets for training."""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from ..networks.ae_gan import missing_flags  # the network's input layout, which the stack below builds
from .transforms import _source

__all__ = [
    "InvertStackd",
    "StackContrastsd",
    "contrast_inputs",
    "expand_input_subsets",
    "given_contrasts",
    "input_contrasts",
    "input_subsets",
    "missing_flags",
    "random_input_subsets",
    "with_inputs",
]


class StackContrastsd(MapTransform):
    """Stacks the input contrasts ``keys`` (each (1, *S), on one grid) into ``name``: (2N, *S), the N contrasts in the
    order of ``keys`` with absent ones zero-filled, then N constant channels of missing flags (1 = missing).

    This is the input of ``common.networks.MultiContrastSynthesisNet``. The result keeps the metadata and the
    transform records of the first given contrast (its key under ``meta["stack_source"]``), so ``InvertStackd`` can
    map a prediction back onto that contrast's grid and intensity scale.
    The per-contrast keys are removed (the stack holds them). No given contrast, or contrasts of different shapes,
    is an error naming the keys or files.
    """

    def __init__(self, keys: KeysCollection, name: str = "image"):
        super().__init__(keys, allow_missing_keys=True)
        self.name = name

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        given = {k: d[k] for k in self.keys if d.get(k) is not None}
        if not given:
            raise ValueError(
                f"no input contrast given: expected at least one of {list(self.keys)}"
                f"{' for ' + str(d['subject']) if 'subject' in d else ''}."
            )
        first_key, first = next(iter(given.items()))
        for key, img in given.items():
            if tuple(img.shape) != tuple(first.shape) or img.shape[0] != 1:
                raise ValueError(
                    f"'{_source(img)}' ('{key}') has shape {tuple(img.shape)} but '{_source(first)}' "
                    f"('{first_key}') has {tuple(first.shape)}: the inputs must be one-channel images on "
                    f"one grid."
                )
        zeros = torch.zeros_like(torch.as_tensor(first))
        images = [torch.as_tensor(given[k]) if k in given else zeros for k in self.keys]
        flags = [zeros + (0.0 if k in given else 1.0) for k in self.keys]
        stacked = MetaTensor(torch.cat(images + flags, dim=0), meta=dict(getattr(first, "meta", {})))  # (2N, *S)
        stacked.applied_operations = list(getattr(first, "applied_operations", []))
        stacked.meta["stack_source"] = first_key
        for key in self.keys:
            d.pop(key, None)
        d[self.name] = stacked
        return d


class InvertStackd(MapTransform):
    """``Invertd`` for predictions made from a ``StackContrastsd`` stack: undoes, on ``keys``, the preprocessing
    (``transform``) of the contrast whose records the stack carries, so the output has that input's grid, affine and
    intensity scale. ``Invertd`` alone cannot: the preprocessing's transforms are keyed by contrast, and which
    contrast came first depends on what the user gave."""

    def __init__(self, keys: KeysCollection, transform, stack_key: str = "image", **invertd_kwargs):
        super().__init__(keys)
        self.transform, self.stack_key, self.invertd_kwargs = transform, stack_key, invertd_kwargs

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        from monai.transforms import Invertd

        stack = data[self.stack_key]
        source = stack.meta["stack_source"]
        d = {**data, source: stack}  # the stack holds the source contrast's transform records
        out = Invertd(self.keys, self.transform, orig_keys=source, **self.invertd_kwargs)(d)
        out.pop(source)
        return out


def given_contrasts(item: Mapping, names: Sequence[str], key: str = "image") -> dict[str, torch.Tensor]:
    """The given contrasts of an item's stacked input ``item[key]`` (2N, *S), by name: ``{name: (1, *S)}``, the
    missing ones left out (e.g. the single sources of ``common.baselines.BaselineComparison``)."""
    image, n = item[key], len(names)
    if image.shape[0] != 2 * n:
        raise ValueError(
            f"a stack of the {n} contrasts {list(names)} has {2 * n} channels, got shape {tuple(image.shape)}."
        )
    flags = missing_flags(torch.as_tensor(image)[None], n)[0]  # (N,)
    return {name: image[i : i + 1] for i, name in enumerate(names) if flags[i] < 0.5}


def input_contrasts(contrasts: Sequence[str], target: str) -> list[str]:
    """The contrasts a model synthesises ``target`` from: all of ``contrasts`` but the target, which must be one."""
    if target not in contrasts:
        raise ValueError(f"target_contrast '{target}' is not one of the contrasts {list(contrasts)}.")
    return [c for c in contrasts if c != target]


def contrast_inputs(given: Mapping[str, str | None], contrasts: Sequence[str], target: str) -> list[dict]:
    """The inference data of a multi-contrast model: ``[{contrast: path}]`` for the ``given`` contrasts (``None`` =
    not given), checked: at least one of ``contrasts`` given, the ``target`` not given, every file present."""
    named = {c: p for c, p in given.items() if p}
    if target in named:
        raise ValueError(
            f"'{target}' is the target_contrast and was also given as an input (--{target} {named[target]}): "
            f"the model synthesises it from {list(contrasts)}; leave it out or choose another target_contrast."
        )
    unknown = sorted(set(named) - set(contrasts))
    if unknown:
        raise ValueError(f"inputs {unknown} are not input contrasts of this model; it takes {list(contrasts)}.")
    if not named:
        raise ValueError(
            f"no input image given: pass at least one of {' '.join('--' + c + ' FILE' for c in contrasts)}."
        )
    for c, path in named.items():
        if not Path(path).exists():
            raise FileNotFoundError(f"input '{c}': file not found: '{path}'.")
    return [{c: str(p) for c, p in named.items()}]


def input_subsets(contrasts: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``contrasts`` (2^N - 1 of them), largest first, each in the order given."""
    return [c for size in range(len(contrasts), 0, -1) for c in itertools.combinations(contrasts, size)]


def expand_input_subsets(
    entries: Sequence[Mapping], contrasts: Sequence[str], sizes: Sequence[int] | None = None
) -> list[dict]:
    """One entry per subject and per non-empty subset of the ``contrasts`` it has (of the given ``sizes``, default
    all): the other contrasts are dropped and ``inputs`` names the subset, e.g. ``"t1+flair"``. For evaluating a
    multi-contrast model on every combination of inputs."""
    out = []
    for entry in entries:
        present = [c for c in contrasts if entry.get(c) is not None]
        for subset in input_subsets(present):
            if sizes is None or len(subset) in sizes:
                out.append(
                    {
                        **{k: v for k, v in entry.items() if k not in contrasts or k in subset},
                        "inputs": "+".join(subset),
                    }
                )
    if not out:
        raise ValueError(f"no entry has any of the input contrasts {list(contrasts)}.")
    return out


def random_input_subsets(available: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each row of ``available`` (B, N) bool, a subset drawn uniformly from its non-empty subsets: (B, N) bool."""
    if not available.any(dim=1).all():
        raise ValueError("every batch item needs at least one available input contrast.")
    chosen = torch.zeros_like(available)
    todo = torch.ones(available.shape[0], dtype=torch.bool, device=available.device)
    while todo.any():  # rejection sampling: redraw the rows whose draw came out empty
        draw = (torch.rand(available.shape, generator=generator, device=available.device) < 0.5) & available
        chosen = torch.where(todo[:, None], draw, chosen)
        todo = ~chosen.any(dim=1)
    return chosen


def with_inputs(stack: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
    """A batch of stacks (B, 2N, *S), or of 2.5D stacks (B, 2N * k, *S) (each channel with k slices), with only the
    contrasts ``given`` (B, N) bool kept: the others zero-filled and flagged missing."""
    n = given.shape[1]
    if stack.shape[1] % (2 * n):
        raise ValueError(f"a stack of {n} contrasts has 2 * {n} * k channels, got shape {tuple(stack.shape)}.")
    k = stack.shape[1] // (2 * n)
    keep = given.to(stack.dtype).repeat_interleave(k, dim=1)  # (B, N) -> (B, N * k): channel c * k + j is contrast c
    keep = keep.reshape(keep.shape + (1,) * (stack.dim() - 2))  # (B, N * k, 1, ...)
    images = stack[:, : n * k] * keep
    flags = torch.ones_like(stack[:, n * k :]) - keep
    return torch.cat([images, flags], dim=1)
