"""Block-sparse engine benchmark: ``python -m jobs.benchmark --suite engine`` (the default suite).

The model is the job's (SwiftNet with BatchNorm folded into the convolutions, random weights) in a process that
keeps freed memory as the job's do (``blockcopy_core.allocator``), on the CPU or (``--device cuda``) a GPU, in
float32 or (``--half``) the job's half precision. For each frame size / block size: times the static SwiftNet (NCHW
and channels_last; the faster is the baseline), the engine in channels_last as the job runs it, with every block
executed (dense path and block path) and with a random half of the blocks; counts MACs from the shapes that run; and
measures the share of a sparse frame spent moving blocks (split / combine / transfer / block_pad, and upsample_into,
the final resize written into the output; on a GPU, the time to issue them). It also times frames whose number of
executed blocks is new each time, as a policy's are: unpadded, and on a GPU also with the engine's default padding
of the block batch. Timings are the minimum over a few frames, interleaved across variants, because the machine is
shared; each timed frame is one ``torch.utils.benchmark.Timer.timeit(1)``, which runs the variant twice untimed just
before as a warm-up (and synchronises a GPU).
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from torch.utils.benchmark import Timer

from ..engine import BlockSparseEngine, ops
from ..engine.engine import default_batch_step
from ..macs import count_macs
from ..models import build_swiftnet, fold_batchnorm
from ..pipeline.config import select_dtype

MOVEMENTS = ("split", "combine", "transfer", "block_pad", "upsample_into")


def parse_config(text: str) -> tuple[int, int, int]:
    """``HxW@block``, e.g. ``1024x2048@128``."""
    try:
        size, block = text.split("@")
        h, w = size.split("x")
        return int(h), int(w), int(block)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"config {text!r} is not HxW@block (e.g. 1024x2048@128)") from exc


def half_grid(gh: int, gw: int, seed: int) -> Tensor:
    """Exactly half of the blocks (rounded down), chosen at random."""
    order = torch.randperm(gh * gw, generator=torch.Generator().manual_seed(seed))
    grid = torch.zeros(gh * gw, dtype=torch.bool)
    grid[order[: gh * gw // 2]] = True
    return grid.reshape(1, gh, gw)


def fresh_count_grids(gh: int, gw: int, count: int, seed: int) -> list[Tensor]:
    """``count`` random grids executing about half of the blocks, each a different number of them where the grid
    allows (half, one more, one fewer, two more, ...), as a policy's grids change from frame to frame."""
    total = gh * gw
    offsets = [0, *(sign * k for k in range(1, count) for sign in (1, -1))][:count]
    g = torch.Generator().manual_seed(seed)
    grids = []
    for offset in offsets:
        grid = torch.zeros(total, dtype=torch.bool)
        grid[torch.randperm(total, generator=g)[: min(max(total // 2 + offset, 1), total - 1)]] = True
        grids.append(grid.reshape(1, gh, gw))
    return grids


@contextmanager
def movement_timer(totals: dict[str, float]):
    """Time every block movement the engine makes (the engine calls them through the ``ops`` module)."""
    originals = {name: getattr(ops, name) for name in MOVEMENTS}

    def timed(name: str, fn: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
        return wrapper

    for name, fn in originals.items():
        setattr(ops, name, timed(name, fn))
    try:
        yield totals
    finally:
        for name, fn in originals.items():
            setattr(ops, name, fn)


def timer(fn: Callable[[], object]) -> Timer:
    """A Timer of ``fn()`` on the current torch thread count (Timer would otherwise time with one thread)."""
    return Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())


def time_frame(frame: Timer) -> float:
    """Seconds of one timed run of ``frame``; ``timeit`` runs it twice untimed first (its warm-up)."""
    return frame.timeit(number=1).median


LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
ENGINE_LAYOUT = "channels_last"  # the job's on every device (pipeline.config.build_model)


def model_and_frame(backbone: str, h: int, w: int, device: torch.device,
                    dtype: torch.dtype) -> tuple[nn.Module, Tensor]:
    """The job's network (BatchNorm folded, random weights from seed 0) and one random frame."""
    torch.manual_seed(0)
    return fold_batchnorm(build_swiftnet(backbone)).eval().to(device, dtype), torch.randn(1, 3, h, w).to(device, dtype)


def run_config(backbone: str, h: int, w: int, block: int, frames: int, device: torch.device,
               dtype: torch.dtype) -> dict[str, float]:
    net, x = model_and_frame(backbone, h, w, device, dtype)
    gh, gw = h // block, w // block
    full = torch.ones(1, gh, gw, dtype=torch.bool)
    static: dict[str, float] = {}
    with torch.no_grad():
        for name, fmt in LAYOUTS.items():
            net = net.to(memory_format=fmt)
            xf = x.contiguous(memory_format=fmt)
            frame = timer(partial(net, xf))
            static[name] = min(time_frame(frame) for _ in range(frames))
    net, x = net.to(memory_format=LAYOUTS[ENGINE_LAYOUT]), x.contiguous(memory_format=LAYOUTS[ENGINE_LAYOUT])
    step = default_batch_step(gh * gw, device)
    engines = {"all": BlockSparseEngine(net, block), "all_block_path": BlockSparseEngine(net, block, False),
               "random50": BlockSparseEngine(net, block), "fresh": BlockSparseEngine(net, block, batch_step=1)}
    if step > 1:  # the engine's default on this device pads the block batch
        engines["fresh_padded"] = BlockSparseEngine(net, block, batch_step=step)
        engines["fresh_padded"].prime_batch_sizes(x)  # as the job's runners do before timing
    for engine in engines.values():
        engine(x, full)  # a clip's first frame executes every block
    # A fresh random half for every call, warm-ups included, so each timed frame carries blocks from a different
    # previous grid; drawn up front to keep the draw out of the timings (timeit(1) makes 3 calls per frame).
    grids = itertools.cycle([half_grid(gh, gw, seed) for seed in range(3 * frames)])
    moved: dict[str, float] = {}  # movements of the latest random frame

    def random_frame() -> object:
        moved.clear()
        return engines["random50"](x, next(grids))

    def fresh_frame(name: str, grids: Iterator[Tensor]) -> object:
        return engines[name](x, next(grids))

    plain = {"static": timer(partial(net, x)), "all": timer(partial(engines["all"], x, full)),
             "all_block_path": timer(partial(engines["all_block_path"], x, full)),
             **{name: timer(partial(fresh_frame, name, itertools.cycle(fresh_count_grids(gh, gw, 3 * frames, 1))))
                for name in ("fresh", "fresh_padded") if name in engines}}
    sparse = timer(random_frame)
    times: dict[str, list[float]] = {name: [] for name in (*plain, "random50")}
    movements: list[dict[str, float]] = []  # per random frame
    with torch.no_grad():
        for _ in range(frames):
            for name, frame in plain.items():
                times[name].append(time_frame(frame))
            with movement_timer(moved):
                times["random50"].append(time_frame(sparse))
            movements.append(dict(moved))
        _, static_macs = count_macs(net, x)
        _, half_macs = count_macs(engines["random50"], x, half_grid(gh, gw, 99))
    best_t = {k: min(v) for k, v in times.items()}
    fastest = movements[times["random50"].index(best_t["random50"])]  # movements of the fastest random frame
    t_static = min(best_t["static"], *static.values())  # the faster layout is the baseline
    speedup = t_static / best_t["random50"]
    macs_ratio = static_macs / half_macs
    return {
        "static_nchw_s": static["nchw"], "static_cl_s": static["channels_last"],
        "static_s": t_static, "all_s": best_t["all"], "all_block_path_s": best_t["all_block_path"],
        "random50_s": best_t["random50"], "static_gmacs": static_macs / 1e9, "random50_gmacs": half_macs / 1e9,
        "all_overhead": best_t["all"] / t_static - 1,
        "all_block_path_overhead": best_t["all_block_path"] / t_static - 1,
        "speedup": speedup, "macs_ratio": macs_ratio, "efficiency": speedup / macs_ratio,
        "fresh_s": best_t["fresh"], "fresh_padded_s": best_t.get("fresh_padded"), "batch_step": step,
        "movement_share": sum(fastest.values()) / best_t["random50"],
        **{f"move_{k}_s": v for k, v in fastest.items()},
    }


def ms_per_frame(events: Iterable[Any], on_gpu: bool, frames: int) -> dict[str, float]:
    """The profiler's averaged events as milliseconds per frame by name: on a GPU its kernels' device time only
    (an operator's device time repeats its kernels'), else each operator's CPU self time."""
    if on_gpu:
        return {e.key: e.self_device_time_total / 1e3 / frames for e in events if e.device_type == DeviceType.CUDA}
    return {e.key: e.self_cpu_time_total / 1e3 / frames for e in events}


def op_excess(backbone: str, h: int, w: int, block: int, frames: int, device: torch.device,
              dtype: torch.dtype) -> list[tuple[str, float, float]]:
    """Milliseconds per frame of the static network and of a random-50% engine frame, averaged over ``frames``,
    most excess over half the static first. On a CPU per torch operator (the profiler's self time; the engine's
    own kernels are no torch operators and are not in it); on a GPU per kernel (its time on the device, the
    engine's kernels included), so that the rows add up to the time the GPU was busy."""
    net, x = model_and_frame(backbone, h, w, device, dtype)
    net, x = net.to(memory_format=LAYOUTS[ENGINE_LAYOUT]), x.contiguous(memory_format=LAYOUTS[ENGINE_LAYOUT])
    engine = BlockSparseEngine(net, block)
    gh, gw = h // block, w // block
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])

    def per_op(run: Callable[[int], object]) -> dict[str, float]:
        with profile(activities=activities) as prof:
            for i in range(frames):
                run(i)
        return ms_per_frame(prof.key_averages(), device.type == "cuda", frames)

    grids = [half_grid(gh, gw, seed) for seed in range(frames)]  # drawn before, to keep the draw out of the profile
    with torch.no_grad():
        engine(x, torch.ones(1, gh, gw, dtype=torch.bool))
        for seed in range(2):  # warm both up
            net(x)
            engine(x, half_grid(gh, gw, 1000 + seed))
        static = per_op(lambda i: net(x))
        sparse = per_op(lambda i: engine(x, grids[i]))
    rows = [(op, static.get(op, 0.0), sparse.get(op, 0.0)) for op in static.keys() | sparse.keys()]
    return sorted(rows, key=lambda row: row[1] / 2 - row[2])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jobs.benchmark --suite engine",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--configs", nargs="+", type=parse_config, default=[(1024, 2048, 128), (512, 1024, 64)],
                        help="HxW@block entries (default: 1024x2048@128 512x1024@64)")
    parser.add_argument("--frames", type=int, default=3, help="timed frames per variant (minimum is reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--half", action="store_true", help="the job's --half: float16 on a GPU, bfloat16 on a CPU")
    parser.add_argument("--ops", type=int, default=0, metavar="N",
                        help="also profile per operator: the N with the most and the N with the least excess over "
                        "half the static")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = select_dtype(args.half, device)
    where = f"{args.threads} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    for h, w, block in args.configs:
        r = run_config(args.backbone, h, w, block, args.frames, device, dtype)
        print(f"\n## {args.backbone} {h}x{w}, block {block}, {where}, {dtype}, engine in {ENGINE_LAYOUT}")
        print(f"static: NCHW {r['static_nchw_s']:.3f} s, channels_last {r['static_cl_s']:.3f} s; "
              f"{r['static_gmacs']:.2f} GMACs")
        print(f"all blocks (dense path): {r['all_s']:.3f} s, overhead {100 * r['all_overhead']:+.1f}%")
        print(f"all blocks (block path): {r['all_block_path_s']:.3f} s, overhead "
              f"{100 * r['all_block_path_overhead']:+.1f}%")
        print(f"random 50%: {r['random50_s']:.3f} s, {r['random50_gmacs']:.2f} GMACs; speedup {r['speedup']:.2f}x, "
              f"GMACs ratio {r['macs_ratio']:.2f}x, speedup / GMACs ratio {r['efficiency']:.2f}")
        padded = (f", {r['fresh_padded_s']:.3f} s padded to multiples of {r['batch_step']} blocks"
                  if r["fresh_padded_s"] is not None else " (not padded on this device)")
        print(f"a new number of executed blocks every frame (about 50%): {r['fresh_s']:.3f} s unpadded{padded}")
        moves = ", ".join(f"{k} {1000 * r[f'move_{k}_s']:.1f} ms" for k in MOVEMENTS if f"move_{k}_s" in r)
        print(f"block movements: {100 * r['movement_share']:.1f}% of the random-50% frame ({moves})")

        if args.ops:
            rows = op_excess(args.backbone, h, w, block, args.frames, device, dtype)
            static_ms, sparse_ms = sum(row[1] for row in rows), sum(row[2] for row in rows)
            unit = "operator, ms per frame (profiler self time)" if device.type == "cpu" else (
                f"kernel, ms per frame on the GPU (wall: static {1000 * r['static_s']:.1f}, random 50% "
                f"{1000 * r['random50_s']:.1f})")
            print(f"per {unit}: static {static_ms:.1f}, random 50% {sparse_ms:.1f}, half the static "
                  f"{static_ms / 2:.1f}")
            name = "operator" if device.type == "cpu" else "kernel"
            print(f"| {name} | static | random 50% | excess over half the static |\n|---|---:|---:|---:|")
            shown = rows if len(rows) <= 2 * args.ops else rows[: args.ops] + rows[-args.ops :]
            for op, static_op, sparse_op in shown:
                print(f"| {op[:90]} | {static_op:.2f} | {sparse_op:.2f} | {sparse_op - static_op / 2:+.2f} |")
