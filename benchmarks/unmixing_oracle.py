"""Unmixing oracle: how much of the 1 m ISA map a method WITHOUT sub-pixel information can
recover from the simulated Sentinel-2 composite, i.e. the head-room left for SR (issue 21).

Chips are simulated with :func:`jointseg.simulate.chips.simulate_chips` (regions cycle core,
suburb, rural). Each 10 m pixel of the median composite (10 m bands + 20 m bands repeated to
10 m) is unmixed by non-negative least squares with the simulator's TRUE library endmembers
(every material's spectrum, vegetation at its median over the year as the composite's dates
spread over the year); its ISA fraction is the ISA materials' share of the abundances. The
fraction is then placed at 1 m the best a method without sub-pixel information can:

* ``block``: fraction >= 0.5 -> the whole 10 m pixel is ISA;
* ``bilin``: the fraction map upsampled bilinearly to 1 m, thresholded at 0.5;
* ``ceiling``: the TRUE 10 m ISA fraction placed by ``block`` (no unmixing error at all).

F1 is pooled over the 1 m pixels with a clear composite, per region kind. Data are simulated.

    .venv/bin/python benchmarks/unmixing_oracle.py [--regions 3] [--size 1920]
    .venv/bin/python benchmarks/unmixing_oracle.py --before-commit SHA [--after-commit SHA]

The two-commit mode runs the same measurement with the simulator of each commit (git
worktrees under /tmp; without ``--after-commit`` the current tree is "after").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from scipy import ndimage
from scipy.optimize import nnls

REPO = Path(__file__).resolve().parents[1]


def endmembers(year: int) -> tuple[np.ndarray, np.ndarray]:
    """(float (n_end, 10) spectra in S2_BANDS order, bool (n_end,) is-ISA) of the simulator
    importable now: materials 1..19 at their median over 24 dates of ``year``."""
    from jointseg.simulate.materials import ISA_CLASSES, MATERIAL_TO_CLASS
    from jointseg.simulate.spectra import spectra_table

    dates = [dt.date(year, 1, 1) + dt.timedelta(days=int(d)) for d in np.linspace(5, 360, 24)]
    table = np.median(np.stack([spectra_table(d) for d in dates]), axis=0)
    ids = np.arange(1, 20)
    return table[ids].astype(float), np.isin(MATERIAL_TO_CLASS[ids], ISA_CLASSES)


def isa_fraction(s2_10: np.ndarray, s2_20: np.ndarray, ends: np.ndarray, is_isa: np.ndarray
                 ) -> np.ndarray:
    """float (rows, cols) ISA fraction per 10 m pixel by NNLS; NaN where no clear date."""
    from jointseg.bands import BANDS_10M, BANDS_20M
    from jointseg.simulate.spectra import band_index

    x20 = np.repeat(np.repeat(s2_20, 2, axis=1), 2, axis=2)
    x = np.concatenate([s2_10[:len(BANDS_10M)], x20]).astype(float) / 1e4
    a_mat = ends[:, band_index(BANDS_10M) + band_index(BANDS_20M)].T  # (bands, n_end)
    valid = s2_10[len(BANDS_10M)] > 0
    out = np.full(valid.shape, np.nan)
    for r, c in zip(*np.nonzero(valid), strict=True):
        ab, _ = nnls(a_mat, x[:, r, c])
        tot = ab.sum()
        out[r, c] = ab[is_isa].sum() / tot if tot > 0 else 0.0
    return out


def _counts(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    p, t = pred[valid], truth[valid].astype(bool)
    return np.array([(p & t).sum(), (p & ~t).sum(), (~p & t).sum()], dtype=np.int64)


def score_chip(frac10: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """(tp, fp, fn) per placement for one chip (10 m fraction, 1 m uint8 truth)."""
    valid1 = np.repeat(np.repeat(~np.isnan(frac10), 10, 0), 10, 1)
    f = np.nan_to_num(frac10, nan=0.0)
    block = np.repeat(np.repeat(f >= 0.5, 10, 0), 10, 1)
    # pixel-centre aligned bilinear upsampling (1 m centre i+0.5 -> 10 m coordinate)
    rr = (np.arange(truth.shape[0]) + 0.5) / 10 - 0.5
    cc = (np.arange(truth.shape[1]) + 0.5) / 10 - 0.5
    yy, xx = np.meshgrid(rr, cc, indexing="ij")
    bilin = ndimage.map_coordinates(f, [yy, xx], order=1, mode="nearest") >= 0.5
    true10 = truth.reshape(truth.shape[0] // 10, 10, -1, 10).mean((1, 3))
    ceil = np.repeat(np.repeat(true10 >= 0.5, 10, 0), 10, 1)
    return {k: _counts(v, truth, valid1) for k, v in
            (("block", block), ("bilin", bilin), ("ceiling", ceil))}


def measure(seed: int, n_regions: int, size_m: int, n_dates: int, year: int) -> dict:
    """Simulate chips with the importable simulator and return F1 per kind and overall."""
    import jointseg
    from jointseg.simulate.chips import KINDS, simulate_chips

    ends, is_isa = endmembers(year)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        simulate_chips(tmp, seed, n_regions, region_size_m=size_m, chip_size_m=320,
                       year=year, splits=["train"] * (n_regions - 1) + ["val"],
                       n_dates=n_dates, progress=False)
        t_sim = time.time() - t0
        counts: dict[str, dict[str, np.ndarray]] = {}
        for d in sorted(p for p in Path(tmp).iterdir() if p.is_dir()):
            with rasterio.open(d / "s2_10m.tif") as ds:
                s10, kind = ds.read(), KINDS[int(ds.tags()["REGION"]) % 3]
            with rasterio.open(d / "s2_20m.tif") as ds:
                s20 = ds.read()
            with rasterio.open(d / "truth.tif") as ds:
                truth = ds.read(1)
            sc = score_chip(isa_fraction(s10, s20, ends, is_isa), truth)
            for name in (kind, "all"):
                acc = counts.setdefault(name, {k: np.zeros(3, np.int64) for k in sc})
                for k, v in sc.items():
                    acc[k] += v
    f1 = {kind: {k: _f1(v) for k, v in acc.items()} for kind, acc in counts.items()}
    return {"f1": f1, "jointseg": str(Path(jointseg.__file__).parent),
            "sim_s": round(t_sim, 1), "total_s": round(time.time() - t0, 1)}


def _f1(c: np.ndarray) -> float:
    tp, fp, fn = (int(x) for x in c)
    return 2 * tp / max(2 * tp + fp + fn, 1)


def _worktree(sha: str) -> Path:
    """A detached git worktree of ``sha`` under /tmp (reused when present)."""
    path = Path(tempfile.gettempdir()) / f"oracle_wt_{sha[:12]}"
    if not (path / "jointseg").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), sha],
                       check=True, capture_output=True)
    return path


def _run_in(tree: Path, args: argparse.Namespace) -> dict:
    """Run :func:`measure` in a subprocess importing jointseg from ``tree``."""
    cmd = [sys.executable, __file__, "--json", "--seed", str(args.seed), "--regions",
           str(args.regions), "--size", str(args.size), "--dates", str(args.dates),
           "--year", str(args.year)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, env=env, cwd=tree, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(label: str, res: dict) -> None:
    print(f"\n{label}  (jointseg from {res['jointseg']}; simulate {res['sim_s']} s, "
          f"total {res['total_s']} s)")
    print(f"{'kind':8s} {'F1 block':>9s} {'F1 bilin':>9s} {'ceiling':>9s}")
    for kind, f in res["f1"].items():
        print(f"{kind:8s} {f['block']:9.3f} {f['bilin']:9.3f} {f['ceiling']:9.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--regions", type=int, default=3)
    ap.add_argument("--size", type=int, default=1920, help="region side, m")
    ap.add_argument("--dates", type=int, default=5)
    ap.add_argument("--year", type=int, default=2021)
    ap.add_argument("--before-commit", help="also measure the simulator of this commit")
    ap.add_argument("--after-commit", help="'after' simulator (default: the current tree)")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.json:
        print(json.dumps(measure(args.seed, args.regions, args.size, args.dates, args.year)))
        return
    if not args.before_commit:
        res = measure(args.seed, args.regions, args.size, args.dates, args.year)
        _table("current tree", res)
        print(f"oracle_f1={res['f1']['all']['block']:.3f}")
        return
    before = _run_in(_worktree(args.before_commit), args)
    after = _run_in(_worktree(args.after_commit) if args.after_commit else REPO, args)
    _table(f"before ({args.before_commit[:10]})", before)
    _table(f"after ({(args.after_commit or 'current tree')[:12]})", after)
    print(f"oracle_f1_before={before['f1']['all']['block']:.3f} "
          f"oracle_f1_after={after['f1']['all']['block']:.3f}")


if __name__ == "__main__":
    main()
