"""How a tile command builds its stage's settings: ``--settings`` plus the options given.

``--settings`` carries the stage's config section as one JSON object (or ``@file``);
the command's setting options are named as the settings' fields, and each one given on
the command line replaces its field (:meth:`jointseg.settings.StageSettings.from_config`).
``jointseg batch STAGE`` parses the same options with the same code
(:func:`settings_command`), so both paths build the same object from the same words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from jointseg.config import ConfigError
from jointseg.settings import StageSettings, load_settings_arg

S = TypeVar("S", bound=StageSettings)
F = TypeVar("F", bound=Callable[..., Any])

_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def settings_option(section: str) -> Callable[[F], F]:
    """The ``--settings JSON|@FILE`` option of a tile command (config ``section``)."""
    return click.option(
        "--settings", "settings_json", default=None, metavar="JSON|@FILE",
        help=f"The stage's settings: config section `{section}` as a JSON object (or "
             "@FILE holding one); missing keys take the schema's defaults, and the "
             "options below, when given, replace single fields.")


def field_names(cls: type[StageSettings]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def given_fields(ctx: click.Context, cls: type[StageSettings]) -> dict[str, Any]:
    """The setting options given on the command line: field -> value."""
    names = field_names(cls)
    return {n: v for n, v in ctx.params.items()
            if n in names and ctx.get_parameter_source(n) in _GIVEN}


def build_settings(cls: type[S], settings_json: str | None, given: dict[str, Any]) -> S:
    """``cls`` from ``--settings`` and the given options; a bad value is a usage error."""
    try:
        return cls.from_config(load_settings_arg(settings_json), **given)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--settings") from None


def settings_from_context(cls: type[S], ctx: click.Context) -> S:
    """The settings of a running tile command (its ``--settings`` and options given)."""
    return build_settings(cls, ctx.params.get("settings_json"), given_fields(ctx, cls))


def settings_command(cmd: click.Command, cls: type[StageSettings]) -> click.Command:
    """A command of ``cmd``'s setting options only (no inputs or outputs), to parse the
    per-tile options the batch runner is given after ``--``."""
    names = field_names(cls) | {"settings_json"}
    return click.Command(cmd.name, params=[p for p in cmd.params if p.name in names])


def parse_stage_settings(cmd: click.Command, cls: type[S], args: Sequence[str],
                         settings_json: str | None = None) -> S:
    """``cls`` from per-tile options ``args`` of ``cmd`` (what follows ``--`` in batch)."""
    ctx = settings_command(cmd, cls).make_context(f"jointseg {cmd.name}", list(args))
    text = ctx.params.get("settings_json") or settings_json
    return build_settings(cls, text, given_fields(ctx, cls))


def split_list(ctx: click.Context, param: click.Parameter, value: str | None
               ) -> tuple[str, ...] | None:
    """Click callback: ``"a,b,c"`` -> ``("a", "b", "c")`` (None stays None)."""
    if value is None:
        return None
    return tuple(v.strip() for v in str(value).split(",") if v.strip())
