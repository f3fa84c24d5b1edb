"""The package layout stays navigable: stage subpackages, no module over 500 lines."""

from __future__ import annotations

from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "jointseg"
MAX_LINES = 500
STAGES = ("data", "model", "inference", "mosaic", "assess", "simulate", "view", "cli", "schemas",
          "trainingdata")


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_module_size(path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PKG.parent)} has {n} lines (> {MAX_LINES}): split it"


def test_stage_subpackages() -> None:
    for stage in STAGES:
        assert (PKG / stage / "__init__.py").is_file(), f"jointseg/{stage}/ is not a package"
    top = sorted(p.stem for p in PKG.glob("*.py"))
    # top level: only the cross-cutting concepts every stage shares
    assert set(top) <= {"__init__", "__main__", "bands", "batch", "config", "grid",
                        "identity", "io", "landcover", "metrics", "products", "provenance",
                        "regions", "settings"}, top
