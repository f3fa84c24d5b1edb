"""A QGIS project (``.qgs``, plain XML) of a product folder, styled as in the viewer.

Written with the standard library only (no QGIS needed): one raster layer per file (a
group per layer when a product is split in tiles), paletted renderers for class maps
(ISA, WorldCover), a pseudocolour ramp for the probability, a stretched RGB for the
composite and the SR quicklooks. Data sources are relative to the project file, so the
project moves with the results folder. Written for QGIS 3.x project format.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import rasterio

from jointseg.io import atomic_path
from jointseg.view import styles
from jointseg.view.layers import Layer, Manifest

QGIS_VERSION = "3.28.0-Firenze"
#: bottom to top in the viewer is top to bottom in QGIS's layer tree
TREE_ORDER = ("isa", "baseline", "truth", "prob", "worldcover", "sr", "composite")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        el.text = text
    return el


def _srs(parent: ET.Element, crs: rasterio.crs.CRS) -> None:
    ref = _sub(parent, "spatialrefsys", nativeFormat="Wkt")
    _sub(ref, "wkt", crs.to_wkt())
    epsg = crs.to_epsg()
    _sub(ref, "authid", f"EPSG:{epsg}" if epsg else "")


def _renderer(pipe: ET.Element, layer: Layer, opacity: float) -> None:
    """The layer's rasterrenderer element (QGIS 3 names and attributes)."""
    if layer.kind == "classes":
        r = _sub(pipe, "rasterrenderer", type="paletted", band=layer.bands[0],
                 opacity=opacity, alphaBand="-1", nodataColor="")
        _sub(r, "rasterTransparency")
        pal = _sub(r, "colorPalette")
        for value, (colour, label) in layer.classes.items():
            _sub(pal, "paletteEntry", value=value, color=colour, alpha="255", label=label)
        return
    if layer.kind == "ramp":
        r = _sub(pipe, "rasterrenderer", type="singlebandpseudocolor", band=layer.bands[0],
                 opacity=opacity, alphaBand="-1", classificationMin=layer.rescale[0][0],
                 classificationMax=layer.rescale[0][1], nodataColor="")
        _sub(r, "rasterTransparency")
        shader = _sub(_sub(r, "rastershader"), "colorrampshader", colorRampType="INTERPOLATED",
                      classificationMode="1", clip="0", minimumValue=layer.rescale[0][0],
                      maximumValue=layer.rescale[0][1])
        colours = styles.ramp_stops(layer.ramp)
        lo, hi = layer.rescale[0]
        for i, colour in enumerate(colours):
            value = lo + (hi - lo) * i / (len(colours) - 1)
            _sub(shader, "item", value=f"{value:g}", color=colour, alpha="255",
                 label=f"{value * layer.value_scale:.2f}")
        return
    r = _sub(pipe, "rasterrenderer", type="multibandcolor", opacity=opacity, alphaBand="-1",
             redBand=layer.bands[0], greenBand=layer.bands[1], blueBand=layer.bands[2],
             nodataColor="")
    _sub(r, "rasterTransparency")
    for name, (lo, hi) in zip(("red", "green", "blue"), layer.rescale, strict=True):
        ce = _sub(r, f"{name}ContrastEnhancement")
        _sub(ce, "minValue", f"{lo:g}")
        _sub(ce, "maxValue", f"{hi:g}")
        _sub(ce, "algorithm", "StretchToMinimumMaximum")


def _map_layer(parent: ET.Element, layer: Layer, layer_id: str, name: str, source: str,
               crs: rasterio.crs.CRS) -> None:
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
    pipe = _sub(ml, "pipe")
    _renderer(pipe, layer, 1.0)


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
            with rasterio.open(path) as ds:
                crs = ds.crs
            project_crs = project_crs or crs
            source = "./" + os.path.relpath(path, qgs_path.parent.resolve()).replace(os.sep, "/")
            lid = f"{layer.id}_{i}"
            name = layer.title if len(layer.files) == 1 else path.stem
            visible = layer.id in ("isa", "composite")
            _sub(group, "layer-tree-layer", id=lid, name=name, source=source, providerKey="gdal",
                 checked="Qt::Checked" if visible else "Qt::Unchecked", expanded="0")
            _map_layer(project_layers, layer, lid, name, source, crs)
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
