"""Fault injection: the data stages finish, byte-identical, through a failing network.

A loopback proxy (``tests/faults``) sits in front of the STAC API (rustac) and the
Range file server and injects, on a fixed schedule, HTTP 500/502/503, 429 with
Retry-After, connection resets, stalls past the timeout, truncated bodies and a
wrong Content-Length. ``search_scenes`` + ``download_tile`` (library and CLI) must
produce exactly the bytes of a fault-free run, log every retry with the URL, and a
permanently failing asset must fail only its own tile, also under
``snakemake --keep-going``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import rasterio
import yaml
from click.testing import CliRunner

from jointseg.cli import main
from jointseg.data.download import download_tile
from jointseg.data.errors import DownloadError
from jointseg.data.providers import SceneInfo
from jointseg.data.stac import search_scenes
from jointseg.simulate.servers import FileServer, StacServer
from tests.conftest import write_catalogue
from tests.faults import Fault, FaultProxy, Rule
from tests.faults import catalogue as cat
from tests.faults.proxy import KINDS

pytestmark = pytest.mark.timeout(240)
REPO = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


@dataclass
class Servers:
    stac_url: str
    file_url: str
    root: Path


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("fault_catalogue")
    scenes = cat.write_assets(root / "assets")
    with FileServer(root / "assets") as files:
        hrefs = write_catalogue(root / "stac", cat.items(scenes, files.url))
        with StacServer(hrefs) as stac:
            yield Servers(stac.url, files.url, root)


@pytest.fixture
def proxies(servers: Servers) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """(STAC proxy, file proxy); the STAC proxy rewrites links and hrefs to stay proxied."""
    files = FaultProxy(servers.file_url).start()
    stac = FaultProxy(servers.stac_url).start()
    stac.rewrite.update({f"{servers.stac_url}/": f"{stac.url}/",
                         f"{servers.file_url}/": f"{files.url}/"})
    yield stac, files
    stac.stop()
    files.stop()


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def no_gdal_cache() -> rasterio.Env:
    """GDAL's in-process /vsicurl/ cache off, so a second run really requests the files.

    (``CPL_VSIL_CURL_NON_CACHED`` is a colon-separated list of prefixes: this one
    covers every ``/vsicurl/http...`` path.)
    """
    return rasterio.Env(CPL_VSIL_CURL_NON_CACHED="/vsicurl/http")


def run_region(api_url: str, region: str, out: Path, **kw: float) -> list[SceneInfo]:
    tile = cat.region_tile(region)
    scenes = search_scenes(api_url, "sentinel-2-l2a", tile.footprint_lonlat(), "2021-01-01",
                           "2021-12-31", 80, 8, **{k: v for k, v in kw.items()
                                                   if k in ("retries", "backoff_s", "timeout_s")})
    download_tile(scenes, tile, out, **kw)
    return scenes


FAST = {"retries": 3, "backoff_s": 0.1, "timeout_s": 1}
S1 = cat.scene_id("north", "2021-06-01")


def test_library_search_and_download_survive_every_fault_kind(
    servers: Servers, proxies: tuple[FaultProxy, FaultProxy], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stac, files = proxies
    # the reference run goes through the same proxies, without faults
    ref = run_region(stac.url, "north", tmp_path / "ref", **FAST)
    assert stac.events and not stac.faults() and files.events and not files.faults()
    stac.reset()
    files.reset()
    stac.rules = [
        Rule("/search", Fault("status", 503), nth=(1,)),
        Rule("/search", Fault("status", 429, retry_after=1), nth=(2,)),
        Rule("/search", Fault("reset"), nth=(3,)),
        Rule("/search", Fault("truncate"), nth=(4,)),
        Rule("/search", Fault("bad_length"), nth=(5,)),
        Rule("/search", Fault("stall", stall_s=4), nth=(6,)),
    ]
    get = f"^GET /{S1}"
    files.rules = [
        Rule(f"{get}/B02", Fault("status", 500), nth=(1,)),
        Rule(f"{get}/B03", Fault("status", 502), nth=(1, 2)),
        Rule(f"{get}/B04", Fault("status", 429, retry_after=1), nth=(1,)),
        Rule(f"{get}/B08", Fault("reset"), nth=(1, 2)),
        Rule(f"{get}/B05", Fault("truncate"), nth=(1,)),
        Rule(f"{get}/B06", Fault("bad_length"), nth=(1,)),
        Rule(f"{get}/B07", Fault("stall", stall_s=4), nth=(1,)),
        Rule(f"^HEAD /{S1}/SCL", Fault("status", 503), nth=(1, 2, 3)),
    ]
    with caplog.at_level(logging.WARNING), no_gdal_cache():
        got = run_region(stac.url, "north", tmp_path / "faulty", **FAST)

    # every kind of fault was really injected, on both servers
    assert {e["fault"] for e in stac.faults()} == set(KINDS)
    assert {e["fault"] for e in files.faults()} == set(KINDS)
    # same scenes (hrefs aside) and byte-identical stacks
    assert got == ref
    assert all(h.startswith(files.url) for s in got for h in s.bands.values())
    assert tree_digest(tmp_path / "faulty") == tree_digest(tmp_path / "ref")
    # retries are logged with the URL they concern
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"POST {stac.url}/search: HTTP 503; retrying" in text
    assert f"STAC search at {stac.url}: attempt 1 failed" in text
    assert f"retrying {files.url}/{S1}/B05.tif" in text  # truncated body: our own loop
    assert f"{files.url}/{S1}/SCL.tif" in text  # GDAL's own retry of the 503s


def test_cli_search_and_download_through_faults(
    servers: Servers, proxies: tuple[FaultProxy, FaultProxy], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stac, files = proxies
    tile = cat.region_tile("south")
    runner = CliRunner()
    outs = {}
    for name in ("ref", "faulty"):
        if name == "faulty":  # the reference ran through the same proxies, fault-free
            stac.reset([Rule("/search", Fault("status", 502), nth=(1,)),
                        Rule("/search", Fault("truncate"), nth=(2,))])
            files.reset([Rule(r"^GET .*B1[12]\.tif", Fault("reset"), nth=(1,)),
                         Rule(r"^GET .*B8A\.tif", Fault("truncate"), nth=(1,))])
        url = stac.url
        scenes_json = tmp_path / name / "scenes.json"
        with caplog.at_level(logging.WARNING), no_gdal_cache():
            r = runner.invoke(main, [
                "search", "--api-url", url, "--tile", tile.tile_id, "--tile-size-m", "600",
                "--year", "2021", "--retries", "3", "--backoff-s", "0.1", "--timeout-s", "2",
                "--out", str(scenes_json)])
            assert r.exit_code == 0, r.output
            r = runner.invoke(main, [
                "download", str(scenes_json), "--out-dir", str(tmp_path / name / "stack"),
                "--tile-size-m", "600", "--retries", "3", "--backoff-s", "0.1",
                "--timeout-s", "2"])
            assert r.exit_code == 0, r.output
        outs[name] = tree_digest(tmp_path / name)
    assert outs["faulty"] == outs["ref"] and len(outs["ref"]) == 2 * 11 + 2  # + scenes.json
    assert {e["fault"] for e in stac.faults() + files.faults()} == {"status", "truncate",
                                                                     "reset"}
    assert any("retrying" in r.getMessage() and files.url in r.getMessage()
               for r in caplog.records)


def test_permanently_failing_asset_fails_only_its_tile(
    servers: Servers, proxies: tuple[FaultProxy, FaultProxy], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stac, files = proxies
    bad = cat.scene_id("south", "2021-07-11")
    files.rules = [Rule(f"{bad}/B04", Fault("status", 503), always=True)]
    run_region(stac.url, "north", tmp_path / "north", retries=1, backoff_s=0.05)
    assert (tmp_path / "north" / "manifest.json").is_file()
    tile = cat.region_tile("south")
    with caplog.at_level(logging.ERROR), pytest.raises(DownloadError) as err:
        run_region(stac.url, "south", tmp_path / "south", retries=1, backoff_s=0.05)
    url = f"{files.url}/{bad}/B04.tif"
    assert str(err.value).startswith(
        f"{tile.tile_id}: asset B04 of {bad} failed after 2 attempts: {url}: ")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "south" / "manifest.json").exists()
    assert any("giving up" in r.getMessage() and url in r.getMessage() for r in caplog.records)
    # 2 attempts, each with GDAL's own retry (GDAL_HTTP_MAX_RETRY = retries): bounded
    assert 2 <= len(files.faults("status")) <= 8


def _dead_asset(files: FaultProxy, tmp: Path, **kw: float) -> tuple[str, str, float]:
    """Download one band whose every request gets the proxy's fault; returns (the
    DownloadError's message, the asset URL, seconds until it gave up)."""
    tile = cat.region_tile("north")
    url = f"{files.url}/{S1}/B02.tif"
    scene = SceneInfo(S1, "2021-06-01T10:00:00Z", 5.0, "03.00", 0, bands={"B02": url},
                      epsg=cat.EPSG)
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download_tile([scene], tile, tmp / "out", ["B02"], **kw)
    elapsed = time.monotonic() - start
    assert not (tmp / "out" / "manifest.json").exists()
    assert "\n" not in str(err.value)
    return str(err.value), url, elapsed


@pytest.mark.parametrize("status", [404, 403])
def test_missing_or_forbidden_asset_fails_at_once(
    proxies: tuple[FaultProxy, FaultProxy], tmp_path: Path, status: int
) -> None:
    _, files = proxies
    files.rules = [Rule("B02", Fault("status", status), always=True)]
    # default config, with a backoff that would show: a permanent error is not retried
    msg, url, elapsed = _dead_asset(files, tmp_path, backoff_s=10.0)
    assert msg == f"{cat.region_tile('north').tile_id}: asset B02 of {S1} not found: {url}"
    assert elapsed < 5 and len(files.faults()) <= 2  # one open, no retry by GDAL or us


@pytest.mark.parametrize("fault", [Fault("status", 503), Fault("stall", stall_s=120)],
                         ids=["503", "never-answers"])
def test_dead_asset_gives_up_within_30_s_with_the_default_config(
    proxies: tuple[FaultProxy, FaultProxy], tmp_path: Path, fault: Fault
) -> None:
    _, files = proxies
    files.rules = [Rule("B02", fault, always=True)]
    msg, url, elapsed = _dead_asset(files, tmp_path)  # retries 5, backoff 1 s, timeout 60 s
    assert msg.startswith(f"{cat.region_tile('north').tile_id}: asset B02 of {S1} failed "
                          f"after ") and f"attempts: {url}: " in msg
    # before: GDAL retried inside each of our attempts (8 min for a 503); now <= give_up_s
    assert elapsed < 30, f"gave up after {elapsed:.1f} s"
    attempts = int(msg.split(" failed after ")[1].split()[0])
    assert 1 <= attempts <= 6 and len(files.faults()) <= 2 * attempts


def test_dead_asset_budget_and_stall_timeout_are_configurable(
    proxies: tuple[FaultProxy, FaultProxy], tmp_path: Path
) -> None:
    _, files = proxies
    files.rules = [Rule("B02", Fault("reset"), always=True)]
    msg, url, elapsed = _dead_asset(files, tmp_path, retries=20, backoff_s=0.1, give_up_s=1.0)
    assert f"attempts: {url}: " in msg and elapsed < 3  # the budget, not 20 retries, ended it
    files.reset([Rule("B02", Fault("stall", stall_s=60), always=True)])
    msg, url, elapsed = _dead_asset(files, tmp_path, retries=0, timeout_s=1)
    assert f"failed after 1 attempts: {url}: " in msg and elapsed < 5


def _snakemake_config(tmp: Path, api_url: str) -> Path:
    regions = {name: {"bbox": list(cat.region_tile(name).bounds), "bbox_crs": "EPSG:32633"}
               for name in cat.REGIONS}
    config = {
        "year": 2021, "regions": regions, "results_dir": str(tmp / "results"),
        "resources_dir": str(tmp / "resources"),
        "stac": {"api_url": api_url, "max_scenes": 4, "timeout_s": 2,
                 "demo_server": {"enabled": False}},
        "grid": {"tile_size_m": 600}, "download": {"retries": 1, "backoff_s": 0.05},
        "demo": {"region": "north"},  # rules/simulate.smk reads it at parse time
        # a config must name a model or training data (these runs stop at the composites)
        "model": {"onnx": str(REPO / "tests" / "data" / "models" / "tiny_rf.onnx")},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, config: Path, targets: list[str], *extra: str,
              timeout: float = 150) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir`` (its own config.yaml there)."""
    if config.resolve() != (workdir / "config.yaml").resolve():
        shutil.copy(config, workdir / "config.yaml")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "NO_PROXY": "127.0.0.1,localhost", "GDAL_HTTP_MAX_RETRY": "0"}
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--quiet", "rules",
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
           "--cores", "2", "--nolock", *extra, *targets]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=workdir)


def test_snakemake_keep_going_finishes_the_other_tiles(
    proxies: tuple[FaultProxy, FaultProxy], tmp_path: Path
) -> None:
    stac, files = proxies
    bad = cat.scene_id("south", "2021-06-01")
    files.rules = [Rule(f"{bad}/B11", Fault("status", 500), always=True),
                   Rule(r"north_L2A/B0[23]", Fault("reset"), nth=(1,))]
    config = _snakemake_config(tmp_path, stac.url)
    manifests = {r: f"{tmp_path}/resources/{r}/2021/stack/{cat.region_tile(r).tile_id}/"
                    "manifest.json" for r in cat.REGIONS}
    proc = snakemake(tmp_path, config, list(manifests.values()), "--keep-going")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert Path(manifests["north"]).is_file()
    m = json.loads(Path(manifests["north"]).read_text())
    assert len(m["scenes"]) == 2
    assert not Path(manifests["south"]).exists()
    south_log = tmp_path / f"logs/south/2021/download/{cat.region_tile('south').tile_id}.log"
    text = south_log.read_text()
    assert f"asset B11 of {bad} failed after 2 attempts: {files.url}/{bad}/B11.tif" in text
