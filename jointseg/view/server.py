"""The viewer's local HTTP server: the page, the layer list, map tiles and pixel values.

Tiles are cut from the products' COGs directly with rio-tiler (web-mercator XYZ, 256 px
PNG); per-tile products (composite, SR) are mosaicked on the fly. Nothing is copied.

Endpoints: ``/`` (the page), ``/static/...``, ``/api/layers`` (the manifests, no file
paths; each layer's ``minzoom`` is the one served),
``/tiles/{region}/{year}/{layer}/{z}/{x}/{y}.png``,
``/point/{region}/{year}?lon=&lat=`` (the values of every layer at a lon/lat point).

Bounded cost (:mod:`jointseg.view.tiles`): a layer serves only the zooms its files'
overviews make cheap; other tiles get a 404 with a one-line reason before any read.
Tiles render in a few daemon threads (:mod:`jointseg.view.pool`) under a deadline
(503 past it); Ctrl-C or SIGTERM ends the process without waiting for a render.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from jointseg.view import styles
from jointseg.view.layers import Layer, Manifest
from jointseg.view.pool import RenderPool
from jointseg.view.tiles import (
    DEFAULT_LIMITS,
    TILE_PX,
    LayerTiles,
    RenderTimeout,
    SourceFile,
    TileLimits,
    TileRefused,
    check_deadline,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: seconds uvicorn waits for open requests after Ctrl-C / SIGTERM before cancelling them
SHUTDOWN_GRACE_S = 1.0


@lru_cache(maxsize=1)
def empty_png() -> bytes:
    """A fully transparent 256 x 256 PNG (tiles outside every file)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (TILE_PX, TILE_PX), (0, 0, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def render_tile(layer: Layer, files: list[SourceFile], z: int, x: int, y: int,
                deadline: float | None = None) -> bytes:
    """PNG bytes of one web-mercator tile of a layer, drawn with the layer's style.

    ``files``: the layer's files the tile touches (:meth:`LayerTiles.check`, which bounds
    what they cost to read). Past ``deadline`` (``time.monotonic()``) no further file is
    read (:class:`RenderTimeout`).
    """
    from rio_tiler.errors import EmptyMosaicError
    from rio_tiler.io import Reader
    from rio_tiler.mosaic import mosaic_reader

    if not files:
        return empty_png()
    resampling = "nearest" if layer.kind == "classes" else "bilinear"

    def read(asset: str, *args, **kwargs):
        check_deadline(deadline, f"tile {z}/{x}/{y} of {layer.id}")
        with Reader(asset) as src:
            return src.tile(x, y, z, tilesize=TILE_PX, indexes=layer.bands,
                            resampling_method=resampling, reproject_method=resampling)

    try:
        img, _ = mosaic_reader([str(f.path) for f in files], read, threads=0)
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


def layer_tiles(manifests: list[Manifest], limits: TileLimits) -> dict[tuple[str, str], LayerTiles]:
    """The zoom range and files of every layer, read from the files' headers (a manifest
    written by an older version may carry a lower ``minzoom``: the files decide)."""
    return {(m.key, layer.id): LayerTiles.from_files([m.path(f) for f in layer.files],
                                                     layer.maxzoom, limits)
            for m in manifests for layer in m.layers}


def create_app(manifests: list[Manifest], limits: TileLimits = DEFAULT_LIMITS) -> FastAPI:
    """The viewer app over one manifest per region and year.

    ``app.state.pool`` is its :class:`RenderPool` (:func:`serve` closes it).
    """
    if not manifests:
        raise ValueError("no product folders to show")
    by_key = {m.key: m for m in manifests}
    tiles_of = layer_tiles(manifests, limits)
    pool = RenderPool(limits.render_threads)
    app = FastAPI(title="jointseg viewer", docs_url=None, redoc_url=None)
    app.state.pool = pool
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

    def public(m: Manifest, layer: Layer) -> dict:
        t = tiles_of[(m.key, layer.id)]
        return {**layer.public(), "minzoom": t.minzoom}

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/layers")
    def layers() -> JSONResponse:
        return JSONResponse([{"key": m.key, "region": m.region, "year": m.year,
                              "simulated": m.simulated,
                              "layers": [public(m, layer) for layer in m.layers]}
                             for m in manifests])

    @app.get("/tiles/{region}/{year}/{layer_id}/{z}/{x}/{y}.png")
    async def tile(region: str, year: int, layer_id: str, z: int, x: int, y: int) -> Response:
        m, layer = lookup(region, year, layer_id)
        try:
            files = tiles_of[(m.key, layer.id)].check(z, x, y)
        except TileRefused as exc:
            raise HTTPException(404, f"{layer.id}: {exc}") from None
        timeout = limits.render_timeout_s
        fut = pool.submit(render_tile, layer, files, z, x, y, time.monotonic() + timeout)
        try:
            png = await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except (TimeoutError, RenderTimeout):
            fut.cancel()
            raise HTTPException(503, f"{layer.id}: tile {z}/{x}/{y} not rendered within "
                                     f"{timeout:g} s", headers={"Retry-After": "5"}) from None
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=300"})

    @app.get("/point/{region}/{year}")
    def point(region: str, year: int, lon: float = Query(..., ge=-180, le=180),
              lat: float = Query(..., ge=-90, le=90)) -> JSONResponse:
        m, _ = lookup(region, year)
        return JSONResponse({"lon": lon, "lat": lat,
                             "layers": [point_values(m, layer, lon, lat) for layer in m.layers]})

    return app


def serve(manifests: list[Manifest], host: str, port: int, open_browser: bool,
          limits: TileLimits = DEFAULT_LIMITS) -> None:
    """Run the viewer until interrupted (Ctrl-C or SIGTERM); optionally open the page.

    Open requests get :data:`SHUTDOWN_GRACE_S` to finish; a render still running in
    GDAL then is not waited for: the process exits at once (``os._exit``).
    """
    import threading
    import webbrowser

    import uvicorn

    app = create_app(manifests, limits)
    url = f"http://{host}:{port}/"
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    log.warning("jointseg viewer on %s (Ctrl-C stops it)", url)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=SHUTDOWN_GRACE_S))
    code = 0
    try:
        server.run()  # re-raises the signal that stopped it: KeyboardInterrupt / SIGTERM
    except KeyboardInterrupt:
        code = 130
        raise
    finally:
        unfinished = app.state.pool.close()
        if unfinished:
            log.warning("jointseg viewer stopped; %d tile render(s) abandoned", unfinished)
            logging.shutdown()
            os._exit(code)
