"""The viewer's local HTTP server: the page, the layer list, map tiles and pixel values.

Tiles are cut from the products' COGs directly with rio-tiler (web-mercator XYZ, 256 px
PNG); per-tile products (composite, SR) are mosaicked on the fly. Nothing is copied.

Endpoints: ``/`` (the page), ``/static/...``, ``/api/layers`` (the manifests, no file
paths), ``/tiles/{region}/{year}/{layer}/{z}/{x}/{y}.png``,
``/point/{region}/{year}?lon=&lat=`` (the values of every layer at a lon/lat point).
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from jointseg.view import styles
from jointseg.view.layers import Layer, Manifest

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
TILE_PX = 256


@lru_cache(maxsize=1)
def empty_png() -> bytes:
    """A fully transparent 256 x 256 PNG (tiles outside every file)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (TILE_PX, TILE_PX), (0, 0, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def _intersects(a: list[float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and a[2] > b[0] and a[1] < b[3] and a[3] > b[1]


def render_tile(manifest: Manifest, layer: Layer, z: int, x: int, y: int) -> bytes:
    """PNG bytes of one web-mercator tile of a layer, drawn with the layer's style."""
    import morecantile
    from rio_tiler.errors import EmptyMosaicError
    from rio_tiler.io import Reader
    from rio_tiler.mosaic import mosaic_reader

    tb = morecantile.tms.get("WebMercatorQuad").bounds(morecantile.Tile(x, y, z))
    assets = [str(manifest.path(f)) for f, b in zip(layer.files, layer.bounds, strict=True)
              if _intersects(b, tuple(tb))]
    if not assets:
        return empty_png()
    resampling = "nearest" if layer.kind == "classes" else "bilinear"

    def read(asset: str, *args, **kwargs):
        with Reader(asset) as src:
            return src.tile(x, y, z, tilesize=TILE_PX, indexes=layer.bands,
                            resampling_method=resampling, reproject_method=resampling)

    try:
        img, _ = mosaic_reader(assets, read, threads=0)
    except EmptyMosaicError:
        return empty_png()
    return style_image(img, layer)


def style_image(img, layer: Layer) -> bytes:
    """Apply the layer's style to a rio-tiler ImageData and encode it as PNG."""
    if layer.kind == "classes":
        return img.render(img_format="PNG", colormap=styles.class_colormap(layer.classes))
    img = img.rescale(in_range=[tuple(r) for r in layer.rescale])
    if layer.kind == "ramp":
        return img.render(img_format="PNG", colormap=styles.ramp_colormap(layer.ramp))
    return img.render(img_format="PNG")


def point_values(manifest: Manifest, layer: Layer, lon: float, lat: float) -> dict:
    """The layer's band values at lon/lat (EPSG:4326), labelled; ``value`` None = nodata."""
    from rio_tiler.errors import PointOutsideBounds
    from rio_tiler.io import Reader

    out = {"id": layer.id, "title": layer.title, "value": None, "label": "no data"}
    for f, b in zip(layer.files, layer.bounds, strict=True):
        if not (b[0] <= lon <= b[2] and b[1] <= lat <= b[3]):
            continue
        try:
            with Reader(str(manifest.path(f))) as src:
                pt = src.point(lon, lat, indexes=layer.bands)
        except PointOutsideBounds:
            continue
        if np.ma.count(pt.array) == 0:  # nodata in every band
            continue
        values = [float(v) for v in np.asarray(pt.array.data)]
        return {**out, **_label(layer, values)}
    return out


def _label(layer: Layer, values: list[float]) -> dict:
    if layer.kind == "classes":
        v = int(values[0])
        name = layer.classes.get(v, ("", f"class {v}"))[1]
        return {"value": v, "label": name}
    if layer.kind == "ramp":
        p = values[0] * layer.value_scale
        return {"value": round(p, 4), "label": f"{p:.3f}"}
    return {"value": values, "label": " / ".join(f"{v:g}" for v in values)}


def create_app(manifests: list[Manifest]) -> FastAPI:
    """The viewer app over one manifest per region and year."""
    if not manifests:
        raise ValueError("no product folders to show")
    by_key = {m.key: m for m in manifests}
    app = FastAPI(title="jointseg viewer", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def lookup(region: str, year: int, layer_id: str | None = None) -> tuple[Manifest, Layer]:
        m = by_key.get(f"{region}/{year}")
        if m is None:
            raise HTTPException(404, f"no products for {region}/{year}")
        if layer_id is None:
            return m, None
        try:
            return m, m.layer(layer_id)
        except KeyError:
            raise HTTPException(404, f"no layer {layer_id!r} in {region}/{year}") from None

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/layers")
    def layers() -> JSONResponse:
        return JSONResponse([{"key": m.key, "region": m.region, "year": m.year,
                              "simulated": m.simulated,
                              "layers": [layer.public() for layer in m.layers]}
                             for m in manifests])

    @app.get("/tiles/{region}/{year}/{layer_id}/{z}/{x}/{y}.png")
    def tile(region: str, year: int, layer_id: str, z: int, x: int, y: int) -> Response:
        m, layer = lookup(region, year, layer_id)
        return Response(render_tile(m, layer, z, x, y), media_type="image/png",
                        headers={"Cache-Control": "max-age=300"})

    @app.get("/point/{region}/{year}")
    def point(region: str, year: int, lon: float = Query(..., ge=-180, le=180),
              lat: float = Query(..., ge=-90, le=90)) -> JSONResponse:
        m, _ = lookup(region, year)
        return JSONResponse({"lon": lon, "lat": lat,
                             "layers": [point_values(m, layer, lon, lat) for layer in m.layers]})

    return app


def serve(manifests: list[Manifest], host: str, port: int, open_browser: bool) -> None:
    """Run the viewer until interrupted (Ctrl-C); optionally open the page in a browser."""
    import threading
    import webbrowser

    import uvicorn

    app = create_app(manifests)
    url = f"http://{host}:{port}/"
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    log.warning("jointseg viewer on %s (Ctrl-C stops it)", url)
    uvicorn.run(app, host=host, port=port, log_level="warning")
