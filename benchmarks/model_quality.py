"""Model quality: JointSeg-tiny vs the bilinear baseline on held-out simulated regions.

Both models are trained with the same budget (same chips, epochs, batch size,
crops, seed) on simulated training regions, then evaluated on simulated regions
made with a *different seed* (different town layouts) that training never saw.
Prints F1 / precision / recall / IoU at 1 m for both models and SR PSNR / SSIM of
JointSeg's 1 m RGBN against bicubic (and bilinear) upsampling of the 10 m bands.
Last line: ``jointseg_f1=<x> bilinear_f1=<y>``.

    .venv/bin/python benchmarks/model_quality.py [--epochs 8] [--train-regions 4]

Data: ``jointseg.simulate.chips.simulate_chips`` (simulated, not real imagery).
``--toy`` uses the toy generator of tests/data/chips/make.py instead (for when the
simulator is unavailable; far simpler scenes).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jointseg.bands import MODEL_INPUT_10M, SR_BANDS, SR_FROM_S2
from jointseg.metrics import BinaryCounts, binary_counts, binary_metrics
from jointseg.model.chips import load_chips
from jointseg.model.jointseg import count_params, gflops_per_km2
from jointseg.model.losses import LossConfig
from jointseg.model.metrics import psnr, ssim
from jointseg.model.train import TrainConfig, chip_tensors, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]


def make_chips(out: Path, seed: int, n_regions: int, toy: bool) -> Path:
    """Simulated chips under ``out`` (reused if index.csv is already there: the folder
    name holds the seed and region count)."""
    if (out / "index.csv").is_file():
        return out
    if not toy:
        from jointseg.simulate.chips import simulate_chips

        simulate_chips(out, seed=seed, n_regions=n_regions, region_size_m=1920,
                       chip_size_m=320)
        return out
    spec = importlib.util.spec_from_file_location("toy", ROOT / "tests/data/chips/make.py")
    toy_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy_mod)
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(12 * n_regions):
        cid = f"toy{k:04d}"
        toy_mod.write_chip(out, cid, "EPSG:32650", 600000 + 160 * k, 3500000, rng)
        rows.append([cid, "val" if k % 6 == 5 else "train", "EPSG:32650",
                     600000 + 160 * k, 3500000, 160])
    with (out / "index.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["chip_id", "split", "crs", "xmin", "ymin", "size_m"])
        w.writerows(rows)
    return out


@torch.no_grad()
def evaluate(ckpt: Path, chips: list) -> dict[str, float]:
    """Segmentation scores and SR PSNR/SSIM of a checkpoint over whole test chips."""
    model, _ = load_checkpoint(ckpt)
    counts = BinaryCounts()
    p, s = [], []
    for chip in chips:
        logit, sr = model(*chip_tensors(chip))
        counts += binary_counts((logit[0, 0] > 0).numpy(), chip.label)
        hr = chip.hr.astype(np.float64) / 10000.0
        p.append(psnr(sr[0].numpy(), hr))
        s.append(ssim(sr[0].numpy(), hr))
    scores = binary_metrics(counts)
    return {**{k: float(scores[k]) for k in ("precision", "recall", "f1", "iou")},
            "psnr": float(np.mean(p)), "ssim": float(np.mean(s)),
            "params": count_params(model), "gflops": gflops_per_km2(model)}


def upsampling_reference(chips: list, mode: str) -> dict[str, float]:
    """PSNR/SSIM of plain bicubic/bilinear x10 upsampling of B04 B03 B02 B08."""
    p, s = [], []
    for chip in chips:
        rgbn = [MODEL_INPUT_10M.index(SR_FROM_S2[b]) for b in SR_BANDS]
        x = torch.from_numpy(chip.s2_10m[rgbn].astype(np.float32) / 10000.0)[None]
        up = F.interpolate(x, scale_factor=10.0, mode=mode, align_corners=False)[0].numpy()
        hr = chip.hr.astype(np.float64) / 10000.0
        p.append(psnr(up, hr))
        s.append(ssim(up, hr))
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/model_quality")
    ap.add_argument("--train-regions", type=int, default=4)
    ap.add_argument("--test-regions", type=int, default=2)
    ap.add_argument("--train-seed", type=int, default=1)
    ap.add_argument("--test-seed", type=int, default=1001)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--crop", type=int, default=16, help="crop side, 10 m px")
    ap.add_argument("--crops-per-chip", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=1, help="SR warm-up epochs (jointseg)")
    ap.add_argument("--w-sr", type=float, default=1.0, help="joint weight of the SR loss")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--toy", action="store_true", help="toy chips instead of the simulator")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.time()
    torch.set_num_threads(args.threads)
    kind = "toy" if args.toy else "sim"
    train_dir = make_chips(args.out / f"{kind}_s{args.train_seed}_n{args.train_regions}",
                           args.train_seed, args.train_regions, args.toy)
    test_dir = make_chips(args.out / f"{kind}_s{args.test_seed}_n{args.test_regions}",
                          args.test_seed, args.test_regions, args.toy)
    test_chips = load_chips(test_dir)  # every split of the held-out regions
    n_train = len(load_chips(train_dir, "train"))
    t_data = time.time() - t0
    results, times = {}, {}
    for arch in ("jointseg", "bilinear"):
        cfg = TrainConfig(arch=arch, preset="tiny", epochs=args.epochs,
                          batch_size=args.batch_size, lr=args.lr, seed=0,
                          threads=args.threads, crop_10m=args.crop,
                          crops_per_chip=args.crops_per_chip, device="cpu",
                          loss=LossConfig(sr_warmup_epochs=args.warmup, w_sr=args.w_sr))
        t = time.time()
        train(train_dir, args.out / arch, cfg, progress=False)  # fresh run, same budget
        times[arch] = time.time() - t
        results[arch] = evaluate(args.out / arch / "best.pt", test_chips)
    bicubic = upsampling_reference(test_chips, "bicubic")
    bilinear_up = upsampling_reference(test_chips, "bilinear")

    print(f"\nModel quality: {n_train} training chips ({args.train_regions} regions, seed "
          f"{args.train_seed}), {len(test_chips)} held-out test chips ({args.test_regions} "
          f"regions, seed {args.test_seed}); {args.epochs} epochs, batch {args.batch_size}, "
          f"crop {args.crop * 10} m, {args.crops_per_chip} crop(s)/chip, SR warm-up "
          f"{args.warmup}, w_sr {args.w_sr}; data {'toy' if args.toy else 'simulated'}")
    print("| model | params | GFLOPs/km² | F1 | precision | recall | IoU | SR PSNR (dB) | "
          "SR SSIM | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arch, r in results.items():
        print(f"| {arch}-tiny | {r['params']:,} | {r['gflops']:.1f} | {r['f1']:.4f} | "
              f"{r['precision']:.4f} | "
              f"{r['recall']:.4f} | {r['iou']:.4f} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
              f"{times[arch]:.0f} |")
    print(f"| bicubic x10 (reference) | - | - | - | - | - | - | {bicubic['psnr']:.2f} | "
          f"{bicubic['ssim']:.4f} | - |")
    print(f"| bilinear x10 (reference) | - | - | - | - | - | - | {bilinear_up['psnr']:.2f} | "
          f"{bilinear_up['ssim']:.4f} | - |")
    gap = 100 * (results["jointseg"]["f1"] - results["bilinear"]["f1"])
    print(f"F1 gap (jointseg - bilinear): {gap:+.1f} points (goal >= +9.5); "
          f"data {t_data:.0f} s, total {time.time() - t0:.0f} s")
    print(f"jointseg_f1={results['jointseg']['f1']:.4f} "
          f"bilinear_f1={results['bilinear']['f1']:.4f}")


if __name__ == "__main__":
    main()
