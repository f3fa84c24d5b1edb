"""A QGIS project (``.qgs``, plain XML) of a product folder, styled as in the viewer.

Written with the standard library only (no QGIS needed): one raster layer per file (a
group per layer when a product is split in tiles), paletted renderers for class maps
(ISA, WorldCover), a pseudocolour ramp for the probability, a stretched RGB for the
composite and the SR quicklooks: the viewer's styles (:mod:`jointseg.view.layers`,
:mod:`jointseg.view.styles`), whose numbers are stored DN. QGIS draws a band after its
scale and offset (the probability's 1/254, the composite's 1e-4), so each value is
converted with the scale and offset read from the file itself. Data sources are relative
to the project file, so the project moves with the results folder. Written for the QGIS
3.22 project format (Debian 12); ``tests/test_qgis_render.py`` renders it in QGIS.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import rasterio

from jointseg.io import atomic_path
from jointseg.view import styles
from jointseg.view.layers import STRETCH_PERCENTILES, Layer, Manifest

#: the oldest QGIS whose project format this writes (Debian 12's; newer ones read it)
QGIS_VERSION = "3.22.16-Białowieża"
#: bottom to top in the viewer is top to bottom in QGIS's layer tree
TREE_ORDER = ("isa", "baseline", "truth", "prob", "worldcover", "sr", "composite")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        el.text = text
    return el


def layer_id(layer: Layer, index: int) -> str:
    """The QGIS id of ``layer``'s ``index``-th file: ``jointseg_<layer>_<index>``.

    QGIS keeps a project's layer id only when it is longer than 10 characters and makes
    up a new one otherwise, which leaves the layer tree pointing at no layer.
    """
    return f"jointseg_{layer.id}_{index}"


def _srs(parent: ET.Element, crs: rasterio.crs.CRS) -> None:
    ref = _sub(parent, "spatialrefsys", nativeFormat="Wkt")
    _sub(ref, "wkt", crs.to_wkt())
    epsg = crs.to_epsg()
    _sub(ref, "authid", f"EPSG:{epsg}" if epsg else "")


def band_scaling(path: Path, bands: list[int]) -> list[tuple[float, float]]:
    """(scale, offset) of each band as stored in the raster (1, 0 where none is set).

    QGIS's GDAL provider draws ``DN * scale + offset``, not the stored DN the viewer
    (rio-tiler) styles, so every value of a QGIS style goes through :func:`to_qgis`.
    """
    with rasterio.open(path) as ds:
        return [(ds.scales[b - 1] or 1.0, ds.offsets[b - 1] or 0.0) for b in bands]


def to_qgis(dn: float, scaling: tuple[float, float]) -> float:
    """A stored DN in the units QGIS draws (after the band's scale and offset)."""
    scale, offset = scaling
    return dn * scale + offset


def _paletted(pipe: ET.Element, layer: Layer, scaling: list[tuple[float, float]],
              opacity: float) -> None:
    """The class palette; values are DN (scale 1, offset 0) unless the file says otherwise."""
    r = _sub(pipe, "rasterrenderer", type="paletted", band=layer.bands[0],
             opacity=opacity, alphaBand="-1", nodataColor="")
    _sub(r, "rasterTransparency")
    pal = _sub(r, "colorPalette")
    for value, (colour, label) in layer.classes.items():
        _sub(pal, "paletteEntry", value=f"{to_qgis(value, scaling[0]):g}", color=colour,
             alpha="255", label=label)


def _pseudocolour(pipe: ET.Element, layer: Layer, scaling: list[tuple[float, float]],
                  opacity: float) -> None:
    """The viewer's ramp (``styles.ramp_stops``) over its ``rescale``, interpolated."""
    lo_dn, hi_dn = layer.rescale[0]
    lo, hi = (f"{to_qgis(v, scaling[0]):.10g}" for v in (lo_dn, hi_dn))
    r = _sub(pipe, "rasterrenderer", type="singlebandpseudocolor", band=layer.bands[0],
             opacity=opacity, alphaBand="-1", classificationMin=lo, classificationMax=hi,
             nodataColor="")
    _sub(r, "rasterTransparency")
    _min_max_origin(r)
    shader = _sub(_sub(r, "rastershader", minimumValue=lo, maximumValue=hi),
                  "colorrampshader", colorRampType="INTERPOLATED", classificationMode="1",
                  clip="0", minimumValue=lo, maximumValue=hi)
    colours = styles.ramp_stops(layer.ramp)
    for i, colour in enumerate(colours):
        dn = lo_dn + (hi_dn - lo_dn) * i / (len(colours) - 1)
        _sub(shader, "item", value=f"{to_qgis(dn, scaling[0]):.10g}", color=colour,
             alpha="255", label=f"{dn * layer.value_scale:.2f}")


def _multiband(pipe: ET.Element, layer: Layer, scaling: list[tuple[float, float]],
               opacity: float) -> None:
    """Three bands, each stretched linearly over the viewer's ``rescale`` (min, max)."""
    r = _sub(pipe, "rasterrenderer", type="multibandcolor", opacity=opacity, alphaBand="-1",
             redBand=layer.bands[0], greenBand=layer.bands[1], blueBand=layer.bands[2],
             nodataColor="")
    _sub(r, "rasterTransparency")
    _min_max_origin(r)
    for name, (lo, hi), band in zip(("red", "green", "blue"), layer.rescale, scaling,
                                     strict=True):
        ce = _sub(r, f"{name}ContrastEnhancement")
        _sub(ce, "minValue", f"{to_qgis(lo, band):.10g}")
        _sub(ce, "maxValue", f"{to_qgis(hi, band):.10g}")
        _sub(ce, "algorithm", "StretchToMinimumMaximum")


def _min_max_origin(renderer: ET.Element) -> None:
    """Say the limits are the project's own (``None``), so QGIS does not recompute them;
    a user who picks "cumulative count cut" in QGIS gets the viewer's percentiles."""
    lower, upper = (p / 100 for p in STRETCH_PERCENTILES)
    origin = _sub(renderer, "minMaxOrigin")
    for tag, text in (("limits", "None"), ("extent", "WholeRaster"), ("statAccuracy", "Estimated"),
                      ("cumulativeCutLower", f"{lower:g}"), ("cumulativeCutUpper", f"{upper:g}"),
                      ("stdDevFactor", "2")):
        _sub(origin, tag, text)


RENDERERS = {"classes": _paletted, "ramp": _pseudocolour, "rgb": _multiband}


def _map_layer(parent: ET.Element, layer: Layer, layer_id: str, name: str, source: str,
               path: Path) -> rasterio.crs.CRS:
    """The layer's ``maplayer`` element, styled in ``path``'s units; returns its CRS."""
    with rasterio.open(path) as ds:
        crs = ds.crs
    ml = _sub(parent, "maplayer", type="raster", refreshOnNotifyEnabled="0",
              autoRefreshEnabled="0", hasScaleBasedVisibilityFlag="0")
    _sub(ml, "id", layer_id)
    _sub(ml, "datasource", source)
    _sub(ml, "layername", name)
    _srs(_sub(ml, "srs"), crs)
    _sub(ml, "provider", "gdal")
    if layer.attribution:
        meta = _sub(ml, "resourceMetadata")
        _sub(meta, "rights", layer.attribution)
    RENDERERS[layer.kind](_sub(ml, "pipe"), layer, band_scaling(path, layer.bands), 1.0)
    return crs


def build_project(manifest: Manifest, qgs_path: Path) -> ET.ElementTree:
    """The project's XML tree; file paths relative to ``qgs_path``'s folder."""
    order = {lid: i for i, lid in enumerate(TREE_ORDER)}
    layers = sorted(manifest.layers, key=lambda lay: order.get(lay.id, len(order)))
    root = ET.Element("qgis", projectname=f"jointseg {manifest.key}", version=QGIS_VERSION)
    _sub(root, "title", f"jointseg ISA {manifest.key}"
         + (" (SIMULATED data)" if manifest.simulated else ""))
    tree = _sub(root, "layer-tree-group")
    project_layers = _sub(root, "projectlayers")
    project_crs = None
    for layer in layers:
        group = tree if len(layer.files) == 1 else _sub(
            tree, "layer-tree-group", name=layer.title, checked="Qt::Checked", expanded="0")
        for i, f in enumerate(layer.files):
            path = manifest.path(f)
            source = "./" + os.path.relpath(path, qgs_path.parent.resolve()).replace(os.sep, "/")
            lid = layer_id(layer, i)
            name = layer.title if len(layer.files) == 1 else path.stem
            visible = layer.id in ("isa", "composite")
            _sub(group, "layer-tree-layer", id=lid, name=name, source=source, providerKey="gdal",
                 checked="Qt::Checked" if visible else "Qt::Unchecked", expanded="0")
            crs = _map_layer(project_layers, layer, lid, name, source, path)
            project_crs = project_crs or crs
    _srs(_sub(root, "projectCrs"), project_crs)
    props = _sub(root, "properties")
    paths = _sub(props, "Paths")
    _sub(paths, "Absolute", "false", type="bool")
    return ET.ElementTree(root)


def write_qgs(manifest: Manifest, qgs_path: Path) -> Path:
    """Write the QGIS project of ``manifest`` to ``qgs_path`` (atomically)."""
    qgs_path = Path(qgs_path)
    tree = build_project(manifest, qgs_path)
    ET.indent(tree)
    with atomic_path(qgs_path) as tmp:
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
    return qgs_path
