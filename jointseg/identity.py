"""What a trained artefact was made from, as a short stable key.

Training chips and models are keyed by what they were made from, so that two
configurations in one working directory never share or overwrite each other's chips
or models (``<results_dir>/training/<year>/chips/<training id>/``,
``<results_dir>/models/<name>-<model id>/``). A key is the first hex digits of the
sha256 of the canonical JSON (sorted keys, no spaces) of the settings that decide the
artefact; settings that change only how fast it is made (threads, device, GPUs) are left
out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: Hex digits of a key: 48 bits, no collision among the configurations of one project.
KEY_LEN = 10

#: ``model.train`` keys that change how fast a model trains, not what it learns.
RUNTIME_TRAIN_KEYS = frozenset({"threads", "device", "gpus"})

#: Config sections that decide a training region's Sentinel-2 composites.
COMPOSITE_SECTIONS = ("bands", "cloudmask", "composite")
#: ``stac`` keys that decide which scenes a search finds (not ports, timeouts, signing).
STAC_KEYS = ("api_url", "collection", "max_cloud_cover", "max_scenes", "date_window")


def settings_key(settings: Any) -> str:
    """Key of JSON-ready ``settings``: the first :data:`KEY_LEN` hex digits of the sha256
    of their canonical JSON (key order and whitespace do not matter)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LEN]


def training_data_id(config: Mapping[str, Any], source: str | None) -> str | None:
    """Key of the training chips a validated ``config`` makes, or None without chips.

    Args:
        config: the validated workflow config (defaults filled).
        source: where chips come from: ``training_data`` (cut by make_chips from the
            ``training_data`` section and the region's composites), ``dir`` (the user's
            chip folder ``model.chips.dir``), ``simulated`` (``model.chips``'s simulated
            training regions) or None (a trained ``model.onnx``, no chips).
    """
    if source is None:
        return None
    if source == "training_data":
        stac = config["stac"]
        spec: dict[str, Any] = {
            "training_data": config["training_data"],
            "stac": {k: stac.get(k) for k in STAC_KEYS},
            "demo": config["demo"] if stac["demo_server"]["enabled"] else None,
            **{k: config[k] for k in COMPOSITE_SECTIONS},
            "tile_size_m": config["grid"]["tile_size_m"],
        }
    elif source == "dir":
        spec = {"dir": config["model"]["chips"]["dir"]}
    elif source == "simulated":
        chips = config["model"]["chips"]
        spec = {"simulated": {k: v for k, v in chips.items() if k not in ("source", "dir")}}
    else:
        raise ValueError(f"unknown chip source {source!r}")
    return settings_key({"source": source, **spec})


def model_id(train: Mapping[str, Any], training_id: str) -> str:
    """Key of a model trained with ``model.train`` settings ``train`` on the chips
    ``training_id`` (the runtime keys :data:`RUNTIME_TRAIN_KEYS` are left out)."""
    kept = {k: v for k, v in train.items() if k not in RUNTIME_TRAIN_KEYS}
    return settings_key({"train": kept, "training_data": training_id})
