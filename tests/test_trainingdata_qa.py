"""qa.json and qa.png from a ChipReport (accepted + rejected chips, two HR blocks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jointseg.trainingdata import ChipReport, ChipSettings
from jointseg.trainingdata.qa import SCHEMA, write_qa


def test_qa_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    s2 = rng.uniform(300, 3000, 200)
    report = ChipReport(tmp_path, ChipSettings())
    report.samples = {"hr.tif": {b: [list(s2 * 1.02), list(s2)] for b in ("R", "G", "B")}}
    report.hr_files = [{"path": "hr.tif", "status": "ok", "fit": {}, "blocks": [
        {"tile": "t_10m.tif", "hr_shift_m": [2.0, -1.0], "correlation": 0.9, "n": 900,
         "status": "ok"},
        {"tile": "u_10m.tif", "hr_shift_m": [31.0, 5.0], "correlation": 0.8, "n": 900,
         "status": "rejected: shift 31.4 m > max 30 m"}]}]
    report.chips = [{"chip_id": f"32650_{x}_0", "split": s, "crs": "EPSG:32650", "xmin": x,
                     "ymin": 0, "size_m": 320, "hr_shift_m": [2.0, -1.0], "isa_fraction": 0.3}
                    for x, s in ((0, "train"), (320, "val"), (640, "test"))]
    report.rejected = [{"chip_id": "32650_960_0", "crs": "EPSG:32650", "xmin": 960, "ymin": 0,
                        "reason": "hr: rejected: shift 31.4 m > max 30 m"}]
    write_qa(tmp_path, report)
    qa = json.loads((tmp_path / "qa.json").read_text())
    assert qa["schema"] == SCHEMA
    assert qa["summary"] == {"chips": 3, "rejected": 1,
                             "splits": {"train": 1, "val": 1, "test": 1},
                             "label_refine": None}  # this report ran no refinement
    assert qa["chips"][0]["hr_shift_m"] == [2.0, -1.0]
    assert "samples" not in qa  # plot data stay out of the JSON
    png = (tmp_path / "qa.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 20_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.json", "qa.png"]
