"""The viewer page in Debian's headless Chromium, driven by Playwright (no browser download).

The page must draw the map with WebGL (swiftshader), load nothing from outside
127.0.0.1, and show the left layer (ISA classes) left of the swipe bar and the right
layer (probability ramp) right of it.
"""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("rio_tiler")
sync_api = pytest.importorskip("playwright.sync_api")

from jointseg.view import styles  # noqa: E402
from jointseg.view.layers import build_manifest  # noqa: E402
from jointseg.view.server import create_app  # noqa: E402
from tests import viewfactory as vf  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# without the swiftshader flags WebGL is off in headless Chromium and MapLibre draws nothing
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--enable-unsafe-swiftshader",
                 "--use-angle=swiftshader"]
VIEWPORT = {"width": 1000, "height": 700}

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                                reason="Debian chromium not installed (make test installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The viewer app on a free loopback port, in a thread; yields its base URL."""
    import uvicorn

    product = vf.make_product_dir(tmp_path_factory.mktemp("browser"))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app([build_manifest(product)]),
                                        host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "viewer server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def screenshot(url: str, path: Path) -> tuple[np.ndarray, list[str]]:
    """Load the page, wait until both maps are idle, return the RGB screenshot and
    the URLs of every request that tried to leave 127.0.0.1 (each aborted)."""
    outside: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith("http://127.0.0.1:"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.route("**/*", route)
            page.goto(url)
            page.wait_for_function(
                "window.jointsegViewer && (window.jointsegViewer.idle"
                " || window.jointsegViewer.error)", timeout=60_000)
            assert page.evaluate("window.jointsegViewer.error") is None
            png = page.screenshot(path=str(path))
        finally:
            browser.close()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), outside


def has_colour(region: np.ndarray, rgb: tuple[int, int, int], min_px: int = 200) -> bool:
    return int((np.abs(region.astype(int) - rgb).max(axis=-1) <= 2).sum()) >= min_px


def test_page_draws_both_sides_of_the_swipe(server: str, tmp_path: Path) -> None:
    img, outside = screenshot(f"{server}/?left=isa&right=prob", tmp_path / "view.png")
    assert outside == []
    h, w = img.shape[:2]
    centre = img[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
    n_colours = len(np.unique(centre.reshape(-1, 3), axis=0))
    assert n_colours >= 50, f"only {n_colours} colours: the map is not drawn"
    left = img[h // 3: 2 * h // 3, w // 4: w // 2 - 15]
    right = img[h // 3: 2 * h // 3, w // 2 + 15: 3 * w // 4]
    impervious, pervious = (styles.hex_to_rgba(c)[:3] for c, _ in
                            (styles.ISA_CLASSES[1], styles.ISA_CLASSES[0]))
    # left of the swipe: the ISA map (stripes of both classes)
    assert has_colour(left, impervious) and has_colour(left, pervious)
    # right of the swipe: the probability ramp, no ISA class colour
    assert not has_colour(right, impervious, 1) and not has_colour(right, pervious, 1)
    ramp = np.array([v[:3] for v in styles.ramp_colormap(styles.PROB_RAMP).values()])
    sample = right[::20, ::20].reshape(-1, 3).astype(int)
    dist = np.abs(sample[:, None, :] - ramp[None, :, :]).max(axis=-1).min(axis=1)
    assert np.median(dist) <= 3, "right side is not drawn with the probability ramp"
