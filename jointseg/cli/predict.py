"""``jointseg predict``: 1 m ISA maps from one scene with an ONNX model.

The stage's settings are :class:`jointseg.inference.settings.PredictSettings` (config
``infer``, ``--settings``); the options below replace single fields. The command runs
:func:`jointseg.inference.predict.run_predict`, as ``jointseg batch predict`` does.
"""

from __future__ import annotations

from pathlib import Path

import click

from jointseg.cli.settings import settings_from_context, settings_option, split_list
from jointseg.config import schema_default
from jointseg.inference.scene import SceneError
from jointseg.inference.session import ModelError
from jointseg.inference.settings import PredictSettings
from jointseg.io import OutputError


def _key_values(ctx: click.Context, param: click.Parameter, pairs: tuple[str, ...]
                ) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--cuda-option")
        out[key.strip()] = value.strip()
    return out


def sr_path_beside(isa: str | Path) -> Path:
    """``<tile>_sr.tif`` beside ``<tile>_isa.tif`` (``<stem>_sr.tif`` for other names)."""
    isa = Path(isa)
    stem = isa.name.removesuffix("_isa.tif") if isa.name.endswith("_isa.tif") else isa.stem
    return isa.with_name(f"{stem}_sr.tif")


@click.command()
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False),
              help="Exported ONNX model (its <name>_fp16.onnx twin beside it for fp16).")
@click.option("--input", "input_path", required=True, type=click.Path(),
              help="Composite <tile>_10m.tif (the _20m.tif sibling is found by name) "
                   "or a directory with one GeoTIFF per band (*_B02.tif ... *_B12.tif).")
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help="Binary ISA COG: uint8 1 = impervious, 0 = not, 255 = nodata.")
@click.option("--prob-output", type=click.Path(dir_okay=False), default=None,
              help="ISA probability COG: uint8 p x 254, scale 1/254, 255 = nodata.")
@click.option("--sr-output", type=click.Path(dir_okay=False), default=None,
              help="SR RGB quicklook COG: uint8, 2-98 % stretch, 0 = nodata "
                   "[default with sr_quicklook: <tile>_sr.tif beside --output].")
@settings_option("infer")
@click.option("--threads", type=click.IntRange(min=1), default=schema_default("infer.threads"),
              show_default=True, help="ONNX Runtime intra-op threads.")
@click.option("--batch-size", type=click.IntRange(min=1),
              default=schema_default("infer.batch_size"), show_default=True,
              help="Windows per ONNX Runtime call (raise on GPUs; activation memory "
                   "grows with batch x window^2).")
@click.option("--window", "window_10m", type=click.IntRange(min=2),
              default=schema_default("infer.window_10m"), show_default=True,
              help="Window core size in 10 m pixels (the model's halo is added on each side).")
@click.option("--overlap", "overlap_10m", type=click.IntRange(min=0),
              default=schema_default("infer.overlap_10m"), show_default=True,
              help="Blend overlap between windows in 10 m pixels.")
@click.option("--threshold", type=click.FloatRange(0, 1),
              default=schema_default("infer.threshold"),
              help="Probability threshold for the binary map [default: the model's own, "
                   "calibrated in training; 0.5 for a model without one].")
@click.option("--providers", default=",".join(schema_default("infer.providers")),
              show_default=True, callback=split_list,
              help="Comma-separated: tensorrt, cuda, cpu. The session must run on the first; "
                   "when it cannot, predict stops in one line (tensorrt may give way to cuda; "
                   "the CPU only as --allow-cpu-fallback says).")
@click.option("--allow-cpu-fallback", "allow_cpu_fallback",
              type=click.Choice(["auto", "yes", "no"]), default="auto", show_default=True,
              callback=lambda ctx, param, v: {"auto": None, "yes": True, "no": False}[v],
              help="May a GPU provider give way to the CPU (cpu listed in --providers)? "
                   "auto: only where no NVIDIA GPU is visible.")
@click.option("--sr-quicklook/--no-sr-quicklook", default=schema_default("infer.sr_quicklook"),
              show_default=True, help="Write the SR quicklook (see --sr-output).")
@click.option("--cuda-option", "cuda", multiple=True, metavar="KEY=VALUE", callback=_key_values,
              help="CUDA EP option, e.g. device_id=0, gpu_mem_limit=8589934592, "
                   "cudnn_conv_algo_search=HEURISTIC (repeatable).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16"]),
              default=schema_default("infer.precision"), show_default=True,
              help="fp16 runs the <model>_fp16.onnx twin; auto: the twin when the session "
                   "runs on CUDA (chosen once the provider is known).")
@click.option("--cuda-graph/--no-cuda-graph", default=schema_default("infer.cuda_graph"),
              show_default=True, help="CUDA EP CUDA graphs (batches padded to --batch-size).")
@click.option("--trt-fp16/--no-trt-fp16", default=schema_default("infer.tensorrt.fp16"),
              show_default=True, help="TensorRT: build fp16 engines.")
@click.option("--trt-engine-cache", type=click.Path(file_okay=False),
              default=schema_default("infer.tensorrt.engine_cache_dir"),
              help="TensorRT: engine cache root; engines go to <root>/<model sha256>-<options"
                   "> (a retrained model never loads a stale engine) [default: "
                   "<resources_dir>/trt-cache].")
@click.option("--trt-timing-cache/--no-trt-timing-cache",
              default=schema_default("infer.tensorrt.timing_cache"), show_default=True,
              help="TensorRT: keep a timing cache beside the engines.")
@click.option("--mask-snow/--no-mask-snow", default=schema_default("infer.mask_snow"),
              show_default=True, help="Leave snow (NDSI test) unpredicted (nodata).")
@click.option("--compress", type=click.Choice(["DEFLATE", "ZSTD"]),
              default=schema_default("infer.compress"), show_default=True)
@click.option("--allow-simulated-model/--no-allow-simulated-model",
              default=schema_default("infer.allow_simulated_model"), show_default=True,
              help="Map a real scene with a model trained on simulated data.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_context
def predict(ctx: click.Context, model_path: str, input_path: str, output: str,
            prob_output: str | None, sr_output: str | None, progress: bool,
            **_: object) -> None:
    """Predict 1 m impervious surface for one scene and write COGs on the 1 m grid."""
    from jointseg.inference.predict import load_model, run_predict
    from jointseg.inference.products import ProductPaths

    settings = settings_from_context(PredictSettings, ctx)
    if sr_output is None and settings.sr_quicklook:
        sr_output = str(sr_path_beside(output))
    outputs = ProductPaths(Path(output), Path(prob_output) if prob_output else None,
                           Path(sr_output) if sr_output else None)
    try:
        model = load_model(model_path, settings)
        paths = run_predict(model, input_path, outputs, settings, progress=progress)
    except (SceneError, ModelError, OutputError) as exc:
        raise click.ClickException(str(exc)) from None
    for p in (paths.binary, paths.prob, paths.sr):
        if p is not None:
            click.echo(str(p))
