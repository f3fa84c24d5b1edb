"""Cut the small real WorldCover window used by the fast tests.

Reads the real ESA WorldCover 2020 v100 tile N00E006 from the project's shared sample
data (``../shared/data/worldcover`` beside the repository) and writes a 600 x 600 px
window around São Tomé city (lon 6.70-6.75 E, lat 0.31-0.36 N) unchanged: same
pixels, same grid (EPSG:4326, 1/12000 degree), same tags, plus ``cutout_of`` and
``cutout_window`` tags. Run from the repository root::

    .venv/bin/python tests/data/worldcover/make.py
"""

from __future__ import annotations

from pathlib import Path

import rasterio
from rasterio.windows import Window

HERE = Path(__file__).resolve().parent
TILE = "ESA_WorldCover_10m_2020_v100_N00E006_Map.tif"
SHARED = HERE.parents[2].parent / "shared" / "data" / "worldcover" / TILE
ROW_OFF, COL_OFF, SIZE = 31680, 8400, 600  # rows from 3.0 N, cols from 6.0 E
OUT = HERE / f"ESA_WorldCover_10m_2020_v100_N00E006_cutout_r{ROW_OFF}_c{COL_OFF}_{SIZE}px.tif"


def main() -> None:
    window = Window(COL_OFF, ROW_OFF, SIZE, SIZE)
    with rasterio.open(SHARED) as src:
        data = src.read(1, window=window)
        profile = src.profile
        profile.update(width=SIZE, height=SIZE, transform=src.window_transform(window),
                       blockxsize=256, blockysize=256, compress="deflate")
        tags = src.tags()
    with rasterio.open(OUT, "w", **profile) as dst:
        dst.write(data, 1)
        dst.update_tags(**tags, cutout_of=TILE,
                        cutout_window=f"row_off={ROW_OFF} col_off={COL_OFF} size={SIZE}")
    print(f"wrote {OUT.name}: {(data == 50).mean():.3f} built-up, {(data == 0).sum()} nodata px")


if __name__ == "__main__":
    main()
