"""PNG panels for people to look at results: volumes side by side (e.g. T1 | synthetic T2 | real T2 | error), in
rows of three axial slices and one coronal slice."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from PIL import Image, ImageDraw, ImageFont


def _to_uint8(img: np.ndarray, value_range: Sequence[float]) -> np.ndarray:
    lo, hi = value_range
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def pick_slice(volume, mask=None, axis: int = -1) -> int:
    """Index along ``axis`` (default the last: axial) with the most foreground: the mask's if given, else voxels
    above the minimum."""
    vol = torch.as_tensor(volume).detach().cpu()
    fg = torch.as_tensor(mask).cpu() > 0 if mask is not None else vol > vol.min()
    fg = fg.movedim(axis, -1)
    return int(fg.reshape(-1, fg.shape[-1]).sum(0).argmax())


def panel_views(
    shape: Sequence[int], index: int, coronal: int | None = None, axial_step: float = 0.15
) -> list[tuple[str, int, int]]:
    """The rows of a panel of (C, H, W, D) volumes: three axial slices (``index`` and ``axial_step`` of the depth
    below and above it) and one coronal slice (``coronal``, default the middle), as (label, axis, index)."""
    depth, step = shape[-1], max(1, round(axial_step * shape[-1]))
    axial = sorted({min(max(i, 0), depth - 1) for i in (index + step, index, index - step)}, reverse=True)
    return [("axial", 3, i) for i in axial] + [("coronal", 2, shape[-2] // 2 if coronal is None else coronal)]


def _slice(volume, axis: int, index: int) -> np.ndarray:
    """One slice of a (C, H, W, D) RAS volume as shown: axial anterior up, coronal superior up, the patient's left
    on the image's left (the neurological convention)."""
    img = torch.as_tensor(volume).detach().cpu().float().numpy()[0]  # (H=R-L, W=P-A, D=I-S)
    img = img[:, :, index] if axis == 3 else img[:, index, :]  # (R-L, P-A) or (R-L, I-S)
    return np.rot90(img)


def _foreground_box(fg: torch.Tensor, margin: int = 2) -> list[slice]:
    """Per axis of a (H, W, D) boolean volume, the slice spanning its foreground plus ``margin`` voxels (all of
    the axis when there is no foreground)."""
    box = []
    for axis in range(fg.ndim):
        hit = fg.movedim(axis, 0).reshape(fg.shape[axis], -1).any(1).nonzero()
        lo, hi = (int(hit[0]), int(hit[-1]) + 1) if len(hit) else (0, fg.shape[axis])
        box.append(slice(max(lo - margin, 0), min(hi + margin, fg.shape[axis])))
    return box


def _crop(shown: np.ndarray, extents: tuple[slice, slice]) -> np.ndarray:
    """Crops a slice as ``_slice`` shows it (rotated: rows the second axis reversed, columns the first axis)."""
    rows, cols = extents[1], extents[0]
    n = shown.shape[0]
    return shown[n - rows.stop : n - rows.start, cols]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # a Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def save_panel(path: str | os.PathLike, *args, **kwargs) -> Path:
    """Writes ``render_panel(*args, **kwargs)`` as a PNG file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    render_panel(*args, **kwargs).save(path)
    return path


# the error maps' colours, dark (no error) to bright (large), as (position 0..1, R, G, B) stops: black, red, yellow, white
HEAT = np.array([[0.0, 0, 0, 0], [0.4, 200, 0, 0], [0.75, 255, 210, 0], [1.0, 255, 255, 255]])


def heat(grey: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grey levels -> (H, W, 3) uint8 colours along ``HEAT``."""
    x = grey.astype(float) / 255
    return np.stack([np.interp(x, HEAT[:, 0], HEAT[:, c]) for c in (1, 2, 3)], axis=-1).astype(np.uint8)


def render_panel(
    volumes: Sequence,
    titles: Sequence[str],
    index: int,
    value_range: Sequence[float] | Sequence[Sequence[float]] = (-1.0, 1.0),
    min_height: int = 256,
    coronal: int | None = None,
    colour_bar: tuple[int, str, float] | None = None,
) -> Image.Image:
    """An RGB image: a grid of (C, H, W, D) RAS volumes: one column per volume under its title, one row per view
    (``panel_views``: three axial slices around ``index`` and a coronal one), each row labelled.

    ``value_range`` maps intensities to black..white, one pair for all volumes or one per volume (an error map has
    its own). Tiles are enlarged by one whole factor (nearest neighbour, so every voxel stays a visible square), the
    one that brings the axial tiles to ``min_height`` pixels: a 3 mm or 4 mm slice is 60 to 80 voxels, too small to
    read at screen resolution, and with one factor every row's tiles stand under their column's title.

    ``colour_bar = (column, caption, scale)`` shows that column (an error map) in ``heat`` colours with a bar beside the
    grid: its value range from bottom to top, ticks labelled in the column's values times ``scale``, and the caption
    naming the quantity and its unit (``"|synthetic - real|, % of the intensity range"``).
    """
    ranges = [tuple(value_range)] * len(volumes) if np.ndim(value_range[0]) == 0 else [tuple(r) for r in value_range]
    first = torch.as_tensor(volumes[0]).detach().cpu()
    box = _foreground_box(first[0] > first.min())  # the empty field of view around the anatomy is left out
    font = _font(14)
    bar = 20
    views = panel_views(first.shape, index, coronal)
    factor = max(1, -(-min_height // (box[1].stop - box[1].start)))  # ceil(min_height / the axial tiles' height)
    rows = []
    for label, axis, i in views:
        crop = (box[0], box[1]) if axis == 3 else (box[0], box[2])  # (R-L, P-A) or (R-L, I-S) extents
        tiles = []
        for column, (v, r) in enumerate(zip(volumes, ranges)):
            grey = np.kron(_to_uint8(_crop(_slice(v, axis, i), crop), r), np.ones((factor, factor), dtype=np.uint8))
            tiles.append(
                heat(grey) if colour_bar and column == colour_bar[0] else np.repeat(grey[..., None], 3, axis=-1)
            )
        rows.append((f"{label} {i}", np.concatenate(tiles, axis=1)))  # (f H, n f W, 3)
    column_width = (box[0].stop - box[0].start) * factor  # the R-L extent: the same in every view
    legend = 150 if colour_bar else 0
    height = bar + sum(r.shape[0] for _, r in rows)
    canvas = Image.new("RGB", (len(volumes) * column_width + legend, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(titles):
        draw.text((j * column_width + 3, 2), title, fill=(255, 255, 255), font=font)
    y = bar
    for label, row in rows:
        canvas.paste(Image.fromarray(np.ascontiguousarray(row)), (0, y))
        draw.text((3, y + 2), label, fill=(255, 255, 255), font=font)
        y += row.shape[0]
    if colour_bar:
        _draw_colour_bar(
            canvas,
            draw,
            font,
            x=len(volumes) * column_width + 12,
            top=bar + 10,
            bottom=height - 16,
            value_range=ranges[colour_bar[0]],
            caption=colour_bar[1],
            scale=colour_bar[2],
        )
    return canvas


def _draw_colour_bar(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    font,
    x: int,
    top: int,
    bottom: int,
    value_range: Sequence[float],
    caption: str,
    scale: float,
    width: int = 16,
) -> None:
    """``caption`` (wrapped) at ``top``, under it a vertical ``heat`` bar from ``value_range[0]`` (bottom) to
    ``value_range[1]`` (top) with three ticks labelled in value x ``scale``."""
    import textwrap

    lines = textwrap.wrap(caption, 17)
    for k, line in enumerate(lines):
        draw.text((x - 6, top + 16 * k), line, fill=(255, 255, 255), font=font)
    top += 16 * len(lines) + 12
    levels = np.linspace(255, 0, bottom - top).astype(np.uint8)[:, None].repeat(width, axis=1)  # (h, width), top bright
    canvas.paste(Image.fromarray(heat(levels)), (x, top))
    lo, hi = value_range
    for fraction in (0.0, 0.5, 1.0):
        y = round(bottom - 1 - fraction * (bottom - 1 - top))
        draw.line([(x + width, y), (x + width + 4, y)], fill=(255, 255, 255))
        draw.text((x + width + 7, y - 7), f"{(lo + fraction * (hi - lo)) * scale:.3g}", fill=(255, 255, 255), font=font)


class PanelOutput:
    """Where an evaluator's panels go: PNG files ``<output_dir>/<name><suffix>.png`` and/or images in TensorBoard
    under ``tb_dir`` (tag ``panel/<name>``, step the evaluator's epoch: during training, the trainer's epoch that
    triggered the validation)."""

    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        tb_dir: str | os.PathLike | None = None,
        suffix: str = "_panel",
    ):
        if output_dir is None and tb_dir is None:
            raise ValueError("give output_dir (PNG files), tb_dir (TensorBoard) or both.")
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.tb_dir, self.suffix, self._writer = tb_dir, suffix, None

    def __call__(self, engine: Engine, name: str, *args, **kwargs) -> None:
        """Renders ``save_panel(..., *args, **kwargs)`` for volume ``name``."""
        if self.output_dir is not None:
            save_panel(self.output_dir / f"{name}{self.suffix}.png", *args, **kwargs)
        if self.tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            if self._writer is None:
                self._writer = SummaryWriter(log_dir=str(self.tb_dir))
            image = np.asarray(render_panel(*args, **kwargs))  # (H, W, 3) colours
            self._writer.add_image(f"panel/{name}", image, global_step=engine.state.epoch, dataformats="HWC")
            self._writer.flush()


class PanelSaver:
    """Evaluator handler: for each evaluated volume, writes ``<output_dir>/<name>_panel.png`` (and/or a TensorBoard
    image under ``tb_dir``, e.g. at each validation during training; ``PanelOutput``) showing the input,
    the prediction, the target and the error map |prediction - target| (``save_panel``: three axial slices around
    the one with the most foreground, the mask's when one is given, and the coronal slice with the most foreground).

    Several inputs (a multi-contrast model): ``sources(item)`` gives the input images by name, each shown as a tile
    titled with its name (upper case) before the prediction and the target; ``name_key`` names an item's key (e.g.
    the input combination) appended to the file name, so that each evaluated combination keeps its panel.
    ``keys`` are the item's images shown after the input (default the prediction and the target; a CT translation
    without a target shows its prediction and cycle reconstruction), ``value_range`` the intensities mapped to
    black..white (e.g. a soft-tissue window), and the slice is the one where ``slice_key``'s image (or the mask) has
    the most foreground.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        titles: Sequence[str] = ("input", "synthetic", "real"),
        sources: Callable[[Mapping], Mapping[str, torch.Tensor]] | None = None,
        name_key: str | None = None,
        keys: Sequence[str] = ("pred", "label"),
        value_range: Sequence[float] = (-1.0, 1.0),
        slice_key: str = "label",
        tb_dir: str | os.PathLike | None = None,
    ):
        self.output = PanelOutput(output_dir, tb_dir)
        self.titles, self.sources, self.name_key = tuple(titles), sources, name_key
        self.keys, self.value_range, self.slice_key = tuple(keys), tuple(value_range), slice_key

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        for item in engine.state.output:
            image, mask = item["image"], item.get("eval_mask")
            name = Path(str(image.meta.get("filename_or_obj", "volume"))).name.split(".")[0]
            if self.name_key:
                name += "_" + str(item[self.name_key]).replace("+", "_")
            inputs = (
                {self.titles[0]: image}
                if self.sources is None
                else {n.upper(): v for n, v in self.sources(item).items()}
            )
            volumes, titles = [*inputs.values(), *(item[k] for k in self.keys)], [*inputs, *self.titles[1:]]
            ranges = [self.value_range] * len(volumes)
            colour_bar = None
            if self.keys[:2] == ("pred", "label"):  # the error map, on half the intensity range (brighter = worse)
                volumes.append((item["pred"] - item["label"]).abs())
                titles.append(f"|{self.titles[1]} - {self.titles[2]}|")
                span = self.value_range[1] - self.value_range[0]
                ranges.append((0.0, span / 2))
                colour_bar = (len(volumes) - 1, f"{titles[-1]}, % of the intensity range", 100.0 / span)
            slice_of = item[self.slice_key]
            self.output(
                engine,
                name,
                volumes,
                titles,
                pick_slice(slice_of, mask),
                ranges,
                coronal=pick_slice(slice_of, mask, axis=2),
                colour_bar=colour_bar,
            )
