"""Training speed (issue 21): seconds per optimiser step on the CPU.

Times ``jointseg.model.train._step`` (forward, losses, backward, clipping, Adam) for the
tiny JointSeg and bilinear models, batch 8, crops of 16 and 32 px at 10 m cut from real
chips, under: fp32 (what ``train`` does on the CPU), channels_last (weights and inputs),
bf16 autocast (only where the CPU has native bf16: avx512_bf16 or AMX; else reported as
skipped), and ``torch.compile`` of the network (reported as failed when compiling takes
over ``--compile-limit`` seconds or raises). Also the SR pre-training step (SR branch
only). Prints a table and a last ``key=value`` line.

    .venv/bin/python benchmarks/train_speed.py [--chips DIR] [--steps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from jointseg.model.chips import load_chips, random_crop
from jointseg.model.distributed import DistEnv
from jointseg.model.losses import masked_l1
from jointseg.model.settings import TrainConfig
from jointseg.model.train import _Run, _step, _to_batch

CHIPS = Path("results/training/2021/chips/0d9af3bc1d")


def cpu_bf16() -> bool:
    """Native bf16 on this CPU (avx512_bf16 or AMX in /proc/cpuinfo's flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise TimeoutError after ``seconds`` (SIGALRM; main thread only)."""
    def _raise(*_: object) -> None:
        raise TimeoutError(f"over {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def batches(chips: list, crop: int, n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    """``n`` batches of 8 random crops of ``crop`` px at 10 m."""
    rng = np.random.default_rng(seed)
    return [_to_batch([random_crop(chips[i], crop, rng)
                       for i in rng.integers(0, len(chips), 8)]) for _ in range(n)]


def time_steps(step: Callable[[tuple[torch.Tensor, ...]], object],
               data: list[tuple[torch.Tensor, ...]], warm: int = 2) -> float:
    """Median seconds per call of ``step`` over ``data[warm:]`` after ``warm`` calls."""
    for b in data[:warm]:
        step(b)
    times = []
    for b in data[warm:]:
        t0 = time.perf_counter()
        step(b)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def variant_step(arch: str, variant: str, compile_limit: int
                 ) -> Callable[[tuple[torch.Tensor, ...]], object]:
    """A step function of ``arch`` under ``variant`` (fp32 | channels_last | bf16 |
    compile | sr_pretrain); raises on a failed compile."""
    cfg = TrainConfig(arch=arch, device="cpu", threads=torch.get_num_threads())
    run = _Run.build(cfg, DistEnv(), steps=100)
    epoch = 1  # the joint phase
    cl = variant == "channels_last"
    if cl:
        run.model.to(memory_format=torch.channels_last)
    if variant == "bf16":
        run.amp = torch.bfloat16
    if variant == "sr_pretrain":
        opt = torch.optim.Adam([p for n, p in run.model.named_parameters()
                                if not n.startswith("seg.")], lr=1e-3)

        def pre(b: tuple[torch.Tensor, ...]) -> object:
            s10, s20, hr, _ = b
            loss = masked_l1(run.model(s10, s20, sr_only=True), hr, hr != 0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        return pre
    if variant == "compile":
        run.net = torch.compile(run.model)

    def step(b: tuple[torch.Tensor, ...]) -> object:
        if cl:
            b = tuple(t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t
                      for t in b)
        return _step(run, cfg, epoch, b, 1)

    return step


def interleaved(chips: list, crops: list[int], steps: int) -> None:
    """Median s/step of fp32 and channels_last, alternating every step (same batches)."""
    print("| model | crop (10 m px) | fp32 s/step | channels_last s/step | ratio |")
    print("|---|---|---|---|---|")
    for crop in crops:
        data = batches(chips, crop, 2 + steps)
        for arch in ("jointseg", "bilinear"):
            fns = {v: variant_step(arch, v, 0) for v in ("fp32", "channels_last")}
            times: dict[str, list[float]] = {v: [] for v in fns}
            for i, b in enumerate(data):
                for v, fn in fns.items():
                    t0 = time.perf_counter()
                    fn(b)
                    if i >= 2:
                        times[v].append(time.perf_counter() - t0)
            a, c = (float(np.median(times[v])) for v in fns)
            print(f"| {arch} | {crop} | {a:.3f} | {c:.3f} | {c / a:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chips", type=Path, default=CHIPS)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per cell (median)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile-limit", type=int, default=60)
    ap.add_argument("--crops", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--interleave", action="store_true",
                    help="fp32 vs channels_last only, alternating step by step (a loaded "
                    "machine slows both alike)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    chips = load_chips(args.chips, "train")[:64]
    if args.interleave:
        interleaved(chips, args.crops, args.steps)
        return
    bf16 = cpu_bf16()
    print(f"torch {torch.__version__}, {args.threads} threads, cpu capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {bf16}")
    variants = ["fp32", "channels_last", "bf16", "compile"]
    rows: list[tuple[str, int, str, str]] = []
    for crop in args.crops:
        data = batches(chips, crop, 2 + args.steps)
        for arch in ("jointseg", "bilinear"):
            for variant in variants + (["sr_pretrain"] if arch == "jointseg" else []):
                if variant == "bf16" and not bf16:
                    rows.append((arch, crop, variant, "skipped: no avx512_bf16/AMX"))
                    continue
                torch.manual_seed(0)
                try:
                    t0 = time.perf_counter()
                    step = variant_step(arch, variant, args.compile_limit)
                    if variant == "compile":
                        with time_limit(args.compile_limit):
                            step(data[0])  # compiles forward and backward
                        compiled_s = time.perf_counter() - t0
                    sec = time_steps(step, data)
                    note = f"{sec:.3f}"
                    if variant == "compile":
                        note += f" (compile {compiled_s:.0f} s)"
                except Exception as exc:  # noqa: BLE001 - report any compile failure
                    note = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
                rows.append((arch, crop, variant, note))
                print(f"{arch:9s} {crop:3d} px  {variant:14s} {note}", flush=True)
    print("\n| model | crop (10 m px) | variant | s / step (batch 8) |")
    print("|---|---|---|---|")
    for arch, crop, variant, note in rows:
        print(f"| {arch} | {crop} | {variant} | {note} |")
    base = {(a, c): float(n) for a, c, v, n in rows if v == "fp32"}
    print("fp32_s_per_step=" + ",".join(f"{a}/{c}:{t:.3f}" for (a, c), t in base.items()))


if __name__ == "__main__":
    main()
