"""``jointseg train`` and ``jointseg export``: thin wrappers over train.py and export.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import click

from jointseg.config import schema_default

log = logging.getLogger(__name__)


def _d(key: str) -> str:
    """`` [default]`` of ``model.train.<key>`` from the schema, for option help."""
    return f" [{schema_default('model.train.' + key)}]"


@click.command("train")
@click.option("--chips", "chips_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Paired chip directory (index.csv + chip folders).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Output directory: last.pt, best.pt, history.csv, loss.png, summary.json.")
@click.option("--config", "config_path", type=click.Path(exists=True, path_type=Path),
              help="YAML with a model: section (arch, preset, epochs, ..., loss: {...}).")
@click.option("--train-json", help="JSON object of training settings (the workflow config's "
              "model.train section); overrides --config.")
@click.option("--preset", type=click.Choice(["tiny", "paper"]), help="Model size [tiny].")
@click.option("--arch", type=click.Choice(["jointseg", "bilinear", "bilinear-wide"]),
              help="Model [jointseg]; bilinear-wide: the baseline widened to JointSeg's size.")
@click.option("--epochs", type=click.IntRange(min=1), help="Total epochs [10].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Crops per step [8].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Adam LR [2e-3].")
@click.option("--seed", type=int, help="Random seed [0].")
@click.option("--threads", type=click.IntRange(min=1), help="torch CPU threads [2].")
@click.option("--lr-trunk", type=click.FloatRange(min=0, min_open=True),
              help="Adam LR of the RRDB trunk" + _d("lr_trunk") + ".")
@click.option("--grad-clip", type=click.FloatRange(min=0),
              help="Max gradient L2 norm, 0 = off" + _d("grad_clip") + ".")
@click.option("--amp", type=click.Choice(["auto", "bf16", "fp16", "off"]),
              help="Autocast on CUDA: auto = bf16 where the GPU has it natively, fp16 with "
                   "loss scaling on 7.x (V100, T4), fp32 elsewhere" + _d("amp") + ".")
@click.option("--gpus", type=click.IntRange(min=1), help="Processes (one per GPU): more "
              "than 1 relaunches this command under torchrun" + _d("gpus") + ".")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt if present.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def train(chips_dir: Path, out_dir: Path, config_path: Path | None, train_json: str | None,
          no_progress: bool, resume: bool, **options: object) -> None:
    """Train JointSeg (or the bilinear baseline) on paired chips.

    Settings: --config's model: (or model.train:) section, then --train-json, then the
    options given on the command line.
    """
    from jointseg.config import ConfigError
    from jointseg.model.chips import ChipError
    from jointseg.model.train import TrainError, config_from_dict, load_train_settings
    from jointseg.model.train import train as run_train

    try:
        cfg_dict = load_train_settings(config_path) if config_path else {}
        if train_json:
            try:
                extra = json.loads(train_json)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--train-json: not valid JSON: {exc}") from None
            if not isinstance(extra, dict):
                raise ConfigError("--train-json: expected a JSON object")
            cfg_dict.update(extra)
        cfg_dict.update({k: v for k, v in options.items() if v is not None})
        cfg = config_from_dict(cfg_dict)
        if cfg.gpus > 1 and "WORLD_SIZE" not in os.environ:
            _relaunch_under_torchrun(cfg.gpus)
            return
        summary = run_train(chips_dir, out_dir, cfg, resume=resume, progress=not no_progress)
    except (ConfigError, TrainError, ChipError) as exc:
        raise click.ClickException(str(exc)) from None
    if os.environ.get("RANK", "0") == "0":
        click.echo(json.dumps(summary, default=str))


def _relaunch_under_torchrun(nproc: int) -> None:
    """Run this same ``jointseg ... train ...`` command line as ``nproc`` DDP processes
    (``python -m torch.distributed.run --standalone``); exits with its status."""
    argv = sys.argv[1:]
    if "train" not in argv:
        raise click.ClickException("--gpus > 1 needs the `jointseg train` command line "
                                   "(run torchrun yourself when calling train() from code)")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", "-m", "jointseg", *argv]
    log.info("relaunching under torchrun: %s", " ".join(cmd))
    rc = subprocess.call(cmd)
    if rc:
        raise click.ClickException(f"torchrun with {nproc} processes exited with status {rc}")


@click.command("export")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, path_type=Path),
              help="Checkpoint from `jointseg train` (best.pt or last.pt).")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path),
              help="fp32 ONNX path; the fp16 twin goes beside it as <stem>_fp16.onnx.")
@click.option("--fp16/--no-fp16", default=True, show_default=True, help="Write the fp16 twin.")
@click.option("--halo", "halo_10m", type=click.IntRange(min=0),
              help="Tiling halo (10 m px) to record instead of measuring it.")
@click.option("--max-halo", "max_halo_10m", type=click.IntRange(min=2), default=48,
              show_default=True, help="Largest halo (10 m px) the measurement tries.")
@click.option("--name", "model_name", help="jointseg.model_name [<arch>-<preset>].")
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="torch CPU threads.")
def export(checkpoint: Path, out_path: Path, fp16: bool, halo_10m: int | None,
           max_halo_10m: int, model_name: str | None, threads: int) -> None:
    """Export a checkpoint to ONNX (dynamic batch/size, opset 17, metadata inside)."""
    import torch

    from jointseg.io import IntegrityError, OutputError
    from jointseg.model.export import ExportError, export_model
    from jointseg.model.train import TrainError

    torch.set_num_threads(threads)
    try:
        res = export_model(checkpoint, out_path, fp16=fp16, halo_10m=halo_10m,
                           max_halo_10m=max_halo_10m, model_name=model_name)
    except (ExportError, TrainError, IntegrityError, OutputError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"fp32": str(res["fp32"]),
                           "fp16": str(res["fp16"]) if res["fp16"] else None,
                           "halo_10m": res["metadata"]["halo_10m"],
                           "max_abs_diff": res.get("max_abs_diff")}))
