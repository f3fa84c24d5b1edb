"""Bad inputs: each gives one specific line naming the file/key and what was expected.

The kinds already tested beside their module are listed in ``docs/reliability.md``
(corrupt/mis-gridded band files for predict, bad config values, invalid AOIs,
missing WorldCover tiles, wrong sample columns...); this file adds the rest.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
from click.testing import CliRunner
from onnx import TensorProto, helper

from jointseg.cli import main
from jointseg.config import ConfigError, load_config
from jointseg.data.cloudmask import CloudMaskError, cloud_mask_tile
from jointseg.data.composite import CompositeError, composite_tile
from jointseg.data.download import download_tile
from jointseg.data.errors import DownloadError
from jointseg.data.providers import SceneInfo
from jointseg.grid import Tile
from jointseg.inference.session import ModelError, make_session
from jointseg.io import write_cog
from jointseg.regions import RegionError, read_aoi
from tests.stackfactory import constant_bands, make_stack, write_tif

REPO = Path(__file__).parents[1]
MODEL = REPO / "tests" / "data" / "models" / "tiny_rf.onnx"
TILE = Tile.at(32633, 500040, 5000040, 240)  # 24 x 24 px at 10 m
G10, G20 = TILE.geobox(10), TILE.geobox(20)


def one_line(text: str) -> str:
    """The single line of an error message (and assert it is one line)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, text
    return lines[0]


def scene(sid: str, bands: dict[str, str]) -> SceneInfo:
    return SceneInfo(sid, "2021-06-01T10:00:00Z", 5.0, "03.00", 0, bands=bands, epsg=32633)


# ---------------------------------------------------------------- download inputs


def test_truncated_local_asset_fails_at_once_naming_it(tmp_path: Path) -> None:
    good = write_tif(tmp_path / "B02.tif", np.ones(G10.shape, np.uint16), G10)
    bad = tmp_path / "cut.tif"
    bad.write_bytes(good.read_bytes()[:400])
    with pytest.raises(DownloadError) as err:  # retries/backoff would take > 60 s
        download_tile([scene("S", {"B02": str(bad)})], TILE, tmp_path / "out", ["B02"],
                      retries=3, backoff_s=20)
    msg = one_line(str(err.value))
    assert msg.startswith(f"{TILE.tile_id}: asset B02 of S: {bad} is corrupt or truncated: ")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_asset_without_crs_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", count=1, dtype="uint16", width=24,
                       height=24, transform=G10.transform) as ds:
        ds.write(np.ones((1, 24, 24), np.uint16))
    with pytest.raises(DownloadError) as err:
        download_tile([scene("S", {"B02": str(path)})], TILE, tmp_path / "out", ["B02"])
    assert one_line(str(err.value)) == (
        f"{TILE.tile_id}: asset B02 of S: {path} has no CRS "
        "(expected a georeferenced GeoTIFF/COG)")


def test_band_missing_from_a_scene_is_named(tmp_path: Path) -> None:
    b02 = write_tif(tmp_path / "B02.tif", np.ones(G10.shape, np.uint16), G10)
    with pytest.raises(DownloadError) as err:
        download_tile([scene("S", {"B02": str(b02)})], TILE, tmp_path / "out", ["B02", "B05"])
    assert one_line(str(err.value)) == (
        f"{TILE.tile_id}: asset B05 of S is not in the scene's assets ['B02']")


def test_malformed_scene_list_is_one_line_cli_error(tmp_path: Path) -> None:
    bad = tmp_path / "scenes.json"
    bad.write_text(json.dumps({"tile_id": TILE.tile_id, "region": "r", "year": 2021,
                               "scenes": [{"id": "S", "datetime": "2021-06-01"}]}))
    res = CliRunner().invoke(main, ["download", str(bad), "--out-dir", str(tmp_path / "o"),
                                    "--tile-size-m", "240"])
    assert res.exit_code == 1
    line = one_line(res.output)
    assert f"{bad}: not a scene list" in line and "'S'" in line


# ---------------------------------------------------------------- stacks


def _stack(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    scl = np.full(G20.shape, 4, np.uint8)
    scenes = [{"id": f"S{i}", "datetime": f"2021-0{i + 1}-01T10:00:00Z",
               "bands": constant_bands(TILE, rng.integers(100, 5000, G10.shape), scl)}
              for i in range(2)]
    return make_stack(tmp_path / "stack", TILE, scenes)


def test_stack_file_changed_after_download_is_refused(tmp_path: Path) -> None:
    manifest = _stack(tmp_path)
    mask = cloud_mask_tile(manifest, tmp_path / "mask.tif")
    band = tmp_path / "stack" / "S1" / "B04.tif"
    band.write_bytes(band.read_bytes()[:-100])  # cut short after the download
    expected = (f"{band}: sha256 differs from {manifest} (changed or truncated since the "
                "download; rerun download)")
    with pytest.raises(CloudMaskError) as err:
        cloud_mask_tile(manifest, tmp_path / "mask2.tif")
    assert one_line(str(err.value)) == expected
    res = CliRunner().invoke(main, ["composite", str(manifest), str(mask),
                                    str(tmp_path / "c10.tif"), str(tmp_path / "c20.tif")])
    assert res.exit_code == 1 and one_line(res.output) == f"Error: {expected}"
    assert not (tmp_path / "c10.tif").exists() and not (tmp_path / "mask2.tif").exists()


def test_scene_without_a_band_in_the_manifest_is_named(tmp_path: Path) -> None:
    manifest = _stack(tmp_path)
    mask = cloud_mask_tile(manifest, tmp_path / "mask.tif")
    m = json.loads(manifest.read_text())
    del m["scenes"][1]["files"]["B11"], m["scenes"][1]["sha256"]["B11"]
    manifest.write_text(json.dumps(m))
    with pytest.raises(CompositeError) as err:
        composite_tile(manifest, mask, tmp_path / "c10.tif", tmp_path / "c20.tif")
    assert one_line(str(err.value)) == f"{manifest}: scene S1 lacks bands ['B11']"


def test_not_a_manifest_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "manifest.json"
    bogus.write_text(json.dumps({"tiles": []}))
    res = CliRunner().invoke(main, ["cloudmask", str(bogus), str(tmp_path / "m.tif")])
    assert res.exit_code == 1
    assert one_line(res.output) == (
        f"Error: {bogus}: not a download manifest (needs 'tile_id' and 'scenes')")


# ---------------------------------------------------------------- regions and config


def _geojson(path: Path, geometries: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": g} for g in geometries]}))
    return path


def test_empty_aoi_polygon_and_aoi_without_features(tmp_path: Path) -> None:
    flat = _geojson(tmp_path / "flat.geojson", [{"type": "Polygon", "coordinates": [
        [[118.0, 32.0], [118.1, 32.0], [118.2, 32.0], [118.0, 32.0]]]}])
    with pytest.raises(RegionError) as err:
        read_aoi(flat)
    assert one_line(str(err.value)).startswith(f"{flat}: AOI ")
    none = _geojson(tmp_path / "none.geojson", [])
    with pytest.raises(RegionError) as err:
        read_aoi(none)
    assert one_line(str(err.value)) == f"{none}: AOI has no features"


@pytest.mark.parametrize(("override", "expected"), [
    ({"year": 2016}, "key 'year': 2016 is less than the minimum of 2017"),
    ({"years": [2016, 2021]}, "key 'years.0': 2016 is less than the minimum of 2017"),
    ({"stac.max_cloud_cover": 120}, "key 'stac.max_cloud_cover': 120 is greater than"),
    ({"grid.tile_size_m": 1000}, "key 'grid.tile_size_m': 1000 is not a multiple of 60"),
])
def test_year_outside_l2a_and_invalid_values_name_the_key(override: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(REPO / "config" / "demo.yaml", override)
    assert expected in one_line(str(err.value))


# ---------------------------------------------------------------- models


def _with_metadata(src: onnx.ModelProto, path: Path, **changes: str) -> Path:
    for p in src.metadata_props:
        if p.key in changes:
            p.value = changes[p.key]
    onnx.save(src, str(path))
    return path


def test_model_whose_bands_differ_from_the_composite_bands(tmp_path: Path) -> None:
    model = _with_metadata(onnx.load(str(MODEL)), tmp_path / "m.onnx",
                           **{"jointseg.bands_20m": '["B05", "B06", "B07", "B8A"]'})
    with pytest.raises(ModelError) as err:
        make_session(model, providers=("cpu",))
    assert one_line(str(err.value)) == (
        f"{model}: jointseg.bands_20m is ['B05', 'B06', 'B07', 'B8A'], expected "
        "['B05', 'B06', 'B07', 'B8A', 'B11', 'B12'] (the composite bands)")


def test_model_whose_input_channels_differ_from_the_bands(tmp_path: Path) -> None:
    # Correct metadata, but s2_20m takes 4 channels (an identity graph is enough to load).
    graph = helper.make_graph(
        [helper.make_node("Identity", ["s2_10m"], ["isa_logit"]),
         helper.make_node("Identity", ["s2_20m"], ["sr"])], "g",
        [helper.make_tensor_value_info("s2_10m", TensorProto.FLOAT, ["n", 5, "h", "w"]),
         helper.make_tensor_value_info("s2_20m", TensorProto.FLOAT, ["n", 4, "h2", "w2"])],
        [helper.make_tensor_value_info("isa_logit", TensorProto.FLOAT, ["n", 5, "h", "w"]),
         helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["n", 4, "h2", "w2"])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    for p in onnx.load(str(MODEL)).metadata_props:
        proto.metadata_props.add(key=p.key, value=p.value)
    path = tmp_path / "four.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelError) as err:
        make_session(path, providers=("cpu",))
    assert one_line(str(err.value)) == (
        f"{path}: input s2_20m takes 4 channels, expected 6 (B05 B06 B07 B8A B11 B12)")


def test_onnx_file_that_is_not_a_model_cli(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01garbage")
    c10 = write_cog(tmp_path / "t_10m.tif", np.ones((5, 24, 24), np.uint16), G10,
                    band_names=["B02", "B03", "B04", "B08", "COUNT"])
    write_cog(tmp_path / "t_20m.tif", np.ones((6, 12, 12), np.uint16), G20,
              band_names=["B05", "B06", "B07", "B8A", "B11", "B12"])
    res = CliRunner().invoke(main, ["predict", "--model", str(junk), "--input", str(c10),
                                    "--output", str(tmp_path / "o.tif"), "--no-progress"])
    assert res.exit_code == 1
    assert one_line(res.output).startswith(f"Error: {junk}: not a loadable ONNX model (")


# ---------------------------------------------------------------- all nodata


def test_all_nodata_tile_gives_nodata_products_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c10 = write_cog(tmp_path / "t_10m.tif", np.zeros((5, 24, 24), np.uint16), G10, nodata=0,
                    band_names=["B02", "B03", "B04", "B08", "COUNT"])
    write_cog(tmp_path / "t_20m.tif", np.zeros((6, 12, 12), np.uint16), G20, nodata=0,
              band_names=["B05", "B06", "B07", "B8A", "B11", "B12"])
    with caplog.at_level(logging.WARNING, logger="jointseg.inference.products"):
        res = CliRunner().invoke(main, [
            "predict", "--model", str(MODEL), "--input", str(c10), "--output",
            str(tmp_path / "isa.tif"), "--prob-output", str(tmp_path / "p.tif"),
            "--no-progress", "--threads", "1", "--providers", "cpu"])
    assert res.exit_code == 0, res.output
    for name in ("isa.tif", "p.tif"):
        with rasterio.open(tmp_path / name) as ds:
            assert (ds.read(1) == 255).all() and ds.nodata == 255
    assert any("no valid 10 m pixel" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- disk full

_DISK_FULL = r"""
import resource, signal, sys
from pathlib import Path
import numpy as np
from jointseg.grid import Tile
from jointseg.io import OutputError, write_cog, write_json
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
out = Path(sys.argv[1])
data = np.random.default_rng(0).integers(0, 60000, (2, 600, 600), dtype=np.uint16)
for write in (lambda: write_cog(out / "big.tif", data, Tile.at(32633, 0, 0, 6000).geobox(10)),
              lambda: write_json(out / "big.json", {"x": "y" * 200_000})):
    try:
        write()
        print("WROTE")
    except OutputError as exc:
        print("OutputError:", exc)
"""


def test_disk_full_fails_cleanly_without_partial_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "big.json").write_text('{"old": true}\n')  # an older complete version survives
    proc = subprocess.run([sys.executable, "-c", _DISK_FULL, str(out)], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stderr
    assert lines[0].startswith(f"OutputError: {out / 'big.tif'}: write failed, no file written (")
    assert lines[1].startswith(f"OutputError: {out / 'big.json'}: write failed, no file written "
                               "(")
    assert sorted(p.name for p in out.iterdir()) == ["big.json"]  # no big.tif, no *.part
    assert json.loads((out / "big.json").read_text()) == {"old": True}
