"""Issue 11's "done when", on SIMULATED data (numbers test the software, not real-world
accuracy): an HR image make_chips has not seen (8-bit, EPSG:4326, its own DN scale, a
few metres off), GeoPackage labels (label_noise="clean") and a composite tile, all from
one simulated 1920 m landscape (jointseg.simulate.sources.write_training_sources).
The chips must meet: labels IoU >= 0.85 against the truth; the HR aggregated to 10 m
correlates with the composite, r >= 0.93 averaged over R, G, B; HR / composite mean ratio
within 0.8-1.25 in every band; the reported shift within 3 m of the true one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from jointseg.bands import SR_BANDS, SR_FROM_S2
from jointseg.simulate.sources import write_training_sources
from jointseg.trainingdata import ChipSettings, make_chips
from jointseg.trainingdata.settings import RefineSettings
from tests.trainingdata_factory import simulate_town, write_composite

SIZE_M = 1920
N_DATES = 10  # a composite of few dates keeps cloud residue that no HR can match


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("acceptance")
    rng = np.random.default_rng(7)
    ls, scene = simulate_town(SIZE_M, rng, N_DATES, origin=(660000, 3540000), core_frac=0.5)
    grid, hr = scene.grid_1m, scene.hr
    c10 = write_composite(scene, d)
    info = write_training_sources(ls, grid, d / "sources", rng, year=2021,
                                  label_noise="clean", hr=hr)
    # the cut as such, against the truth: no label refinement (test_trainingdata_refine)
    report = make_chips([info.hr], info.labels, [c10], d / "chips",
                        ChipSettings(refine=RefineSettings(method="none")))
    return {"truth": ls.isa, "grid": grid, "info": info, "report": report,
            "chips": d / "chips"}


def _chip_arrays(root: Path, chip_id: str) -> tuple[np.ndarray, ...]:
    out = []
    for name in ("hr", "label", "s2_10m"):
        with rasterio.open(root / chip_id / f"{name}.tif") as ds:
            out.append(ds.read())
            bounds = ds.bounds
    return (*out, bounds)


def test_done_when(made: dict) -> None:
    report, grid = made["report"], made["grid"]
    assert len(report.chips) == (SIZE_M // 320) ** 2
    inter = union = 0
    hr10, s2 = [], []
    for chip in report.chips:
        hr, label, s10, bounds = _chip_arrays(made["chips"], chip["chip_id"])
        row0 = round(grid.bounds[3] - bounds.top)
        col0 = round(bounds.left - grid.bounds[0])
        truth = made["truth"][row0:row0 + 320, col0:col0 + 320]
        ok = label[0] != 255
        inter += int(((label[0] == 1) & (truth == 1) & ok).sum())
        union += int((((label[0] == 1) | (truth == 1)) & ok).sum())
        blocks = hr.reshape(4, 32, 10, 32, 10).astype(np.float64)
        full = (blocks > 0).all(axis=(0, 2, 4))
        mean10 = blocks.mean(axis=(2, 4))
        hr10.append(mean10[:, full])
        s2.append(s10[[("B02", "B03", "B04", "B08").index(SR_FROM_S2[b]) for b in SR_BANDS]]
                  [:, full].astype(np.float64))
    hr10, s2 = np.concatenate(hr10, 1), np.concatenate(s2, 1)
    iou = inter / union
    r = [float(np.corrcoef(hr10[b], s2[b])[0, 1]) for b in range(4)]
    ratio = [float(hr10[b].mean() / s2[b].mean()) for b in range(4)]
    true = np.array(made["info"].hr_shift_m)
    err = max(float(np.hypot(*(np.array(c["hr_shift_m"]) - true))) for c in report.chips)
    print(json.dumps({"simulated": True, "iou": iou, "r_RGBNIR": r, "r_mean_RGB": np.mean(r[:3]),
                      "ratio_RGBNIR": ratio, "shift_true": true.tolist(),
                      "shift_found": report.chips[0]["hr_shift_m"], "shift_error_m": err}))
    assert iou >= 0.85
    assert np.mean(r[:3]) >= 0.93
    assert all(0.8 <= v <= 1.25 for v in ratio)
    assert err <= 3.0


def test_qa_reports_the_fit_and_shift(made: dict) -> None:
    qa = json.loads((made["chips"] / "qa.json").read_text())
    fit = qa["hr_files"][0]["fit"]
    assert set(fit) == {"R", "G", "B", "NIR"} and all(f["n"] > 10_000 for f in fit.values())
    assert qa["hr_files"][0]["blocks"][0]["status"] == "ok"
    assert all(len(c["hr_shift_m"]) == 2 for c in qa["chips"])
