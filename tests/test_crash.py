"""Crash safety: kill -9 mid-write, rerun, same bytes; no half-written file has a final name.

Each stage's CLI (download, composite, predict, mosaic) runs in its own process
group and is killed with SIGKILL the moment its temporary output appears (or, for
the download, while it is blocked on a stalled asset). At that moment no final
output may exist; a rerun must finish and give byte-identical outputs to an
uninterrupted run. The same holds for a whole Snakemake run killed mid-way and
rerun with ``--rerun-incomplete``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from jointseg.data.cloudmask import cloud_mask_tile
from jointseg.data.providers import scene_info_from_item
from jointseg.data.stac import write_scene_list
from jointseg.grid import Tile
from jointseg.io import write_cog
from jointseg.simulate.servers import FileServer, StacServer
from tests.conftest import write_catalogue
from tests.faults import Fault, FaultProxy, Rule
from tests.faults import catalogue as cat
from tests.stackfactory import constant_bands, make_stack
from tests.test_faults import snakemake, tree_digest

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).parents[1]
MODEL = REPO / "tests" / "data" / "models" / "tiny_rf.onnx"
JOINTSEG = [sys.executable, "-m", "jointseg.cli"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def kill_when(cmd: list[str], watch: Path, pattern: str, *, extra: object = None,
              timeout: float = 120) -> None:
    """Run ``cmd``; SIGKILL its process group as soon as ``watch`` holds ``pattern``.

    ``extra`` (a callable) must also be true before killing. Fails if the process
    ends first: the kill must land mid-way.
    """
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, cwd=REPO)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if any(watch.rglob(pattern)) and (extra is None or extra()):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                assert proc.returncode == -signal.SIGKILL
                return
            time.sleep(0.002)
        err = proc.stderr.read().decode() if proc.stderr else ""
        pytest.fail(f"{cmd[3]} ended (rc {proc.returncode}) before {pattern} appeared: {err}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run(cmd: list[str]) -> None:
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]


def no_final_outputs(directory: Path, names: list[str]) -> None:
    """After a kill: none of ``names`` exists; any leftover is a dot-temp, never a final name."""
    assert [n for n in names if (directory / n).exists()] == []
    for p in directory.iterdir():
        if p.name not in names and p.is_file() and p.suffix == ".tif":
            assert p.name.startswith("."), p


# ------------------------------------------------------------------------ download


def test_download_killed_mid_stack_resumes_to_the_same_bytes(tmp_path: Path) -> None:
    scenes = cat.write_assets(tmp_path / "assets")
    tile = cat.region_tile("north")
    with FileServer(tmp_path / "assets") as files, FaultProxy(files.url) as proxy:
        via_proxy = write_scene_list(
            tmp_path / "proxy.json", tile.tile_id, "north", 2021,
            [scene_info_from_item(i) for i in cat.items(scenes, proxy.url)
             if "north" in i["id"]])
        args = ["--tile-size-m", "600", "--retries", "0", "--timeout-s", "60"]
        # reference: the same hrefs (through the proxy), no faults
        run([*JOINTSEG, "download", str(via_proxy), "--out-dir", str(tmp_path / "ref"), *args])
        proxy.reset()

        # the second scene's B11 hangs: the process is killed while blocked on it
        second = cat.scene_id("north", "2021-07-11")
        proxy.rules = [Rule(f"{second}/B11", Fault("stall", stall_s=60), always=True)]
        out = tmp_path / "out"
        kill_when([*JOINTSEG, "download", str(via_proxy), "--out-dir", str(out), *args],
                  out, "manifest.partial.json", extra=lambda: proxy.faults("stall"))
        assert not (out / "manifest.json").exists()
        assert (out / second / "B02.tif").exists() is False  # the scene is written last
        proxy.rules = []
        seen = len(proxy.events)
        run([*JOINTSEG, "download", str(via_proxy), "--out-dir", str(out), *args])
    assert tree_digest(out) == tree_digest(tmp_path / "ref")
    # the rerun fetched only the second scene: the first was reused (sha256 in the record)
    first = cat.scene_id("north", "2021-06-01")
    rerun = [e["path"] for e in proxy.events[seen:]]
    assert rerun and all(second in p for p in rerun) and not any(first in p for p in rerun)


# ------------------------------------------------------------------------ composite


def _stack(root: Path, tile: Tile, n: int = 3) -> tuple[Path, Path]:
    rng = np.random.default_rng(11)
    g10, g20 = tile.geobox(10), tile.geobox(20)
    scenes = [{"id": f"S{i}", "datetime": f"2021-0{i + 4}-01T10:00:00Z",
               "bands": constant_bands(tile, rng.integers(100, 6000, g10.shape),
                                       rng.choice(np.array([4, 5, 8], np.uint8), g20.shape))}
              for i in range(n)]
    manifest = make_stack(root / "stack", tile, scenes)
    return manifest, cloud_mask_tile(manifest, root / "mask.tif")


def test_composite_killed_while_writing_reruns_to_the_same_bytes(tmp_path: Path) -> None:
    manifest, mask = _stack(tmp_path, Tile.at(32633, 500040, 5000040, 6000))
    names = ["c_10m.tif", "c_20m.tif"]

    def cmd(d: Path) -> list[str]:
        return [*JOINTSEG, "composite", str(manifest), str(mask), str(d / names[0]),
                str(d / names[1])]

    (tmp_path / "ref").mkdir()
    run(cmd(tmp_path / "ref"))
    out = tmp_path / "out"
    out.mkdir()
    kill_when(cmd(out), out, ".c_10m.tif.*.part")
    no_final_outputs(out, names)
    run(cmd(out))
    assert [sha(out / n) for n in names] == [sha(tmp_path / "ref" / n) for n in names]


# ------------------------------------------------------------------------ predict


def test_predict_killed_mid_tile_reruns_to_the_same_bytes(tmp_path: Path) -> None:
    tile = Tile.at(32633, 500040, 5000040, 2400)
    rng = np.random.default_rng(5)
    c10 = np.concatenate([rng.integers(100, 5000, (4, 240, 240)),
                          np.full((1, 240, 240), 3)]).astype(np.uint16)
    write_cog(tmp_path / "t_10m.tif", c10, tile.geobox(10), nodata=0,
              band_names=["B02", "B03", "B04", "B08", "COUNT"])
    write_cog(tmp_path / "t_20m.tif", rng.integers(100, 5000, (6, 120, 120)).astype(np.uint16),
              tile.geobox(20), nodata=0, band_names=["B05", "B06", "B07", "B8A", "B11", "B12"])
    names = ["isa.tif", "prob.tif"]

    def cmd(d: Path) -> list[str]:
        return [*JOINTSEG, "predict", "--model", str(MODEL), "--input",
                str(tmp_path / "t_10m.tif"), "--output", str(d / names[0]), "--prob-output",
                str(d / names[1]), "--threads", "1", "--providers", "cpu", "--no-progress"]

    (tmp_path / "ref").mkdir()
    run(cmd(tmp_path / "ref"))
    out = tmp_path / "out"
    out.mkdir()
    kill_when(cmd(out), out, ".isa.tif.*")  # the staging directory of the tile
    no_final_outputs(out, names)
    run(cmd(out))
    assert [sha(out / n) for n in names] == [sha(tmp_path / "ref" / n) for n in names]


# ------------------------------------------------------------------------ mosaic


def test_mosaic_killed_while_writing_reruns_to_the_same_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    tiles = []
    for dx in (0, 2400):
        for dy in (0, 2400):
            t = Tile.at(32633, 500040 + dx, 5000040 + dy, 2400)
            isa = (rng.random((2400, 2400)) < 0.3).astype(np.uint8)
            tiles.append(str(write_cog(tmp_path / "tiles" / f"{t.tile_id}_isa.tif", isa,
                                       t.geobox(1), nodata=255, band_names=["isa_binary"])))

    def cmd(d: Path) -> list[str]:
        return [*JOINTSEG, "mosaic", *tiles, "--output", str(d / "isa_1m.tif"), "--kind",
                "binary", "--year", "2021", "--region", "crash"]

    (tmp_path / "ref").mkdir()
    run(cmd(tmp_path / "ref"))
    out = tmp_path / "out"
    out.mkdir()
    kill_when(cmd(out), out, ".isa_1m.tif.*.part")
    no_final_outputs(out, ["isa_1m.tif"])
    run(cmd(out))
    assert sha(out / "isa_1m.tif") == sha(tmp_path / "ref" / "isa_1m.tif")


# ------------------------------------------------------------------------ snakemake


def test_snakemake_killed_mid_run_reruns_incomplete_to_the_same_outputs(
    tmp_path: Path,
) -> None:
    from tests.test_faults import _snakemake_config

    scenes = cat.write_assets(tmp_path / "assets")
    with FileServer(tmp_path / "assets") as files, FaultProxy(files.url) as fproxy:
        hrefs = write_catalogue(tmp_path / "stac", cat.items(scenes, fproxy.url))
        with StacServer(hrefs) as stac:
            targets = {}
            for name in ("ref", "run"):
                work = tmp_path / name
                work.mkdir()
                _snakemake_config(work, stac.url)
                targets[name] = [
                    f"{work}/results/{r}/2021/composite/{cat.region_tile(r).tile_id}_{res}.tif"
                    for r in cat.REGIONS for res in ("10m", "20m")]
            proc = snakemake(tmp_path / "ref", tmp_path / "ref" / "config.yaml",
                             targets["ref"])
            assert proc.returncode == 0, proc.stderr[-3000:]

            # south's download hangs on one asset; kill the whole snakemake group when
            # north's cloud mask exists (so jobs were done, running and pending)
            bad = cat.scene_id("south", "2021-07-11")
            fproxy.rules = [Rule(f"{bad}/B12", Fault("stall", stall_s=120), always=True)]
            work = tmp_path / "run"
            env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                   f"{os.environ['PATH']}", "NO_PROXY": "127.0.0.1,localhost"}
            cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"),
                   "--quiet", "rules", "--directory", str(work), "--configfile",
                   str(work / "config.yaml"), "--cores", "2", *targets["run"]]
            p = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=env, cwd=work)
            deadline = time.monotonic() + 150
            mask = work / "results/north/2021/cloudmask" / f"{cat.region_tile('north').tile_id}.tif"
            while time.monotonic() < deadline and p.poll() is None:
                if mask.exists() and fproxy.faults("stall"):
                    break
                time.sleep(0.01)
            assert p.poll() is None, "snakemake ended before it could be killed"
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
            south = cat.region_tile("south").tile_id
            assert not (work / f"resources/south/2021/stack/{south}/manifest.json").exists()

            fproxy.rules = []
            proc = snakemake(work, work / "config.yaml", targets["run"], "--rerun-incomplete")
            assert proc.returncode == 0, proc.stderr[-3000:]
    for ref, got in zip(targets["ref"], targets["run"], strict=True):
        assert sha(Path(got)) == sha(Path(ref)), got


# ------------------------------------------------------------------------ content keys


def test_resume_is_keyed_by_content_and_source(tmp_path: Path) -> None:
    from jointseg.data.download import download_tile
    from jointseg.data.providers import SceneInfo
    from tests.stackfactory import write_tif

    tile = Tile.at(32633, 500040, 5000040, 240)
    g10 = tile.geobox(10)
    a = write_tif(tmp_path / "a.tif", np.full(g10.shape, 111, np.uint16), g10)
    b = write_tif(tmp_path / "b.tif", np.full(g10.shape, 222, np.uint16), g10)
    c = write_tif(tmp_path / "c.tif", np.full(g10.shape, 333, np.uint16), g10)

    def scene(b02: Path, query: str = "") -> SceneInfo:
        return SceneInfo("S", "2021-06-01T10:00:00Z", 1.0, "03.00", 0,
                         bands={"B02": f"file://{b02}{query}", "B03": str(c)}, epsg=32633)

    out = tmp_path / "stack"
    download_tile([scene(a)], tile, out, ["B02", "B03"])
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "S").iterdir()}
    # the same sources (a new signature in the query aside): nothing is rewritten
    download_tile([scene(a, "?sig=new")], tile, out, ["B02", "B03"])
    assert {p.name: p.stat().st_mtime_ns for p in (out / "S").iterdir()} == mtimes
    # the scene list now points B02 elsewhere: only B02 is refetched, with the new pixels
    download_tile([scene(b)], tile, out, ["B02", "B03"])
    with rasterio.open(out / "S" / "B02.tif") as ds:
        assert (ds.read(1) == 222).all()
    assert (out / "S" / "B03.tif").stat().st_mtime_ns == mtimes["B03.tif"]
    assert (out / "S" / "B02.tif").stat().st_mtime_ns != mtimes["B02.tif"]
    # a band file edited behind the manifest's back is refetched (sha256 mismatch)
    with rasterio.open(out / "S" / "B03.tif", "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
        ds.write(np.zeros((1, *g10.shape), np.uint16))
    download_tile([scene(b)], tile, out, ["B02", "B03"])
    with rasterio.open(out / "S" / "B03.tif") as ds:
        assert (ds.read(1) == 333).all()
