import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jointseg.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, cfg):
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def base():
    return yaml.safe_load((REPO / "config" / "demo.yaml").read_text())


def test_default_config_is_valid_and_gets_defaults():
    cfg = load_config(REPO / "config" / "demo.yaml")
    assert cfg["year"] == 2021
    assert cfg["stac"]["demo_server"]["enabled"] is True
    assert cfg["download"]["retries"] == 5  # filled from the schema default
    assert cfg["bands"]["b20m"] == ["B05", "B06", "B07", "B8A", "B11", "B12"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"stac.provider": "sentinelhub"}, "key 'stac.provider': 'sentinelhub' is not one of"),
        ({"grid.tile_size_m": 1000}, "key 'grid.tile_size_m': 1000 is not a multiple of 60"),
        ({"stac.colection": "x"}, "key 'stac': Additional properties are not allowed"),
        ({"year": 2015}, "key 'year': 2015 is less than the minimum of 2017"),
        ({"regions.demo.bbox": [1, 2, 0, 3]}, "key 'regions.demo.bbox'"),
        ({"stac.date_window.start": "13-01"}, "key 'stac.date_window.start'"),
        ({"cloudmask.combine": "and"}, "key 'cloudmask.combine'"),
    ],
)
def test_bad_values_name_the_key(tmp_path, override, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_config(REPO / "config" / "demo.yaml", override)


def test_year_in_the_future_and_reversed_window(tmp_path):
    with pytest.raises(ConfigError, match="in the future"):
        load_config(REPO / "config" / "demo.yaml", {"year": 2099, "years": None})
    with pytest.raises(ConfigError, match="start 10-01 is after end 03-01"):
        load_config(REPO / "config" / "demo.yaml",
                    {"stac.date_window": {"start": "10-01", "end": "03-01"}})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("year: [2021\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_region_needs_bbox_or_aoi(tmp_path):
    cfg = base()
    cfg["regions"]["demo"] = {"bbox_crs": "EPSG:32650"}
    with pytest.raises(ConfigError, match="regions.demo"):
        load_config(write(tmp_path, cfg))


def test_check_config_cli_one_line_error(tmp_path):
    cfg = base()
    cfg["stac"]["max_scenes"] = 0
    r = subprocess.run(
        [sys.executable, "-m", "jointseg.cli", "check-config", str(write(tmp_path, cfg))],
        capture_output=True, text=True,
    )
    assert r.returncode == 1
    assert "key 'stac.max_scenes': 0 is less than the minimum of 1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
