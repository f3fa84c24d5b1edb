"""The Snakemake rules' command lines: config values arrive quoted and verbatim, the
file given with --configfile is the one used, and CLI defaults are the schema's."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from jointseg.cli import main as cli
from jointseg.config import schema_default
from jointseg.simulate.servers import free_port

REPO = Path(__file__).resolve().parents[1]
TILE = "32650_663000_3543000"  # a tile of the repository's demo region (3 km tiles)

# Each hostile value carries "pwned": a command that ran it would create a file so named.
API_URL = "https://example.invalid/v1?x=1&y=$(touch${IFS}pwned)`touch${IFS}pwned2`;a='b'\"c\"|d"


def run_snakemake(workdir: Path, *args: str, configfile: Path | None = None,
                  timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(workdir), "--configfile",
         str(configfile or workdir / "config.yaml"), "--cores", "1", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=workdir)


def shell_commands(output: str) -> list[str]:
    """The commands a `snakemake -n -p` run printed (one per job with a shell)."""
    return [ln.split("Shell command: ", 1)[1] for ln in output.splitlines()
            if "Shell command: jointseg" in ln]


def tokens(cmd: str) -> list[str]:
    """Shell words of ``cmd``; unquoted ; & | ( ) < > come out as separate tokens."""
    lex = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    return list(lex)


def option(toks: list[str], name: str) -> str:
    return toks[toks.index(name) + 1]


def settings_of(toks: list[str]) -> dict:
    """The stage settings a tile command was given (`--settings JSON`), or {}."""
    return json.loads(option(toks, "--settings")) if "--settings" in toks else {}


def strings_in(value: object) -> list[str]:
    """Every string inside a JSON value."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return [value] if isinstance(value, str) else []


def hostile_config(tmp: Path, *, demo: bool, batch_block: int) -> dict:
    """The repository's config with hostile strings wherever config reaches a shell."""
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    hostile = {
        "results": tmp / "res ults;$(touch pwned)&'q'",
        "resources": tmp / 'reso urces `touch pwned` "dq" |x',
        "sim": tmp / "sim dir $(touch pwned);",
        "state": tmp / "state dir &touch pwned&",
        "chips": tmp / "my chips $(touch pwned)",
        "model": tmp / "my model ;touch pwned;.onnx",
        "cities": tmp / "cit ies $(touch pwned).geojson",
    }
    (hostile["chips"]).mkdir()
    (hostile["chips"] / "index.csv").write_text("chip\n")
    hostile["model"].write_bytes(b"")
    hostile["cities"].write_text("{}")
    cfg.update(results_dir=str(hostile["results"]), resources_dir=str(hostile["resources"]))
    cfg["stac"].update(api_url=API_URL, collection="s2 l2a;$(touch pwned)&'q'\"d\"")
    cfg["stac"]["demo_server"].update(enabled=demo, sim_dir=str(hostile["sim"]),
                                      state_dir=str(hostile["state"]))
    cfg["grid"]["batch_block"] = batch_block
    cfg["model"].update(onnx=str(hostile["model"]))
    cfg["model"]["chips"]["dir"] = str(hostile["chips"])
    cfg["mosaic"] = {"output_crs": "EPSG:32650 $(touch pwned);"}
    cfg["accuracy"].update(worldcover="/wc dir/$(touch pwned)&", cities=str(hostile["cities"]),
                           city_field="na me;$(touch pwned)")
    td = cfg["training_data"]
    if demo:  # the simulated training sources live under the (hostile) sim_dir
        src = f"{hostile['sim']}/train/sources"
        td.update(hr=[f"{src}/hr/hr.tif"],
                  labels=[f"{src}/labels/{n}.gpkg" for n in ("buildings", "roads", "paved")],
                  reference=[f"{hostile['sim']}/train/truth/isa_1m.tif"])
    else:  # a user's own HR image and labels (no simulated training region)
        td.pop("simulated")
        hr, labels = tmp / "h r $(touch pwned).tif", tmp / "lab els;touch pwned;.gpkg"
        ref = tmp / "refer ence $(touch pwned).tif"
        for f in (hr, labels, ref):
            f.write_bytes(b"")
        td.update(hr=[str(hr)], labels=[str(labels)], reference=[str(ref)])
    return cfg


def real_config() -> dict:
    """The repository's config turned into a production one: no demo server, so no
    simulated training region either (a pretrained model instead)."""
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["stac"]["demo_server"]["enabled"] = False
    cfg.pop("training_data")
    cfg["model"]["onnx"] = str(REPO / "tests/data/models/tiny_rf.onnx")
    cfg["model"]["baseline"] = False  # the baseline trains, and there is nothing to train on
    return cfg


@pytest.mark.e2e
@pytest.mark.parametrize(("demo", "batch_block"), [(False, 0), (True, 0), (False, 2),
                                                   (True, 2)])
def test_hostile_config_values_reach_commands_as_one_verbatim_word(tmp_path, demo, batch_block):
    cfg = hostile_config(tmp_path, demo=demo, batch_block=batch_block)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = run_snakemake(tmp_path, "-n", "-p", "all")
    assert r.returncode == 0, r.stderr[-3000:]
    cmds = shell_commands(r.stdout + r.stderr)
    s, a = cfg["stac"], cfg["accuracy"]
    values = [cfg["results_dir"], cfg["resources_dir"], s["collection"],
              s["demo_server"]["sim_dir"], s["demo_server"]["state_dir"],
              cfg["model"]["onnx"], cfg["model"]["chips"]["dir"],
              cfg["mosaic"]["output_crs"], a["worldcover"], a["cities"], a["city_field"]]
    values.append(API_URL)  # in the stac settings word, demo or not
    td = cfg["training_data"]
    values += td["hr"] + td["labels"] + td["reference"]
    seen = set()
    for cmd in cmds:
        toks = tokens(cmd)
        # the only shell operators are the log redirection `> log 2>&1`
        assert {t for t in toks if set(t) <= set("();<>|&")} <= {">", ">&"}, cmd
        settings = settings_of(toks)
        words = [w for t in toks for w in (strings_in(settings) if settings and t == option(
            toks, "--settings") else [t])]
        for t in words:
            if "pwned" in t:
                match = [v for v in values if t == v or t.startswith(v.rstrip("/") + "/")]
                assert match, f"{t!r} is not a whole config value in: {cmd}"
                seen.update(match)
        rule = toks[1:3]
        if rule[-1] == "search" or (rule[-1] == "batch" and toks[3] == "search"):
            # the stac section in one word, as the config holds it
            assert settings["collection"] == s["collection"]
            assert settings["api_url"] == s["api_url"]
            assert settings["demo_server"] == {**settings["demo_server"], **s["demo_server"]}
            assert "--api-url" not in toks and "--demo-sim-dir" not in toks
            assert "--config" not in toks  # the CLI reads no config file
        if "--results-dir" in toks:
            assert option(toks, "--results-dir") == cfg["results_dir"]
        if "--resources-dir" in toks:
            assert option(toks, "--resources-dir") == cfg["resources_dir"]
        if "mosaic" in rule:
            assert option(toks, "--crs") == cfg["mosaic"]["output_crs"]
        if "accuracy-report" in rule:
            assert option(toks, "--worldcover") == a["worldcover"]
            assert option(toks, "--city-field") == a["city_field"]
    # every value reached some command (the demo's folders only with the demo on)
    unused = {s["demo_server"]["sim_dir"], s["demo_server"]["state_dir"]} if not demo else set()
    # training_data wins over model.chips.dir (model.chips.source: auto)
    unused.add(cfg["model"]["chips"]["dir"])
    assert set(values) - unused <= seen, set(values) - unused - seen
    assert not list(tmp_path.rglob("pwned*"))


@pytest.mark.e2e
def test_search_rule_with_a_hostile_api_url_runs_nothing_else(tmp_path):
    cfg = real_config()
    cfg["stac"].update(api_url=API_URL, timeout_s=2)
    cfg["download"] = {"retries": 0}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = run_snakemake(tmp_path, f"results/demo/2021/scenes/{TILE}.json", timeout=300)
    assert r.returncode != 0  # example.invalid does not resolve
    log = (tmp_path / f"logs/demo/2021/search/{TILE}.log").read_text()
    assert "example.invalid" in log, log[-2000:]
    assert not list(tmp_path.rglob("pwned*")), "the URL ran as a shell command"
    assert not Path("pwned").exists() and not Path("pwned2").exists()


@pytest.mark.e2e
def test_configfile_given_on_the_command_line_is_the_one_used(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    mine = tmp_path / "elsewhere" / "other.yaml"
    mine.parent.mkdir()
    port = free_port()
    cfg["stac"]["demo_server"].update(stac_port=port, state_dir="other-state")
    cfg["stac"]["max_scenes"] = 3
    mine.write_text(yaml.safe_dump(cfg))
    r = run_snakemake(tmp_path, "-n", "-p", f"results/demo/2021/scenes/{TILE}.json",
                      configfile=mine)
    assert r.returncode == 0, r.stderr[-3000:]
    (cmd,) = [c for c in shell_commands(r.stdout + r.stderr) if "jointseg -v search" in c]
    toks = tokens(cmd)
    settings = settings_of(toks)
    assert settings["demo_server"]["stac_port"] == port
    assert settings["demo_server"]["state_dir"] == "other-state"
    assert settings["max_scenes"] == 3
    assert "--config" not in toks and "config.yaml" not in cmd


def test_search_takes_config_values_for_options_not_given(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    cfg["stac"].update(api_url=dead, timeout_s=2)
    cfg["stac"]["demo_server"]["enabled"] = False
    cfg["download"] = {"retries": 0}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    args = ["search", "--config", str(tmp_path / "c.yaml"), "--tile", TILE,
            "--out", str(tmp_path / "s.json")]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1 and f"cannot reach STAC API {dead}" in r.output, r.output
    other = f"http://127.0.0.1:{free_port()}"
    r = CliRunner().invoke(cli, [*args, "--api-url", other])  # explicit options win
    assert r.exit_code == 1 and f"cannot reach STAC API {other}" in r.output, r.output
    r = CliRunner().invoke(cli, ["search", "--tile", TILE, "--tile-size-m", "3000",
                                 "--year", "2021", "--out", str(tmp_path / "s.json")])
    assert r.exit_code == 2 and "--api-url, --demo-sim-dir or --config" in r.output


# --- CLI option defaults are the schema's -------------------------------------------------


def _joined(*keys: str) -> str:
    return ",".join(str(v) for k in keys for v in schema_default(k))


#: (command path, click parameter name, schema default)
CLI_DEFAULTS = [
    *[(("search",), p, schema_default(k)) for p, k in [
        ("collection", "stac.collection"), ("provider", "stac.provider"),
        ("max_cloud_cover", "stac.max_cloud_cover"), ("max_scenes", "stac.max_scenes"),
        ("sign", "stac.sign_planetary_computer"), ("timeout_s", "stac.timeout_s"),
        ("retries", "download.retries"), ("backoff_s", "download.backoff_s"),
        ("allow_http", "stac.allow_http"),
        ("demo_stac_port", "stac.demo_server.stac_port"),
        ("demo_file_port", "stac.demo_server.file_port"),
        ("demo_state_dir", "stac.demo_server.state_dir")]],
    (("download",), "bands", _joined("bands.b10m", "bands.b20m") + ",SCL"),
    (("download",), "retries", schema_default("download.retries")),
    (("download",), "backoff_s", schema_default("download.backoff_s")),
    (("download",), "give_up_s", schema_default("download.give_up_s")),
    (("download",), "timeout_s", schema_default("stac.timeout_s")),
    (("cloudmask",), "scl_classes", _joined("cloudmask.scl_masked_classes")),
    *[(("cloudmask",), p, schema_default(f"cloudmask.{k}")) for p, k in [
        ("dilation_m", "dilation_m"), ("combine", "combine"),
        ("s2c_threshold", "s2cloudless.threshold"),
        ("s2c_average_over", "s2cloudless.average_over"),
        ("s2c_dilation_size", "s2cloudless.dilation_size")]],
    *[(("composite",), p, schema_default(f"composite.{p}"))
      for p in ("method", "min_clear", "block_rows")],
    (("composite",), "fill", schema_default("composite.fill")),
    *[(("predict",), p, schema_default(f"infer.{p}"))
      for p in ("batch_size", "window_10m", "overlap_10m", "threshold", "threads",
                "sr_quicklook", "precision", "cuda_graph", "mask_snow", "compress",
                "allow_simulated_model")],
    (("predict",), "providers", _joined("infer.providers")),
    (("mosaic",), "output_crs", schema_default("mosaic.output_crs")),
    (("mosaic",), "threads", schema_default("mosaic.threads")),
    (("batch",), "results_dir", schema_default("results_dir")),
    (("batch",), "resources_dir", schema_default("resources_dir")),
    (("simulate", "region"), "seed", schema_default("demo.seed")),
    (("simulate", "region"), "n_dates", schema_default("demo.n_dates")),
    *[(("simulate", "chips"), p, schema_default(f"model.chips.{p}"))
      for p in ("seed", "n_regions", "region_size_m", "chip_size_m")],
    (("assess",), "threshold", schema_default("accuracy.threshold")),
    *[(("sample",), p, schema_default(f"accuracy.{p}"))
      for p in ("zone_field", "target_se", "floor", "min_distance_m", "seed")],
    *[(("accuracy-report",), p, schema_default(f"accuracy.{p}"))
      for p in ("city_field", "zone_field", "threshold", "min_distance_m", "target_se",
                "floor", "seed")],
    (("change",), "city_field", schema_default("accuracy.city_field")),
    (("change",), "zone_field", schema_default("accuracy.zone_field")),
    (("change",), "confident", schema_default("change.confident")),
]


@pytest.mark.parametrize(("path", "param", "expected"), CLI_DEFAULTS,
                         ids=[f"{' '.join(p)}:{n}" for p, n, _ in CLI_DEFAULTS])
def test_cli_defaults_are_the_schema_defaults(path, param, expected):
    ctx = click.Context(cli)
    cmd = cli.get_command(ctx, path[0])
    for name in path[1:]:
        cmd = cmd.commands[name]
    (p,) = [p for p in cmd.params if p.name == param]
    assert p.default == expected, (
        f"jointseg {' '.join(path)} {p.opts[0]}: default {p.default!r}, schema {expected!r}")
    assert isinstance(p.default, bool) == isinstance(expected, bool)
