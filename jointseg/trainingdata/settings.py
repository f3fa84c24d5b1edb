"""Settings, errors and the band table of ``jointseg chips`` (paired training chips).

Defaults come from the config schema (``training_data.chips.*``): one definition for
the library, the CLI's option defaults and the workflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from jointseg.bands import SR_BANDS, SR_FROM_S2
from jointseg.config import schema_default


def _schema(key: str):
    return schema_default(f"training_data.chips.{key}")


#: Default chip side (m); a multiple of 20 m so the 20 m grid tiles it exactly.
CHIP_SIZE_M = int(_schema("chip_size_m"))
#: A chip is kept where HR and labels both cover at least this fraction of it.
MIN_COVERAGE = float(_schema("min_coverage"))
#: Co-registration: shifts larger than this (m) reject the HR block.
MAX_SHIFT_M = float(_schema("max_shift_m"))
#: Co-registration: a Pearson r (10 m, after the shift) below this rejects the HR block.
MIN_CORRELATION = float(_schema("min_correlation"))
#: Side (m) of the square blocks that share one split.
SPLIT_BLOCK_M = int(_schema("split_block_m"))
#: train / val / test fractions of the split blocks.
SPLIT_FRACTIONS = tuple(_schema("split_fractions"))
#: Label pixels closer than this (m) to a label edge are 255 (0 = none).
IGNORE_EDGE_M = float(_schema("ignore_edge_m"))
#: Seed of the split assignment.
SEED = int(_schema("seed"))
#: The HR file's band order by default.
HR_BANDS = tuple(_schema("hr_bands").split(","))
#: HR resolutions accepted (m).
HR_RES_RANGE_M = (0.3, 2.0)
#: The chips' HR resolution (m): the model's 1 m output grid.
HR_RES_M = 1.0
#: Label refinement methods (:mod:`jointseg.trainingdata.refine`).
REFINE_METHODS = ("pu-teacher", "none")


class TrainingDataError(ValueError):
    """Bad input to ``jointseg chips``; the message names the file and the problem."""


@dataclass(frozen=True)
class RefineSettings:
    """Settings of :func:`jointseg.trainingdata.refine.refine_chips` (schema
    ``training_data.chips.refine``).

    Attributes:
        method: ``pu-teacher`` (a small HR -> ISA teacher trained on the map labels,
            calibrated as positive-unlabelled) or ``none`` (labels as cut).
        steps: teacher optimiser steps (batches of 16 crops of 64 x 64 px).
        margin: the teacher decides a pixel only where its calibrated probability is at
            least ``margin`` away from 0.5; elsewhere the map label stays.
        seed: seed of the teacher (weights, crops, hold-out chips).
    """

    method: str = str(_schema("refine.method"))
    steps: int = int(_schema("refine.steps"))
    margin: float = float(_schema("refine.margin"))
    seed: int = int(_schema("refine.seed"))

    def __post_init__(self) -> None:
        if self.method not in REFINE_METHODS:
            raise TrainingDataError(
                f"--refine {self.method}: expected one of {', '.join(REFINE_METHODS)}")
        if self.steps < 1:
            raise TrainingDataError(f"--refine-steps {self.steps}: need at least 1")
        if not 0.0 <= self.margin < 0.5:
            raise TrainingDataError(f"--refine-margin {self.margin}: need 0 <= margin < 0.5")


@dataclass(frozen=True)
class ChipSettings:
    """Settings of :func:`jointseg.trainingdata.make_chips`.

    Attributes:
        hr_bands: names of the HR file's bands in file order, 3 or 4 of ``R G B NIR``.
        chip_size_m: chip side in metres (multiple of 20).
        min_coverage: minimum fraction of a chip covered by both HR and labels.
        max_shift_m: largest accepted HR displacement (m).
        min_correlation: smallest accepted 10 m correlation after co-registration.
        split_block_m: side of the spatial split blocks (m, at least ``chip_size_m``).
        split_fractions: train, val, test fractions (sum 1).
        seed: seed of the split assignment.
        ignore_edge_m: width (m) of the 255 band each side of label edges.
        highway_widths: overrides of the per-``highway``-class road widths (m); key
            ``default``: the width of classes the table does not name.
        refine: label refinement against the HR (:class:`RefineSettings`), run on the
            cut chips before the index and QA are written.
        progress: show progress bars.
    """

    hr_bands: tuple[str, ...] = HR_BANDS
    chip_size_m: int = CHIP_SIZE_M
    min_coverage: float = MIN_COVERAGE
    max_shift_m: float = MAX_SHIFT_M
    min_correlation: float = MIN_CORRELATION
    split_block_m: int = SPLIT_BLOCK_M
    split_fractions: tuple[float, float, float] = SPLIT_FRACTIONS
    seed: int = SEED
    ignore_edge_m: float = IGNORE_EDGE_M
    highway_widths: dict[str, float] = field(default_factory=dict)
    refine: RefineSettings = field(default_factory=RefineSettings)
    progress: bool = False

    def __post_init__(self) -> None:
        bands = tuple(self.hr_bands)
        if len(bands) not in (3, 4) or len(set(bands)) != len(bands) or not (
            {"R", "G", "B"} <= set(bands) <= set(SR_BANDS)
        ):
            raise TrainingDataError(
                f"--hr-bands {','.join(bands)}: need R, G, B and optionally NIR, each once")
        if self.chip_size_m <= 0 or self.chip_size_m % 20:
            raise TrainingDataError(
                f"chip size {self.chip_size_m} m is not a positive multiple of 20 m")
        if self.split_block_m < self.chip_size_m:
            raise TrainingDataError(
                f"split block {self.split_block_m} m is smaller than a chip "
                f"({self.chip_size_m} m)")
        fr = self.split_fractions
        if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
            raise TrainingDataError(f"split fractions {fr} must be 3 values >= 0 summing to 1")
        if not 0.0 < self.min_coverage <= 1.0:
            raise TrainingDataError(f"min coverage {self.min_coverage} is not in (0, 1]")
        if self.max_shift_m <= 0 or self.ignore_edge_m < 0:
            raise TrainingDataError("max shift must be > 0 and ignore edge >= 0 m")

    @property
    def s2_of_hr(self) -> tuple[str, ...]:
        """The composite band matched to each HR band, in HR file order."""
        return tuple(SR_FROM_S2[b] for b in self.hr_bands)

    def to_dict(self) -> dict:
        """JSON-ready settings (for qa.json)."""
        d = asdict(self)
        d["hr_bands"] = list(self.hr_bands)
        d["split_fractions"] = list(self.split_fractions)
        return d
