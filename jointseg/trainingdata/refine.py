"""Training labels refined against the HR imagery (the paper corrected its map labels
against the HR; SAM cannot be had offline, so a small teacher does it here).

Map labels (OSM, footprints) miss features and are offset, so a label of 1 is mostly
right and a 0 is often an unlabelled impervious pixel: positive-unlabelled data. A small
fully-convolutional HR -> ISA teacher (:func:`teacher_net`, 1 m, a 9 m receptive field) is
trained on the chips' ``hr.tif`` and map labels with a masked cross-entropy; it is too
small to learn the offsets and omissions, which are not predictable from the HR. Its
output g(x) estimates p(labelled | x). Under Elkan & Noto (2008, "Learning classifiers
from only positive and unlabeled data", KDD) p(ISA | x) = g(x) / c, with c = p(labelled |
ISA) estimated as the mean of g over labelled-positive pixels of chips held out of the
teacher's training (:data:`HOLDOUT_FRACTION` of them). A pixel becomes 1 where p >= 0.5
+ margin and 0 where p < 0.5 - margin (the Bayes decision; the cut is not tuned), and
keeps its map label in between, where the HR is not valid, and where the map label is
255 (coverage and ignored edges are the map's).

The teacher reads ``hr.tif`` and ``label.tif`` (or ``label_map.tif`` where an earlier
run left it) only: never ``truth.tif`` or the reference. It is trained on chips of every
split, which is fair because it never sees truth. Each chip keeps its map label as
``label_map.tif`` and gets the refined ``label.tif``, both through
:func:`jointseg.io.write_cog` (atomic, ``.sha256`` sidecars). Seeded, deterministic
algorithms and one torch thread: a rerun writes the same files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import rasterio
from tqdm import tqdm

from jointseg.grid import GeoBox
from jointseg.io import write_cog
from jointseg.products import NODATA_U8
from jointseg.trainingdata.settings import RefineSettings, TrainingDataError

log = logging.getLogger(__name__)

#: The map labels as cut, kept beside the refined ``label.tif``.
LABEL_MAP_NAME = "label_map.tif"
#: Share of the chips held out of the teacher's training to estimate c.
HOLDOUT_FRACTION = 0.2
#: Teacher batches: crops per step, crop side (px, 1 m), Adam learning rate.
BATCH, CROP_PX, LEARNING_RATE = 16, 64, 2e-3
#: At most this many chips are loaded to train the teacher (memory: ~0.8 MB per 320 m chip).
MAX_TRAIN_CHIPS = 256
#: HR reflectance x 10000 -> teacher input scale.
HR_SCALE = 5e-4


def refine_chips(chips_dir: Path, settings: RefineSettings, progress: bool = False) -> dict:
    """Refine the ``label.tif`` of every chip folder in ``chips_dir`` against its ``hr.tif``.

    Args:
        chips_dir: a folder of chip folders, each with ``hr.tif`` (uint16 R G B NIR
            reflectance x 10000, 1 m, 0 = nodata) and ``label.tif`` (uint8 1/0/255).
        settings: method, teacher steps, decision margin, seed.
        progress: show progress bars.

    Returns:
        ``{"method", "steps", "margin", "seed", "c", "fit_chips", "holdout_chips",
        "loss", "added_px", "removed_px", "labelled_px", "changed_share", "chips":
        {chip_id: {"added_px", "removed_px", "changed_share", "isa_fraction_map",
        "isa_fraction"}}}`` (only ``method`` and an empty ``chips`` for ``none``).

    Raises:
        TrainingDataError: no chip folder, or no labelled impervious pixel to learn from.
    """
    if settings.method == "none":
        return {"method": "none", "chips": {}}
    dirs = sorted(p.parent for p in Path(chips_dir).glob("*/hr.tif")
                  if (p.parent / "label.tif").exists())
    if not dirs:
        raise TrainingDataError(f"{chips_dir}: no chip folder with hr.tif and label.tif")
    import torch

    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(dirs))
    n_hold = int(round(HOLDOUT_FRACTION * len(dirs))) if len(dirs) > 1 else 0
    hold = sorted(order[:n_hold].tolist())
    fit = sorted(order[n_hold:].tolist())[:MAX_TRAIN_CHIPS]
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(1)  # same sums on any machine; faster than 2 on a busy one
        try:
            net, loss = _train([dirs[i] for i in fit], settings.steps, rng, progress)
            c = _calibrate(net, [dirs[i] for i in hold] or [dirs[i] for i in fit])
            chips = {d.name: _refine_one(net, d, c, settings.margin)
                     for d in tqdm(dirs, desc="refine labels", disable=not progress)}
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)
    added = sum(s["added_px"] for s in chips.values())
    removed = sum(s["removed_px"] for s in chips.values())
    labelled = sum(s["labelled_px"] for s in chips.values())
    log.info("refined %d chips: c %.3f, %d px added, %d removed", len(chips), c, added, removed)
    return {"method": settings.method, "steps": settings.steps, "margin": settings.margin,
            "seed": settings.seed, "c": round(c, 4), "fit_chips": len(fit),
            "holdout_chips": len(hold), "loss": round(loss, 4), "added_px": added,
            "removed_px": removed, "labelled_px": labelled,
            "changed_share": round((added + removed) / max(labelled, 1), 4), "chips": chips}


def teacher_net():  # noqa: ANN201 - torch.nn.Module, torch imported lazily
    """The HR -> ISA teacher: 4 convolutions (16 channels, receptive field 9 px), logits."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(5, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=2, dilation=2), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 1, 1))


def _read(chip: Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint16 (4, rows, cols) HR, uint8 (rows, cols) map label) of one chip folder."""
    with rasterio.open(chip / "hr.tif") as src:
        hr = src.read()
    source = chip / LABEL_MAP_NAME if (chip / LABEL_MAP_NAME).exists() else chip / "label.tif"
    with rasterio.open(source) as src:
        label = src.read(1)
    return hr, label


def _features(hr: np.ndarray):  # noqa: ANN202 - torch.Tensor
    """Teacher input (n, 5, rows, cols) float32 from uint16 HR (n, 4, rows, cols): the
    4 bands scaled and NDVI (-1 where NIR is absent, all 0)."""
    import torch

    x = torch.from_numpy(hr.astype(np.float32)) * HR_SCALE
    ndvi = (x[:, 3] - x[:, 0]) / (x[:, 3] + x[:, 0] + 1e-6)
    return torch.cat([x, ndvi[:, None]], 1)


def _valid(hr: np.ndarray) -> np.ndarray:
    """HR pixels with R, G and B present (axis -3 = bands)."""
    return (hr[..., :3, :, :] > 0).all(-3)


def _train(chips: list[Path], steps: int, rng: np.random.Generator, progress: bool
           ) -> tuple[object, float]:
    """The teacher trained on ``chips`` (masked BCE on labelled, valid pixels); returns
    (net, mean loss of the last 50 steps)."""
    import torch

    data = [_read(c) for c in chips]
    crop = min(CROP_PX, *(min(label.shape) for _, label in data))
    net = teacher_net()
    opt = torch.optim.Adam(net.parameters(), LEARNING_RATE)
    losses: list[float] = []
    for _ in tqdm(range(steps), desc="label teacher", disable=not progress):
        hr_b, lab_b = [], []
        for i in rng.integers(0, len(data), BATCH):
            hr, label = data[i]
            r, c = (int(rng.integers(0, n - crop + 1)) for n in label.shape)
            hr_b.append(hr[:, r:r + crop, c:c + crop])
            lab_b.append(label[r:r + crop, c:c + crop])
        hr_a, lab_a = np.stack(hr_b), np.stack(lab_b)
        mask = torch.from_numpy((lab_a != NODATA_U8) & _valid(hr_a)).float()
        if not mask.sum():
            continue
        target = torch.from_numpy((lab_a == 1).astype(np.float32))
        out = net(_features(hr_a))[:, 0]
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(
            out, target, reduction="none") * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return net.eval(), float(np.mean(losses[-50:])) if losses else float("nan")


def _predict(net: object, hr: np.ndarray) -> np.ndarray:
    """Teacher output g(x) in [0, 1], float32 (rows, cols), for one chip's uint16 HR."""
    import torch

    with torch.no_grad():
        return torch.sigmoid(net(_features(hr[None]))[0, 0]).numpy()


def _calibrate(net: object, chips: list[Path]) -> float:
    """c = mean teacher output over the labelled-impervious valid pixels of ``chips``."""
    total, n = 0.0, 0
    for chip in chips:
        hr, label = _read(chip)
        pos = (label == 1) & _valid(hr)
        if pos.any():
            total += float(_predict(net, hr)[pos].astype(np.float64).sum())
            n += int(pos.sum())
    if not n:
        raise TrainingDataError(
            f"{chips[0].parent}: no labelled impervious pixel to calibrate the label teacher")
    return total / n


def decide(label: np.ndarray, p_isa: np.ndarray, valid: np.ndarray, margin: float
           ) -> np.ndarray:
    """The refined uint8 label: 1 where ``p_isa >= 0.5 + margin``, 0 where ``p_isa <
    0.5 - margin``, the map ``label`` in between, where not ``valid`` and where 255."""
    out = label.copy()
    sure = valid & (label != NODATA_U8)
    out[sure & (p_isa >= 0.5 + margin)] = 1
    out[sure & (p_isa < 0.5 - margin)] = 0
    return out


def _refine_one(net: object, chip: Path, c: float, margin: float) -> dict:
    """Refine one chip's label in place (the map label to ``label_map.tif``); its stats."""
    hr, label = _read(chip)
    refined = decide(label, _predict(net, hr) / c, _valid(hr), margin)
    with rasterio.open(chip / "label.tif") as src:
        grid, tags = GeoBox.of(src), src.tags()
    tags.pop("JOINTSEG_LABEL_REFINED", None)
    if not (chip / LABEL_MAP_NAME).exists():
        write_cog(chip / LABEL_MAP_NAME, label, grid, nodata=NODATA_U8, band_names=["isa"],
                  tags={**tags, "JOINTSEG_PRODUCT": "chip_label_map"})
    write_cog(chip / "label.tif", refined, grid, nodata=NODATA_U8, band_names=["isa"],
              tags={**tags, "JOINTSEG_PRODUCT": "chip_label",
                    "JOINTSEG_LABEL_REFINED": f"pu-teacher c={c:.4f} margin={margin:g}"})
    labelled = label != NODATA_U8
    n = int(labelled.sum())
    added = int(((label == 0) & (refined == 1)).sum())
    removed = int(((label == 1) & (refined == 0)).sum())
    return {"added_px": added, "removed_px": removed, "labelled_px": n,
            "changed_share": round((added + removed) / max(n, 1), 4),
            "isa_fraction_map": round(float((label[labelled] == 1).mean()) if n else 0.0, 4),
            "isa_fraction": round(float((refined[labelled] == 1).mean()) if n else 0.0, 4)}
