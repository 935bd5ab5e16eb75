"""MR acquisition artefacts simulated in k-space, to train and test artefact correction (e.g. MedGAN's motion task)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type, convert_to_tensor


class RandKSpaceMotiond(RandomizableTransform, MapTransform):
    """Rigid in-plane patient motion during a Cartesian acquisition: ghosting along the phase-encoding axis.

    The k-space of every axial slice is filled line by line along ``phase_axis``, in order. The patient moves
    ``num_moves`` times (drawn from 1..``max_moves``) at random moments between ``start`` and ``stop`` (fractions of
    the acquisition): the lines acquired after a move see the object at a new random in-plane position (dy, dx), at
    most ``max_shift`` pixels from the start in each axis. Positions count from the one held while the centre of
    k-space (ky = 0, the middle of the acquisition) was acquired, which is where the image shows the anatomy: each
    line's k-space values carry the phase ramp ``exp(-2 pi i (ky dy + kx dx))`` of its offset from there. The image is
    the magnitude of the inverse transform: the anatomy stays where the clean image has it, and copies of it
    ("ghosts") spread along the phase axis. (Counted from the start instead, a move before the centre would shift the
    whole image against its clean target by up to ``max_shift``, an offset no restoration can learn.)
    Every slice of a volume gets the same motion (a 2D multi-slice acquisition). Intensities are taken relative to
    ``background`` (the value of empty space: -1 for the bundles' -1..1 scaling), so empty space stays empty but for
    the ghosts.

    With ``seed`` every image's motion is drawn from a generator seeded by ``seed`` and the image's file name, so an
    evaluation set is corrupted the same way in every run, whatever else drew random numbers before (MONAI's
    ``DataLoader`` reseeds the random transforms of its dataset); without it the draws follow the transform's random
    state, as MONAI's random transforms do. ``prob`` is the chance of corrupting an image. Images are (C, H, W) or
    (C, H, W, D) with the slices along the last axis.
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 1.0,
        max_shift: float = 4.0,
        max_moves: int = 2,
        start: float = 0.1,
        stop: float = 0.9,
        phase_axis: int = 0,
        background: float = -1.0,
        seed: int | None = None,
        allow_missing_keys: bool = False,
    ):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if not 0 <= start < stop <= 1:
            raise ValueError(f"need 0 <= start < stop <= 1, got start={start}, stop={stop}.")
        if phase_axis not in (0, 1) or max_moves < 1:
            raise ValueError(f"phase_axis must be 0 or 1 (in-plane) and max_moves >= 1, got {phase_axis}, {max_moves}.")
        self.max_shift, self.max_moves, self.start, self.stop = max_shift, max_moves, start, stop
        self.phase_axis, self.background = phase_axis, background
        self.seed = seed
        self.moves: list[tuple[float, float, float]] = []  # (when, dy, dx) of the last draw

    def randomize(self, data=None) -> None:
        super().randomize(None)
        n = int(self.R.randint(1, self.max_moves + 1))
        when = sorted(self.R.uniform(self.start, self.stop, size=n))
        self.moves = [
            (float(t), *(float(s) for s in self.R.uniform(-self.max_shift, self.max_shift, size=2))) for t in when
        ]

    def phase_map(self, h: int, w: int) -> torch.Tensor:
        """(H, W) phase of every k-space sample (unshifted FFT layout) for the drawn ``moves``; 0 on the lines acquired
        at the position held at the centre of k-space."""
        n = h if self.phase_axis == 0 else w
        offset = torch.zeros(n, 2)  # (dy, dx) of the object while each line, in acquisition order, was acquired
        for when, dy, dx in self.moves:  # each move sets the position of every line acquired after it
            offset[int(round(when * n)) :] = torch.tensor([dy, dx])
        offset -= offset[n // 2].clone()  # line n // 2 of the order is ky = 0: offsets from the position held there
        line_offset = torch.zeros(n, 2)
        line_offset[torch.fft.fftshift(torch.arange(n))] = offset  # acquisition order -N/2 .. N/2 - 1 -> FFT layout
        ky, kx = torch.fft.fftfreq(h)[:, None], torch.fft.fftfreq(w)[None, :]  # cycles per pixel, (H, 1) and (1, W)
        if self.phase_axis == 0:
            dy, dx = line_offset[:, 0:1], line_offset[:, 1:2]  # (H, 1): one offset per row
        else:
            dy, dx = line_offset[:, 0], line_offset[:, 1]  # (W,): one offset per column
        return -2 * math.pi * (ky * dy + kx * dx)  # (H, W)

    def corrupt(self, img: torch.Tensor) -> torch.Tensor:
        """Applies the drawn ``moves`` to one (C, H, W[, D]) image; the result keeps its type, metadata and device."""
        x = convert_to_tensor(img, track_meta=False).float() - self.background
        slices = x.movedim(-1, 1) if x.ndim == 4 else x  # (C, H, W, D) -> (C, D, H, W): FFT over the in-plane axes
        phase = self.phase_map(*slices.shape[-2:]).to(x.device)
        out = torch.fft.ifft2(torch.fft.fft2(slices) * torch.polar(torch.ones_like(phase), phase)).abs()
        out = out.movedim(1, -1) if x.ndim == 4 else out
        return convert_to_dst_type(out + self.background, img)[0]

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        if self.seed is not None:
            first = next(iter(self.key_iterator(d)), None)
            name = str(getattr(d[first], "meta", {}).get("filename_or_obj", "")) if first is not None else ""
            self.R = np.random.RandomState([self.seed, zlib.crc32(name.encode())])
        self.randomize()
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            d[key] = self.corrupt(d[key])
        return d
