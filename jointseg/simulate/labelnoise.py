"""OSM-like noise on a simulated region's vector truth: omission, offsets, road widths.

Three levels, fixed from published figures before any model was trained on them
(docs/simulation.md, "Label sources and their noise", cites each):

* ``clean``: every building, road and paved area, in place, roads tagged with their
  true width;
* ``osm``: building completeness per 500 m cell, bimodal (a cell is either mapped,
  80-100 % complete, or not, 0-20 %; Herfort et al. 2023) and far higher in the urban
  core than in villages; a spatially correlated offset of ~4 m mean (Fan et al. 2014;
  Brovelli & Zamboni 2018) shared by all features; ~80 % of road length present, minor
  and unnamed classes missing first (Barrington-Leigh & Millard-Ball 2017); roads carry
  a ``highway`` class, some a ``lanes`` count and a few a ``width``, so that most are
  drawn with the class width of the width table (lanes x 3.5 m);
* ``heavy``: the same with half the completeness, twice the offset and fewer roads.

All geometry is in the region grid's CRS (metres), built from
:class:`~jointseg.simulate.vectors.SceneVectors` (pixel coords).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import geopandas as gpd
import numpy as np
import shapely
from rasterio.features import rasterize, shapes

from jointseg.grid import GeoBox
from jointseg.simulate.vectors import SceneVectors

LANE_WIDTH_M = 3.5
#: Road classes that carry a ``name`` tag (the rest are unnamed, and missing first).
NAMED = ("motorway", "trunk", "primary", "secondary", "tertiary", "residential")


@dataclass(frozen=True)
class NoiseParams:
    """Label-noise parameters of one level (see the module docstring for sources)."""

    name: str
    #: probability that a completeness cell is mapped, at urbanness 0 and 1
    p_mapped_rural: float
    p_mapped_urban: float
    mapped_completeness: tuple[float, float] = (0.8, 1.0)
    unmapped_completeness: tuple[float, float] = (0.0, 0.2)
    cell_m: float = 500.0
    #: mean offset magnitude (m) and its correlation length (m)
    offset_mean_m: float = 0.0
    offset_corr_m: float = 300.0
    #: probability that a road of each OSM class is mapped (others: 1)
    road_keep: dict[str, float] = field(default_factory=dict)
    #: share of roads tagged ``lanes`` (named classes) and ``width``; width tag error (rel. sd)
    p_lanes_tag: float = 0.0
    p_width_tag: float = 1.0
    width_tag_sd: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready parameters (for sources.json)."""
        return asdict(self)


LEVELS: dict[str, NoiseParams] = {
    "clean": NoiseParams("clean", 1.0, 1.0, (1.0, 1.0), (1.0, 1.0)),
    "osm": NoiseParams(
        "osm", 0.15, 0.75, offset_mean_m=4.0,
        road_keep={"primary": 1.0, "secondary": 0.98, "residential": 0.85,
                   "unclassified": 0.7, "service": 0.6, "track": 0.5},
        p_lanes_tag=0.4, p_width_tag=0.05, width_tag_sd=0.15),
    "heavy": NoiseParams(
        "heavy", 0.05, 0.4, offset_mean_m=8.0,
        road_keep={"primary": 0.95, "secondary": 0.85, "residential": 0.6,
                   "unclassified": 0.4, "service": 0.3, "track": 0.25},
        p_lanes_tag=0.1, p_width_tag=0.0, width_tag_sd=0.25),
}


def noise_level(name: str) -> NoiseParams:
    """The :data:`LEVELS` entry ``name``; ValueError naming the levels otherwise."""
    if name not in LEVELS:
        raise ValueError(f"label noise {name!r}: expected one of {', '.join(LEVELS)}")
    return LEVELS[name]


@dataclass
class LabelLayers:
    """Map-like label layers in the grid's CRS: ``buildings`` (polygons), ``roads``
    (centre lines with highway / name / lanes / width), ``paved`` (polygons with tags)."""

    buildings: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    paved: gpd.GeoDataFrame


def offset_field(rng: np.random.Generator, mean_m: float, corr_m: float, n_waves: int = 64):
    """A smooth random 2-D displacement field (a Gaussian random field by random Fourier
    features, squared-exponential covariance of length ``corr_m``); each component has
    sd ``mean_m / sqrt(pi / 2)`` so the magnitude's mean is ``mean_m`` (metres).

    Returns a function (x, y) metre arrays -> (dx, dy) metre arrays."""
    sd = mean_m / math.sqrt(math.pi / 2)
    w = rng.normal(0.0, 1.0 / corr_m, (2, n_waves, 2))
    b = rng.uniform(0, 2 * math.pi, (2, n_waves))

    def field_at(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xy = np.stack([np.asarray(x, float), np.asarray(y, float)], -1)
        out = [math.sqrt(2.0 / n_waves) * np.cos(xy @ w[k].T + b[k]).sum(-1) for k in (0, 1)]
        return sd * out[0], sd * out[1]

    return field_at


def cell_completeness(grid: GeoBox, urbanness: np.ndarray, p: NoiseParams,
                      rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """float (rows, cols) completeness per ``p.cell_m`` cell of the region (row 0 = north)
    and the cell size in pixels. A cell is mapped with probability rising linearly with
    its mean urbanness (float32 1 m ``urbanness``) from ``p_mapped_rural`` to
    ``p_mapped_urban``; mapped cells draw their completeness from ``mapped_completeness``,
    the others from ``unmapped_completeness``."""
    k = max(1, int(round(p.cell_m / abs(grid.transform.a))))
    nr, nc = math.ceil(grid.height / k), math.ceil(grid.width / k)
    urb = np.array([[urbanness[r * k:(r + 1) * k, c * k:(c + 1) * k].mean()
                     for c in range(nc)] for r in range(nr)])
    mapped = rng.random(urb.shape) < p.p_mapped_rural + (p.p_mapped_urban
                                                          - p.p_mapped_rural) * urb
    lo = np.where(mapped, p.mapped_completeness[0], p.unmapped_completeness[0])
    hi = np.where(mapped, p.mapped_completeness[1], p.unmapped_completeness[1])
    return lo + (hi - lo) * rng.random(urb.shape), float(k)


def to_map(geoms: list, grid: GeoBox) -> np.ndarray:
    """shapely geometries from pixel coords of ``grid`` to its CRS (metres)."""
    t = grid.transform
    return shapely.transform(np.asarray(geoms, dtype=object),
                             lambda xy: np.stack([t.a * xy[:, 0] + t.b * xy[:, 1] + t.c,
                                                  t.d * xy[:, 0] + t.e * xy[:, 1] + t.f], -1))


def _translate(geoms: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Each geometry moved by its own (dx, dy) metres."""
    if len(geoms) == 0:
        return geoms
    coords, idx = shapely.get_coordinates(geoms, return_index=True)
    coords = coords + np.stack([dx, dy], -1)[idx]
    return shapely.set_coordinates(geoms.copy(), coords)


def _kept(geoms: np.ndarray, comp: np.ndarray, k: float, grid: GeoBox,
          rng: np.random.Generator) -> np.ndarray:
    """bool (n,): each geometry (map coords) kept with its cell's completeness."""
    if len(geoms) == 0:
        return np.zeros(0, bool)
    pts = shapely.get_coordinates(shapely.point_on_surface(geoms))
    col, row = ~grid.transform @ (pts[:, 0], pts[:, 1])
    r = np.clip((np.asarray(row) // k).astype(int), 0, comp.shape[0] - 1)
    c = np.clip((np.asarray(col) // k).astype(int), 0, comp.shape[1] - 1)
    return rng.random(len(geoms)) < comp[r, c]


def _shifted(geoms: np.ndarray, offset) -> np.ndarray:
    """``geoms`` moved by the offset field at their representative points."""
    if len(geoms) == 0:
        return geoms
    pts = shapely.get_coordinates(shapely.point_on_surface(geoms))
    dx, dy = offset(pts[:, 0], pts[:, 1])
    return _translate(geoms, dx, dy)


def paved_polygons(landcover: np.ndarray, grid: GeoBox) -> tuple[list, list[dict]]:
    """Polygons (grid CRS) of the paved (3) and industrial-ground (4) classes of the 1 m
    uint8 ``landcover``, polygonised (they are raster-only in the simulator), with OSM-like
    tags: ``amenity=parking`` / ``landuse=industrial`` + ``surface=paved``."""
    geoms, tags = [], []
    for code, tag in ((3, {"amenity": "parking", "surface": "paved"}),
                      (4, {"landuse": "industrial", "surface": "paved"})):
        mask = landcover == code
        for g, _ in shapes(mask.astype(np.uint8), mask=mask, transform=grid.transform):
            geoms.append(shapely.geometry.shape(g))
            tags.append(dict(tag))
    return geoms, tags


def _road_table(vec: SceneVectors, grid: GeoBox, p: NoiseParams,
                rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Road centre lines (grid CRS) that are mapped at level ``p``, minor roads cut at
    water, with their OSM tags (highway, name, lanes, width)."""
    water = shapely.union_all(to_map(vec.water, grid)) if vec.water else None
    geoms, rows = [], []
    lines = to_map([r.geom for r in vec.roads], grid) if vec.roads else np.array([])
    for i, (road, g) in enumerate(zip(vec.roads, lines, strict=True)):
        keep = rng.random() < p.road_keep.get(road.highway, 1.0)
        lanes_u, width_u, err = rng.random(), rng.random(), rng.normal()
        if water is not None and not road.bridges:
            g = shapely.difference(g, water)
        if not keep or g.is_empty:
            continue
        tags = {"highway": road.highway, "name": None, "lanes": None, "width": None}
        if road.highway in NAMED:
            tags["name"] = f"{road.highway.title()} {i}"
            if lanes_u < p.p_lanes_tag:
                tags["lanes"] = max(1, int(round(road.width_m / LANE_WIDTH_M)))
        if width_u < p.p_width_tag:
            tags["width"] = round(2 * road.width_m * (1 + p.width_tag_sd * err)) / 2
        geoms.append(g)
        rows.append(tags)
    return np.asarray(geoms, dtype=object), rows


def noisy_layers(vec: SceneVectors, landcover: np.ndarray, urbanness: np.ndarray,
                 grid: GeoBox, p: NoiseParams, rng: np.random.Generator) -> LabelLayers:
    """Map-like label layers (grid CRS) of a simulated region at noise level ``p``:
    buildings and paved areas thinned by cell completeness, roads by class, all moved by
    one spatially correlated offset field."""
    comp, k = cell_completeness(grid, urbanness, p, rng)
    offset = offset_field(rng, p.offset_mean_m, p.offset_corr_m)
    b = to_map(vec.buildings, grid) if vec.buildings else np.array([], dtype=object)
    keep_b = _kept(b, comp, k, grid, rng)
    heights = np.asarray(vec.building_height_m, dtype=float)[keep_b] if len(b) else []
    buildings = gpd.GeoDataFrame({"building": "yes", "height": heights},
                                 geometry=_shifted(b[keep_b], offset), crs=grid.crs)
    pg, ptags = paved_polygons(landcover, grid)
    pg = np.asarray(pg, dtype=object)
    keep_p = _kept(pg, comp, k, grid, rng)
    paved = gpd.GeoDataFrame([t for t, kp in zip(ptags, keep_p, strict=True) if kp],
                             columns=["amenity", "landuse", "surface"],
                             geometry=_shifted(pg[keep_p], offset), crs=grid.crs)
    rg, rtags = _road_table(vec, grid, p, rng)
    roads = gpd.GeoDataFrame(rtags, columns=["highway", "name", "lanes", "width"],
                             geometry=_shifted(rg, offset), crs=grid.crs)
    roads["lanes"] = roads["lanes"].astype("Int64")
    return LabelLayers(buildings, roads, paved)


def road_widths_m(roads: gpd.GeoDataFrame, highway_widths: dict[str, float]) -> np.ndarray:
    """Buffer width (m) per road: its ``width`` tag, else ``lanes`` x 3.5 m, else the class
    width of ``highway_widths`` (key ``default`` for classes not in the table)."""
    out = np.empty(len(roads))
    for i, (hw, lanes, width) in enumerate(zip(roads["highway"], roads["lanes"],
                                               roads["width"], strict=True)):
        if width is not None and not (isinstance(width, float) and math.isnan(width)):
            out[i] = float(width)
        elif lanes is not None and not gpd.pd.isna(lanes):
            out[i] = LANE_WIDTH_M * int(lanes)
        else:
            out[i] = float(highway_widths.get(hw, highway_widths["default"]))
    return out


def rasterise_layers(layers: LabelLayers, grid: GeoBox,
                     highway_widths: dict[str, float]) -> np.ndarray:
    """uint8 0/1 ISA label on ``grid``: buildings, paved areas and roads buffered by
    :func:`road_widths_m` (square caps), in the layers' CRS = the grid's."""
    geoms = list(layers.buildings.geometry) + list(layers.paved.geometry)
    if len(layers.roads):
        half = road_widths_m(layers.roads, highway_widths) / 2
        geoms += list(shapely.buffer(np.asarray(layers.roads.geometry), half,
                                     cap_style="square"))
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros((grid.height, grid.width), np.uint8)
    return rasterize(((g, 1) for g in geoms), out_shape=(grid.height, grid.width),
                     transform=grid.transform, fill=0, dtype="uint8")
