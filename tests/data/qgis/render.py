"""Render every layer of a QGIS project headless and report its colours as JSON.

Run by ``tests/test_qgis_render.py`` with Debian's ``/usr/bin/python3`` (the interpreter
that has the ``qgis`` bindings of ``python3-qgis``; a venv of another Python cannot
import them) and ``QT_QPA_PLATFORM=offscreen``::

    /usr/bin/python3 tests/data/qgis/render.py results/demo/2021/isa.qgs [SIZE_PX]

Prints ``{"layers": {layer_id: {...}}, "tree": {node_layer_id: resolved},
"messages": [...]}`` (``resolved``: the layer tree's node points at a loaded layer); per
layer: ``valid``,
``renderer`` (the renderer type QGIS built), ``opaque_px`` (pixels with alpha > 0),
``colours`` (number of distinct opaque RGB), ``mean_brightness`` ((R+G+B)/3 over opaque
pixels, 0..255), ``top`` (the 8 most frequent opaque colours as ``"#rrggbb"``),
``scales`` (band 1's scale and offset as QGIS reads them), ``source`` (the file),
``extent`` (xmin, ymin, xmax, ymax in the layer's CRS, as rendered) and ``rows``: the
rendered pixels ``[r, g, b, a]`` of the rows at 1/4, 1/2 and 3/4 of the height, as
``{"row index": [...]}``, so a caller can compare them with the viewer's colours at the
same places. Standard library and QGIS only.
"""

from __future__ import annotations

import json
import sys
from collections import Counter


def layer_stats(layer, size_px: int) -> dict:
    """Render ``layer`` alone over its extent and count its colours."""
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(size_px, size_px))
    settings.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    rows = {y: [_rgba(image.pixel(x, y)) for x in range(image.width())]
            for y in (size_px // 4, size_px // 2, 3 * size_px // 4)}
    extent = settings.visibleExtent()
    counts: Counter = Counter()
    for y in range(image.height()):
        for x in range(image.width()):
            argb = image.pixel(x, y)
            if argb >> 24:
                counts[argb & 0xFFFFFF] += 1
    opaque = sum(counts.values())
    bright = sum(n * (((c >> 16) & 255) + ((c >> 8) & 255) + (c & 255)) / 3
                 for c, n in counts.items())
    provider = layer.dataProvider()
    return {
        "valid": layer.isValid(),
        "renderer": layer.renderer().type() if layer.renderer() else None,
        "opaque_px": opaque,
        "colours": len(counts),
        "mean_brightness": bright / opaque if opaque else 0.0,
        "top": [f"#{c:06x}" for c, _ in counts.most_common(8)],
        "scales": [provider.bandScale(1), provider.bandOffset(1)],
        "source": layer.source(),
        "extent": [extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()],
        "rows": rows,
    }


def _rgba(argb: int) -> list[int]:
    return [(argb >> 16) & 255, (argb >> 8) & 255, argb & 255, argb >> 24]


def main(qgs_path: str, size_px: int = 96) -> dict:
    from qgis.core import QgsApplication, QgsProject

    app = QgsApplication([], False)
    app.initQgis()
    messages: list[str] = []
    QgsApplication.messageLog().messageReceived.connect(
        lambda msg, tag, level: messages.append(f"{tag}: {msg}"))
    project = QgsProject.instance()
    if not project.read(qgs_path):
        raise SystemExit(f"{qgs_path}: QGIS cannot read the project ({project.error()})")
    out = {lid: layer_stats(layer, size_px) for lid, layer in project.mapLayers().items()}
    tree = {node.layerId(): node.layer() is not None
            for node in project.layerTreeRoot().findLayers()}
    project.clear()
    app.exitQgis()
    return {"layers": out, "tree": tree, "messages": messages}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))))
