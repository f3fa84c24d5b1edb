"""Settings of the data stages: search, download, cloudmask and composite.

One frozen dataclass per stage, built with ``from_config`` from its config section
(see :mod:`jointseg.settings`); the stage's function takes it whole
(:func:`jointseg.data.stac.run_search`, :func:`jointseg.data.download.run_download`,
:func:`jointseg.data.cloudmask.run_cloudmask`,
:func:`jointseg.data.composite.run_composite`). Field names are the per-tile
commands' option names, so a hand-given option replaces exactly one field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from jointseg.settings import StageSettings, section_with_defaults


@dataclass(frozen=True)
class SearchSettings(StageSettings):
    """``jointseg search``: config ``stac`` plus the HTTP retries and the tile size.

    ``demo_sim_dir`` is set (from ``stac.demo_server``) when the demo's loopback STAC API
    is searched instead of ``api_url``.
    """

    SECTION: ClassVar[str] = "stac"
    SHARED: ClassVar[dict[str, str]] = {"retries": "download.retries",
                                        "backoff_s": "download.backoff_s",
                                        "tile_size_m": "grid.tile_size_m"}

    api_url: str | None
    collection: str
    provider: str
    sign: bool
    max_cloud_cover: float
    max_scenes: int
    date_start: str
    date_end: str
    timeout_s: float
    allow_http: bool
    demo_sim_dir: str | None
    demo_stac_port: int
    demo_file_port: int
    demo_state_dir: str
    retries: int
    backoff_s: float
    tile_size_m: int

    @classmethod
    def _from_section(cls, s: dict[str, Any], shared: dict[str, Any]) -> SearchSettings:
        demo = s["demo_server"]
        return cls(
            api_url=s["api_url"], collection=s["collection"], provider=s["provider"],
            sign=s["sign_planetary_computer"], max_cloud_cover=float(s["max_cloud_cover"]),
            max_scenes=s["max_scenes"], date_start=s["date_window"]["start"],
            date_end=s["date_window"]["end"], timeout_s=float(s["timeout_s"]),
            allow_http=s["allow_http"],
            demo_sim_dir=demo["sim_dir"] if demo["enabled"] else None,
            demo_stac_port=demo["stac_port"], demo_file_port=demo["file_port"],
            demo_state_dir=demo["state_dir"], retries=int(shared["retries"]),
            backoff_s=float(shared["backoff_s"]), tile_size_m=int(shared["tile_size_m"]),
        )  # fmt: skip


@dataclass(frozen=True)
class DownloadSettings(StageSettings):
    """``jointseg download``: config ``download`` plus the bands, the tile size and the
    HTTP timeout and scheme rule of ``stac``."""

    SECTION: ClassVar[str] = "download"
    SHARED: ClassVar[dict[str, str]] = {"tile_size_m": "grid.tile_size_m", "bands": "bands",
                                        "timeout_s": "stac.timeout_s",
                                        "allow_http": "stac.allow_http"}

    tile_size_m: int
    bands: tuple[str, ...]
    retries: int
    backoff_s: float
    timeout_s: float
    give_up_s: float
    allow_http: bool

    @classmethod
    def _from_section(cls, s: dict[str, Any], shared: dict[str, Any]) -> DownloadSettings:
        return cls(
            tile_size_m=int(shared["tile_size_m"]), bands=download_bands(shared["bands"]),
            retries=s["retries"], backoff_s=float(s["backoff_s"]),
            timeout_s=float(shared["timeout_s"]), give_up_s=float(s["give_up_s"]),
            allow_http=bool(shared["allow_http"]),
        )


def download_bands(bands: Mapping[str, Any] | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Band ids to download: config ``bands`` (b10m + b20m, then SCL) or a list as is."""
    if isinstance(bands, Mapping):
        b = section_with_defaults("bands", bands)
        return (*b["b10m"], *b["b20m"], "SCL")
    return tuple(bands)


@dataclass(frozen=True)
class CloudMaskSettings(StageSettings):
    """``jointseg cloudmask``: config ``cloudmask`` (s2cloudless runs unless ``combine``
    is ``scl``; the NDSI snow test with ``snow_test``)."""

    SECTION: ClassVar[str] = "cloudmask"

    scl_classes: tuple[int, ...]
    dilation_m: float
    combine: str
    s2c_threshold: float
    s2c_average_over: int
    s2c_dilation_size: int
    snow_test: bool
    snow_ndsi: float
    snow_min_nir: float
    snow_min_green: float

    @classmethod
    def _from_section(cls, s: dict[str, Any], shared: dict[str, Any]) -> CloudMaskSettings:
        s2c, snow = s["s2cloudless"], s["snow"]
        return cls(
            scl_classes=tuple(s["scl_masked_classes"]), dilation_m=float(s["dilation_m"]),
            combine=s["combine"], s2c_threshold=float(s2c["threshold"]),
            s2c_average_over=s2c["average_over"], s2c_dilation_size=s2c["dilation_size"],
            snow_test=snow["enabled"], snow_ndsi=float(snow["ndsi"]),
            snow_min_nir=float(snow["min_nir"]), snow_min_green=float(snow["min_green"]),
        )  # fmt: skip

    @property
    def s2cloudless(self) -> dict[str, float] | None:
        """Parameters of the s2cloudless mask, None when ``combine`` is ``scl``."""
        if self.combine == "scl":
            return None
        return {"threshold": self.s2c_threshold, "average_over": self.s2c_average_over,
                "dilation_size": self.s2c_dilation_size}

    @property
    def snow(self) -> dict[str, float] | None:
        """Thresholds of the NDSI snow test, None without it."""
        if not self.snow_test:
            return None
        return {"ndsi": self.snow_ndsi, "min_nir": self.snow_min_nir,
                "min_green": self.snow_min_green}


@dataclass(frozen=True)
class CompositeSettings(StageSettings):
    """``jointseg composite``: config ``composite``."""

    SECTION: ClassVar[str] = "composite"

    method: str
    min_clear: int
    block_rows: int
    fill: bool

    @classmethod
    def _from_section(cls, s: dict[str, Any], shared: dict[str, Any]) -> CompositeSettings:
        return cls(method=s["method"], min_clear=s["min_clear"], block_rows=s["block_rows"],
                   fill=s["fill"])
