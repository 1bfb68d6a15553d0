"""Accuracy / efficiency benchmark: ``python -m jobs.benchmark --suite accuracy``.

Runs the real evaluation job (``python -m jobs.evaluate``, one process per run) on one fixed evaluation split with
the static SwiftNet, the random policy and the learned policy at several targets; then, for speed, the same
policies again with ``--fast`` (no metrics, no MAC counting) on the first clips of the split, the learned policies
starting from the state their accuracy run ended with. Writes the runs, ``results.md`` (the tables of
``jobs.report`` and the goals of the method, each met or missed) and ``pareto.png`` into ``--out``.

Finished runs (with a ``summary.parquet``) are kept, and an interrupted one resumes, so the command can simply be
run again after a stop. Flags it does not know go to every evaluation run (e.g. ``--cityscapes-dir DIR
--model-checkpoint FILE --res 1024 --block-size 128`` for Cityscapes, or ``--executor inline``).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..reporting import SUMMARY_FILE, plots, read_summary
from ..reporting.schema import POLICY_FILE
from ..reporting.tables import build_sections, render
from ..settings import POLICY_NETS, BlockCopySettings

RESULTS_FILE = "results.md"
DEFAULT_NET = BlockCopySettings().block_policy_net
PLOT_FILE = "pareto.png"


@dataclass(frozen=True)
class Variant:
    """One policy setting of the benchmark: its run folder name and its evaluation flags."""

    name: str
    flags: tuple[str, ...]

    @property
    def learns(self) -> bool:
        return "rl_semseg" in self.flags


@dataclass(frozen=True)
class Goals:
    """What the method must show on the benchmark (BlockCopy paper, Cityscapes RN50: -0.8 mIoU at 57.6% GMACs)."""

    static_miou: float = 80.0  # the trained network is good enough for accuracy differences to mean something
    gmacs_ratio: float = 0.60  # rl at target 0.5: GMACs per frame at most this share of static...
    miou_drop: float = 1.0  # ...losing at most this many mIoU points
    miou_over_random: float = 2.0  # rl at target 0.5 beats the random policy by this much


def rl_name(target: float, net: str = DEFAULT_NET) -> str:
    """Run folder of the learned policy at ``target`` (0.5 -> rl50; with another than the default policy
    network, e.g. rl50_paper)."""
    return f"rl{round(100 * target):02d}" + ("" if net == DEFAULT_NET else f"_{net}")


def variants(targets: list[float], nets: list[str] | None = None) -> list[Variant]:
    rl = [Variant(rl_name(t, net), ("--block-policy", "rl_semseg", "--block-target", f"{t:g}",
                                    "--block-policy-net", net))
          for net in nets or [DEFAULT_NET] for t in targets]
    return [Variant("static", ("--block-policy", "static")), Variant("random", ("--block-policy", "random")), *rl]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.benchmark --suite accuracy",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
        epilog="Other flags are passed to every `python -m jobs.evaluate` run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", default="runs/accuracy", help="folder of the runs, results.md and pareto.png")
    parser.add_argument("--num-clips", type=int, default=40, help="evaluation clips (-1: all of a real dataset)")
    parser.add_argument("--clip-length", type=int, default=20, help="frames per clip")
    parser.add_argument("--res", type=int, default=512, help="short side of the frames (512: 512x1024)")
    parser.add_argument("--block-size", type=int, default=64, help="block side in pixels (64 at 512x1024)")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.3, 0.5, 0.7],
                        help="execution targets of the learned policy")
    parser.add_argument("--policy-nets", nargs="+", choices=POLICY_NETS, default=[DEFAULT_NET],
                        help="networks of the learned policy, each run at every target (e.g. compact paper: the "
                             "new one and the release's side by side)")
    parser.add_argument("--num-clips-warmup", type=int, default=40,
                        help="clips the learned policy trains on before each of its accuracy runs")
    parser.add_argument("--speed-clips", type=int, default=8,
                        help="clips of the --fast speed runs (the first of the split); 0: no speed runs")
    parser.add_argument("--speed-res", type=int, nargs="+", metavar="RES",
                        help="short sides of the speed runs, the block size scaled along (default: --res); e.g. "
                             "512 1024 also times the paper's 1024x2048 with 128-pixel blocks")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic clips and of torch")
    return parser


def speed_dir(res: int) -> str:
    return f"speed_{res}"


def evaluate_command(args: argparse.Namespace, variant: Variant, run_dir: Path, speed_res: int | None,
                     passthrough: list[str]) -> list[str]:
    """The ``python -m jobs.evaluate`` command line of one run (a speed run when ``speed_res`` is given).

    A speed run at another resolution scales the block size with it, so the block grid (and with it the learned
    policy's input) keeps its shape and the policy state of the accuracy run fits.
    """
    res = speed_res or args.res
    block = args.block_size * res // args.res
    command = [sys.executable, "-m", "jobs.evaluate", *variant.flags, "--report-dir", str(run_dir),
               "--clip-length", str(args.clip_length), "--res", str(res), "--block-size", str(block),
               "--seed", str(args.seed), "--num-clips-eval", str(args.speed_clips if speed_res else args.num_clips)]
    if speed_res:
        command.append("--fast")
        if variant.learns:
            policy = Path(args.out) / variant.name / POLICY_FILE
            command += ["--num-clips-warmup", "0", "--policy-checkpoint", str(policy)]
    elif variant.learns:
        command += ["--num-clips-warmup", str(args.num_clips_warmup)]
    if (run_dir / "clips").is_dir():
        command.append("--resume")
    return command + passthrough


def run_all(args: argparse.Namespace, passthrough: list[str]) -> None:
    """Run every variant (accuracy, then speed at each resolution), keeping the runs finished earlier."""
    out = Path(args.out)
    plan = [(variant, out / variant.name, None) for variant in variants(args.targets, args.policy_nets)]
    plan += [(variant, out / speed_dir(res) / variant.name, res)
             for res in speed_resolutions(args) for variant in variants(args.targets, args.policy_nets)]
    for variant, run_dir, speed_res in plan:
        kind = f"speed ({speed_res})" if speed_res else "accuracy"
        if (run_dir / SUMMARY_FILE).is_file():
            print(f"== {kind} run {variant.name}: finished earlier, kept ({run_dir})", flush=True)
            continue
        command = evaluate_command(args, variant, run_dir, speed_res, passthrough)
        print(f"== {kind} run {variant.name}: {' '.join(command[1:])}", flush=True)
        code = subprocess.run(command, check=False).returncode
        if not (run_dir / SUMMARY_FILE).is_file():
            raise SystemExit(f"the {kind} run {variant.name} stopped with exit status {code} and wrote no summary; "
                             f"see its output above, then run this command again to continue")


def speed_resolutions(args: argparse.Namespace) -> list[int]:
    return (args.speed_res or [args.res]) if args.speed_clips else []


def goal_lines(out: Path, targets: list[float], speed_res: list[int], goals: Goals = Goals(),
               nets: list[str] | None = None) -> list[str]:
    """Each goal of the method with the measured figures, met or missed (by how much), per policy network."""
    static = read_summary(out / "static")
    lines = [f"static mIoU {static['mean_iou']:.2f} (goal >= {goals.static_miou:g}): "
             f"{_mark(static['mean_iou'] >= goals.static_miou)}"]
    if rl_name(0.5) not in {rl_name(t) for t in targets}:
        return lines + ["the learned policy's goals are set at target 0.5, which this benchmark did not run"]
    for net in nets or [DEFAULT_NET]:
        lines += _rl_goal_lines(out, rl_name(0.5, net), static, speed_res, goals)
    return lines


def _mark(met: bool) -> str:
    return "met" if met else "**missed**"


def _rl_goal_lines(out: Path, name: str, static: dict, speed_res: list[int], goals: Goals) -> list[str]:
    random, rl = read_summary(out / "random"), read_summary(out / name)
    ratio = rl["gmacs_per_frame"] / static["gmacs_per_frame"]
    policy_share = rl["policy_gmacs_per_frame"] / static["gmacs_per_frame"]
    drop = static["mean_iou"] - rl["mean_iou"]
    over_random = rl["mean_iou"] - random["mean_iou"]
    lines = [
        f"{name} GMACs per frame {rl['gmacs_per_frame']:.2f} = {100 * ratio:.1f}% of static "
        f"(goal <= {100 * goals.gmacs_ratio:.0f}%): {_mark(ratio <= goals.gmacs_ratio)}; of it the policy network "
        f"{rl['policy_gmacs_per_frame']:.2f} GMACs ({100 * policy_share:.1f}% of static), the segmentation network "
        f"{100 * (ratio - policy_share):.1f}% of static at execution fraction {rl['exec_fraction']:.3f}",
        f"{name} mIoU {rl['mean_iou']:.2f} = static {-drop:+.2f} (goal >= -{goals.miou_drop:g}): "
        f"{_mark(drop <= goals.miou_drop)}",
        f"{name} mIoU - random mIoU = {over_random:+.2f} at execution fractions {rl['exec_fraction']:.3f} vs "
        f"{random['exec_fraction']:.3f} (goal >= +{goals.miou_over_random:g}): "
        f"{_mark(over_random >= goals.miou_over_random)}",
    ]
    for res in speed_res:
        fast_static, fast_rl = (read_summary(out / speed_dir(res) / run) for run in ("static", name))
        ratio_fps = fast_rl["fps"] / fast_static["fps"] if fast_static["fps"] > 0 else math.nan
        lines.append(f"FPS {name} / static at {fast_static['height']}x{fast_static['width']} = "
                     f"{fast_rl['fps']:.2f} / {fast_static['fps']:.2f} = {ratio_fps:.2f}x (--fast runs)")
    return lines


def write_results(out: Path, targets: list[float], speed_res: list[int], nets: list[str] | None = None) -> Path:
    """results.md: the accuracy runs against static, the speed runs against static, the goals; and the plot."""
    names = [variant.name for variant in variants(targets, nets)]

    def tables(folder: Path) -> tuple[str, list]:
        sections, notes, runs = build_sections([folder / name for name in names], baseline=folder / "static")
        return render(sections, notes, "markdown"), runs

    accuracy, runs = tables(out)
    lines = [f"# Accuracy / efficiency benchmark: {out}", "", "## Accuracy (metrics and MACs on every frame)", "",
             accuracy]
    for res in speed_res:
        lines += [f"## Speed at short side {res} (`--fast`: no metrics, no MAC counting)", "",
                  tables(out / speed_dir(res))[0]]
    lines += ["## Goals", "", *[f"- {line}" for line in goal_lines(out, targets, speed_res, nets=nets)], ""]
    try:
        plots.plot_runs(runs, out / PLOT_FILE)
        lines += [f"mIoU against GMACs per frame (Pareto front dashed) and FPS: {PLOT_FILE}", ""]
    except ImportError as exc:  # matplotlib is an optional extra
        lines += [f"no plot: {exc}", ""]
    path = out / RESULTS_FILE
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    args, passthrough = build_parser().parse_known_args(argv)
    if args.num_clips == 0 or args.speed_clips < 0 or args.num_clips_warmup < 0:
        raise SystemExit("--num-clips must be -1 or positive, --speed-clips and --num-clips-warmup at least 0")
    if len({variant.name for variant in variants(args.targets, args.policy_nets)}) != \
            len(args.targets) * len(args.policy_nets) + 2:
        raise SystemExit(f"--targets {args.targets} --policy-nets {args.policy_nets} name the same run twice "
                         "(targets are kept to two decimals)")
    if any(res * args.block_size % args.res for res in args.speed_res or []):
        raise SystemExit(f"--speed-res {args.speed_res}: the block size {args.block_size} scaled to each must be whole")
    run_all(args, passthrough)
    path = write_results(Path(args.out), args.targets, speed_resolutions(args), args.policy_nets)
    print(path.read_text())
    print(f"written: {path}")
    return 0
