"""The inputs of an accuracy report: the rasters by role, their provenance, the WorldCover year."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from jointseg.assess import worldcover
from jointseg.provenance import ProvenanceError, raster_provenance

PathLike = str | os.PathLike


@dataclass(frozen=True)
class MapInputs:
    """The rasters of one report by role (binary maps: uint8 1/0, 255 nodata).

    Attributes:
        map: the ISA-1 binary 1 m map (projected CRS).
        prob: its ISA probability map (uint8 DN, :func:`jointseg.products.decode_prob`).
        truth: a binary reference raster (1 = ISA), e.g. the simulator's truth.
        baseline: the bilinear baseline's binary map.
    """

    map: PathLike
    prob: PathLike | None = None
    truth: PathLike | None = None
    baseline: PathLike | None = None

    def given(self, *roles: str) -> list[tuple[str, PathLike]]:
        """(role, path) of the ``roles`` (default all, in field order) that were given."""
        roles = roles or ("map", "prob", "truth", "baseline")
        return [(r, getattr(self, r)) for r in roles if getattr(self, r) is not None]


def worldcover_year_for(year: int) -> tuple[int, str | None]:
    """WorldCover year used for a map year: the same, else the nearest published one
    (with a note saying so)."""
    if year in worldcover.VERSIONS:
        return year, None
    wc = min(worldcover.VERSIONS, key=lambda y: (abs(y - year), -y))
    return wc, (f"ESA WorldCover exists for {sorted(worldcover.VERSIONS)} only; the {year} "
                f"map is compared with WorldCover {wc}")


def worldcover_provenance(
    source: PathLike, year: int, bounds_lonlat: tuple[float, float, float, float]
) -> dict:
    """Source and the tile files a WorldCover read over ``bounds_lonlat`` (degrees) used
    (path, sha256 of local files, simulated)."""
    src = str(source)
    if "{" not in src and src.lower().endswith((".tif", ".tiff", ".vrt")):
        hrefs = [src]
    else:
        hrefs = [worldcover.tile_href(src, t, year)
                 for t in worldcover.worldcover_tile_ids(bounds_lonlat)]
    files = []
    for h in hrefs:
        try:
            files.append(raster_provenance(h, sha256=Path(h).is_file()))
        except ProvenanceError as exc:
            files.append({"path": h, "error": str(exc), "simulated": False})
    return {"source": src, "year": year, "version": worldcover.version_for(year),
            "files": files, "simulated": any(f["simulated"] for f in files)}


def input_provenance(
    maps: MapInputs, worldcover_source: PathLike, wc_year: int,
    bounds_lonlat: tuple[float, float, float, float],
) -> dict[str, dict]:
    """``inputs`` of ``report.json``: provenance of each given raster, then WorldCover."""
    inputs = {role: raster_provenance(p) for role, p in maps.given()}
    inputs["worldcover"] = worldcover_provenance(worldcover_source, wc_year, bounds_lonlat)
    return inputs


def any_simulated(inputs: dict[str, dict], *names: str) -> bool:
    """True when any of the named inputs is simulated (absent inputs are not)."""
    return any(inputs.get(n, {}).get("simulated", False) for n in names)


def truth_label(inputs: dict[str, dict]) -> str | None:
    """How the truth is named in comparisons: simulated or reference; None without one."""
    if "truth" not in inputs:
        return None
    return "simulated truth" if inputs["truth"]["simulated"] else "reference truth"
