"""The offset of a band directory (jointseg.inference.boa): from the product metadata of
a .SAFE layout, from the baseline in the path, else 0; and open_scene applies it.

The band files are the real BigEarthNet patch (2017, baseline 02.05: no offset) copied
into a baseline-04.00-style layout with a metadata file written here in ESA's format.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from jointseg.inference.boa import OffsetError, band_dir_offset, metadata_offset
from jointseg.inference.scene import SceneError, open_scene

PATCH = (Path(__file__).parent / "data" / "bigearthnet" / "S2A_MSIL2A_20170613T101031_87_48")
NS = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"


def mtd(offsets: dict[int, str] | None) -> str:
    """An MTD_MSIL2A.xml as ESA writes it (namespaced root, un-prefixed children)."""
    items = "".join(f'<BOA_ADD_OFFSET band_id="{i}">{v}</BOA_ADD_OFFSET>'
                    for i, v in (offsets or {}).items())
    listing = f"<BOA_ADD_OFFSET_VALUES_LIST>{items}</BOA_ADD_OFFSET_VALUES_LIST>" if offsets else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><n1:Level-2A_User_Product xmlns:n1="{NS}">'
            "<n1:General_Info><Product_Info><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>"
            f"</Product_Info><Product_Image_Characteristics>{listing}"
            "</Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>")


def safe_layout(root: Path, name: str, offsets: dict[int, str] | None) -> Path:
    """Copy the patch's bands into NAME.SAFE/GRANULE/L2A_T/IMG_DATA/R10m with an MTD."""
    safe = root / name
    bands = safe / "GRANULE" / "L2A_T32TQM" / "IMG_DATA" / "R10m"
    shutil.copytree(PATCH, bands)
    if offsets is not None:
        (safe / "MTD_MSIL2A.xml").write_text(mtd(offsets))
    return bands


ALL_1000 = {i: "-1000" for i in range(13)}
SAFE_N0509 = "S2A_MSIL2A_20230613T101031_N0509_R022_T32TQM_20230613T140000.SAFE"
#: the first baseline with the offset (04.00) and the last without (03.99)
SAFE_N0400 = "S2A_MSIL2A_20220126T101031_N0400_R022_T32TQM_20220126T140000.SAFE"
SAFE_N0399 = "S2A_MSIL2A_20220124T101031_N0399_R022_T32TQM_20220124T140000.SAFE"


def test_offset_from_metadata_and_applied_to_every_nonzero_dn(tmp_path: Path) -> None:
    bands = safe_layout(tmp_path, SAFE_N0509, ALL_1000)
    assert band_dir_offset(bands, ("B02", "B11"))[0] == -1000
    with open_scene(PATCH) as plain, open_scene(bands) as shifted:
        a10, a20 = plain.read_all()
        b10, b20 = shifted.read_all()
    for a, b in ((a10[:4], b10[:4]), (a20, b20)):
        nz = a > 0
        np.testing.assert_array_equal(b[nz], np.maximum(a[nz] - 1000, 1))
        assert (b[~nz] == 0).all()
    np.testing.assert_array_equal(a10[4], b10[4])  # COUNT: validity unchanged


def test_old_baseline_or_no_evidence_is_zero(tmp_path: Path) -> None:
    old = safe_layout(tmp_path, "S2A_MSIL2A_20170613T101031_N0205_R022_T32TQM.SAFE", {})
    assert band_dir_offset(old, ("B02",))[0] == 0  # MTD without offset elements
    named = safe_layout(tmp_path / "n", SAFE_N0509, None)
    assert band_dir_offset(named, ("B02",)) == (-1000, "processing baseline in the path")
    assert band_dir_offset(PATCH, ("B02",))[0] == 0


@pytest.mark.parametrize(("name", "offset"), [
    (SAFE_N0399, 0),  # 03.99: the last baseline without the offset
    (SAFE_N0400, -1000),  # 04.00: the first baseline with it (ESA, 25 January 2022)
    (SAFE_N0509, -1000),
    ("S2B_MSIL2A_20220101T000000_N0400", -1000),  # product id at the end of a folder name
    ("S2B_MSIL2A_20220101T000000_N0400.SAFE", -1000),
    ("S2B_MSIL2A_20210101T000000_N0300.SAFE", 0),
])
def test_baseline_in_the_path_at_the_04_00_boundary(tmp_path: Path, name: str,
                                                    offset: int) -> None:
    bands = safe_layout(tmp_path, name, None)  # no metadata: the path is the evidence
    assert band_dir_offset(bands, ("B02",)) == (offset, "processing baseline in the path")


def test_bad_metadata_names_the_file(tmp_path: Path) -> None:
    bands = safe_layout(tmp_path, SAFE_N0509, {1: "-1000", 2: "-900"})
    with pytest.raises(OffsetError, match=r"MTD_MSIL2A.xml: the bands' offsets differ"):
        metadata_offset(tmp_path / SAFE_N0509 / "MTD_MSIL2A.xml", ("B02", "B03"))
    with pytest.raises(SceneError, match="MTD_MSIL2A.xml"):
        open_scene(bands)
    (tmp_path / SAFE_N0509 / "MTD_MSIL2A.xml").write_text("<not xml")
    with pytest.raises(SceneError, match="MTD_MSIL2A.xml: cannot read product metadata"):
        open_scene(bands)
