"""Reruns of training never lose a finished model (GitHub issue 19).

Snakemake deletes ``train_model``'s declared outputs (best.pt, history.csv, loss.png)
before it reruns the job, for instance after the chips were rewritten. Every path of
``train(..., resume=True)`` must write all of them again: a finished ``last.pt`` rebuilds
them exactly, an unresumable one trains afresh.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from jointseg.io import sha256_file
from jointseg.model.train import TrainConfig, load_checkpoint, train

CHIPS = Path(__file__).parent / "data" / "chips"
#: What the workflow's train_model rule declares, plus summary.json.
OUTPUTS = ("best.pt", "history.csv", "loss.png", "summary.json")
CFG = TrainConfig(epochs=2, batch_size=4, crops_per_chip=1, seed=3, threads=2, crop_10m=8)
torch.set_num_threads(2)


def _remove_outputs(run: Path, names: tuple[str, ...] = OUTPUTS) -> None:
    """What Snakemake does before rerunning the job."""
    for name in names:
        (run / name).unlink()


def _assert_same_weights(a: Path, b: Path) -> None:
    ma, ca = load_checkpoint(a)
    mb, cb = load_checkpoint(b)
    assert ca["epoch"] == cb["epoch"]
    for (k, va), vb in zip(ma.state_dict().items(), mb.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch run, kept read-only; tests copy it."""
    run = tmp_path_factory.mktemp("finished") / "run"
    train(CHIPS, run, CFG, progress=False)
    return run


def _copy(finished: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    return run


def test_finished_run_rebuilds_every_removed_output_exactly(finished: Path,
                                                             tmp_path: Path) -> None:
    run = _copy(finished, tmp_path)
    last_sha = sha256_file(run / "last.pt")
    _remove_outputs(run)
    summary = train(CHIPS, run, CFG, resume=True, progress=False)
    for name in OUTPUTS:
        assert (run / name).is_file(), name
    _assert_same_weights(finished / "best.pt", run / "best.pt")
    assert (run / "history.csv").read_bytes() == (finished / "history.csv").read_bytes()
    assert (run / "loss.png").stat().st_size > 0
    assert (run / "summary.json").read_text() == (finished / "summary.json").read_text()
    assert summary["epochs"] == 2
    assert sha256_file(run / "last.pt") == last_sha  # nothing trained, nothing rewritten


def test_finished_run_keeps_a_best_pt_that_is_there(finished: Path, tmp_path: Path) -> None:
    run = _copy(finished, tmp_path)
    best_sha = sha256_file(run / "best.pt")
    _remove_outputs(run, ("history.csv", "loss.png"))
    train(CHIPS, run, CFG, resume=True, progress=False)
    assert sha256_file(run / "best.pt") == best_sha
    assert (run / "history.csv").read_bytes() == (finished / "history.csv").read_bytes()
    assert (run / "loss.png").is_file()


@pytest.mark.parametrize("damage", ["no_history", "short_history", "no_best_copy",
                                    "arch_version", "other_seed"])
def test_unresumable_last_pt_trains_afresh_and_writes_everything(
        finished: Path, tmp_path: Path, damage: str) -> None:
    """A last.pt of an older format (no history, no copy of the best epoch), of another
    network layout or of other settings is not resumed: a fresh run writes all outputs
    (with the same settings, the same model as before: runs are deterministic)."""
    run = _copy(finished, tmp_path)
    ckpt = torch.load(run / "last.pt", weights_only=False)
    cfg = CFG
    if damage == "no_history":
        del ckpt["history"]
    elif damage == "short_history":
        ckpt["history"] = ckpt["history"][:1]
    elif damage == "no_best_copy":
        del ckpt["best_model"]
    elif damage == "arch_version":
        ckpt["arch_version"] = 0
    else:
        cfg = TrainConfig(**{**CFG.__dict__, "seed": 4})
    torch.save(ckpt, run / "last.pt")
    _remove_outputs(run)
    summary = train(CHIPS, run, cfg, resume=True, progress=False)
    for name in OUTPUTS:
        assert (run / name).is_file(), name
    _, last = load_checkpoint(run / "last.pt")
    assert len(last["history"]) == 2 and "best_model" in last
    assert summary["seed"] == cfg.seed
    if damage != "other_seed":
        _assert_same_weights(finished / "best.pt", run / "best.pt")
        assert [r["val_f1"] for r in last["history"]] == [
            r["val_f1"] for r in torch.load(finished / "last.pt", weights_only=False)["history"]]


def test_interrupted_run_resumes_with_outputs_removed(tmp_path: Path) -> None:
    """Stopped after epoch 0 and its outputs removed: the resumed run rebuilds them and
    trains the missing epoch."""
    run = tmp_path / "run"
    train(CHIPS, run, TrainConfig(**{**CFG.__dict__, "epochs": 1}), progress=False)
    ckpt = torch.load(run / "last.pt", weights_only=False)
    ckpt["config"]["epochs"] = 2  # as if stopped after epoch 0 of a 2-epoch run
    torch.save(ckpt, run / "last.pt")
    _remove_outputs(run)
    s = train(CHIPS, run, CFG, resume=True, progress=False)
    assert s["epochs"] == 2
    for name in OUTPUTS:
        assert (run / name).is_file(), name
    assert len((run / "history.csv").read_text().splitlines()) == 3


def _cli_train(chips: Path, out: Path) -> None:
    """``jointseg train`` as rules/model.smk's train_model calls it."""
    from jointseg.cli import main

    res = CliRunner().invoke(main, [
        "train", "--chips", str(chips), "--out", str(out), "--train-json",
        '{"epochs": 2, "batch_size": 4, "crops_per_chip": 1, "seed": 3, "crop_10m": 8}',
        "--threads", "2", "--resume", "--no-progress"])
    assert res.exit_code == 0, res.output


def test_cli_reruns_after_the_chips_index_is_touched_keep_the_model(tmp_path: Path) -> None:
    """The issue's sequence: the chips are rewritten (index.csv newer), Snakemake removes
    train_model's outputs and reruns it, twice. Both reruns write every output and give
    the first run's best.pt; a third rerun without removal keeps best.pt untouched."""
    chips = tmp_path / "chips"
    shutil.copytree(CHIPS, chips)
    out = tmp_path / "models" / "m"
    _cli_train(chips, out)
    first = {n: (out / n).read_bytes() for n in ("best.pt", "history.csv", "last.pt")}
    shutil.copy(out / "best.pt", tmp_path / "first_best.pt")
    for rerun in range(2):
        t = (out / "best.pt").stat().st_mtime + 10 * (rerun + 1)
        os.utime(chips / "index.csv", (t, t))
        _remove_outputs(out, ("best.pt", "history.csv", "loss.png"))
        _cli_train(chips, out)
        for name in OUTPUTS:
            assert (out / name).is_file(), (rerun, name)
        _assert_same_weights(tmp_path / "first_best.pt", out / "best.pt")
        assert (out / "history.csv").read_bytes() == first["history.csv"]
        assert (out / "last.pt").read_bytes() == first["last.pt"]
    kept = (out / "best.pt").stat().st_mtime_ns
    _cli_train(chips, out)
    assert (out / "best.pt").stat().st_mtime_ns == kept
    # chips rewritten with other content: a fresh run, still every output
    rows = (chips / "index.csv").read_text().splitlines()
    (chips / "index.csv").write_text("\n".join(rows[:-2] + rows[-1:]) + "\n")  # no chip04
    _remove_outputs(out, ("best.pt", "history.csv", "loss.png"))
    _cli_train(chips, out)
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    _, ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["data"]["n_train"] == 3
