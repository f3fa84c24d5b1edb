"""DDP training under torchrun: 2 gloo processes on the CPU (< 60 s), and one failing
rank ends the job at once with its error."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
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
        "best.pt", "best.pt.sha256", "history.csv", "last.pt", "last.pt.sha256", "loss.png",
        "summary.json"]


FAILING_RANK = """
import logging, sys
import jointseg.model.train as train_mod
from jointseg.model.settings import TrainConfig

logging.basicConfig(level=logging.INFO)
real_step = train_mod._step

def step(run, cfg, epoch, batch, *rest):
    if run.env.rank == 1:  # rank 0 meanwhile waits in DDP's gradient all-reduce
        raise RuntimeError("rank 1 fails on purpose")
    return real_step(run, cfg, epoch, batch, *rest)

train_mod._step = step
train_mod.train(sys.argv[1], sys.argv[2],
                TrainConfig(preset="tiny", epochs=2, batch_size=2, threads=1), progress=False)
"""


def _process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def test_one_failing_rank_ends_the_job_with_its_error(tmp_path: Path) -> None:
    """Rank 1 raises while rank 0 sits in an all-reduce: the job ends well within 60 s
    (no final barrier after a failure) and the output names rank 1's error."""
    script = tmp_path / "fail.py"
    script.write_text(FAILING_RANK)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(CHIPS), str(tmp_path / "out")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        for pid in _process_tree(proc.pid):  # torchrun and its ranks (in their own groups)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"a failing rank hung the job for 60 s:\n{out[-3000:]}")
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 60
    assert "RuntimeError: rank 1 fails on purpose" in out, out[-3000:]
    assert "rank 1 of 2 failed (RuntimeError: rank 1 fails on purpose)" in out, out[-3000:]
    assert not (tmp_path / "out" / "summary.json").exists()
