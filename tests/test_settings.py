"""Stage settings (jointseg.settings, jointseg.data.settings, jointseg.inference.settings):
every option of a per-tile command is a field of its stage's settings, and the batch
runner builds the same object from the same words."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
import pytest
import rasterio
from click.core import ParameterSource

from jointseg.cli.batch import stage_settings, tile_command
from jointseg.cli.settings import field_names, settings_from_context
from jointseg.config import ConfigError, validate_config
from jointseg.settings import load_settings_arg, settings_class, stage_settings_section

STAGES = ["search", "download", "cloudmask", "composite", "predict"]

#: the per-tile commands' parameters that are inputs, outputs or run-only (not settings)
NOT_SETTINGS = {
    "search": {"config_path", "region", "year", "tile_id", "out_path", "bbox_lonlat",
               "start_date", "end_date", "allow_empty"},
    "download": {"scenes_json", "out_dir"},
    "cloudmask": {"manifest", "out"},
    "composite": {"manifest", "mask", "out_10m", "out_20m"},
    "predict": {"model_path", "input_path", "output", "prob_output", "sr_output", "progress"},
}

#: a value other than the default for the string options
OTHER_VALUES = {"providers": ["cpu", ("cpu",)], "bands": ["B02,SCL", ("B02", "SCL")],
                "scl_classes": ["3,8", (3, 8)], "demo_sim_dir": ["sim"] * 2,
                "trt_engine_cache": ["trt"] * 2,
                "cuda": ["device_id=1", {"device_id": "1"}],
                "threshold": ["0.25", 0.25], "allow_cpu_fallback": ["yes", True]}


def _other(param: click.Option, default: object) -> tuple[list[str], object]:
    """Command-line words giving ``param`` a non-default value, and that value."""
    if param.name in OTHER_VALUES:
        word, value = OTHER_VALUES[param.name]
        return [param.opts[0], word], value
    if isinstance(default, bool):
        return [param.secondary_opts[0] if default else param.opts[0]], not default
    if isinstance(param.type, click.Choice):
        value = next(c for c in param.type.choices if c != default)
        return [param.opts[0], value], value
    if isinstance(default, str):
        return [param.opts[0], f"{default}-x"], f"{default}-x"
    value = default + 2  # ints and floats; 2 keeps block_rows even
    return [param.opts[0], str(value)], value


def _per_tile_args(stage: str, tmp_path: Path) -> list[str]:
    """The inputs and outputs a per-tile command needs to parse."""
    f = tmp_path / "f.json"
    f.write_text("{}")
    return {"search": ["--out", str(f)], "download": [str(f), "--out-dir", str(tmp_path)],
            "cloudmask": [str(f), str(f)], "composite": [str(f), str(f), str(f), str(f)],
            "predict": ["--model", "m", "--input", "i", "--output", "o"]}[stage]


@pytest.mark.parametrize("stage", STAGES)
def test_every_option_of_a_tile_command_is_a_setting(stage):
    names = {p.name for p in tile_command(stage).params} - {"settings_json"}
    assert names - NOT_SETTINGS[stage] <= field_names(settings_class(stage)), (
        f"jointseg {stage}: options that are not fields of its settings")


@pytest.mark.parametrize("stage", STAGES)
def test_every_option_reaches_the_batch_path(stage, tmp_path):
    cmd, cls = tile_command(stage), settings_class(stage)
    default = cls.from_config({})
    params = [p for p in cmd.params if p.name in field_names(cls)]
    assert params
    for param in params:
        words, value = _other(param, getattr(default, param.name))
        ctx = cmd.make_context(cmd.name, [*_per_tile_args(stage, tmp_path), *words])
        assert ctx.get_parameter_source(param.name) == ParameterSource.COMMANDLINE
        per_tile = settings_from_context(cls, ctx)
        in_batch = stage_settings(stage, None, words)
        assert per_tile == in_batch, param.name
        expected = ({**default.cuda, **value} if param.name == "cuda" else value)
        assert getattr(in_batch, param.name) == expected, param.name
        others = {f.name for f in dataclasses.fields(cls)} - {param.name}
        assert all(getattr(in_batch, n) == getattr(default, n) for n in others), param.name


def test_settings_word_and_options_agree_in_both_paths():
    text = json.dumps({"precision": "fp16", "window_10m": 40, "tensorrt": {"fp16": False}})
    s = stage_settings("predict", text, ["--threads", "3"])
    assert (s.precision, s.window_10m, s.trt_fp16, s.threads) == ("fp16", 40, False, 3)
    assert stage_settings("predict", None, ["--settings", text, "--threads", "3"]) == s
    with pytest.raises(click.BadParameter, match=r"key 'infer.precision': 'half' is not"):
        stage_settings("predict", json.dumps({"precision": "half"}), [])
    with pytest.raises(click.BadParameter, match=r"key 'infer': Additional properties"):
        stage_settings("predict", json.dumps({"precison": "fp16"}), [])


def test_settings_from_the_workflow_config(tmp_path):
    cfg = {"year": 2021, "regions": {"r": {"bbox": [114.0, 30.0, 114.1, 30.1]}},
           "infer": {"precision": "fp16", "providers": ["cpu"]},
           "grid": {"tile_size_m": 600}, "bands": {"b10m": ["B02"], "b20m": ["B11"]},
           "download": {"retries": 1}, "stac": {"demo_server": {"enabled": True}}}
    validate_config(cfg)
    predict = settings_class("predict").from_config(stage_settings_section(cfg, "predict"))
    assert predict.precision == "fp16" and predict.providers == ("cpu",)
    assert settings_class("predict_baseline") is type(predict)
    search = settings_class("search").from_config(stage_settings_section(cfg, "search"))
    assert (search.tile_size_m, search.retries) == (600, 1)
    assert search.demo_sim_dir == cfg["stac"]["demo_server"]["sim_dir"]
    dl = settings_class("download").from_config(stage_settings_section(cfg, "download"))
    assert dl.bands == ("B02", "B11", "SCL") and dl.tile_size_m == 600
    # the section as a file, as --settings @FILE takes it
    path = tmp_path / "infer.json"
    path.write_text(json.dumps(cfg["infer"]))
    assert load_settings_arg(f"@{path}") == cfg["infer"]
    with pytest.raises(ConfigError, match="not JSON"):
        load_settings_arg("{precision: fp16")


def test_a_batch_honours_per_tile_options(tmp_path):
    from jointseg.batch import tile_files
    from tests.test_predict_stage import MODEL, SETTINGS, TILES, predict_batch, write_composite

    res = tmp_path / "results"
    for i, t in enumerate(TILES):
        write_composite(tile_files("composite", t, "r", 2021, res)["c10"], i)
    r = predict_batch(MODEL, res, SETTINGS, "--", "--compress", "ZSTD", "--threshold", "0.3")
    assert r.exit_code == 0, r.output
    with rasterio.open(tile_files("predict", TILES[1], "r", 2021, res)["isa"]) as ds:
        assert ds.compression.name == "zstd" and ds.tags()["THRESHOLD"] == "0.3"
