import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from jointseg.grid import Tile
from jointseg.io import OutputError, atomic_path, remove_stale_parts, write_cog, write_json


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


def test_stale_parts_of_the_same_final_path_are_removed_by_the_next_write(tmp_path):
    old = 1_000_000_000  # 2001: before this process started
    stale = [tmp_path / ".out.json.abcd1234.part", tmp_path / ".out.json.z_9y8x7w.part"]
    kept = [
        tmp_path / ".out.json.x.abcd1234.part",  # the temp file of "out.json.x"
        tmp_path / ".other.json.abcd1234.part",  # of another final path
        tmp_path / ".out.json.abcd1234.tmp",  # not atomic_path's pattern
        tmp_path / "out.json.abcd1234.part",  # no leading dot
        tmp_path / ".out.json.fresh123.part",  # modified since this process started
    ]
    for p in stale + kept:
        p.write_text("half")
    for p in stale + kept[:-1]:
        os.utime(p, (old, old))
    write_json(tmp_path / "out.json", {"v": 1})
    assert json.loads((tmp_path / "out.json").read_text()) == {"v": 1}
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    # only the pattern's own files, and nothing when there is nothing to remove
    assert remove_stale_parts(tmp_path, "out.json") == []
    assert remove_stale_parts(tmp_path / "missing", "out.json") == []


def test_stale_part_of_a_killed_writer_is_removed_on_rerun(tmp_path):
    final = tmp_path / "b.tif"
    code = ("import os, sys\nfrom jointseg.io import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half')\n    os._exit(9)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(final)], timeout=60)
    assert proc.returncode == 9
    parts = list(tmp_path.glob(".b.tif.*.part"))
    assert len(parts) == 1 and not final.exists()
    # the next run (a new process, as a rerun is) removes it before writing
    code = ("import sys\nfrom jointseg.io import write_json\n"
            "write_json(sys.argv[1], {'v': 2})\n")
    subprocess.run([sys.executable, "-c", code, str(final)], timeout=60, check=True)
    assert not parts[0].exists() and json.loads(final.read_text()) == {"v": 2}
    assert not list(tmp_path.glob(".*part"))


def test_stale_staging_folder_of_a_killed_predict_is_removed(tmp_path):
    old = time.time() - 3600
    stale = tmp_path / ".t_isa.tif.ab12cd34"  # tempfile.mkdtemp(prefix=".t_isa.tif.")
    other = tmp_path / ".u_isa.tif.ab12cd34"  # another output's staging folder
    fresh = tmp_path / ".t_isa.tif.zz99yy88"  # made since this process started
    for d in (stale, other, fresh):
        d.mkdir()
        (d / "binary.tif").write_text("half")
    for d in (stale, other):
        os.utime(d, (old, old))
    part = tmp_path / ".t_isa.tif.ab12cd34.part"  # a file: not a staging folder
    part.write_text("half")
    os.utime(part, (old, old))
    removed = remove_stale_parts(tmp_path, "t_isa.tif", suffix="", dirs=True)
    assert removed == [stale] and not stale.exists()
    assert other.exists() and fresh.exists() and part.exists()
