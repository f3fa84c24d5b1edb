"""Settings of the tile stages: one frozen dataclass per stage, built from its config section.

Each tile stage (search, download, cloudmask, composite, predict) is one library
function that takes one settings object (:mod:`jointseg.data.settings`,
:mod:`jointseg.inference.settings`). The object is built once from the stage's config
section (``stac``, ``download``, ``cloudmask``, ``composite``, ``infer``), whose missing
keys take the schema's defaults; the few facts a stage reads from other sections (the
tile size, the band list, the HTTP retries) are fields named in its ``SHARED`` table,
given beside the section's own keys. The rules hand that mapping to ``--settings``
as one JSON word (:func:`stage_settings_section`); the per-tile command, the batch
runner and any caller of the library build the same object from it.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import jsonschema

from jointseg.config import ConfigError, format_error, load_schema, schema_default

#: stage -> "module:class" of its settings (``predict_baseline`` maps like ``predict``)
STAGE_SETTINGS: dict[str, str] = {
    "search": "jointseg.data.settings:SearchSettings",
    "download": "jointseg.data.settings:DownloadSettings",
    "cloudmask": "jointseg.data.settings:CloudMaskSettings",
    "composite": "jointseg.data.settings:CompositeSettings",
    "predict": "jointseg.inference.settings:PredictSettings",
    "predict_baseline": "jointseg.inference.settings:PredictSettings",
}

S = TypeVar("S", bound="StageSettings")


class StageSettings:
    """Base of the stage settings dataclasses (frozen; fields are the stage's knobs).

    Subclasses set ``SECTION`` (their config section) and ``SHARED`` (field -> dotted
    config key of the facts taken from other sections) and implement
    :meth:`_from_section`, which maps the section's keys (defaults filled) to fields.
    """

    SECTION: ClassVar[str] = ""
    SHARED: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_config(cls: type[S], section: Mapping[str, Any], **fields: Any) -> S:
        """Settings from the config section ``SECTION`` (schema defaults fill missing keys).

        ``section`` may also hold the ``SHARED`` fields by name (what ``--settings``
        carries); ``fields`` then replace single fields (e.g. given by hand).

        Raises:
            ConfigError: a key is unknown or a value is not allowed, naming the key.
        """
        own = {k: v for k, v in section.items() if k not in cls.SHARED}
        shared = {f: section[f] if f in section else schema_default(dotted)
                  for f, dotted in cls.SHARED.items()}
        base = cls._from_section(section_with_defaults(cls.SECTION, own), shared)
        return base.replace(**fields) if fields else base

    @classmethod
    def _from_section(cls: type[S], section: dict[str, Any], shared: dict[str, Any]) -> S:
        raise NotImplementedError

    def replace(self: S, **fields: Any) -> S:
        """A copy with ``fields`` replaced; a mapping field is updated, not replaced."""
        names = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(fields) - names)
        if unknown:
            raise ConfigError(f"{type(self).__name__}: unknown setting(s) {unknown}")
        for name, value in fields.items():
            old = getattr(self, name)
            if isinstance(old, Mapping) and isinstance(value, Mapping):
                fields[name] = {**old, **value}
        return dataclasses.replace(self, **fields)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))  # type: ignore[call-overload]


def settings_class(stage: str) -> type[StageSettings]:
    """The settings class of a tile stage (``search`` ... ``predict``)."""
    try:
        module, name = STAGE_SETTINGS[stage].split(":")
    except KeyError:
        raise ValueError(f"unknown tile stage {stage!r}: expected one of "
                         f"{', '.join(STAGE_SETTINGS)}") from None
    return getattr(importlib.import_module(module), name)


def stage_settings_section(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """What ``--settings`` carries for ``stage``: its config section plus its ``SHARED``
    facts from other sections, by field name (a workflow config, defaults filled)."""
    cls = settings_class(stage)
    out = copy.deepcopy(dict(config.get(cls.SECTION) or {}))
    for name, dotted in cls.SHARED.items():
        node: Any = config
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, Mapping) else None
        out[name] = node if node is not None else schema_default(dotted)
    return out


def load_settings_arg(text: str | None) -> dict[str, Any]:
    """The mapping of ``--settings``: a JSON object, or ``@path`` of a JSON/YAML file.

    Raises:
        ConfigError: the file is missing or the text is not a JSON object.
    """
    if text is None:
        return {}
    where = "--settings"
    if text.startswith("@"):
        path = Path(text[1:])
        where = str(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read settings ({exc.strerror})") from None
        if path.suffix in (".yaml", ".yml"):
            import yaml

            value = yaml.safe_load(text)
            return _mapping(value, where)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not JSON ({exc})") from None
    return _mapping(value, where)


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a JSON object of settings")
    return value


def section_with_defaults(name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Config section ``name`` validated against the schema, missing keys from defaults.

    Raises:
        ConfigError: naming the key (``settings: key 'infer.precision': ...``).
    """
    schema = load_schema()["properties"][name]
    value = copy.deepcopy(dict(given))
    _fill_defaults(schema, value)
    wrapper = {"type": "object", "properties": {name: schema}}
    errors = sorted(jsonschema.Draft202012Validator(wrapper).iter_errors({name: value}),
                    key=lambda e: (-len(e.absolute_path), len(e.message)))
    if errors:
        raise ConfigError(format_error(errors[0], "settings"))
    return value


def _fill_defaults(schema: Mapping[str, Any], value: dict[str, Any]) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if isinstance(value.get(key), dict) and "properties" in sub:
            _fill_defaults(sub, value[key])
