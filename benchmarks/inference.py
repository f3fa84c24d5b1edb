"""Inference benchmark: PyTorch eager vs ONNX Runtime CPU, fp16 agreement, memory, seams.

    .venv/bin/python benchmarks/inference.py [--threads 2] [--windows 8] [--rss-base 128]

Prints one table and, last, ``ort_vs_torch_speedup=<x> rss_growth_16x=<ratio>``.

* Model: ``jointseg.model`` preset ``tiny`` (random weights, seed 0; speed does not
  depend on training), exported with ``jointseg.model.export`` (fp32 + fp16 twin), halo
  measured with ``jointseg.model.export.measure_halo``. Falls back to the test model
  ``tests/data/models/tiny_rf.onnx`` (ORT only) when the model package is missing.
* Speed: the same windows (core ``--window`` px + halo, from a mosaic of the real
  BigEarthNet patches), the same batch size and the same thread count through
  PyTorch eager and through an ORT CPU session; km^2/min counts window cores,
  Mpx/s counts 1 m output core pixels.
* Memory: ``jointseg.inference.products.predict_tile`` (binary + probability COGs) on composite
  pairs of 1x, 4x and 16x the base area, each in a fresh subprocess; peak RSS is
  that process's VmHWM (``ru_maxrss`` of a forked child inherits the parent's peak).
* Seams: max |p_whole - p_tiled| of the ORT model, whole raster in one window vs
  windows of 24 px with 8 px overlap.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jointseg.inference.scene import open_scene  # noqa: E402
from jointseg.inference.session import Predictor, make_session  # noqa: E402
from jointseg.inference.tiling import predict_array  # noqa: E402

TEST_MODEL = REPO / "tests" / "data" / "models" / "tiny_rf.onnx"


def bigearthnet_dir() -> Path:
    for root in (REPO.parent / "shared" / "data", REPO / "tests" / "data"):
        if (root / "bigearthnet").is_dir():
            return root / "bigearthnet"
    raise SystemExit("BigEarthNet sample patches not found")


def mosaic(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A (5, size, size) / (6, size/2, size/2) DN mosaic of the real patches (mirrored)."""
    tiles = []
    for patch in sorted(p for p in bigearthnet_dir().iterdir() if p.is_dir()):
        with open_scene(patch) as scene:
            tiles.append(scene.read_all())
    x10 = np.concatenate([t[0] for t in tiles], axis=2)
    x20 = np.concatenate([t[1] for t in tiles], axis=2)
    h, w = x10.shape[1:]
    x10 = np.pad(x10, ((0, 0), (0, max(0, size - h)), (0, max(0, size - w))), mode="symmetric")
    h2, w2 = x20.shape[1:]
    half = size // 2
    x20 = np.pad(x20, ((0, 0), (0, max(0, half - h2)), (0, max(0, half - w2))), mode="symmetric")
    return x10[:, :size, :size].copy(), x20[:, : size // 2, : size // 2].copy()


def build_models(tmp: Path, threads: int):
    """(torch model or None, fp32 onnx path, fp16 onnx path or None, halo)."""
    try:
        import torch

        from jointseg.bands import BANDS_20M, MODEL_INPUT_10M
        from jointseg.model.export import _write_onnx, measure_halo, realistic_input
        from jointseg.model.jointseg import (
            MULTIPLE_10M,
            SCALE_FACTOR,
            build_model,
        )
    except ImportError as exc:  # model package not there: ORT-only on the test model
        print(f"# jointseg.model unavailable ({exc}); using {TEST_MODEL.name}, no torch row")
        return None, TEST_MODEL, None, None
    import copy

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("jointseg", "tiny").eval()
    halo = measure_halo(model, 32)
    meta = {
        "model_name": "jointseg-tiny-bench", "model_version": "bench", "arch": "jointseg",
        "preset": "tiny", "bands_10m": list(MODEL_INPUT_10M), "bands_20m": list(BANDS_20M),
        "scale_factor": SCALE_FACTOR, "multiple_10m": MULTIPLE_10M, "halo_10m": halo,
        "normalisation": model.norm.to_dict(), "training": {"trained": False},
        "precision": "fp32",
    }
    example = realistic_input(model.norm, 16, seed=1)
    fp32 = tmp / "tiny.onnx"
    _write_onnx(model, example, fp32, meta)
    half = copy.deepcopy(model).half()
    half.norm.float()
    fp16 = tmp / "tiny_fp16.onnx"
    _write_onnx(half, example, fp16, {**meta, "precision": "fp16"})
    return model, fp32, fp16, halo


def windows(x10, x20, n: int, core: int, halo: int):
    side = core + 2 * halo
    out10, out20 = [], []
    step = max(2, (x10.shape[1] - side) // max(n - 1, 1)) // 2 * 2
    for k in range(n):
        r = c = min(k * step, x10.shape[1] - side) // 2 * 2
        out10.append(x10[:, r : r + side, c : c + side])
        out20.append(x20[:, r // 2 : (r + side) // 2, c // 2 : (c + side) // 2])
    return np.stack(out10), np.stack(out20)


def timed(fn, reps: int = 2) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def rss_child(scene: str, model: str, out: str, threads: int) -> None:
    from jointseg.inference.products import predict_tile

    session, info = make_session(model, providers=("cpu",), threads=threads)
    predict_tile(session, scene, out, prob_output=out.replace(".tif", "_prob.tif"),
                 window=64, overlap=8, batch_size=2, info=info)
    print(json.dumps({"maxrss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """Peak RSS of this process in MB: VmHWM (reset by exec), else ru_maxrss.

    ``ru_maxrss`` of a forked + exec'd child starts at the parent's RSS at fork time on
    Linux, so it cannot show a small child's peak; VmHWM belongs to the new address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_composite(path10: Path, x10: np.ndarray, x20: np.ndarray) -> None:
    import rasterio
    from affine import Affine

    for path, arr, res, names in (
        (path10, x10, 10, ["B02", "B03", "B04", "B08", "COUNT"]),
        (path10.with_name(path10.name.replace("_10m", "_20m")), x20, 20,
         ["B05", "B06", "B07", "B8A", "B11", "B12"]),
    ):
        with rasterio.open(path, "w", driver="GTiff", crs="EPSG:32633", count=arr.shape[0],
                           transform=Affine(res, 0, 400000, 0, -res, 5300000), dtype="uint16",
                           width=arr.shape[2], height=arr.shape[1], nodata=0, tiled=True,
                           compress="deflate") as ds:
            ds.write(arr.astype(np.uint16))
            ds.descriptions = tuple(names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--windows", type=int, default=6, help="windows in the speed test")
    ap.add_argument("--window", type=int, default=64, help="window core, 10 m px")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--rss-base", type=int, default=128, help="1x raster side, 10 m px")
    ap.add_argument("--rss-model", default=None, help="ONNX for the RSS runs [bench model]")
    ap.add_argument("--rss-child", nargs=3, metavar=("SCENE", "MODEL", "OUT"))
    args = ap.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child, threads=args.threads)
        return

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        torch_model, fp32, fp16, halo = build_models(tmp, args.threads)
        session, info = make_session(fp32, providers=("cpu",), threads=args.threads)
        halo = info.model.halo_10m
        rows.append(("model", f"{info.model.name} ({info.model.preset}), halo {halo} px"))
        x10, x20 = mosaic(max(2 * args.rss_base, args.window + 2 * halo + 64))
        b10, b20 = windows(x10, x20, args.windows, args.window, halo)
        area_km2 = args.windows * (args.window * 10) ** 2 / 1e6
        mpx = args.windows * (args.window * 10) ** 2 / 1e6
        pred = Predictor(session)

        def run_ort():
            for k in range(0, len(b10), args.batch_size):
                pred.run(b10[k : k + args.batch_size], b20[k : k + args.batch_size])

        t_ort = timed(run_ort)
        rows.append(("ORT CPU", f"{area_km2 / t_ort * 60:8.2f} km2/min {mpx / t_ort:7.3f} Mpx/s"
                     f" ({t_ort:.2f} s, {args.windows} windows, batch {args.batch_size}, "
                     f"{args.threads} threads)"))
        speedup = float("nan")
        if torch_model is not None:
            import torch

            t10, t20 = torch.from_numpy(b10), torch.from_numpy(b20)

            def run_torch():
                with torch.no_grad():
                    for k in range(0, len(t10), args.batch_size):
                        torch_model(t10[k : k + args.batch_size], t20[k : k + args.batch_size])

            t_pt = timed(run_torch)
            speedup = t_pt / t_ort
            rows.append(("PyTorch eager", f"{area_km2 / t_pt * 60:8.2f} km2/min "
                         f"{mpx / t_pt:7.3f} Mpx/s ({t_pt:.2f} s)"))
        if fp16 is not None:
            s16, _ = make_session(fp16, providers=("cpu",), threads=args.threads)
            n = min(2, len(b10))
            p32 = 1 / (1 + np.exp(-Predictor(session).run(b10[:n], b20[:n])[0]))
            p16 = 1 / (1 + np.exp(-Predictor(s16).run(b10[:n], b20[:n])[0]))
            d = np.abs(p32 - p16)
            rows.append(("fp16 vs fp32", f"max |dp| {d.max():.2e}, mean {d.mean():.2e}, "
                         f"binary agreement {(np.mean((p32 >= .5) == (p16 >= .5))):.5f}"))
        side = 96
        whole = predict_array(session, x10[:, :side, :side], x20[:, : side // 2, : side // 2],
                              window=side, overlap=0, with_sr=False)
        tiled = predict_array(session, x10[:, :side, :side], x20[:, : side // 2, : side // 2],
                              window=24, overlap=8, with_sr=False)
        seam = float(np.abs(whole.prob - tiled.prob).max())
        rows.append(("seam max |dp|", f"{seam:.2e} (96 px raster: whole vs 24 px windows)"))

        rss_model = args.rss_model or str(fp32)
        rss = {}
        for factor in (1, 4, 16):
            n = int(args.rss_base * factor**0.5) // 2 * 2
            p10 = tmp / f"r{factor}_10m.tif"
            write_composite(p10, *mosaic(n))
            t0 = time.perf_counter()
            res = subprocess.run(
                [sys.executable, __file__, "--threads", str(args.threads), "--rss-child",
                 str(p10), rss_model, str(tmp / f"out{factor}.tif")],
                capture_output=True, text=True, check=True,
            )
            rss[factor] = json.loads(res.stdout.strip().splitlines()[-1])["maxrss_mb"]
            dt = time.perf_counter() - t0
            rows.append((f"peak RSS {factor:>2}x", f"{rss[factor]:7.1f} MB ({n} x {n} px 10 m"
                         f" = {(n * 10) ** 2 / 1e6:.1f} Mpx 1 m, {dt:.1f} s)"))
    growth = rss[16] / rss[1]
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d')}, onnxruntime {__import__('onnxruntime').__version__}")
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(f"ort_vs_torch_speedup={speedup:.2f} rss_growth_16x={growth:.2f}")


if __name__ == "__main__":
    main()
