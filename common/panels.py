"""PNG panels of axial slices side by side (e.g. T1 | synthetic T2 | real T2), for people to look at results."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from PIL import Image, ImageDraw


def _to_uint8(img: np.ndarray, value_range: Sequence[float]) -> np.ndarray:
    lo, hi = value_range
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def pick_slice(volume, mask=None) -> int:
    """Axial index (last axis) with the most foreground: the mask's if given, else voxels above the minimum."""
    vol = torch.as_tensor(volume).detach().cpu()
    fg = torch.as_tensor(mask).cpu() > 0 if mask is not None else vol > vol.min()
    return int(fg.reshape(-1, fg.shape[-1]).sum(0).argmax())


def save_panel(path: str | os.PathLike, volumes: Sequence, titles: Sequence[str], index: int,
               value_range: Sequence[float] = (-1.0, 1.0), min_height: int = 256) -> Path:
    """Writes axial slice ``index`` of each (C, H, W, D) RAS volume side by side, anterior up, with titles.

    Tiles smaller than ``min_height`` pixels are enlarged by a whole factor (nearest neighbour, so every voxel stays
    a visible square): a 3 mm or 4 mm slice is 60 to 80 voxels, too small to read at screen resolution.
    """
    tiles = []
    for vol in volumes:
        img = torch.as_tensor(vol).detach().cpu().float().numpy()[0, :, :, index]  # (H=R-L, W=P-A)
        tile = _to_uint8(np.rot90(img), value_range)  # anterior up, patient's right on the left
        factor = max(1, -(-min_height // tile.shape[0]))  # ceil(min_height / height)
        tiles.append(np.kron(tile, np.ones((factor, factor), dtype=np.uint8)))  # (H, W) -> (factor H, factor W)
    height, bar = tiles[0].shape[0], 16
    canvas = Image.new("L", (sum(t.shape[1] for t in tiles), height + bar), 0)
    draw, x = ImageDraw.Draw(canvas), 0
    for tile, title in zip(tiles, titles):
        canvas.paste(Image.fromarray(np.ascontiguousarray(tile)), (x, bar))
        draw.text((x + 3, 2), title, fill=255)
        x += tile.shape[1]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


class PanelSaver:
    """Evaluator handler: for each evaluated volume, writes ``<output_dir>/<name>_panel.png`` showing the input,
    the prediction and the target at the axial slice with the most foreground (the mask's, when one is given).

    Several inputs (a multi-contrast model): ``sources(item)`` gives the input images by name, each shown as a tile
    titled with its name (upper case) before the prediction and the target; ``name_key`` names an item's key (e.g.
    the input combination) appended to the file name, so that each evaluated combination keeps its panel.
    ``keys`` are the item's images shown after the input (default the prediction and the target; a CT translation
    without a target shows its prediction and cycle reconstruction), ``value_range`` the intensities mapped to
    black..white (e.g. a soft-tissue window), and the slice is the one where ``slice_key``'s image (or the mask) has
    the most foreground.
    """

    def __init__(self, output_dir: str | os.PathLike, titles: Sequence[str] = ("input", "synthetic", "real"),
                 sources: Callable[[Mapping], Mapping[str, torch.Tensor]] | None = None, name_key: str | None = None,
                 keys: Sequence[str] = ("pred", "label"), value_range: Sequence[float] = (-1.0, 1.0), slice_key: str = "label"):
        self.output_dir, self.titles, self.sources, self.name_key = Path(output_dir), tuple(titles), sources, name_key
        self.keys, self.value_range, self.slice_key = tuple(keys), tuple(value_range), slice_key

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        for item in engine.state.output:
            image, mask = item["image"], item.get("eval_mask")
            name = Path(str(image.meta.get("filename_or_obj", "volume"))).name.split(".")[0]
            if self.name_key:
                name += "_" + str(item[self.name_key]).replace("+", "_")
            inputs = {self.titles[0]: image} if self.sources is None else {n.upper(): v for n, v in self.sources(item).items()}
            save_panel(self.output_dir / f"{name}_panel.png", [*inputs.values(), *(item[k] for k in self.keys)],
                       [*inputs, *self.titles[1:]], pick_slice(item[self.slice_key], mask), self.value_range)
