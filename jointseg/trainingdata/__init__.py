"""Paired training chips from a user's own HR imagery, labels and composite tiles.

Modules, one concept each: :mod:`.settings` (ChipSettings, defaults, errors),
:mod:`.hr` (HR rasters), :mod:`.labels` and :mod:`.osm` (label sources),
:mod:`.coregister` (phase correlation), :mod:`.harmonise` (radiometric fit),
:mod:`.splits` (spatial-block splits), :mod:`.cut` (composites, chip grid, chip
writer), :mod:`.qa` (qa.json, qa.png) and :mod:`.build` (:func:`make_chips`).
See docs/training-data.md.
"""

from jointseg.trainingdata.build import INDEX_COLUMNS, ChipReport, make_chips
from jointseg.trainingdata.settings import ChipSettings, TrainingDataError

__all__ = ["INDEX_COLUMNS", "ChipReport", "ChipSettings", "TrainingDataError", "make_chips"]
