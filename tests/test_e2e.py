"""End to end: the real Snakemake DAG on a reduced simulated demo region.

Real loopback servers (rustac STAC API + Range file server) are started by the
workflow itself, as in `make demo`. The region is 1.2 km x 1.2 km in four
600 m tiles so the whole chain (training included) runs in a few minutes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from rasterio.windows import from_bounds

from jointseg.simulate.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
BBOX = [663000, 3543000, 664200, 3544200]
TILES = ["32650_663000_3543000", "32650_663000_3543600", "32650_663600_3543000",
         "32650_663600_3543600"]


def e2e_config(workdir: Path) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["regions"]["demo"]["bbox"] = BBOX
    cfg["grid"]["tile_size_m"] = 600
    cfg["demo"]["n_dates"] = 4
    cfg["demo"]["years"] = [2021]  # one simulated year: the multi-year DAG is test_dag_years
    cfg.pop("years", None)
    cfg["year"] = 2021
    cfg["stac"]["demo_server"].update(
        stac_port=free_port(), file_port=free_port(), state_dir=str(workdir / ".servers"))
    cfg["model"] = {"chips": {"n_regions": 3, "region_size_m": 600, "chip_size_m": 300},
                    "train": {"epochs": 2}, "baseline": True}
    # training chips come from make_chips on the simulated training region (4 tiles here)
    cfg["training_data"]["bbox"] = [654000, 3543000, 655200, 3544200]
    cfg["training_data"]["chips"] = {"chip_size_m": 300, "split_block_m": 600}
    cfg["accuracy"] = {"min_distance_m": 100, "floor": 10}
    return cfg


def snakemake(workdir: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
         "--cores", "2", *args],
        capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("e2e")
    (d / "config.yaml").write_text(yaml.safe_dump(e2e_config(d)))
    return d


def composite_targets():
    return [f"results/demo/2021/composite/{t}_{r}.tif" for t in TILES for r in ("10m", "20m")]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_plan_shows_each_stage_per_tile(workdir):
    r = snakemake(workdir, "-n", *composite_targets())
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for rule in ("search_scenes", "download", "cloudmask", "composite"):
        line = next(ln for ln in out.splitlines() if ln.startswith(rule + " "))
        assert line.split()[-1] == "4", line


def test_data_stages_make_aligned_cloud_free_composites(workdir):
    r = snakemake(workdir, *composite_targets())
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    ports = cfg["stac"]["demo_server"]
    assert not listening(ports["stac_port"]) and not listening(ports["file_port"])
    sim = workdir / "resources" / "demo"
    meta = json.loads((sim / "simulation.json").read_text())
    tile = TILES[0]
    x0, y0 = (int(v) for v in tile.split("_")[1:])
    with rasterio.open(workdir / f"results/demo/2021/composite/{tile}_10m.tif") as ds:
        c10 = ds.read()
        assert ds.crs.to_epsg() == 32650 and ds.res == (10, 10)
        assert (ds.transform.c, ds.transform.f) == (x0, y0 + 600)
        assert ds.descriptions == ("B02", "B03", "B04", "B08", "COUNT", "QA")
        assert ds.tags()["JOINTSEG_SIMULATED"] == "true"
    with rasterio.open(workdir / f"results/demo/2021/composite/{tile}_20m.tif") as ds:
        assert ds.res == (20, 20) and (ds.transform.c, ds.transform.f) == (x0, y0 + 600)
    assert (c10[4] > 0).mean() > 0.95  # nearly every pixel had a clear observation
    # values against the simulator's truth: interior water is dark in the NIR,
    # interior tree canopy bright (tolerances cover the PSF's mixing with neighbours)
    with rasterio.open(sim / "2021" / "truth" / "landcover_1m.tif") as ds:
        lc = ds.read(1, window=from_bounds(x0, y0, x0 + 600, y0 + 600, ds.transform))
    blocks = lc.reshape(60, 10, 60, 10)
    from scipy import ndimage

    for cls, lo, hi in ((8, 0.0, 0.06), (5, 0.2, 0.45)):
        pure = ndimage.binary_erosion((blocks == cls).all(axis=(1, 3)))
        if pure.any():
            nir = c10[3][pure] / 1e4
            assert lo < np.median(nir) < hi, (cls, np.median(nir))
    # the cloudiest date was masked where the truth says cloud
    cloudy = max(meta["scenes"], key=lambda s: s["cloud_fraction"])
    with rasterio.open(workdir / f"results/demo/2021/cloudmask/{tile}.tif") as ds:
        band = ds.descriptions.index(cloudy["id"]) + 1
        clear = ds.read(band)
    with rasterio.open(sim / "truth" / "clouds" / f"{cloudy['id']}.tif") as ds:
        truth = ds.read(1, window=from_bounds(x0, y0, x0 + 600, y0 + 600, ds.transform))
    f = clear.shape[0] // truth.shape[0]  # the truth may be kept at 10 or 20 m
    cloud10 = np.repeat(np.repeat(truth == 1, f, 0), f, 1)
    assert cloud10.shape == clear.shape and cloud10.mean() > 0.2
    assert ((clear == 0) & cloud10).sum() / cloud10.sum() > 0.8


def test_full_dag_to_mosaic_accuracy_and_tables(workdir):
    r = snakemake(workdir, "all", "paper_tables")
    assert r.returncode == 0, r.stderr[-3000:]
    res = workdir / "results" / "demo" / "2021"
    from rio_cogeo.cogeo import cog_validate

    ok, errors, _ = cog_validate(str(res / "isa_1m.tif"), quiet=True)
    assert ok, errors
    with rasterio.open(res / "isa_1m.tif") as ds:
        assert ds.crs.to_epsg() == 32650 and ds.res == (1, 1) and ds.nodata == 255
        assert ds.bounds.left == BBOX[0] and ds.bounds.top == BBOX[3]
        assert ds.tags()["JOINTSEG_SIMULATED"] == "true" and ds.tags()["MODEL_SHA256"]
        assert set(np.unique(ds.read(1, out_shape=(300, 300)))) <= {0, 1, 255}
    assert (res / "isa_1m.png").read_bytes()[:4] == b"\x89PNG"
    item = json.loads((res / "isa_1m.json").read_text())
    assert item["assets"]["isa"]["href"] == "isa_1m.tif"
    for name in ("report.json", "report.md", "confusion.csv", "samples.gpkg", "confusion.png"):
        assert (res / "accuracy" / name).exists(), name
    report = json.loads((res / "accuracy" / "report.json").read_text())
    assert "SIMULATED" in (res / "accuracy" / "report.md").read_text()[:300]
    assert report["inputs"]["map"]["simulated"] is True
    tables = workdir / "results" / "paper_tables"
    assert (tables / "index.md").exists() and (tables / "table2_baseline.csv").exists()
    # models and chips are keyed by what they were trained on / cut from
    models = sorted((workdir / "results" / "models").glob("jointseg-tiny-*.onnx"))
    assert [m.name for m in models if "_fp16" in m.name] == [
        m.stem + "_fp16.onnx" for m in models if "_fp16" not in m.name]
    assert sum("bilinear" not in m.name for m in models) == 2  # fp32 + fp16
    (chips,) = (workdir / "results" / "training" / "2021" / "chips").iterdir()
    assert (chips / "index.csv").exists() and (chips / "qa.json").exists()
    assert json.loads((chips / "provenance.json").read_text()) == {
        "training_data_id": chips.name, "simulated": True}
    assert not (workdir / "resources" / "chips").exists()
    # a rerun has nothing to do
    again = snakemake(workdir, "-n", "all", "paper_tables")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_bad_config_stops_with_the_key(workdir):
    r = snakemake(workdir, "-n", "--config", "year=2015")
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "config: key 'year': 2015 is less than the minimum of 2017" in out


def test_no_scenes_fails_the_tile_with_a_clear_reason(workdir, tmp_path):
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["stac"]["date_window"] = {"start": "12-30", "end": "12-31"}
    cfg["results_dir"] = str(tmp_path / "results")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(workdir), "--configfile", str(tmp_path / "config.yaml"),
         "--cores", "1", str(tmp_path / "results/demo/2021/scenes" / f"{TILES[0]}.json")],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert r.returncode != 0
    log = (workdir / "logs/demo/2021/search" / f"{TILES[0]}.log").read_text()
    last = [ln for ln in log.splitlines() if ln.strip()][-1]
    expected = r"no sentinel-2-l2a scenes at .* between 2021-12-30 and 2021-12-31"
    assert re.search(expected, last), last
