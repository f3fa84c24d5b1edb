"""One pass over a series of yearly ISA maps: counts, change codes, year of first ISA.

The maps (and probabilities, and reference rasters when given) are read in blocks of
:data:`BLOCK_ROWS` rows on one grid. Per block the temporal method
(:mod:`jointseg.assess.change.temporal`) makes all years consistent at once, ISA /
valid pixels are counted per group, change classes are computed per consecutive pair,
and new-ISA agreement with the reference is counted per period for the final maps and,
when a method is applied, for the raw maps too (its measured effect). Arrays held in
memory: one uint8 change map per period, the uint16 year of first ISA, and the uint8
trajectory of map and reference (bit i = ISA in the i-th year, 255 = nodata in a year)
for the change sample.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import rasterio
from tqdm import tqdm

from jointseg.assess.change.accuracy import TruthSeries, new_isa_counts
from jointseg.assess.change.maps import CHANGE_CLASSES, change_codes, first_isa_year
from jointseg.assess.change.temporal import TemporalSettings, fit_block
from jointseg.assess.groups import PolygonGroups
from jointseg.assess.rasters import BLOCK_ROWS, read_binary, read_grid
from jointseg.grid import GeoBox
from jointseg.metrics import BinaryCounts
from jointseg.products import NODATA_U8

log = logging.getLogger(__name__)

Pair = tuple[int, int]


class Tally:
    """Pixel counts per year / pair, per group kind (index 0 = no group) and group id."""

    def __init__(self, kinds: Sequence[tuple[str, tuple[str, ...]]], years: Sequence[int],
                 pairs: Sequence[Pair]) -> None:
        self.kinds = list(kinds)

        def zeros() -> dict[str, np.ndarray]:
            return {kind: np.zeros(len(names) + 1, np.int64) for kind, names in self.kinds}

        self.isa = {y: zeros() for y in years}
        self.raw = {y: zeros() for y in years}
        self.valid = {y: zeros() for y in years}
        self.trans = {p: {c: zeros() for c in CHANGE_CLASSES} for p in pairs}
        self.changed = dict.fromkeys(years, 0)

    def add_year(self, y: int, ids: Mapping[str, np.ndarray], cur: np.ndarray,
                 raw: np.ndarray) -> None:
        """Count ISA (after the rule and raw) and valid pixels of one year's block."""
        for kind, _ in self.kinds:
            k, size = ids[kind], self.isa[y][kind].size
            self.isa[y][kind] += np.bincount(k[cur == 1], minlength=size)
            self.raw[y][kind] += np.bincount(k[raw == 1], minlength=size)
            self.valid[y][kind] += np.bincount(k[cur != NODATA_U8], minlength=size)

    def add_pair(self, p: Pair, ids: Mapping[str, np.ndarray], codes: np.ndarray) -> None:
        """Count the change classes of one pair's block."""
        for c in CHANGE_CLASSES:
            for kind, _ in self.kinds:
                self.trans[p][c][kind] += np.bincount(
                    ids[kind][codes == c], minlength=self.trans[p][c][kind].size)


@dataclass
class ScanResult:
    """Arrays and counts of one scan (all on the maps' grid)."""

    change: dict[Pair, np.ndarray]
    first_year: np.ndarray
    map_bits: np.ndarray
    periods: list[Pair]
    accuracy: dict[str, dict[Pair, BinaryCounts]] = field(default_factory=dict)
    truth_bits: np.ndarray | None = None


def trajectory_bits(series: Mapping[int, np.ndarray]) -> np.ndarray:
    """uint8 bit i = ISA in the i-th year (sorted); 255 where any year is nodata."""
    years = sorted(series)
    out = np.zeros(series[years[0]].shape, np.uint8)
    bad = np.zeros(out.shape, bool)
    for i, y in enumerate(years):
        out |= ((series[y] == 1).astype(np.uint8) << i)
        bad |= series[y] == NODATA_U8
    out[bad] = NODATA_U8
    return out


def periods_of(years: Sequence[int]) -> list[Pair]:
    """Consecutive pairs, then first -> last when there are more than two years."""
    ys = sorted(years)
    pairs = list(zip(ys[:-1], ys[1:], strict=True))
    return pairs + ([(ys[0], ys[-1])] if len(ys) > 2 else [])


def _accumulate(acc: dict[Pair, BinaryCounts], periods: Sequence[Pair],
                maps: Mapping[int, np.ndarray], truth: Mapping[int, np.ndarray]) -> None:
    for y0, y1 in periods:
        acc[(y0, y1)] = acc[(y0, y1)] + new_isa_counts(maps[y0], maps[y1], truth[y0],
                                                       truth[y1])


def scan(
    maps: Mapping[int, str | os.PathLike], probs: Mapping[int, str | os.PathLike],
    geobox: GeoBox, groups: Sequence[PolygonGroups], tally: Tally, *,
    truth: Mapping[int, str | os.PathLike] | None = None,
    settings: TemporalSettings, cuts: Mapping[int, float], progress: bool,
) -> ScanResult:
    """Read every year block by block, apply the temporal method, count into ``tally``.

    Raises:
        RasterError: if a map or reference raster is not binary or cannot be opened.
    """
    years = sorted(maps)
    pairs = list(tally.trans)
    periods = periods_of(years)
    out = ScanResult({p: np.full(geobox.shape, NODATA_U8, np.uint8) for p in pairs},
                     np.zeros(geobox.shape, np.uint16),
                     np.full(geobox.shape, NODATA_U8, np.uint8), periods)
    kinds = (["map", "raw"] if settings.applied else ["map"]) if truth else []
    out.accuracy = {k: {p: BinaryCounts() for p in periods} for k in kinds}
    if truth:
        out.truth_bits = np.full(geobox.shape, NODATA_U8, np.uint8)
    with rasterio.Env(), TruthSeries(truth or {}, geobox) as ref:
        datasets = {y: rasterio.open(maps[y]) for y in years}
        prob_ds = {y: rasterio.open(probs[y]) for y in probs}
        try:
            nodatas = {y: read_grid(maps[y])[1] for y in years}
            for win in tqdm(list(geobox.row_windows(BLOCK_ROWS)), desc="change",
                            unit="block", disable=not progress):
                rows = slice(win.row_off, win.row_off + win.height)
                sub = geobox[win]
                ids = {"region": np.ones(sub.shape, np.int32),
                       **{g.kind: g.ids(sub) for g in groups}}
                raws = {y: read_binary(datasets[y], nodatas[y], win) for y in years}
                p = ({y: prob_ds[y].read(1, window=win) for y in prob_ds}
                     if settings.applied else {})
                final = fit_block(raws, p, cuts, settings)
                for y in years:
                    tally.changed[y] += int(np.count_nonzero(final[y] != raws[y]))
                    tally.add_year(y, ids, final[y], raws[y])
                for pr in pairs:
                    codes = change_codes(final[pr[0]], final[pr[1]])
                    out.change[pr][rows] = codes
                    tally.add_pair(pr, ids, codes)
                out.first_year[rows] = first_isa_year(final)
                out.map_bits[rows] = trajectory_bits(final)
                if truth:
                    t = {y: ref.read(y, win) for y in years}
                    _accumulate(out.accuracy["map"], periods, final, t)
                    if settings.applied:
                        _accumulate(out.accuracy["raw"], periods, raws, t)
                    out.truth_bits[rows] = trajectory_bits(t)
                log.info("change: rows %d-%d of %d done", win.row_off,
                         win.row_off + win.height, geobox.height)
        finally:
            for ds in [*datasets.values(), *prob_ds.values()]:
                ds.close()
    return out
