"""Batches of tiles (jointseg.batch), `jointseg batch`, and the DAG in batch mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from click.testing import CliRunner
from rasterio.transform import from_origin

from jointseg.batch import (
    BatchError,
    batch_id,
    batches_for_tiles,
    manifest_files,
    manifest_path,
    merge_manifests,
    read_manifest,
    record_path,
    resolve_batch_block,
    run_batch,
    tile_files,
    write_manifest,
)
from jointseg.cli import main as cli
from jointseg.grid import Tile
from jointseg.io import atomic_path
from jointseg.regions import region_tiles

REPO = Path(__file__).resolve().parents[1]


# --- batch ids and the partition --------------------------------------------------------


def test_batch_id_is_the_block_corner():
    t = Tile.from_id("32650_663600_3543600", 600)
    assert batch_id(t, 4) == "B32650_662400_3542400"  # 2,400 m blocks
    assert batch_id(t, 1) == "B32650_663600_3543600"  # block 1: the tile itself
    neg = Tile.from_id("32650_-600_3543000", 600)
    assert batch_id(neg, 2) == "B32650_-1200_3542400"  # floor, not truncation
    with pytest.raises(ValueError, match="block 0"):
        batch_id(t, 0)


def test_partition_covers_every_tile_once_and_never_mixes_zones():
    # a lon/lat box across the UTM 50N/51N edge at 120 E: tiles in both zones
    tiles = region_tiles({"bbox": [119.7, 30.0, 120.3, 30.4]}, 9960)
    zones = {t.epsg for t in tiles}
    assert zones == {32650, 32651}
    batches = batches_for_tiles(tiles, 3)
    seen = [t.tile_id for ts in batches.values() for t in ts]
    assert sorted(seen) == sorted(t.tile_id for t in tiles)  # each tile exactly once
    step = 3 * 9960
    for bid, ts in batches.items():
        epsg, bx, by = (int(v) for v in bid[1:].split("_"))
        assert 1 <= len(ts) <= 9
        for t in ts:
            assert t.epsg == epsg  # one zone per batch
            assert bx <= t.xmin < bx + step and by <= t.ymin < by + step
    assert {int(b[1:6]) for b in batches} == zones
    assert list(batches) == sorted(batches)
    assert len(batches) < len(tiles) / 3  # batching really groups tiles


def test_config_key_is_validated():
    from jointseg.config import ConfigError, validate_config

    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["grid"]["batch_block"] = 8
    validate_config(cfg, source="config")
    cfg["grid"]["batch_block"] = -1
    with pytest.raises(ConfigError, match=r"key 'grid.batch_block': -1 is less than"):
        validate_config(cfg, source="config")
    cfg["grid"]["batch_block"] = "big"
    with pytest.raises(ConfigError, match=r"key 'grid.batch_block': 'big' does not match"):
        validate_config(cfg, source="config")
    del cfg["grid"]["batch_block"]
    assert validate_config(cfg, source="config")["grid"]["batch_block"] == "auto"


@pytest.mark.parametrize(("setting", "n_tiles", "block"), [
    ("auto", 1, 0), ("auto", 4, 0), ("auto", 500, 0),  # small: one job per tile
    ("auto", 501, 8), ("auto", 22_680, 8), ("auto", 64_000, 8),  # YREB: 8 x 8 batches
    ("auto", 64_001, 9), ("auto", 250_000, 16), ("auto", 10**8, 64),  # grows, capped
    (0, 10**6, 0), (4, 1, 4), (64, 1, 64),  # explicit integers are kept
])  # fmt: skip
def test_resolve_batch_block(setting, n_tiles, block):
    assert resolve_batch_block(setting, n_tiles) == block


def test_resolve_batch_block_rejects_other_values():
    for bad in (-1, 65, "8", 2.0, True, None):
        with pytest.raises(ValueError, match="expected 'auto' or 0..64"):
            resolve_batch_block(bad, 100)


# --- run_batch: skip done tiles, resume, collect failures -------------------------------


def _write_tif(path: Path, value: int) -> None:
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", driver="GTiff", width=8, height=8, count=1,
                           dtype="uint8", crs="EPSG:32650",
                           transform=from_origin(663000, 3543600, 10, 10)) as ds:
            ds.write(np.full((1, 8, 8), value, np.uint8))


TILE_IDS = ["32650_663000_3543000", "32650_663000_3543600", "32650_663600_3543000"]


def test_run_batch_skips_done_tiles_and_redoes_broken_ones(tmp_path):
    calls = []

    def outputs(t):
        return {"mask": tmp_path / f"{t}.tif"}

    def fn(t, files):
        calls.append(t)
        _write_tif(files["mask"], len(calls))

    first = run_batch("cloudmask", TILE_IDS, fn, outputs, progress=False)
    assert calls == TILE_IDS and first.done == TILE_IDS and first.skipped == []
    assert set(first.outputs) == set(TILE_IDS)

    calls.clear()
    again = run_batch("cloudmask", TILE_IDS, fn, outputs, progress=False)
    assert calls == [] and again.skipped == TILE_IDS  # nothing redone

    # a truncated file (not a readable GeoTIFF) is redone, the others are not
    broken = outputs(TILE_IDS[1])["mask"]
    broken.write_bytes(broken.read_bytes()[:100])
    third = run_batch("cloudmask", TILE_IDS, fn, outputs, progress=False)
    assert calls == [TILE_IDS[1]] and third.done == [TILE_IDS[1]]
    with rasterio.open(broken) as ds:
        assert ds.read(1)[0, 0] == 1

    calls.clear()
    run_batch("cloudmask", TILE_IDS, fn, outputs, overwrite=True, progress=False)
    assert calls == TILE_IDS


def test_run_batch_finishes_the_others_then_names_failed_tiles(tmp_path):
    bad = {TILE_IDS[0], TILE_IDS[2]}
    calls = []

    def outputs(t):
        return {"mask": tmp_path / f"{t}.tif"}

    def fn(t, files):
        calls.append(t)
        if t in bad:
            raise ValueError(f"no clear scene for {t}\nsecond line")
        _write_tif(files["mask"], 7)

    with pytest.raises(BatchError) as err:
        run_batch("cloudmask", TILE_IDS, fn, outputs, progress=False)
    msg = str(err.value)
    assert msg.startswith("cloudmask: 2 of 3 tile(s) failed")
    for t in bad:
        assert f"{t}: no clear scene for {t}" in msg
    assert "second line" not in msg
    assert calls == TILE_IDS  # the failures did not stop the loop
    assert outputs(TILE_IDS[1])["mask"].is_file()

    # a function that "succeeds" without writing its output is a failure too
    with pytest.raises(BatchError, match=rf"{TILE_IDS[0]}: did not write"):
        run_batch("cloudmask", [TILE_IDS[0]], lambda t, f: None, outputs, progress=False)

    # rerun with the cause fixed: only the failed tiles run
    bad.clear()
    calls.clear()
    res = run_batch("cloudmask", TILE_IDS, fn, outputs, progress=False)
    assert calls == [TILE_IDS[0], TILE_IDS[2]] and res.skipped == [TILE_IDS[1]]


def test_run_batch_redoes_tiles_made_by_other_settings_or_inputs(tmp_path):
    """A rerun skips a tile only if its record says the same settings and inputs made it."""
    calls = []
    record = tmp_path / "batch.json.tiles.json"
    source = tmp_path / "in.json"
    source.write_text('{"scenes": 1}')

    def outputs(t):
        return {"mask": tmp_path / f"{t}.tif"}

    def run(settings, **kw):
        calls.clear()
        return run_batch("cloudmask", TILE_IDS, lambda t, f: (
            calls.append(t), _write_tif(f["mask"], settings["dilation_m"]))[0], outputs,
            settings=settings, inputs=lambda t: {"stack": source}, record=record,
            progress=False, **kw)

    assert run({"dilation_m": 20}).done == TILE_IDS
    assert json.loads(record.read_text())["stage"] == "cloudmask"
    assert run({"dilation_m": 20}).skipped == TILE_IDS and calls == []  # crash-resume
    res = run({"dilation_m": 30})  # a setting changed: every tile redone, outputs new
    assert calls == TILE_IDS and res.skipped == []
    with rasterio.open(outputs(TILE_IDS[0])["mask"]) as ds:
        assert ds.read(1)[0, 0] == 30
    assert run({"dilation_m": 30}).skipped == TILE_IDS
    source.write_text('{"scenes": 2}')  # an input changed
    assert run({"dilation_m": 30}).done == TILE_IDS
    record.unlink()  # no record (e.g. made before records): redone, not trusted
    assert run({"dilation_m": 30}).done == TILE_IDS
    record.write_text("{not json")
    assert run({"dilation_m": 30}).done == TILE_IDS


def test_manifest_round_trip_and_errors(tmp_path):
    outs = {t: tile_files("predict", t, "demo", 2021, tmp_path / "results") for t in TILE_IDS}
    path = manifest_path("predict", "B32650_662400_3542400", "demo", 2021, tmp_path / "results")
    assert path == tmp_path / "results/demo/2021/isa/batches/B32650_662400_3542400.json"
    assert manifest_path("predict_baseline", "B1_0_0", "r", 2021).parts[3:5] == (
        "baseline", "isa")
    write_manifest(path, "B32650_662400_3542400", "predict", "demo", 2021, outs)
    doc = read_manifest(path)
    assert doc["batch"] == "B32650_662400_3542400" and doc["year"] == 2021
    assert list(doc["tiles"]) == TILE_IDS
    assert manifest_files([path], "prob") == [
        tmp_path / f"results/demo/2021/isa/{t}_prob.tif" for t in TILE_IDS]
    assert not list(path.parent.glob("*.part"))  # written atomically
    other = tmp_path / "other.json"
    write_manifest(other, "B32650_0_0", "predict", "demo", 2021,
                   {"32650_600_0": tile_files("predict", "32650_600_0", "demo", 2021)})
    merged = merge_manifests([path, other], tmp_path / "all.json", "predict", "demo", 2021)
    assert list(read_manifest(merged)["tiles"]) == [*TILE_IDS, "32650_600_0"]
    assert manifest_files([merged], "isa")[-1] == Path("results/demo/2021/isa/32650_600_0_isa.tif")
    with pytest.raises(BatchError, match=f"tile {TILE_IDS[0]} is already in another"):
        merge_manifests([path, other, path], tmp_path / "dup.json", "predict", "demo", 2021)
    with pytest.raises(BatchError, match="has no 'sr' file"):
        manifest_files([path], "sr")
    bad = tmp_path / "bad.json"
    bad.write_text('{"tiles": ["a"]}')
    with pytest.raises(BatchError, match=r"bad.json: key 'tiles'"):
        read_manifest(bad)
    with pytest.raises(ValueError, match="unknown batch stage 'mosaic'"):
        tile_files("mosaic", TILE_IDS[0], "demo", 2021)


def test_cli_reports_failed_tiles_and_writes_no_manifest(tmp_path):
    man = tmp_path / "m.json"
    r = CliRunner().invoke(cli, [
        "batch", "cloudmask", "--region", "demo", "--year", "2021",
        "--batch", "B32650_662400_3542400", "--tiles", ",".join(TILE_IDS[:2]),
        "--manifest", str(man), "--results-dir", str(tmp_path / "results"),
        "--resources-dir", str(tmp_path / "resources"), "--no-progress",
        "--", "--dilation-m", "20"])
    assert r.exit_code == 1
    assert "cloudmask: 2 of 2 tile(s) failed" in r.output
    assert f"{TILE_IDS[0]}:" in r.output and f"{TILE_IDS[1]}:" in r.output
    assert "manifest.json" in r.output  # the missing input is named
    assert not man.exists()
    r = CliRunner().invoke(cli, ["batch", "cloudmask", "--region", "demo", "--year", "2021",
                                 "--batch", "X1", "--tiles", TILE_IDS[0],
                                 "--manifest", str(man)])
    assert r.exit_code == 2 and "B<epsg>_<xmin>_<ymin>" in r.output


def test_merge_batches_cli_merges_by_batch_id(tmp_path):
    res = tmp_path / "res ults"
    ids = ["B32650_662400_3542400", "B32650_663600_3542400"]
    for b, tiles in zip(ids, (TILE_IDS[:2], TILE_IDS[2:]), strict=True):
        write_manifest(manifest_path("predict", b, "demo", 2021, res), b, "predict", "demo",
                       2021, {t: tile_files("predict", t, "demo", 2021, res) for t in tiles})
    out = res / "demo/2021/isa/batches.json"
    args = ["merge-batches", "predict", "--region", "demo", "--year", "2021",
            "--dir", str(res / "demo/2021/isa/batches"), "--out", str(out)]
    r = CliRunner().invoke(cli, [*args, "--batches", ",".join(ids)])
    assert r.exit_code == 0, r.output
    doc = read_manifest(out)
    assert doc["batch"] == "all" and list(doc["tiles"]) == TILE_IDS
    r = CliRunner().invoke(cli, [*args, "--batches", f"{ids[0]},{ids[0]}"])
    assert r.exit_code == 1 and "already in another batch manifest" in r.output
    r = CliRunner().invoke(cli, [*args, "--batches", "B1_0_0;rm"])
    assert r.exit_code == 2 and "expected B<epsg>_<xmin>_<ymin>" in r.output


# --- the real DAG in batch mode on the reduced demo region (as tests/test_e2e.py) -------


def _batch_config(workdir: Path, block: int) -> dict:
    from tests.test_e2e import e2e_config

    cfg = e2e_config(workdir)
    cfg["grid"]["batch_block"] = block
    cfg["model"]["onnx"] = str(REPO / "tests" / "data" / "models" / "tiny_rf.onnx")
    cfg["infer"] = {"providers": ["cpu"], "window_10m": 40, "overlap_10m": 8,
                    "threshold": 0.5, "threads": 1}
    return cfg


def _dag(workdir: Path, *args: str):
    from tests.test_e2e import snakemake

    return snakemake(workdir, *args)


MOSAICS = ["results/demo/2021/isa_1m.tif", "results/demo/2021/isa_prob_1m.tif"]


@pytest.mark.e2e
def test_plan_has_one_job_per_batch(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_batch_config(tmp_path, 2)))
    r = _dag(tmp_path, "-n", *MOSAICS)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    # 2 x 2-tile blocks of 1,200 m: the four 600 m tiles fall in four batches
    for rule in ("search_scenes", "download", "cloudmask", "composite", "predict"):
        line = next(ln for ln in out.splitlines() if ln.startswith(rule + " "))
        assert line.split()[-1] == "4", line
    assert "B32650_662400_3542400" in out and "B32650_663600_3543600" in out


@pytest.mark.e2e
@pytest.mark.slow
def test_batch_dag_to_mosaic_matches_per_tile_commands_and_resumes(tmp_path):
    from tests.test_e2e import BBOX, TILES

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_batch_config(tmp_path, 4)))
    r = _dag(tmp_path, *MOSAICS)
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "results" / "demo" / "2021"
    batch = "B32650_662400_3542400"  # 4 x 600 m = 2,400 m blocks: one batch of 4 tiles
    for stage_dir in ("scenes", "stack", "cloudmask", "composite", "isa", "isa/merged"):
        path = (res / "isa/batches.json" if stage_dir == "isa/merged"
                else res / stage_dir / "batches" / f"{batch}.json")
        doc = json.loads(path.read_text())
        assert sorted(doc["tiles"]) == TILES, stage_dir
        for files in doc["tiles"].values():
            assert all((tmp_path / p).is_file() for p in files.values()), files
    assert sorted(p.name for p in (res / "composite").glob("*.tif")) == sorted(
        f"{t}_{r}.tif" for t in TILES for r in ("10m", "20m"))

    # the batch wrote what the per-tile commands write from the same inputs
    tile = TILES[2]
    stack = tmp_path / f"resources/demo/2021/stack/{tile}/manifest.json"
    runner = CliRunner()
    r = runner.invoke(cli, ["composite", str(stack), str(res / f"cloudmask/{tile}.tif"),
                            str(tmp_path / "c10.tif"), str(tmp_path / "c20.tif")])
    assert r.exit_code == 0, r.output
    for mine, theirs in ((tmp_path / "c10.tif", res / f"composite/{tile}_10m.tif"),
                         (tmp_path / "c20.tif", res / f"composite/{tile}_20m.tif")):
        with rasterio.open(mine) as a, rasterio.open(theirs) as b:
            assert a.transform == b.transform and a.descriptions == b.descriptions
            np.testing.assert_array_equal(a.read(), b.read())
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    inf = cfg["infer"]
    r = runner.invoke(cli, ["predict", "--model", cfg["model"]["onnx"],
                            "--input", str(res / f"composite/{tile}_10m.tif"),
                            "--output", str(tmp_path / "isa.tif"),
                            "--prob-output", str(tmp_path / "prob.tif"),
                            "--window", str(inf["window_10m"]),
                            "--overlap", str(inf["overlap_10m"]),
                            "--threshold", str(inf["threshold"]),
                            "--providers", "cpu", "--no-progress"])
    assert r.exit_code == 0, r.output
    for name in ("isa", "prob"):
        with rasterio.open(tmp_path / f"{name}.tif") as a, \
                rasterio.open(res / f"isa/{tile}_{name}.tif") as b:
            assert a.transform == b.transform
            np.testing.assert_array_equal(a.read(), b.read())

    with rasterio.open(res / "isa_1m.tif") as ds:
        assert ds.res == (1, 1) and ds.bounds.left == BBOX[0] and ds.bounds.top == BBOX[3]
        assert ds.bounds.right == BBOX[2] and ds.bounds.bottom == BBOX[1]
        assert set(np.unique(ds.read(1, out_shape=(300, 300)))) <= {0, 1, 255}

    # resume: one tile's composite lost -> the batch job redoes that tile only
    (res / f"composite/{TILES[0]}_10m.tif").unlink()
    (res / f"composite/batches/{batch}.json").unlink()
    r = _dag(tmp_path, f"results/demo/2021/composite/batches/{batch}.json")
    assert r.returncode == 0, r.stderr[-3000:]
    log = (tmp_path / f"logs/demo/2021/composite/{batch}.log").read_text()
    assert f"composite {TILES[0]}: done" in log
    for t in TILES[1:]:
        assert f"composite {t}: outputs exist, skipped" in log
    assert (res / f"composite/{TILES[0]}_10m.tif").is_file()


# --- predict batches rerun after a change of settings or model (Snakemake deletes only
# the manifest; the per-tile files stay) -------------------------------------------------


def _predict_outputs(res: Path) -> dict[str, bytes]:
    from tests.test_predict_stage import TILES as P_TILES

    return {f"{t} {k}": p.read_bytes() for t in P_TILES
            for k, p in tile_files("predict", t, "r", 2021, res).items()}


def test_predict_batch_rerun_redoes_tiles_when_settings_or_model_change(tmp_path):
    import shutil

    from tests.test_predict_stage import (
        MODEL,
        SETTINGS,
        predict_batch,
        with_training_data,
        write_composite,
    )
    from tests.test_predict_stage import TILES as P_TILES

    res, model = tmp_path / "results", tmp_path / "models" / "m.onnx"
    model.parent.mkdir()
    shutil.copy(MODEL, model)
    for i, t in enumerate(P_TILES):
        write_composite(tile_files("composite", t, "r", 2021, res)["c10"], i)
    settings = {**SETTINGS, "sr_quicklook": False, "threshold": 0.5}
    man = res / "manifest.json"

    def rerun(settings: dict, done: int) -> dict[str, bytes]:
        man.unlink(missing_ok=True)  # what Snakemake removes before it reruns the job
        r = predict_batch(model, res, settings)
        assert r.exit_code == 0, r.output
        assert f"{done} tile(s) done, {2 - done} skipped" in r.output
        assert set(json.loads(record_path(man).read_text())["tiles"]) == set(P_TILES)
        return _predict_outputs(res)

    first = rerun(settings, 2)
    assert rerun(settings, 0) == first  # same settings and model: resumes, skips all
    low = rerun({**settings, "threshold": 0.3}, 2)  # a changed setting redoes every tile
    for t in P_TILES:
        assert low[f"{t} isa"] != first[f"{t} isa"], t  # the new threshold is in the map
    assert rerun({**settings, "threshold": 0.3}, 0) == low

    # the model retrained (replaced at the same path): every tile redone with it
    with_training_data(MODEL, model, {"id": "retrained-2", "simulated": True})
    retrained = rerun({**settings, "threshold": 0.3}, 2)
    for t in P_TILES:
        with rasterio.open(tile_files("predict", t, "r", 2021, res)["isa"]) as ds:
            assert ds.tags()["MODEL_TRAINING_DATA"] == "retrained-2"
        assert retrained[f"{t} isa"] != low[f"{t} isa"]


def test_threads_do_not_change_a_tiles_fingerprint():
    """A resume with another --cores (predict's threads) keeps finished tiles; any other
    setting changes the fingerprint."""
    from jointseg.batch import fingerprint
    from jointseg.inference.settings import PredictSettings

    base = PredictSettings.from_config({"threads": 2})
    same = fingerprint("predict", base, {"c10": "sha256:x"})
    assert fingerprint("predict", base.replace(threads=8), {"c10": "sha256:x"}) == same
    assert fingerprint("predict", base.replace(threshold=0.3), {"c10": "sha256:x"}) != same
    assert fingerprint("predict", base, {"c10": "sha256:y"}) != same
