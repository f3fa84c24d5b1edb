"""The ``jointseg`` command line: one group, subcommands loaded on demand.

Each subcommand lives in ``jointseg/cli/<name>.py`` as a thin click wrapper over
library functions; modules are imported only when their command runs, so
``jointseg predict`` never imports torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

import click

# name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "simulate": "jointseg.cli.simulate:simulate",
    "scene-info": "jointseg.cli.stac:scene_info",
    "search": "jointseg.cli.stac:search",
    "serve-demo": "jointseg.cli.stac:serve_demo",
    "tiles": "jointseg.cli.grid:tiles",
    "download": "jointseg.cli.download:download",
    "cloudmask": "jointseg.cli.cloudmask:cloudmask",
    "composite": "jointseg.cli.composite:composite",
    "train": "jointseg.cli.model:train",
    "export": "jointseg.cli.model:export",
    "check-config": "jointseg.cli.config:check_config",
    "mosaic": "jointseg.cli.mosaic:mosaic",
    "predict": "jointseg.cli.predict:predict",
    "assess": "jointseg.cli.assess:assess",
    "sample": "jointseg.cli.assess:sample",
    "accuracy-report": "jointseg.cli.report:accuracy_report",
    "paper-tables": "jointseg.cli.report:paper_tables",
    "change": "jointseg.cli.report:change",
    "batch": "jointseg.cli.batch:batch",
    "merge-batches": "jointseg.cli.batch:merge_batches",
    "chips": "jointseg.cli.chips:chips",
    "view": "jointseg.cli.view:view",
    "products": "jointseg.cli.products:products",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported when first used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if _importable(n))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


def _importable(name: str) -> bool:
    module = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="jointseg")
def main(verbose: int) -> None:
    """JointSeg / ISA-1: 1 m impervious-surface maps from Sentinel-2."""
    level = logging.WARNING - 10 * min(verbose, 2)  # -v: INFO, -vv: DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


if __name__ == "__main__":
    main()
