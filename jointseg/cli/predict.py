"""``jointseg predict``: 1 m ISA maps from one scene with an ONNX model."""

from __future__ import annotations

import os

import click

from jointseg.config import schema_default
from jointseg.inference.scene import SceneError
from jointseg.inference.session import ModelError


def _default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--cuda-option")
        out[key.strip()] = value.strip()
    return out


@click.command()
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False),
              help="Exported ONNX model.")
@click.option("--input", "input_path", required=True, type=click.Path(),
              help="Composite <tile>_10m.tif (the _20m.tif sibling is found by name) "
                   "or a directory with one GeoTIFF per band (*_B02.tif ... *_B12.tif).")
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help="Binary ISA COG: uint8 1 = impervious, 0 = not, 255 = nodata.")
@click.option("--prob-output", type=click.Path(dir_okay=False), default=None,
              help="ISA probability COG: uint8 p x 254, scale 1/254, 255 = nodata.")
@click.option("--sr-output", type=click.Path(dir_okay=False), default=None,
              help="SR RGB quicklook COG: uint8, 2-98 % stretch, 0 = nodata.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX Runtime intra-op threads [default: CPUs available].")
@click.option("--batch-size", type=click.IntRange(min=1),
              default=schema_default("infer.batch_size"), show_default=True,
              help="Windows per ONNX Runtime call (raise on GPUs; activation memory "
                   "grows with batch x window^2).")
@click.option("--window", type=click.IntRange(min=2),
              default=schema_default("infer.window_10m"), show_default=True,
              help="Window core size in 10 m pixels (the model's halo is added on each side).")
@click.option("--overlap", type=click.IntRange(min=0),
              default=schema_default("infer.overlap_10m"), show_default=True,
              help="Blend overlap between windows in 10 m pixels.")
@click.option("--threshold", type=click.FloatRange(0, 1),
              default=schema_default("infer.threshold"),
              help="Probability threshold for the binary map [default: the model's own, "
                   "calibrated in training; 0.5 for a model without one].")
@click.option("--providers", default=",".join(schema_default("infer.providers")),
              show_default=True,
              help="Comma-separated: tensorrt, cuda, cpu (used in that order when available).")
@click.option("--cuda-option", "cuda_options", multiple=True, metavar="KEY=VALUE",
              help="CUDA EP option, e.g. device_id=0, gpu_mem_limit=8589934592, "
                   "cudnn_conv_algo_search=HEURISTIC (repeatable).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16"]),
              default=schema_default("infer.precision"), show_default=True,
              help="fp16 runs the <model>_fp16.onnx twin; auto: fp16 when CUDA leads.")
@click.option("--cuda-graph/--no-cuda-graph", default=schema_default("infer.cuda_graph"),
              show_default=True, help="CUDA EP CUDA graphs (batches padded to --batch-size).")
@click.option("--trt-fp16/--no-trt-fp16", default=schema_default("infer.tensorrt.fp16"),
              show_default=True, help="TensorRT: build fp16 engines.")
@click.option("--trt-engine-cache", type=click.Path(file_okay=False),
              default=schema_default("infer.tensorrt.engine_cache_dir"),
              help="TensorRT: engine cache folder (engines are built once, then loaded).")
@click.option("--trt-timing-cache/--no-trt-timing-cache",
              default=schema_default("infer.tensorrt.timing_cache"), show_default=True,
              help="TensorRT: keep a timing cache beside the engines.")
@click.option("--mask-snow/--no-mask-snow", default=schema_default("infer.mask_snow"),
              show_default=True, help="Leave snow (NDSI test) unpredicted (nodata).")
@click.option("--compress", type=click.Choice(["DEFLATE", "ZSTD"]), default="DEFLATE",
              show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def predict(
    model_path: str, input_path: str, output: str, prob_output: str | None,
    sr_output: str | None, threads: int | None, batch_size: int, window: int, overlap: int,
    threshold: float | None, providers: str, cuda_options: tuple[str, ...], precision: str,
    cuda_graph: bool, trt_fp16: bool, trt_engine_cache: str | None, trt_timing_cache: bool,
    mask_snow: bool, compress: str, progress: bool,
) -> None:
    """Predict 1 m impervious surface for one scene and write COGs on the 1 m grid."""
    from jointseg.inference.products import predict_tile
    from jointseg.inference.providers import tensorrt_provider_options
    from jointseg.inference.scene import open_scene
    from jointseg.inference.session import make_session

    try:
        with open_scene(input_path) as scene:
            scene.mask_snow = mask_snow
            session, info = make_session(
                model_path,
                providers=tuple(providers.split(",")),
                threads=threads or _default_threads(),
                cuda_options=_parse_options(cuda_options),
                tensorrt_options=tensorrt_provider_options(
                    trt_fp16, trt_engine_cache, trt_timing_cache)
                if "tensorrt" in providers.lower() else None,
                precision=precision,
                cuda_graph=cuda_graph,
            )
            paths = predict_tile(
                session, scene, output, prob_output=prob_output, sr_output=sr_output,
                threshold=threshold, window=window, overlap=overlap, batch_size=batch_size,
                info=info, compress=compress, progress=progress,
            )
    except (SceneError, ModelError) as exc:
        raise click.ClickException(str(exc)) from exc
    for p in (paths.binary, paths.prob, paths.sr):
        if p is not None:
            click.echo(str(p))
