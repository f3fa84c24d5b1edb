"""The JointSeg metadata of an exported ONNX file: one writer, one parser (pure onnx + json).

:func:`jointseg.model.export.export_model` writes these keys with
:func:`encode_metadata`; inference (:mod:`jointseg.inference.session`) and
:func:`read_model_metadata` parse them with :func:`decode_metadata`. Every key
export writes is required. This module never imports torch.

Keys (``metadata_props``, all strings in the file) and their parsed types:

=========================  ======================================================
``jointseg.model_name``    str
``jointseg.model_version`` str
``jointseg.arch``          str: jointseg | bilinear
``jointseg.preset``        str: tiny | paper
``jointseg.bands_10m``     list[str] (JSON): B02 B03 B04 B08 COUNT
``jointseg.bands_20m``     list[str] (JSON): B05 B06 B07 B8A B11 B12
``jointseg.scale_factor``  int: 10 (1 m output pixels per 10 m input pixel)
``jointseg.multiple_10m``  int: input H, W (and tile offsets) must be multiples of it
``jointseg.halo_10m``      int: 10 m pixels of context to add on each side when tiling
``jointseg.normalisation`` dict (JSON)
``jointseg.training``      dict (JSON)
``jointseg.precision``     str: fp32 | fp16
=========================  ======================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

PREFIX = "jointseg."
REQUIRED_KEYS = ("model_name", "model_version", "arch", "preset", "bands_10m", "bands_20m",
                 "scale_factor", "multiple_10m", "halo_10m", "normalisation", "training",
                 "precision")
JSON_KEYS = ("bands_10m", "bands_20m", "normalisation", "training")
INT_KEYS = ("scale_factor", "multiple_10m", "halo_10m")
#: Output pixels per 10 m input pixel that the pipeline's 1 m products need.
SCALE_FACTOR = 10


def fp16_twin_path(model_path: str | Path) -> Path:
    """``<stem>_fp16.onnx`` beside ``model_path``: where export writes the half-precision
    twin of a model and where inference (``infer.precision``) looks for it."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.stem}_fp16.onnx")


class ModelMetadataError(ValueError):
    """An ONNX file lacks JointSeg metadata or holds a malformed value."""


def encode_metadata(meta: Mapping[str, Any]) -> dict[str, str]:
    """``{"arch": "jointseg", ...}`` -> ``{"jointseg.arch": "jointseg", ...}`` (strings)."""
    out = {}
    for key, value in meta.items():
        out[PREFIX + key] = json.dumps(value) if key in JSON_KEYS else str(value)
    return out


def decode_metadata(props: Mapping[str, str], where: str | Path = "model") -> dict[str, Any]:
    """Parse ``jointseg.*`` metadata_props into values, keys without the prefix.

    Args:
        props: every metadata key/value of the model (other prefixes are ignored).
        where: the model file, named in errors.

    Returns:
        JSON keys decoded, integer keys as int, other ``jointseg.*`` keys as strings.

    Raises:
        ModelMetadataError: naming ``where`` and the key, if a required key is missing,
            a value does not parse, or ``scale_factor`` / ``multiple_10m`` / ``halo_10m``
            are out of range.
    """
    meta: dict[str, Any] = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelMetadataError(f"{where}: missing metadata keys "
                                 f"{[PREFIX + k for k in missing]}")
    for key in JSON_KEYS:
        try:
            meta[key] = json.loads(meta[key])
        except json.JSONDecodeError as exc:
            raise ModelMetadataError(f"{where}: {PREFIX}{key} is not JSON: {exc}") from exc
    for key in INT_KEYS:
        try:
            meta[key] = int(meta[key])
        except ValueError as exc:
            raise ModelMetadataError(f"{where}: {PREFIX}{key}={meta[key]!r} is not an int"
                                     ) from exc
    for key in ("bands_10m", "bands_20m"):
        if not isinstance(meta[key], list) or not all(isinstance(b, str) for b in meta[key]):
            raise ModelMetadataError(f"{where}: {PREFIX}{key} is not a list of band ids")
    if meta["scale_factor"] != SCALE_FACTOR:
        raise ModelMetadataError(f"{where}: {PREFIX}scale_factor={meta['scale_factor']}, "
                                 f"expected {SCALE_FACTOR}")
    if meta["multiple_10m"] < 1 or meta["halo_10m"] < 0:
        raise ModelMetadataError(f"{where}: {PREFIX}multiple_10m={meta['multiple_10m']} must be "
                                 f">= 1 and {PREFIX}halo_10m={meta['halo_10m']} >= 0")
    return meta


def read_model_metadata(path: str | Path) -> dict[str, Any]:
    """Parsed JointSeg metadata of an ONNX file (see :func:`decode_metadata`).

    Raises:
        ModelMetadataError: if a required key is missing or a value does not parse.
        FileNotFoundError: if ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ONNX model not found")
    model = onnx.load(str(path), load_external_data=False)
    return decode_metadata({p.key: p.value for p in model.metadata_props}, path)


@dataclass(frozen=True)
class ModelInfo:
    """Typed view of :func:`decode_metadata`'s result, as inference uses it.

    Attributes:
        name, version, arch, preset, precision: strings as exported.
        bands_10m, bands_20m: input band ids, in channel order.
        scale_factor: output pixels per input 10 m pixel (10).
        multiple_10m: H and W of ``s2_10m`` must be multiples of this.
        halo_10m: receptive-field radius in 10 m pixels.
        meta: the whole decoded metadata (normalisation, training...).
    """

    name: str
    version: str
    arch: str
    preset: str
    precision: str
    bands_10m: tuple[str, ...]
    bands_20m: tuple[str, ...]
    scale_factor: int
    multiple_10m: int
    halo_10m: int
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_props(cls, props: Mapping[str, str], where: str | Path = "model") -> ModelInfo:
        """Parse metadata_props (e.g. an ORT session's ``custom_metadata_map``).

        Raises:
            ModelMetadataError: see :func:`decode_metadata`.
        """
        meta = decode_metadata(props, where)
        return cls(
            name=meta["model_name"], version=meta["model_version"], arch=meta["arch"],
            preset=meta["preset"], precision=meta["precision"],
            bands_10m=tuple(meta["bands_10m"]), bands_20m=tuple(meta["bands_20m"]),
            scale_factor=meta["scale_factor"], multiple_10m=meta["multiple_10m"],
            halo_10m=meta["halo_10m"], meta=meta,
        )

    @property
    def threshold(self) -> float:
        """The probability cut of the binary map recorded at training (``training`` /
        ``threshold``: calibrated on the validation reference), 0.5 when absent."""
        value = self.meta.get("training", {}).get("threshold")
        return 0.5 if value is None else float(value)
