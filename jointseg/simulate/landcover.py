"""The 1 m land-cover truth of a simulated region: roads, buildings, ground, water.

The layout (:mod:`~jointseg.simulate.layout`) is driven by an *urbanness* field;
roads (:mod:`~jointseg.simulate.roads`) and water (:mod:`~jointseg.simulate.water`)
cut the land into blocks whose zones (:mod:`~jointseg.simulate.zones`) set the
ground cover and the buildings (:mod:`~jointseg.simulate.buildings`). A river
crosses the region.

Two rasters come out, both on the region's 1 m grid:

* ``material`` (uint8 :data:`~jointseg.simulate.materials.MATERIALS` ids): what the
  spectra are rendered from;
* ``landcover`` (uint8 :data:`~jointseg.simulate.materials.CLASSES` codes): the truth.

All randomness comes from one generator, drawn in a fixed order, so a seed gives
bit-identical rasters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from jointseg.simulate.buildings import buildings
from jointseg.simulate.geometry import burn
from jointseg.simulate.layout import LayoutParams, urbanness_and_hill
from jointseg.simulate.materials import ISA_CLASSES, MATERIAL_TO_CLASS, M
from jointseg.simulate.orientation import draw_orientation
from jointseg.simulate.roads import RoadBuilder
from jointseg.simulate.vectors import SceneVectors
from jointseg.simulate.villages import settlements
from jointseg.simulate.water import ponds, river
from jointseg.simulate.zones import ground, parcels, zones

log = logging.getLogger(__name__)


@dataclass
class Landscape:
    """The simulated 1 m scene.

    Attributes:
        material: uint8 (rows, cols) material ids (:data:`~jointseg.simulate.materials.MATERIALS`).
        landcover: uint8 (rows, cols) class codes (:data:`~jointseg.simulate.materials.CLASSES`).
        height_m: uint8 (rows, cols) building height in metres (0 off buildings).
        parcel: int32 (rows, cols) field-parcel / object id (texture variation).
        urbanness: float32 (rows, cols) in [0, 1].
        layout: the parameters used.
        vectors: the road centre lines, footprints and water polygons burnt (pixel coords).
    """

    material: np.ndarray
    landcover: np.ndarray
    height_m: np.ndarray
    parcel: np.ndarray
    urbanness: np.ndarray
    layout: LayoutParams
    vectors: SceneVectors | None = None

    @property
    def isa(self) -> np.ndarray:
        """uint8 0/1 impervious mask."""
        return np.isin(self.landcover, ISA_CLASSES).astype(np.uint8)


def simulate_landscape(
    shape: tuple[int, int], rng: np.random.Generator, layout: LayoutParams | None = None
) -> Landscape:
    """Build the 1 m land-cover truth of a region of ``shape`` = (rows, cols) metres.

    Args:
        shape: (rows, cols) of the 1 m grid.
        rng: random generator (all randomness comes from it).
        layout: city placement; :meth:`LayoutParams.default` when omitted.
    """
    h, w = shape
    if layout is None:
        layout = LayoutParams.default(shape, rng)
    urb, hill = urbanness_and_hill(shape, layout, rng)
    orient = draw_orientation(shape, layout.street_angle_deg, rng)
    district = orient.raster(shape)

    lines = RoadBuilder(shape, urb, hill, layout, rng, orient)
    lines.arterials()
    lines.streets()
    lines.field_tracks()
    villages = lines.villages()
    lines.hill_roads(villages)

    water, water_geoms = _water(shape, urb, hill, layout, rng)
    road = np.zeros(shape, dtype=np.uint8)
    # Lanes and streets stop at water; arterials bridge it.
    burn(road, lines.geoms["minor"], lines.values["minor"])
    road[water > 0] = 0
    burn(road, lines.geoms["arterial"], lines.values["arterial"])

    zone = zones(shape, urb, hill, road, water, villages, rng)
    parcel = parcels(shape, layout, rng, district, orient.field_deg)
    material = ground(zone, parcel, shape, rng)
    material = np.where(water > 0, water, material)
    material = np.where(road > 0, road, material)

    free = (road == 0) & (water == 0)
    b_geoms, b_mat, b_h = buildings(zone, free, layout, rng, district, orient.street_deg)
    homes = settlements(zone, free, lines.lines, villages, rng)
    burn(material, homes.courts, homes.court_mats)
    b_geoms, b_mat, b_h = b_geoms + homes.houses, b_mat + homes.roofs, b_h + homes.heights_m
    burn(material, b_geoms, b_mat)
    height = np.zeros(shape, dtype=np.uint8)
    burn(height, b_geoms, b_h)
    log.info(
        "landscape %dx%d m: %d road lines, %d villages, %d buildings",
        w, h, len(lines.geoms["minor"]) + len(lines.geoms["arterial"]), len(villages),
        len(b_geoms),
    )
    landcover = MATERIAL_TO_CLASS[material]
    vectors = SceneVectors(lines.lines, b_geoms, b_h, water_geoms)
    return Landscape(material, landcover, height, parcel, urb, layout, vectors)


def _water(shape: tuple[int, int], urb: np.ndarray, hill: np.ndarray, layout: LayoutParams,
           rng: np.random.Generator) -> tuple[np.ndarray, list]:
    """(uint8 (rows, cols) water material ids (river, ponds; 0 elsewhere) on the 1 m grid,
    the water polygons in pixel coords)."""
    water = np.zeros(shape, dtype=np.uint8)
    geoms = []
    if layout.river:
        geoms.append(river(shape, rng))
        burn(water, geoms, [M["water_river"]])
    pond_geoms = ponds(shape, urb, hill, layout, rng)
    burn(water, pond_geoms, [M["water_pond"]] * len(pond_geoms))
    return water, geoms + list(pond_geoms)
