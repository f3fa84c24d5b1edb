"""Workflow configuration: load ``config.yaml``, validate it, fill defaults.

The schema is ``jointseg/schemas/config.schema.yaml`` (JSON Schema draft 2020-12),
shipped as package data; ``schemas/`` at the repository root links to it. The
Snakefile validates with ``snakemake.utils.validate`` against the same file;
the CLI validates with :func:`load_config`, so both reject the same input with
a message that names the key and what is allowed.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"

#: Sentinel-2 L2A products exist globally from this year on (Sen2Cor in the ground
#: segment since 2018; ESA's L2A archive and Earth Search start in 2017).
FIRST_L2A_YEAR = 2017


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and the problem."""


@functools.cache
def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def load_schema() -> dict:
    """The configuration JSON Schema as a (fresh) dict."""
    return copy.deepcopy(_schema())


def schema_default(dotted: str) -> Any:
    """The schema's ``default`` of a config key (``"infer.batch_size"``), so that the
    CLI's option defaults and the workflow's cannot disagree.

    Raises:
        KeyError: if the key or its default is not in the schema.
    """
    node: dict = _schema()
    for key in dotted.split("."):
        node = node["properties"][key]
    if "default" not in node:
        raise KeyError(f"schema key {dotted!r} has no default")
    return copy.deepcopy(node["default"])


def _fill_defaults(validator_cls: type) -> type:
    """A jsonschema validator class that also writes ``default`` values."""
    validate_props = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_cls, {"properties": set_defaults})


_Validator = _fill_defaults(jsonschema.Draft202012Validator)


def format_error(err: jsonschema.ValidationError, source: str = "config") -> str:
    """One line: ``<source>: key 'a.b.c': <what is wrong>``."""
    path = ".".join(str(p) for p in err.absolute_path) or "<top level>"
    msg = err.message
    if err.validator == "enum":
        msg = f"{err.instance!r} is not one of {err.validator_value}"
    elif err.validator in ("minimum", "maximum") and err.schema.get("description"):
        msg = f"{msg} ({err.schema['description'].strip()})"
    elif err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        msg = f"{err.message}; allowed keys: {', '.join(allowed)}"
    return f"{source}: key '{path}': {msg}"


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate ``config`` in place (filling defaults) and return it.

    Raises:
        ConfigError: on the first (most specific) violation, naming the key.
    """
    errors = sorted(_Validator(load_schema()).iter_errors(config), key=_error_rank)
    if errors:
        raise ConfigError(format_error(errors[0], source))
    _check_semantics(config, source)
    return config


def _error_rank(err: jsonschema.ValidationError) -> tuple[int, int]:
    # deepest path first: it names the offending key most precisely
    return (-len(err.absolute_path), len(err.message))


def _check_semantics(config: dict, source: str) -> None:
    this_year = dt.date.today().year
    for y in config_years(config):
        if y > this_year:
            raise ConfigError(f"{source}: key 'year': {y} is in the future (now {this_year})")
    dw = config["stac"]["date_window"]
    if dw["start"] > dw["end"]:
        raise ConfigError(
            f"{source}: key 'stac.date_window': start {dw['start']} is after end {dw['end']}"
        )
    for name, region in config["regions"].items():
        bbox = region.get("bbox")
        if bbox and not (bbox[2] > bbox[0] and bbox[3] > bbox[1]):
            raise ConfigError(
                f"{source}: key 'regions.{name}.bbox': {bbox} is empty "
                "(need xmin < xmax and ymin < ymax)"
            )


def config_years(config: dict) -> list[int]:
    """The years to map: ``years`` when given, else ``[year]``."""
    years = config.get("years")
    return [int(y) for y in years] if years else [int(config["year"])]


def apply_overrides(config: dict, overrides: dict[str, Any]) -> dict:
    """Apply dotted-key overrides (``{"stac.max_scenes": 4}``) to a copy of ``config``."""
    out = copy.deepcopy(config)
    for dotted, value in overrides.items():
        node = out
        keys = dotted.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return out


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> dict:
    """Read a YAML config (safe loader), apply overrides, validate, fill defaults.

    Raises:
        ConfigError: if the file is missing, is not YAML, or is invalid.
    """
    path = Path(path)
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys")
    if overrides:
        raw = apply_overrides(raw, overrides)
    return validate_config(raw, source=str(path))
