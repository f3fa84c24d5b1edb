"""Export a trained checkpoint to ONNX (fp32 + fp16 twin) with JointSeg metadata.

The graph follows the ONNX interface contract (docs/model.md): inputs ``s2_10m``
float32 (N, 5, H, W) and ``s2_20m`` float32 (N, 6, H/2, W/2) raw DN; outputs
``isa_logit`` float32 (N, 1, 10H, 10W) and ``sr`` float32 (N, 4, 10H, 10W)
reflectance. Batch and spatial axes are dynamic; opset 17; one file each (the
legacy TorchScript exporter, ``dynamo=False``). The fp16 twin is the half-precision
model exported from torch: float32 inputs are normalised in float32, cast to
float16 for the network, and the outputs are cast back to float32, so callers do
not change.

``jointseg.halo_10m`` is measured, not derived: :func:`measure_halo` runs the
model on one large input and on centred crops with growing margins and keeps the
smallest margin (a multiple of ``multiple_10m``) at which the crop's centre
output differs from the full run by at most ``tol``.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

import jointseg
from jointseg.bands import BANDS_20M, MODEL_INPUT_10M
from jointseg.io import atomic_path, output_guard, verify_file
from jointseg.model.jointseg import (
    ARCH_VERSION,
    MULTIPLE_10M,
    SCALE_FACTOR,
    Normaliser,
)
from jointseg.model.metadata import encode_metadata, fp16_twin_path, read_model_metadata
from jointseg.model.train import load_checkpoint, training_summary

log = logging.getLogger(__name__)
INPUT_NAMES = ["s2_10m", "s2_20m"]
OUTPUT_NAMES = ["isa_logit", "sr"]
OPSET = 17


class ExportError(RuntimeError):
    """The exported model failed a check (ONNX checker, or parity with PyTorch)."""


def realistic_input(norm: Normaliser, size_10m: int, seed: int = 0, batch: int = 1
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random DN inputs drawn from the model's normalisation statistics (float32).

    Spatially smooth-ish (2 x 2 and 4 x 4 blocks mixed with noise) so attention and
    convolutions see realistic contrasts; COUNT is an integer 0..2*count_ref.
    """
    g = torch.Generator().manual_seed(seed)

    def field(c: int, n: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        z = torch.randn(batch, c, n // 2, n // 2, generator=g).repeat_interleave(2, -1)
        z = z.repeat_interleave(2, -2) + 0.5 * torch.randn(batch, c, n, n, generator=g)
        return (mean.view(1, -1, 1, 1) + std.view(1, -1, 1, 1) * z).clamp(1, 20000)

    refl = field(4, size_10m, norm.mean_10m, norm.std_10m)
    count = torch.randint(0, int(2 * float(norm.count_ref)) + 1, (batch, 1, size_10m, size_10m),
                          generator=g).float()
    s20 = field(6, size_10m // 2, norm.mean_20m, norm.std_20m)
    return torch.cat([refl, count], 1), s20


@torch.no_grad()
def measure_halo(model: torch.nn.Module, max_halo_10m: int = 48, centre_10m: int = 4,
                 tol: float = 1e-3, seed: int = 0) -> int:
    """Smallest tiling halo (10 m px, multiple of MULTIPLE_10M) keeping outputs within ``tol``.

    Runs ``model`` on a (2 * max_halo_10m + centre_10m)^2 input and on crops of it
    centred on the middle ``centre_10m`` pixels with margin h, and compares both
    outputs (logits and SR) on the middle block. Returns ``max_halo_10m`` with a
    warning if even that margin is not enough.
    """
    model.eval()
    step = MULTIPLE_10M
    max_h = -(-max_halo_10m // step) * step
    n = 2 * max_h + centre_10m
    s10, s20 = realistic_input(model.norm, n, seed)
    ref = [o[..., 10 * max_h:10 * (max_h + centre_10m), 10 * max_h:10 * (max_h + centre_10m)]
           for o in model(s10, s20)]

    def err(h: int) -> float:
        a, b = max_h - h, max_h + centre_10m + h
        out = model(s10[..., a:b, a:b], s20[..., a // 2:b // 2, a // 2:b // 2])
        c0, c1 = 10 * h, 10 * (h + centre_10m)
        return max(float((o[..., c0:c1, c0:c1] - r).abs().max()) for o, r in zip(out, ref,
                                                                                 strict=True))

    lo, hi = 0, max_h  # bisection on margins that are multiples of `step`
    if err(hi) > tol:
        log.warning("halo: margin %d px still changes outputs by > %g; using it", hi, tol)
        return hi
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if mid in (lo, hi):
            break
        if err(mid) <= tol:
            hi = mid
        else:
            lo = mid
    if lo == 0 and err(0) <= tol:
        return 0
    return hi


def _export(module: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    dyn = {"s2_10m": {0: "batch", 2: "height_10m", 3: "width_10m"},
           "s2_20m": {0: "batch", 2: "height_20m", 3: "width_20m"},
           "isa_logit": {0: "batch", 2: "height_1m", 3: "width_1m"},
           "sr": {0: "batch", 2: "height_1m", 3: "width_1m"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), dynamo=False, opset_version=OPSET,
                          input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                          dynamic_axes=dyn, do_constant_folding=True)


def _write_onnx(module: torch.nn.Module, example: tuple[torch.Tensor, ...], final: Path,
                meta: dict[str, Any]) -> None:
    def validate(tmp: Path) -> None:
        onnx.checker.check_model(str(tmp), full_check=True)

    with atomic_path(final, validate=validate, checksum=True) as tmp:
        _export(module, example, tmp)
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        for key, value in encode_metadata(meta).items():
            proto.metadata_props.add(key=key, value=value)
        proto.doc_string = f"JointSeg {meta['arch']}/{meta['preset']} ({meta['precision']})"
        onnx.save(proto, str(tmp))


def run_onnx(path: str | Path, s2_10m: np.ndarray, s2_20m: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Run an exported model with ONNX Runtime (CPU); returns (isa_logit, sr)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logit, sr = sess.run(OUTPUT_NAMES, {"s2_10m": s2_10m.astype(np.float32),
                                        "s2_20m": s2_20m.astype(np.float32)})
    return logit, sr


def export_model(checkpoint: str | Path, out_path: str | Path, *, fp16: bool = True,
                 halo_10m: int | None = None, max_halo_10m: int = 48,
                 model_name: str | None = None, verify: bool = True,
                 atol: float = 1e-4) -> dict[str, Any]:
    """Export ``checkpoint`` to ``out_path`` (fp32) and ``<stem>_fp16.onnx`` beside it.

    Args:
        checkpoint: a ``.pt`` written by :func:`jointseg.model.train.train`.
        out_path: the fp32 ``.onnx`` path.
        fp16: also write the fp16 twin.
        halo_10m: tiling halo to record; measured with :func:`measure_halo` when None.
        max_halo_10m: upper bound of the halo search.
        model_name: ``jointseg.model_name``; default ``<arch>-<preset>``.
        verify: run ONNX Runtime on a random input and compare with PyTorch.
        atol: fp32 parity tolerance (max abs difference, logits and reflectance).

    Returns:
        {"fp32": path, "fp16": path | None, "metadata": dict, "max_abs_diff": float}

    Both files are written or neither (:func:`jointseg.io.output_guard`): a failure
    of the second (disk full, parity) removes the first.

    Raises:
        ExportError: if ORT and PyTorch disagree by more than ``atol``.
        IntegrityError: the checkpoint changed after train wrote it (its ``.sha256``).
        OutputError: a model file could not be written (disk full...), one line.
    """
    out_path = Path(out_path)
    fp16_path = fp16_twin_path(out_path)
    verify_file(checkpoint, remedy="rerun train")
    with output_guard(out_path, fp16_path if fp16 else None):
        return _export_both(checkpoint, out_path, fp16_path if fp16 else None, halo_10m,
                            max_halo_10m, model_name, verify, atol)


def _export_both(checkpoint: str | Path, out_path: Path, fp16_path: Path | None,
                 halo_10m: int | None, max_halo_10m: int, model_name: str | None,
                 verify: bool, atol: float) -> dict[str, Any]:
    """:func:`export_model`'s work: the fp32 file, its parity check, the fp16 twin."""
    model, ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    if halo_10m is None:
        halo_10m = measure_halo(model, max_halo_10m)
        log.info("measured tiling halo: %d px at 10 m", halo_10m)
    meta: dict[str, Any] = {
        "model_name": model_name or f"{cfg['arch']}-{cfg['preset']}",
        "model_version": f"{jointseg.__version__}+a{ARCH_VERSION}.e{ckpt['epoch'] + 1}",
        "arch": cfg["arch"], "preset": cfg["preset"],
        "bands_10m": list(MODEL_INPUT_10M), "bands_20m": list(BANDS_20M),
        "scale_factor": SCALE_FACTOR, "multiple_10m": MULTIPLE_10M, "halo_10m": halo_10m,
        "normalisation": model.norm.to_dict(),
        "training": training_summary(checkpoint),
        "precision": "fp32",
    }
    example = realistic_input(model.norm, 16, seed=1)
    _write_onnx(model, example, out_path, meta)
    result: dict[str, Any] = {"fp32": out_path, "fp16": None, "metadata": meta}
    if verify:
        s10, s20 = realistic_input(model.norm, 24, seed=2, batch=2)
        diff = parity(model, out_path, s10, s20)
        result["max_abs_diff"] = diff
        if diff > atol:
            raise ExportError(f"{out_path}: ONNX Runtime differs from PyTorch by {diff:.2e} "
                              f"> {atol:.0e}")
        log.info("%s: ORT vs PyTorch max |diff| %.2e", out_path, diff)
    if fp16_path is not None:
        half = copy.deepcopy(model).half()
        half.norm.float()
        _write_onnx(half, example, fp16_path, {**meta, "precision": "fp16"})
        result["fp16"] = fp16_path
    return result


@torch.no_grad()
def parity(model: torch.nn.Module, onnx_path: str | Path, s2_10m: torch.Tensor,
           s2_20m: torch.Tensor) -> float:
    """Max |ORT - PyTorch| over both outputs for one input pair."""
    model.eval()
    ref = model(s2_10m, s2_20m)
    got = run_onnx(onnx_path, s2_10m.numpy(), s2_20m.numpy())
    return max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref, strict=True))


def describe(path: str | Path) -> str:
    """One-line JSON of an exported model's metadata (for logs)."""
    meta = read_model_metadata(path)
    return json.dumps({k: meta[k] for k in ("model_name", "arch", "preset", "precision",
                                            "halo_10m", "multiple_10m")})
