import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from jointseg.grid import Tile
from jointseg.io import OutputError, atomic_path, write_cog, write_json


def test_write_cog_is_valid_cog_with_metadata(tmp_path):
    gb = Tile.at(32650, 663000, 3543000, 1200).geobox(1)
    data = (np.arange(1200 * 1200) % 251).astype("uint8").reshape(1200, 1200)
    p = write_cog(tmp_path / "a.tif", data, gb, nodata=255, band_names=["isa"],
                  tags={"K": "v"}, scales=[0.5], blocksize=256)
    ok, errors, _ = cog_validate(str(p), quiet=True)
    assert ok, errors
    with rasterio.open(p) as ds:
        assert ds.crs.to_epsg() == 32650 and ds.transform == gb.transform
        assert ds.descriptions == ("isa",) and ds.tags()["K"] == "v"
        assert ds.scales == (0.5,) and ds.nodata == 255
        assert ds.overviews(1)  # internal overviews were built
        np.testing.assert_array_equal(ds.read(1), data)
    assert not list(tmp_path.glob(".*part"))
    assert p.stat().st_mode & 0o044  # readable by others, as with a plain open()


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    final = tmp_path / "out.json"
    write_json(final, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half-writ")
        raise RuntimeError("killed")
    assert final.read_text().strip().startswith("{") and '"v": 1' in final.read_text()
    assert not list(tmp_path.glob(".*part"))


def test_failed_validation_leaves_no_final_file(tmp_path):
    def reject(p):
        raise OutputError("nope")

    with pytest.raises(OutputError), atomic_path(tmp_path / "x.tif", validate=reject) as tmp:
        tmp.write_bytes(b"II*\x00garbage")
    assert not (tmp_path / "x.tif").exists()


def test_shape_mismatch_is_an_error(tmp_path):
    gb = Tile.at(32650, 0, 0, 600).geobox(10)
    with pytest.raises(ValueError, match="array shape"):
        write_cog(tmp_path / "b.tif", np.zeros((10, 10), "uint8"), gb)
