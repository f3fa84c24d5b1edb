"""Does the HR imagery pay? JointSeg against the bilinear baseline, with the power to tell.

Both models train on the same simulated training regions (OSM-like map labels, refined
against the HR image by ``jointseg.trainingdata.refine`` unless ``--no-refine``: both
see the same labels, so a gain is the SR branch's), for the same number of
segmentation optimiser steps, with several seeds each. Best step and probability cut
are chosen on validation regions only (their clean truth); the scores are on held-out
test regions made with another seed, against their clean ``truth.tif``, per stratum
(urban core / peri-urban suburb / rural villages). The difference JointSeg - bilinear
gets a paired two-level bootstrap CI over test regions and seeds
(:mod:`jointseg.model.paired`). Two controls: JointSeg with SR loss weight 0 (its
architecture without HR supervision) and the bilinear baseline widened to JointSeg's
parameter count (capacity without SR). Recall is also reported for road pixels on roads
narrower than 10 m and for buildings under 100 m², where the paper claims its gain.

    nice .venv/bin/python benchmarks/model_quality.py            # --size cpu, ~2 h, 2 cores
    .venv/bin/python benchmarks/model_quality.py --size gpu --device cuda   # paper preset

Runs are cached under ``--out`` (a finished run is scored again, not retrained), so an
interrupted benchmark resumes. Last line: ``jointseg_f1=… bilinear_f1=… delta=… ci_low=…
ci_high=… seeds=… test_regions=… rural_regions=… steps=…`` (F1 in points, 0-100).
Data are simulated: none of these numbers is a real-world accuracy.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
import torch
from scipy import ndimage

from jointseg.model.chips import Chip, load_chips
from jointseg.model.paired import f1_stat, paired_bootstrap, pooled, recall_stat
from jointseg.model.sr_task import PixelClassifier, fit_pixel_classifier, sr_task_score
from jointseg.model.train import TrainConfig, chip_tensors, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
ROAD, BUILDING = 1, 2
#: simulator region kind (jointseg.simulate.chips.KINDS) -> reported stratum
STRATA = {"core": "urban", "suburb": "peri-urban", "rural": "rural"}
KINDS = ("core", "suburb", "rural")


@dataclass(frozen=True)
class Size:
    """One benchmark size: data, seeds and the training budget."""

    train_regions: int
    val_regions: int
    test_regions: int
    region_m: int
    seeds: int
    steps: int
    val_every: int
    sr_pretrain_steps: int
    preset: str
    device: str
    batch_size: int
    crop_10m: int
    refine_steps: int


SIZES = {
    # ~2 h on the 2-core development machine (benchmarks/README.md)
    "cpu": Size(12, 3, 6, 960, 3, 1000, 125, 400, "tiny", "cpu", 8, 12, 600),
    # the paper preset on one GPU (the device tool's H100/H200: see INSTALL-NOTES.md)
    "gpu": Size(24, 6, 9, 1920, 3, 20000, 1000, 5000, "paper", "cuda", 16, 32, 2000),
    # seconds: the test suite's check that the harness runs end to end
    "smoke": Size(3, 1, 3, 960, 2, 8, 4, 4, "tiny", "cpu", 4, 8, 10),
}

#: model variants: (arch, SR loss weight or None = the config default, SR pre-training)
VARIANTS = {
    "jointseg": ("jointseg", None, True),
    "bilinear": ("bilinear", None, False),
    "jointseg-srw0": ("jointseg", 0.0, False),
    "bilinear-wide": ("bilinear-wide", None, False),
}
#: (name, variant a, variant b): the comparisons reported, first = the last line's
COMPARISONS = (
    ("JointSeg - bilinear", "jointseg", "bilinear"),
    ("JointSeg(SR weight 0) - bilinear", "jointseg-srw0", "bilinear"),
    ("JointSeg - JointSeg(SR weight 0)", "jointseg", "jointseg-srw0"),
    ("JointSeg - bilinear-wide", "jointseg", "bilinear-wide"),
)


def make_data(out: Path, size: Size, train_seed: int, test_seed: int, labels: str,
              refine: bool) -> tuple[Path, Path]:
    """Train+val chips (map labels, refined) and test chips (clean) under ``out``; each
    set is reused when its ``index.csv`` exists."""
    from jointseg.simulate.chips import SIMULATOR_VERSION, simulate_chips

    sim = SIMULATOR_VERSION.replace(".", "")
    tag = f"r{size.region_m}_n{size.train_regions}+{size.val_regions}_{sim}"
    trainval = out / f"trainval_{labels}{'_refined' if refine else ''}_s{train_seed}_{tag}"
    if not (trainval / "index.csv").is_file():
        simulate_chips(trainval, seed=train_seed,
                       n_regions=size.train_regions + size.val_regions,
                       region_size_m=size.region_m, chip_size_m=320, progress=False,
                       label_noise=labels,
                       splits=["train"] * size.train_regions + ["val"] * size.val_regions)
        if refine:
            from jointseg.trainingdata.refine import RefineSettings, refine_chips

            stats = refine_chips(trainval, RefineSettings(steps=size.refine_steps))
            (trainval / "refine.json").write_text(json.dumps(stats, indent=1, default=str))
    test = out / f"test_s{test_seed}_r{size.region_m}_n{size.test_regions}_{sim}"
    if not (test / "index.csv").is_file():
        simulate_chips(test, seed=test_seed, n_regions=size.test_regions,
                       region_size_m=size.region_m, chip_size_m=320, progress=False,
                       label_noise="clean", splits=["test"] * size.test_regions)
    return trainval, test


def train_config(size: Size, variant: str, seed: int, threads: int, device: str
                 ) -> TrainConfig:
    """The same budget for every variant: ``size.steps`` segmentation optimiser steps,
    validation every ``size.val_every``; JointSeg pre-trains its SR first."""
    arch, w_sr, pretrain = VARIANTS[variant]
    cfg = TrainConfig(arch=arch, preset=size.preset, batch_size=size.batch_size,
                      crop_10m=size.crop_10m, seed=seed, threads=threads, device=device,
                      max_steps=size.steps, val_every=size.val_every,
                      sr_pretrain_steps=size.sr_pretrain_steps if pretrain else 0,
                      sr_target_match=True)
    if w_sr is not None:
        cfg = replace(cfg, loss=replace(cfg.loss, w_sr=w_sr))
    return cfg


def width_masks(landcover: np.ndarray) -> dict[str, np.ndarray]:
    """Pixels of roads narrower than 10 m and of buildings smaller than 100 m² (1 m grid:
    a road pixel is narrow when the largest distance to the road edge within 11 px is
    <= 5 m, i.e. the road is < 10 m wide there)."""
    road = landcover == ROAD
    half = ndimage.distance_transform_edt(road)
    narrow = road & (ndimage.maximum_filter(half, size=11) <= 5.0)
    lab, n = ndimage.label(landcover == BUILDING)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    small = (lab > 0) & (sizes[lab] < 100)
    return {"road<10m": narrow, "bldg<100m2": small}


@dataclass(frozen=True)
class TestSet:
    """The held-out chips with what scoring needs, read once for every run: per chip its
    region index (the ``REGION`` tag), clean truth (uint8 0/1, 255 nodata) and the width
    masks of its ``landcover.tif`` (:func:`width_masks`)."""

    chips: list[Chip]
    regions: list[int]
    truth: list[np.ndarray]
    masks: list[dict[str, np.ndarray]]
    n_regions: int

    @classmethod
    def load(cls, root: Path, n_regions: int) -> TestSet:
        chips, regions, truth, masks = load_chips(root), [], [], []
        for chip in chips:
            with rasterio.open(root / chip.chip_id / "truth.tif") as a, \
                    rasterio.open(root / chip.chip_id / "landcover.tif") as b:
                regions.append(int(a.tags()["REGION"]))
                truth.append(a.read(1))
                masks.append(width_masks(b.read(1)))
        return cls(chips, regions, truth, masks, n_regions)


@torch.no_grad()
def score(run: Path, test: TestSet) -> dict[str, list]:
    """Per test region counts of ``run/best.pt`` at its validation cut: F1 counts
    (tp, fp, fn) and (hits, totals) of each width mask."""
    model, _ = load_checkpoint(run / "best.pt")
    cut = json.loads((run / "summary.json").read_text())["threshold"]
    f1 = np.zeros((test.n_regions, 3))
    width = {k: np.zeros((test.n_regions, 2)) for k in ("road<10m", "bldg<100m2")}
    for chip, reg, truth, masks in zip(test.chips, test.regions, test.truth, test.masks,
                                       strict=True):
        logit, _ = model(*chip_tensors(chip))
        isa = (torch.sigmoid(logit[0, 0]) >= cut).numpy()
        ok = truth != 255
        t = truth == 1
        f1[reg] += [(isa & t & ok).sum(), (isa & ~t & ok).sum(), (~isa & t & ok).sum()]
        for k, m in masks.items():
            width[k][reg] += [(isa & m).sum(), m.sum()]
    return {"f1": f1.tolist(), **{k: v.tolist() for k, v in width.items()}}


def flattened(history: list[dict], tol: float = 0.005) -> bool:
    """True when the validation curve flattened: the best val F1 of the last third of
    the steps is at most ``tol`` above the best before it."""
    f = [h["val_f1"] for h in history if h.get("val_f1") is not None]
    if len(f) < 3:
        return False
    k = len(f) - max(1, len(f) // 3)
    return max(f[k:]) - max(f[:k]) <= tol


def run_one(out: Path, trainval: Path, test: TestSet, size: Size, variant: str, seed: int,
            clf: PixelClassifier, args: argparse.Namespace) -> dict:
    """Train (unless finished) and score one (variant, seed); cached in scores.json."""
    run = out / "runs" / f"{variant}_seed{seed}"
    cached = run / "scores.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    t = time.time()
    cfg = train_config(size, variant, seed, args.threads, args.device or size.device)
    summary = train(trainval, run, cfg, progress=False)
    seconds = time.time() - t
    counts = score(run, test)
    hist = torch.load(run / "last.pt", map_location="cpu", weights_only=False)["history"]
    model = load_checkpoint(run / "best.pt")[0]
    rec = {"counts": counts, "seconds": seconds, "threshold": summary["threshold"],
           "best_step": summary.get("best_step"), "history": hist,
           "sr_pretrain_steps_run": summary.get("sr_pretrain_steps_run", 0),
           "params": sum(p.numel() for p in model.parameters()),
           "flattened": flattened(hist),
           # the SR judged on the task: one frozen per-pixel classifier on SR vs bilinear
           "sr_task": sr_task_score(model, test.chips, clf)}
    cached.write_text(json.dumps(rec, default=float))
    return rec


def stratum_regions(kinds: list[str]) -> dict[str, list[int]]:
    """Region indices per stratum, plus ``all``."""
    out = {"all": list(range(len(kinds)))}
    for kind, name in STRATA.items():
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if idx:
            out[name] = idx
    return out


def counts_of(results: dict, variant: str, key: str) -> np.ndarray:
    """(seeds, regions, k) counts of one variant."""
    return np.array([r["counts"][key] for r in results[variant]], dtype=np.float64)


def print_tables(results: dict, kinds: list[str], size: Size, n_boot: int) -> None:
    strata = stratum_regions(kinds)
    print("\nF1 (points) per variant, pooled over test regions, mean over seeds")
    print("| variant | params | " + " | ".join(strata) + " | road<10m recall | "
          "bldg<100m² recall | val flattened | train s/seed |")
    print("|---|---|" + "---|" * len(strata) + "---|---|---|---|")
    for v, runs in results.items():
        f1 = counts_of(results, v, "f1")
        row = [f"{100 * pooled(f1, f1_stat, r):.2f}" for r in strata.values()]
        rr = [f"{100 * pooled(counts_of(results, v, k), recall_stat):.1f}"
              for k in ("road<10m", "bldg<100m2")]
        flat = sum(r["flattened"] for r in runs)
        secs = np.mean([r["seconds"] for r in runs])
        print(f"| {v} | {runs[0]['params']:,} | " + " | ".join(row) + f" | {rr[0]} | "
              f"{rr[1]} | {flat}/{len(runs)} | {secs:.0f} |")
    print("\nSR judged on the task: F1 (points) of one frozen per-pixel classifier (fit on "
          "the training HR and labels) on the test chips, run on each input")
    print("| variant | on SR | on bilinear | on the HR target | PSNR-free gain |")
    print("|---|---|---|---|---|")
    for v, runs in results.items():
        t = [r["sr_task"] for r in runs]
        if all(np.isnan(x["f1_sr"]) for x in t):
            continue
        sr, bl, hr = (100 * np.nanmean([x[k] for x in t]) for k in
                      ("f1_sr", "f1_bilinear", "f1_hr"))
        print(f"| {v} | {sr:.2f} | {bl:.2f} | {hr:.2f} | {sr - bl:+.2f} |")
    print(f"\nPaired differences (points), 95 % CI: two-level bootstrap over test regions "
          f"and seeds ({n_boot} replicates)")
    print("| comparison | stratum | regions | Δ F1 | CI | Δ road<10m recall | CI | "
          "Δ bldg<100m² recall | CI |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, a, b in COMPARISONS:
        if a not in results or b not in results:
            continue
        for stratum, regs in strata.items():
            cells = []
            for key, stat in (("f1", f1_stat), ("road<10m", recall_stat),
                              ("bldg<100m2", recall_stat)):
                p = paired_bootstrap(counts_of(results, a, key), counts_of(results, b, key),
                                     stat, regs, n_boot)
                cells += [f"{100 * p.delta:+.2f}", f"[{100 * p.ci_low:+.2f}, "
                          f"{100 * p.ci_high:+.2f}]"]
            print(f"| {name} | {stratum} | {len(regs)} | " + " | ".join(cells) + " |")


def plot_curves(results: dict, path: Path) -> None:
    """Validation F1 per step of every (variant, seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (v, runs) in enumerate(results.items()):
        for j, r in enumerate(runs):
            h = [x for x in r["history"] if x.get("val_f1") is not None]
            ax.plot([x.get("step", x.get("epoch")) for x in h], [x["val_f1"] for x in h],
                    color=f"C{i}", alpha=0.7, label=v if j == 0 else None)
    ax.set(xlabel="segmentation optimiser step", ylabel="val F1 (val truth)",
           title="validation curves (simulated data)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="cpu")
    ap.add_argument("--out", type=Path, default=None,
                    help="work folder (default benchmarks/out/model_quality_<size>)")
    ap.add_argument("--labels", choices=["osm", "clean", "heavy"], default="osm",
                    help="map-label noise of the training regions (osm: the paper's case)")
    ap.add_argument("--no-refine", action="store_true",
                    help="train on the map labels as they are (no HR refinement)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", type=int, default=None, help="override the size's seeds")
    ap.add_argument("--steps", type=int, default=None, help="override the size's steps")
    ap.add_argument("--train-seed", type=int, default=1)
    ap.add_argument("--test-seed", type=int, default=1001)
    ap.add_argument("--device", default=None, help="torch device (default: the size's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap replicates")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    size = SIZES[args.size]
    size = replace(size, seeds=args.seeds or size.seeds, steps=args.steps or size.steps)
    out = args.out or ROOT / "benchmarks/out" / f"model_quality_{args.size}"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    trainval, test = make_data(out, size, args.train_seed, args.test_seed, args.labels,
                               not args.no_refine)
    test_set = TestSet.load(test, size.test_regions)
    kinds = [KINDS[i % 3] for i in range(size.test_regions)]
    # fitted on the training chips' HR and (refined) labels, then frozen
    clf = fit_pixel_classifier(load_chips(trainval, "train"))
    results: dict[str, list[dict]] = {}
    for variant in [v for v in args.variants.split(",") if v]:
        results[variant] = [run_one(out, trainval, test_set, size, variant, seed, clf, args)
                            for seed in range(size.seeds)]
    plot_curves(results, out / "curves.png")
    (out / "size.json").write_text(json.dumps(asdict(size)))
    refine = "no refinement" if args.no_refine else "refined against the HR"
    print(f"\nModel quality (SIMULATED data), size {args.size}: {size.preset} preset, "
          f"{size.train_regions} training + {size.val_regions} validation regions of "
          f"{size.region_m} m (seed {args.train_seed}, {args.labels} labels, {refine}), "
          f"{size.test_regions} test regions (seed {args.test_seed}: "
          + ", ".join(f"{kinds.count(k)} {STRATA[k]}" for k in KINDS)
          + f"), {size.seeds} seeds, {size.steps} segmentation steps of batch "
          f"{size.batch_size} x {size.crop_10m * 10} m crops; curves {out / 'curves.png'}")
    print_tables(results, kinds, size, args.boot)
    if "jointseg" in results and "bilinear" in results:
        p = paired_bootstrap(counts_of(results, "jointseg", "f1"),
                             counts_of(results, "bilinear", "f1"), f1_stat, None, args.boot)
        print(f"total {time.time() - t0:.0f} s; paper: +9.5 F1 points")
        print(f"jointseg_f1={100 * p.a:.2f} bilinear_f1={100 * p.b:.2f} "
              f"delta={100 * p.delta:+.2f} ci_low={100 * p.ci_low:+.2f} "
              f"ci_high={100 * p.ci_high:+.2f} seeds={size.seeds} "
              f"test_regions={size.test_regions} rural_regions={kinds.count('rural')} "
              f"steps={size.steps}")


if __name__ == "__main__":
    main()
