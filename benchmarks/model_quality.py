"""Model quality in the paper's setting: JointSeg vs the bilinear baseline, trained on
noisy labels + HR, scored on the clean truth of held-out simulated regions.

For each label-noise level (``clean``, ``osm``, ``heavy``: the simulator's OSM-like
label sources, parameters and their published sources in docs/simulation.md) both
models train with the same budget on the same simulated training regions (only the
labels differ between levels), then are scored on regions made with another seed
that training never saw, against their clean ``truth.tif``. Per model it reports
F1 / precision / recall / IoU at 1 m, SR PSNR, the share of each land-cover class
(``landcover.tif``) mapped as ISA (commission for non-ISA classes, 1 - omission for
ISA classes), and recall by feature width: road pixels on roads narrower than 10 m,
and building pixels of small buildings (< ``--small-building-m2``). Training curves
(validation F1 and PSNR per epoch) go to ``<out>/curves.png``. Last line:
``jointseg_f1=<x> bilinear_f1=<y>`` of the first noise level asked for.

    nice -n 10 .venv/bin/python benchmarks/model_quality.py [--noise osm,clean,heavy]
        [--epochs 8] [--train-regions 4] [--preset tiny] [--device cpu]

``--recipe legacy`` trains with the recipe before the model-fidelity issue (one LR,
no warm-up / cosine / clipping) to compare. Data are simulated, never real imagery.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio
import torch
from scipy import ndimage

from jointseg.metrics import BinaryCounts, binary_counts, binary_metrics
from jointseg.model.chips import Chip, load_chips
from jointseg.model.losses import LossConfig
from jointseg.model.metrics import psnr
from jointseg.model.train import (
    TrainConfig,
    chip_tensors,
    load_checkpoint,
    train,
    training_summary,
)

ROOT = Path(__file__).resolve().parents[1]
NOISE_LEVELS = ("clean", "osm", "heavy")
ROAD, BUILDING = 1, 2


def make_chips(out: Path, seed: int, n_regions: int, region_m: int, noise: str,
               test: bool = False) -> Path:
    """Simulated chips under ``out`` (reused when index.csv exists); ``test``: every
    region in the test split, else the simulator's default train/val split."""
    if not (out / "index.csv").is_file():
        from jointseg.simulate.chips import simulate_chips

        simulate_chips(out, seed=seed, n_regions=n_regions, region_size_m=region_m,
                       chip_size_m=320, progress=False, label_noise=noise,
                       splits=["test"] * n_regions if test else None)
    return out


def read_truth(root: Path, chip: Chip) -> tuple[np.ndarray, np.ndarray]:
    """A chip's clean ``truth.tif`` (0/1, 255 nodata) and ``landcover.tif`` codes."""
    with rasterio.open(root / chip.chip_id / "truth.tif") as a, \
            rasterio.open(root / chip.chip_id / "landcover.tif") as b:
        return a.read(1), b.read(1)


def width_masks(landcover: np.ndarray, small_m2: float) -> dict[str, np.ndarray]:
    """Pixels of roads narrower than 10 m and of buildings smaller than ``small_m2`` (1 m
    grid: a road pixel is narrow when the largest distance to the road edge within 11 px
    is <= 5 m, i.e. the road is < 10 m wide there)."""
    road = landcover == ROAD
    half = ndimage.distance_transform_edt(road)
    narrow = road & (ndimage.maximum_filter(half, size=11) <= 5.0)
    lab, n = ndimage.label(landcover == BUILDING)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    small = (lab > 0) & (sizes[lab] < small_m2)
    return {"road<10m": narrow, f"bldg<{small_m2:g}m2": small}


@torch.no_grad()
def score(ckpt: Path, root: Path, chips: list[Chip], small_m2: float) -> dict:
    """Scores of a checkpoint on whole test chips against their clean truth."""
    model, raw = load_checkpoint(ckpt)  # best.pt: highest val F1 against val truth.tif
    threshold = training_summary(ckpt)["threshold"]  # calibrated on the val chips
    counts = BinaryCounts()
    per_class: dict[int, list[int]] = {}
    width: dict[str, list[int]] = {}
    se = n = 0.0
    for chip in chips:
        logit, sr = model(*chip_tensors(chip))
        isa = (torch.sigmoid(logit[0, 0]) >= threshold).numpy()
        truth, lc = read_truth(root, chip)
        counts += binary_counts(isa, truth)
        for code in np.unique(lc[lc > 0]):
            m = lc == code
            per_class.setdefault(int(code), [0, 0])
            per_class[int(code)][0] += int(isa[m].sum())
            per_class[int(code)][1] += int(m.sum())
        for name, m in width_masks(lc, small_m2).items():
            width.setdefault(name, [0, 0])
            width[name][0] += int(isa[m].sum())
            width[name][1] += int(m.sum())
        mask = chip.hr_mask
        se += float((((sr[0].double().numpy() - chip.hr / 1e4) ** 2)[mask]).sum())
        n += float(mask.sum())
    m = binary_metrics(counts)
    return {**{k: float(m[k]) for k in ("f1", "precision", "recall", "iou")},
            "psnr": float(psnr(np.zeros(1), np.array([np.sqrt(se / max(n, 1))]))),
            "classes": {c: a / max(t, 1) for c, (a, t) in sorted(per_class.items())},
            "width": {k: a / max(t, 1) for k, (a, t) in width.items()},
            "history": torch.load(ckpt.with_name("last.pt"), map_location="cpu",
                                  weights_only=False)["history"],
            "best_epoch": raw["epoch"], "threshold": threshold}


def train_config(args: argparse.Namespace, arch: str) -> TrainConfig:
    """The same budget for both archs; ``--recipe legacy`` = the pre-issue recipe."""
    cfg = TrainConfig(arch=arch, preset=args.preset, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, seed=0, threads=args.threads,
                      crop_10m=args.crop, crops_per_chip=args.crops_per_chip,
                      device=args.device,
                      loss=LossConfig(sr_warmup_epochs=args.warmup, w_sr=args.w_sr,
                                      sr_weighting=args.sr_weighting))
    if args.recipe == "legacy":
        cfg = replace(cfg, lr_trunk=args.lr, lr_warmup_epochs=0.0, lr_schedule="constant",
                      grad_clip=0.0)
    return cfg


def plot_curves(results: dict, path: Path) -> None:
    """Validation F1 and PSNR per epoch of every (noise, arch) run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for (noise, arch), r in results.items():
        ep = [h["epoch"] for h in r["history"]]
        style = "-" if arch == "jointseg" else "--"
        a.plot(ep, [h["val_f1"] for h in r["history"]], style, label=f"{arch} {noise}")
        if arch == "jointseg":
            b.plot(ep, [h["val_psnr"] for h in r["history"]], label=f"{arch} {noise}")
    a.set(xlabel="epoch", ylabel="val F1 (noisy val labels)", title="segmentation")
    b.set(xlabel="epoch", ylabel="val PSNR (dB)", title="JointSeg SR")
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.suptitle("simulated data")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def print_tables(results: dict, classes: dict[int, str]) -> None:
    print("| noise | model | F1 | precision | recall | IoU | cut | SR PSNR | PSNR ep1→last | "
          "road<10m | small bldg | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (noise, arch), r in results.items():
        h = r["history"]
        trend = f"{h[0]['val_psnr']:.2f}→{h[-1]['val_psnr']:.2f}" if arch == "jointseg" else "-"
        w = list(r["width"].values())
        print(f"| {noise} | {arch} | {r['f1']:.4f} | {r['precision']:.4f} | {r['recall']:.4f}"
              f" | {r['iou']:.4f} | {r['threshold']:.2f} | {r['psnr']:.2f} | {trend} | "
              f"{w[0]:.3f} | {w[1]:.3f} | {r['seconds']:.0f} |")
    codes = sorted({c for r in results.values() for c in r["classes"]})
    print("\nShare of each land-cover class mapped as ISA (ISA classes: 1 - omission; "
          "others: commission)")
    print("| noise | model | " + " | ".join(classes.get(c, str(c)) for c in codes) + " |")
    print("|---|---|" + "---|" * len(codes))
    for (noise, arch), r in results.items():
        print(f"| {noise} | {arch} | " + " | ".join(
            f"{r['classes'][c]:.3f}" if c in r["classes"] else "-" for c in codes) + " |")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/model_quality")
    ap.add_argument("--noise", default="osm,clean,heavy", help="label-noise levels, first "
                    "= the one of the last line (the paper's setting: osm)")
    ap.add_argument("--train-regions", type=int, default=4)
    ap.add_argument("--test-regions", type=int, default=2)
    ap.add_argument("--region-m", type=int, default=1920, help="region side, m (x 320)")
    ap.add_argument("--train-seed", type=int, default=1)
    ap.add_argument("--test-seed", type=int, default=1001)
    ap.add_argument("--preset", choices=["tiny", "paper"], default="tiny")
    ap.add_argument("--device", default="cpu", help="cpu | cuda (the paper preset needs cuda)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop", type=int, default=16, help="crop side, 10 m px")
    ap.add_argument("--crops-per-chip", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=1, help="SR warm-up epochs (jointseg)")
    ap.add_argument("--w-sr", type=float, default=1.0, help="joint weight of the SR loss")
    ap.add_argument("--sr-weighting", choices=["fixed", "balanced"], default="fixed")
    ap.add_argument("--recipe", choices=["current", "legacy"], default="current")
    ap.add_argument("--archs", default="jointseg,bilinear")
    ap.add_argument("--small-building-m2", type=float, default=200.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.preset == "paper" and args.device == "cpu":
        ap.error("the paper preset trains on a GPU only: pass --device cuda")
    return args


def main() -> None:
    from jointseg.simulate.materials import CLASSES

    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    noises = [n for n in args.noise.split(",") if n]
    archs = [a for a in args.archs.split(",") if a]
    sim = f"s{args.train_seed}_n{args.train_regions}_r{args.region_m}"
    test_dir = make_chips(args.out / f"test_s{args.test_seed}_n{args.test_regions}_"
                          f"r{args.region_m}", args.test_seed, args.test_regions,
                          args.region_m, "clean", test=True)
    test_chips = load_chips(test_dir)  # every split of the held-out regions
    results: dict = {}
    for noise in noises:
        train_dir = make_chips(args.out / f"train_{noise}_{sim}", args.train_seed,
                               args.train_regions, args.region_m, noise)
        for arch in archs:
            run_dir = args.out / f"{args.recipe}_{noise}_{arch}_{args.preset}"
            t = time.time()
            train(train_dir, run_dir, train_config(args, arch), progress=False)
            r = score(run_dir / "best.pt", test_dir, test_chips, args.small_building_m2)
            results[(noise, arch)] = {**r, "seconds": time.time() - t}
    plot_curves(results, args.out / "curves.png")
    n_train = len(load_chips(train_dir, "train"))
    print(f"\nModel quality (simulated): {args.preset}, recipe {args.recipe}, {n_train} "
          f"training chips ({args.train_regions} regions of {args.region_m} m, seed "
          f"{args.train_seed}), {len(test_chips)} held-out chips ({args.test_regions} regions,"
          f" seed {args.test_seed}) scored on clean truth; {args.epochs} epochs, batch "
          f"{args.batch_size}, crop {args.crop * 10} m, SR warm-up {args.warmup}, "
          f"SR weighting {args.sr_weighting}; curves {args.out / 'curves.png'}")
    print_tables(results, CLASSES)
    first = noises[0]
    if all((first, a) in results for a in ("jointseg", "bilinear")):
        js, bl = results[(first, "jointseg")]["f1"], results[(first, "bilinear")]["f1"]
        print(f"F1 gap at {first} labels (jointseg - bilinear): {100 * (js - bl):+.1f} points "
              f"(paper: +9.5); total {time.time() - t0:.0f} s")
        print(f"jointseg_f1={js:.4f} bilinear_f1={bl:.4f}")


if __name__ == "__main__":
    main()
