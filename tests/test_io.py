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
from jointseg.io import (
    IntegrityError,
    OutputError,
    atomic_path,
    checksum_path,
    output_guard,
    remove_stale_parts,
    scratch_dir,
    sha256_file,
    verify_file,
    write_cog,
    write_json,
)
from tests.test_integrity import corrupt_middle
from tests.tmpfs import fill, listing, small_tmpfs


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


# --- integrity: sha256 sidecars (issue 22 item 1) ------------------------------------


def test_write_cog_records_a_sha256_sidecar_that_verify_file_checks(tmp_path):
    gb = Tile.at(32650, 663000, 3543000, 600).geobox(10)
    data = (np.arange(60 * 60) % 251).astype("uint16").reshape(60, 60)
    p = write_cog(tmp_path / "c.tif", data, gb, nodata=0)
    side = checksum_path(p)
    assert side == tmp_path / "c.tif.sha256"
    # sha256sum format: the digest of the file's bytes and its name
    assert side.read_text() == f"{sha256_file(p)}  c.tif\n"
    assert verify_file(p) == sha256_file(p)
    st = p.stat()
    corrupt_middle(p)
    assert p.stat().st_size == st.st_size and p.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(IntegrityError) as err:
        verify_file(p, remedy="rerun composite")
    msg = str(err.value)
    assert msg == (f"{p}: sha256 mismatch with {side} (file changed after it was written): "
                   "rerun composite") and "\n" not in msg
    # a rewrite by our writers records the new bytes; one without checksum drops the sidecar
    write_cog(p, data, gb, nodata=0)
    assert verify_file(p) == sha256_file(p)
    with atomic_path(p) as tmp:
        tmp.write_bytes(b"other bytes")
    assert not side.exists() and verify_file(p) is None  # no record: not checked
    assert not list(tmp_path.glob(".*"))


def test_verify_file_names_a_missing_file_and_a_bad_sidecar(tmp_path):
    p = tmp_path / "m.onnx"
    with atomic_path(p, checksum=True) as tmp:
        tmp.write_bytes(b"model")
    assert verify_file(p) == sha256_file(p)
    assert verify_file(p, expected=sha256_file(p), recorded_in="manifest.json")
    with pytest.raises(IntegrityError, match=r"m\.onnx: sha256 mismatch with manifest\.json"):
        verify_file(p, expected="0" * 64, recorded_in="manifest.json")
    checksum_path(p).write_text("not a digest\n")
    with pytest.raises(IntegrityError, match=r"m\.onnx\.sha256: not a sha256 checksum file"):
        verify_file(p)
    p.unlink()
    with pytest.raises(IntegrityError, match=r"m\.onnx: missing"):
        verify_file(p, expected="0" * 64, recorded_in="manifest.json")


# --- leftovers (issue 22 item 4) ------------------------------------------------------


def test_gdal_temporaries_of_a_killed_write_are_removed_by_the_next_write(tmp_path):
    """A kill -9 while GDAL builds a COG's overviews leaves ``.<name>.XXXXXXXX.part.ovr.tmp``
    beside the part; the next write of the same output removes both (and only those)."""
    old = time.time() - 3600
    stale = [tmp_path / ".b.tif.ab12cd34.part", tmp_path / ".b.tif.ab12cd34.part.ovr.tmp",
             tmp_path / ".b.tif.ab12cd34.part.msk.ovr.tmp",
             tmp_path / ".b.tif.zz99yy88.part.aux.xml",
             tmp_path / ".b.tif.sha256.ab12cd34.part"]  # of the checksum sidecar
    kept = [tmp_path / ".c.tif.ab12cd34.part.ovr.tmp",  # another output's
            tmp_path / ".b.tif.ab12cd34.ovr.tmp",  # not a part of ours
            tmp_path / ".b.tif.x.ab12cd34.part.ovr.tmp"]  # the part of "b.tif.x"
    for p in stale + kept:
        p.write_bytes(b"half")
        os.utime(p, (old, old))
    gb = Tile.at(32650, 663000, 3543000, 600).geobox(10)
    write_cog(tmp_path / "b.tif", np.ones((60, 60), "uint8"), gb)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)


def test_a_killed_cog_write_leaves_nothing_after_the_rerun(tmp_path):
    """kill -9 of a real write_cog in the middle of its overviews, then a rerun."""
    final = tmp_path / "k.tif"
    code = ("import os, sys, numpy as np, rasterio.shutil\n"
            "from jointseg import io\nfrom jointseg.grid import Tile\n"
            "real = rasterio.shutil.copy\n"
            "def copy(src, dst, **kw):\n"
            "    open(str(dst) + '.ovr.tmp', 'wb').write(b'x' * 100000)  # GDAL's temporary\n"
            "    os._exit(9)\n"
            "io.rasterio.shutil.copy = copy\n"
            "gb = Tile.at(32650, 663000, 3543000, 600).geobox(10)\n"
            "io.write_cog(sys.argv[1], np.ones((60, 60), 'uint8'), gb)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(final)], timeout=120)
    assert proc.returncode == 9
    assert len(list(tmp_path.glob(".k.tif.*.part.ovr.tmp"))) == 1 and not final.exists()
    code = ("import sys, numpy as np\nfrom jointseg.io import write_cog\n"
            "from jointseg.grid import Tile\n"
            "write_cog(sys.argv[1], np.ones((60, 60), 'uint8'),"
            " Tile.at(32650, 663000, 3543000, 600).geobox(10))\n")
    subprocess.run([sys.executable, "-c", code, str(final)], timeout=120, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.tif", "k.tif.sha256"]


def test_scratch_dir_is_removed_on_exit_on_error_and_after_a_kill(tmp_path):
    final = tmp_path / "m.tif"
    with scratch_dir(final) as d:
        (d / "x.vrt").write_text("<VRTDataset/>")
    assert not d.exists()
    with pytest.raises(RuntimeError), scratch_dir(final) as d:
        raise RuntimeError("boom")
    assert not d.exists()
    left = tmp_path / ".m.tif.ab12cd34"  # a killed mosaic's
    left.mkdir()
    old = time.time() - 3600
    os.utime(left, (old, old))
    with scratch_dir(final):
        assert not left.exists()
    assert list(tmp_path.iterdir()) == []


# --- full disks (issue 22 item 3) ------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path):
    """A 20 MiB tmpfs (skipped where mounting is refused), unmounted afterwards."""
    with small_tmpfs(tmp_path / "tmpfs") as d:
        yield d


def test_write_cog_on_a_full_disk_is_one_line_and_leaves_nothing(full_disk):
    gb = Tile.at(32650, 663000, 3543000, 3000).geobox(1)
    noise = np.random.default_rng(0).integers(0, 65535, (3, 3000, 3000), dtype="uint16")
    with pytest.raises(OutputError) as err:
        write_cog(full_disk / "big.tif", noise, gb)  # 54 MB of noise into 20 MiB
    msg = str(err.value)
    assert msg.startswith(f"{full_disk / 'big.tif'}: write failed, no file written (")
    assert "\n" not in msg
    assert listing(full_disk) == []


def test_atomic_path_on_a_full_disk_names_the_final_path(full_disk):
    fill(full_disk, leave=8192)
    with pytest.raises(OutputError) as err, atomic_path(full_disk / "q.png") as tmp:
        tmp.write_bytes(b"\x89PNG" * 100_000)
    assert str(err.value).startswith(f"{full_disk / 'q.png'}: write failed, no file written "
                                     "(No space left on device")
    assert listing(full_disk) == ["filler"]


def test_output_guard_removes_what_the_step_wrote_when_a_later_file_fails(full_disk):
    a, b, c = full_disk / "m.tif", full_disk / "m.json", full_disk / "m.png"
    write_json(c, {"old": True})  # an older output the failing step never reached
    with pytest.raises(OutputError) as err, output_guard(a, b, None, c):
        with atomic_path(a, checksum=True) as tmp:
            tmp.write_bytes(b"map")
        write_json(b, {"v": 1})
        fill(full_disk)
        with open(full_disk / "more", "wb") as f:  # a raw write: ENOSPC, no path in it
            f.write(b"x" * 1_000_000)
    assert str(err.value).startswith(f"{a} (and 2 other output(s) of this step): write "
                                     "failed, no file written (No space left on device")
    assert not a.exists() and not b.exists() and not checksum_path(a).exists()
    assert json.loads(c.read_text()) == {"old": True}
    # other errors pass through unchanged, after the same clean-up
    with pytest.raises(KeyError), output_guard(a):
        with atomic_path(a) as tmp:
            tmp.write_bytes(b"")
        raise KeyError("x")
    assert not a.exists()
