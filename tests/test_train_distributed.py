"""DDP training under torchrun: 2 gloo processes on the CPU (< 60 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from jointseg.model.train import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
CHIPS = REPO / "tests" / "data" / "chips"


def jointseg(*args: str, torchrun: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    pre = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] \
        if torchrun else []
    return subprocess.run([sys.executable, *pre, "-m", "jointseg", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_torchrun_two_gloo_processes_train_and_resume_exactly(tmp_path: Path) -> None:
    common = ["train", "--chips", str(CHIPS), "--preset", "tiny", "--batch-size", "2",
              "--threads", "1", "--no-progress"]
    full = jointseg(*common, "--out", str(tmp_path / "full"), "--epochs", "2", torchrun=True)
    assert full.returncode == 0, full.stderr[-3000:]
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 2
    assert full.stdout.count('"world_size": 2') == 1  # rank 0 alone reports
    # --gpus 2 relaunches the same command under torchrun; resume continues exactly
    part = tmp_path / "part"
    one = jointseg(*common, "--out", str(part), "--epochs", "1", "--gpus", "2")
    assert one.returncode == 0, one.stderr[-3000:]
    two = jointseg(*common, "--out", str(part), "--epochs", "2", "--gpus", "2", "--resume")
    assert two.returncode == 0, two.stderr[-3000:]
    a, ca = load_checkpoint(tmp_path / "full" / "last.pt")
    b, cb = load_checkpoint(part / "last.pt")
    assert ca["world_size"] == cb["world_size"] == 2 and cb["epoch"] == 1
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert [h["train_loss"] for h in ca["history"]] == [h["train_loss"] for h in cb["history"]]
    assert sorted(p.name for p in part.iterdir()) == [
        "best.pt", "history.csv", "last.pt", "loss.png", "summary.json"]
