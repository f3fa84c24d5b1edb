"""Inference benchmark: product path vs bare ORT, PyTorch eager vs ORT, fp16, memory, seams.

    .venv/bin/python benchmarks/inference.py [--threads 2] [--windows 8] [--rss-base 128]
    .venv/bin/python benchmarks/inference.py --pipeline-only [--reps 3] [--tile-km 3]
        [--providers cuda,cpu --tile-window 304 --tile-batch 4]   # on a GPU

Prints one table and, last, ``product_vs_ort=<ratio> product_sr_vs_ort=<ratio>
ort_vs_torch_speedup=<x> rss_growth_16x=<ratio>`` (``--pipeline-only``: the first two).

* Product path vs bare ORT (:func:`pipeline_rows`): ``jointseg predict``'s function
  (:func:`jointseg.inference.predict.run_predict`, a session from ``load_model``, schema
  defaults: window 96, overlap 8, batch 2) maps a demo-sized composite pair (3 km, 300 x
  300 px at 10 m, from the BigEarthNet mosaic) to real COGs (binary + probability, and
  again with the SR quicklook); bare ORT runs the same Predictor on the same windows and
  batches, read beforehand (no I/O, no blending). Each is timed interleaved in one process,
  best of ``--reps``, so other load on the machine hits all of them alike; the serial
  path (``pipeline_depth=0``: read, run, blend, write one after the other, as before the
  pipeline) is timed beside them. km^2/min counts the tile's area for all rows.

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
import os
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
from jointseg.inference.settings import PredictSettings  # noqa: E402
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


def activation_bytes_per_px(model_path: Path, side_10m: int) -> float:
    """Peak live activation bytes per 1 m output pixel of one window (batch 1).

    A liveness pass over the exported graph with ``side_10m`` square inputs: nodes in
    file order (ONNX Runtime's sequential order follows it), each tensor held from the
    node that makes it to its last reader; weights not counted. The sizing rule of
    ``docs/architecture.md`` (Predict: pipeline and window sizes) multiplies it by
    ``batch x (10 x (window + 2 x halo))^2``.
    """
    import onnx
    from onnx import shape_inference

    m = onnx.load(str(model_path))
    for inp in m.graph.input:
        dims = inp.type.tensor_type.shape.dim
        side = side_10m if inp.name == "s2_10m" else side_10m // 2
        for k, v in enumerate((1, dims[1].dim_value, side, side)):
            dims[k].ClearField("dim_param")
            dims[k].dim_value = v
    m = shape_inference.infer_shapes(m, data_prop=True)
    itemsize = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2}
    size = {}
    for vi in [*m.graph.value_info, *m.graph.output]:
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if dims and all(d > 0 for d in dims):
            size[vi.name] = int(np.prod(dims)) * itemsize.get(vi.type.tensor_type.elem_type, 4)
    last = {i: k for k, node in enumerate(m.graph.node) for i in node.input}
    outputs = {o.name for o in m.graph.output}
    live: dict[str, int] = {}
    peak = 0
    for k, node in enumerate(m.graph.node):
        live.update({o: size[o] for o in node.output if o in size})
        peak = max(peak, sum(live.values()))
        for i in node.input:
            if last.get(i) == k and i not in outputs:
                live.pop(i, None)
    return peak / (10 * side_10m) ** 2


def pipeline_rows(model_path: Path, tmp: Path, threads: int, reps: int, tile_km: float,
                  providers: tuple[str, ...] = ("cpu",), window: int = 96,
                  batch_size: int = 2) -> tuple[list[tuple[str, str]], dict[str, float]]:
    """Product path (run_predict, threaded and serial) vs bare ORT on one tile, interleaved.

    Returns:
        Table rows and ``{"product": ratio, "product_sr": ratio}`` (bare / product time).
    """
    from jointseg.inference.predict import load_model, run_predict
    from jointseg.inference.products import ProductPaths
    from jointseg.inference.tiling import _read_batches, plan_tiling

    settings = PredictSettings.from_config({
        "providers": list(providers), "threads": threads, "window_10m": window,
        "batch_size": batch_size, "precision": "fp32" if providers == ("cpu",) else "auto"})
    model = load_model(model_path, settings)
    side = int(round(tile_km * 100)) // 2 * 2
    area_km2 = (side * 10 / 1000) ** 2
    p10 = tmp / "bench_tile_10m.tif"
    write_composite(p10, *mosaic(side))
    with open_scene(p10) as scene:
        plan = plan_tiling(scene.shape, model.info.model, settings.window_10m,
                           settings.overlap_10m)
        batches = [(b.s2_10m.copy(), b.s2_20m.copy())
                   for b in _read_batches(scene, plan, settings.batch_size, 1)]
    out = tmp / "bench_out"

    def product(sr: bool, depth: int | None = None):
        def run():
            paths = ProductPaths(out / "t_isa.tif", out / "t_prob.tif",
                                 out / "t_sr.tif" if sr else None)
            kw = {} if depth is None else {"pipeline_depth": depth}
            run_predict(model, p10, paths, settings, **kw)
        return run

    def bare(sr: bool):
        def run():
            for b10, b20 in batches:
                model.predictor.run(b10, b20, sr)
        return run

    cases = {
        "product (run_predict: isa + prob COGs)": product(False),
        "product, serial (pipeline_depth 0)": product(False, 0),
        "bare ORT (isa_logit)": bare(False),
        "product + SR quicklook": product(True),
        "product + SR, serial": product(True, 0),
        "bare ORT (isa_logit + sr)": bare(True),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():
        fn()  # warm-up: arena, GDAL caches, page cache
    for _ in range(reps):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    rows = [("tile", f"{side} x {side} px at 10 m ({area_km2:g} km2), {plan.n_windows} windows "
             f"of {plan.window} + 2 x {plan.halo} px halo, overlap {plan.overlap}, batch "
             f"{settings.batch_size}, {threads} ORT threads, best of {reps} (interleaved)"),
            ("session", f"{', '.join(model.info.providers)}, {model.info.precision}")]
    for name, t in best.items():
        rows.append((name, f"{area_km2 / t * 60:8.1f} km2/min ({t:.2f} s; all "
                           f"{', '.join(f'{x:.2f}' for x in times[name])})"))
    ratios = {
        "product": best["bare ORT (isa_logit)"] / best["product (run_predict: isa + prob COGs)"],
        "product_serial": best["bare ORT (isa_logit)"]
        / best["product, serial (pipeline_depth 0)"],
        "product_sr": best["bare ORT (isa_logit + sr)"] / best["product + SR quicklook"],
        "product_sr_serial": best["bare ORT (isa_logit + sr)"] / best["product + SR, serial"],
    }
    act = activation_bytes_per_px(model_path, plan.window + 2 * plan.halo)
    per_call = act * settings.batch_size * (10 * (plan.window + 2 * plan.halo)) ** 2
    rows.append(("activations", f"{act:.0f} B per 1 m px at peak (liveness pass over the "
                 f"graph): {per_call / 2**20:.0f} MiB per call"))
    rows.append(("product / bare ORT", f"{ratios['product']:.2f} (serial "
                 f"{ratios['product_serial']:.2f}); with SR {ratios['product_sr']:.2f} (serial "
                 f"{ratios['product_sr_serial']:.2f})"))
    return rows, ratios


def print_table(rows: list[tuple[str, str]]) -> None:
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}, "
          f"onnxruntime {__import__('onnxruntime').__version__}")
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--windows", type=int, default=6, help="windows in the speed test")
    ap.add_argument("--window", type=int, default=64, help="window core, 10 m px")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--rss-base", type=int, default=128, help="1x raster side, 10 m px")
    ap.add_argument("--rss-model", default=None, help="ONNX for the RSS runs [bench model]")
    ap.add_argument("--rss-child", nargs=3, metavar=("SCENE", "MODEL", "OUT"))
    ap.add_argument("--pipeline-only", action="store_true",
                    help="only the product path vs bare ORT rows")
    ap.add_argument("--reps", type=int, default=3, help="timed runs per case (best of)")
    ap.add_argument("--tile-km", type=float, default=3.0, help="tile side for the product path")
    ap.add_argument("--providers", default="cpu", help="product path: infer.providers")
    ap.add_argument("--tile-window", type=int, default=96, help="product path: window_10m")
    ap.add_argument("--tile-batch", type=int, default=2, help="product path: batch_size")
    args = ap.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child, threads=args.threads)
        return

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        torch_model, fp32, fp16, halo = build_models(tmp, args.threads)
        pipe_rows, ratios = pipeline_rows(
            fp32, tmp, args.threads, args.reps, args.tile_km,
            tuple(args.providers.split(",")), args.tile_window, args.tile_batch)
        rows += pipe_rows
        last = (f"product_vs_ort={ratios['product']:.2f} "
                f"product_sr_vs_ort={ratios['product_sr']:.2f}")
        if args.pipeline_only:
            print_table(rows)
            print(last)
            return
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
    print_table(rows)
    print(f"{last} ort_vs_torch_speedup={speedup:.2f} rss_growth_16x={growth:.2f}")


if __name__ == "__main__":
    main()
