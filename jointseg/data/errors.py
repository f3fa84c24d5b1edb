"""Errors of the data stage (search, item parsing, download), one hierarchy for callers."""

from __future__ import annotations


class StacError(RuntimeError):
    """A STAC API (or the Planetary Computer token endpoint) could not be reached or
    answered something unusable."""


class NoScenesError(StacError):
    """A search matched no usable scene."""


class ItemError(ValueError):
    """A STAC Item (or a scene list) lacks what a scene needs (bands, datetime...)."""


class DownloadError(RuntimeError):
    """An asset could not be read for a tile (refused href, missing, permanently failing,
    or retries spent)."""
