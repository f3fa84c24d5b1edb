"""A user's own config, off the demo path: the README's config blocks and the template
plan what they say (snakemake -n in a fresh working directory), nothing of the demo rides
along, two configs in one directory keep their chips and models apart, and a rerun of
training after the chips index is touched never loses the finished model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from jointseg.model.train import load_checkpoint
from tests.test_dag_training import job_counts
from tests.test_rules import REPO, run_snakemake

DEMO_RULES = {"simulate_demo", "simulate_chips", "simulate_products"}
TRAINING_RULES = {"make_chips", "train_model", "export_onnx"}
BASELINE_RULES = {"train_baseline", "export_baseline", "predict_baseline", "mosaic_baseline"}
NO_MODEL = ("config: no model and no training data: set model.onnx (a trained JointSeg ONNX"
            " model) or training_data (README 'Train on your own region')")
#: the README's YAML blocks start with one of these lines
COMPLETE, ADDITION = "# my.yaml", "# add to my.yaml"


def readme_configs() -> list[tuple[str, dict]]:
    """The README's config blocks as the files a reader saves: (title, config). A block
    whose first line is ``# my.yaml`` is a whole file; ``# add to my.yaml`` is merged into
    the last whole file (its top-level sections replaced key by key)."""
    text = (REPO / "README.md").read_text()
    out: list[tuple[str, dict]] = []
    current: dict | None = None
    for i, block in enumerate(re.findall(r"^```yaml\n(.*?)^```", text, re.M | re.S)):
        first = block.splitlines()[0].strip()
        assert first in (COMPLETE, ADDITION), (
            f"README yaml block {i} must start with '{COMPLETE}' or '{ADDITION}': {first!r}")
        data = yaml.safe_load(block)
        if first == COMPLETE:
            current = data
        else:
            assert current is not None, f"README yaml block {i} adds to no my.yaml"
            current = {**current, **{k: ({**current.get(k, {}), **v} if isinstance(v, dict)
                                         and isinstance(current.get(k), dict) else v)
                                     for k, v in data.items()}}
        out.append((f"block{i}", current))
    return out


def placeholders(cfg: dict, workdir: Path) -> None:
    """Create an empty file for every relative file path the config names (the user's
    HR images, labels, model): a dry run needs them to exist, not to be read."""
    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str) and re.search(r"\.(tif|vrt|gpkg|pbf|onnx|geojson)$", v):
            path = workdir / v
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
    walk(cfg)


def plan(workdir: Path, cfg: dict | None, *targets: str) -> tuple[int, str, dict[str, int]]:
    """`snakemake -n` of ``cfg`` saved as my.yaml in ``workdir`` (None: no --configfile,
    the workdir's own config.yaml)."""
    if cfg is None:
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                            "--directory", str(workdir), "--cores", "1", "-n", *targets],
                           capture_output=True, text=True, timeout=300, env=env, cwd=workdir)
    else:
        (workdir / "my.yaml").write_text(yaml.safe_dump(cfg))
        r = run_snakemake(workdir, "-n", *targets, configfile=workdir / "my.yaml", timeout=300)
    out = r.stdout + r.stderr
    return r.returncode, out, job_counts(out) if r.returncode == 0 else {}


def planned_outputs(out: str) -> set[str]:
    """Every output path a dry run plans."""
    return {p for ln in out.splitlines() if ln.strip().startswith("output: ")
            for p in ln.split("output: ", 1)[1].split(", ")}


def test_template_stops_in_one_line(tmp_path):
    """config.yaml as shipped (a real region, no model): one line, whatever files lie
    around (a demo model where the old layout kept it changes nothing)."""
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "jointseg-tiny.onnx").touch()
    rc, out, _ = plan(tmp_path, None)
    assert rc != 0 and out.strip().splitlines() == [NO_MODEL]


@pytest.mark.parametrize("title,cfg", readme_configs(), ids=[t for t, _ in readme_configs()])
def test_readme_config_blocks_plan_what_they_say(tmp_path, title, cfg):
    """Each README config, saved as my.yaml in a fresh directory beside a demo config that
    is NOT passed: the plan is that config's region only, no demo path, no demo job."""
    (tmp_path / "config.yaml").write_text((REPO / "config" / "demo.yaml").read_text())
    placeholders(cfg, tmp_path)
    rc, out, jobs = plan(tmp_path, cfg)
    assert rc == 0, out[-3000:]
    assert not DEMO_RULES & set(jobs), jobs
    outputs = planned_outputs(out)
    regions = set(cfg["regions"]) | ({"training"} if cfg.get("training_data") else set())
    assert {p.split("/")[1] for p in outputs if p.startswith("results/")} <= regions | {
        "models"}, sorted(outputs)[:20]
    assert not [p for p in outputs if "demo" in p], sorted(outputs)[:20]
    if cfg.get("training_data"):
        assert set(jobs) >= TRAINING_RULES
    else:
        assert not TRAINING_RULES & set(jobs)
    assert bool(BASELINE_RULES & set(jobs)) == bool(cfg.get("model", {}).get("baseline"))
    assert jobs["predict"] >= 1


def test_readme_real_data_without_model_stops_in_one_line(tmp_path):
    _, cfg = readme_configs()[0]
    cfg = {**cfg, "model": {"onnx": None}}
    rc, out, _ = plan(tmp_path, cfg)
    assert rc != 0 and out.strip().splitlines() == [NO_MODEL]


def demo_config(**changes) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    for dotted, value in changes.items():
        node = cfg
        *path, last = dotted.split(".")
        for k in path:
            node = node.setdefault(k, {})
        node[last] = value
    return cfg


def training_paths(tmp_path: Path, cfg: dict) -> set[str]:
    """The chips and model paths a config plans (from its dry run)."""
    rc, out, _ = plan(tmp_path, cfg)
    assert rc == 0, out[-3000:]
    return {p for p in planned_outputs(out) if "/models/" in p or "/chips/" in p}


def test_two_configs_in_one_directory_keep_their_chips_and_models_apart(tmp_path):
    base = training_paths(tmp_path, demo_config())
    assert base and all(p.startswith("results/") for p in base)
    # another training setting: a model of its own on the same chips
    seed = training_paths(tmp_path, demo_config(**{"model.train.seed": 1}))
    chips = {p for p in base if "/chips/" in p}
    assert chips and chips <= seed
    assert not {p for p in base if "/models/" in p} & seed
    # other training data: chips and models of their own
    other = training_paths(tmp_path, demo_config(**{"training_data.chips.chip_size_m": 160}))
    assert not base & other
    # another results folder: nothing shared
    moved = training_paths(tmp_path, demo_config(results_dir="results-b"))
    assert moved and all(p.startswith("results-b/") for p in moved)
    # the runtime-only settings do not retrain
    assert training_paths(tmp_path, demo_config(**{"model.train.threads": 1})) == base


def _best_weights(path: Path) -> dict:
    return load_checkpoint(path)[0].state_dict()


@pytest.mark.e2e
def test_touching_the_chips_index_and_rerunning_keeps_the_model(tmp_path):
    """Train through the real DAG on small simulated chips; then touch index.csv and rerun,
    and force train_model to rerun (twice, as Snakemake reruns it when the chips changed):
    Snakemake deletes the declared outputs before each rerun, and every rerun writes all
    of them back with the same weights."""
    cfg = {"year": 2021,
           "regions": {"r": {"bbox": [663000, 3543000, 664200, 3544200],
                             "bbox_crs": "EPSG:32650"}},
           "model": {"chips": {"source": "simulated", "seed": 7, "n_regions": 2,
                               "region_size_m": 480, "chip_size_m": 160},
                     "train": {"epochs": 1, "batch_size": 4, "preset": "tiny"}}}
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(cfg))

    def run(*args: str) -> str:
        r = run_snakemake(tmp_path, "model", *args, configfile=tmp_path / "my.yaml",
                          timeout=900)
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
        return r.stdout + r.stderr

    run()
    (model_dir,) = [p for p in (tmp_path / "results" / "models").iterdir() if p.is_dir()]
    outputs = [model_dir / n for n in ("best.pt", "history.csv", "loss.png")]
    weights = _best_weights(model_dir / "best.pt")
    history = (model_dir / "history.csv").read_text()
    (index,) = (tmp_path / "resources" / "chips").glob("sim-*/index.csv")
    for args in ([], ["--forcerun", "train_model"], ["--forcerun", "train_model"]):
        if not args:
            time.sleep(1.1)
            index.touch()
        run(*args)
        assert all(p.is_file() for p in outputs), [p.name for p in outputs if not p.exists()]
        best = _best_weights(model_dir / "best.pt")
        assert best.keys() == weights.keys()
        assert all(torch.equal(best[k], weights[k]) for k in weights)
        assert (model_dir / "history.csv").read_text() == history
    assert (model_dir.parent / f"{model_dir.name}.onnx").is_file()
