"""Read the JointSeg metadata stored in an exported ONNX file (pure onnx + json, no torch).

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
from pathlib import Path
from typing import Any

import onnx

PREFIX = "jointseg."
REQUIRED_KEYS = ("model_name", "model_version", "arch", "preset", "bands_10m", "bands_20m",
                 "scale_factor", "multiple_10m", "halo_10m", "normalisation", "training",
                 "precision")
JSON_KEYS = ("bands_10m", "bands_20m", "normalisation", "training")
INT_KEYS = ("scale_factor", "multiple_10m", "halo_10m")


class ModelMetadataError(ValueError):
    """An ONNX file lacks JointSeg metadata or holds a malformed value."""


def encode_metadata(meta: dict[str, Any]) -> dict[str, str]:
    """``{"arch": "jointseg", ...}`` -> ``{"jointseg.arch": "jointseg", ...}`` (strings)."""
    out = {}
    for key, value in meta.items():
        out[PREFIX + key] = json.dumps(value) if key in JSON_KEYS else str(value)
    return out


def read_model_metadata(path: str | Path) -> dict[str, Any]:
    """Parsed JointSeg metadata of an ONNX model, keys without the ``jointseg.`` prefix.

    JSON keys are decoded, integer keys converted (see module docstring). Other
    ``jointseg.*`` keys are returned as strings.

    Raises:
        ModelMetadataError: if a required key is missing or a value does not parse.
        FileNotFoundError: if ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ONNX model not found")
    model = onnx.load(str(path), load_external_data=False)
    props = {p.key[len(PREFIX):]: p.value for p in model.metadata_props
             if p.key.startswith(PREFIX)}
    missing = [k for k in REQUIRED_KEYS if k not in props]
    if missing:
        raise ModelMetadataError(f"{path}: missing metadata keys "
                                 f"{[PREFIX + k for k in missing]}")
    out: dict[str, Any] = dict(props)
    for key in JSON_KEYS:
        try:
            out[key] = json.loads(props[key])
        except json.JSONDecodeError as exc:
            raise ModelMetadataError(f"{path}: {PREFIX}{key} is not JSON: {exc}") from exc
    for key in INT_KEYS:
        try:
            out[key] = int(props[key])
        except ValueError as exc:
            raise ModelMetadataError(f"{path}: {PREFIX}{key}={props[key]!r} is not an int"
                                     ) from exc
    return out
