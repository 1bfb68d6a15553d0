"""The evaluation job (``python -m jobs.evaluate``): flags -> clips -> a run folder -> an executor -> Parquet rows ->
summary.

Checks everything it can before compute (clips, weights, then the run folder: ``reporting.runfolder``: writable,
locked, one run per folder, a resume only with the recorded settings), then prints the original release's summary
lines and writes ``REPORT_DIR/{clips,frames}/`` and ``REPORT_DIR/summary.parquet``. The exit status says how it
ended (``exits.ExitStatus``): 0 all clips ok, 1 some failed, 2 refused before compute, 3 aborted.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import torch

from ..data import Clip, FrameReadError, build_clips
from ..data.synthetic import EVAL_FIRST, WARMUP_FIRST
from ..data.video import video_clips
from ..data.videofiles import VideoInputError
from ..metrics import ConfusionMatrix, format_iou_table
from ..models import CheckpointError, build_swiftnet, load_checkpoint
from ..policies import POLICIES_THAT_LEARN
from ..reporting.manifest import Manifest, file_digest
from ..reporting.reader import aggregate_audit, aggregate_clips, read_table
from ..reporting.results import ClipResult
from ..reporting.runfolder import RunFolder, open_run
from ..reporting.schema import POLICY_FILE, summary_row
from ..reporting.writer import PACKAGE_ROOT, RunWriter, code_version, provenance
from .checks import check_block_size, model_input_size
from .cli import parse_args
from .config import RunnerConfig
from .executor import Executor, InlineExecutor, batches, import_ray_executor
from .exits import ExitStatus, Refused, resume_command, stop_on_sigterm
from .progress import Progress
from .video_output import stitch_videos
from .warmup import default_warmup_count, run_warmup

log = logging.getLogger("blockcopy")
SYNTHETIC_DEFAULT_RES = 512
SYNTHETIC_DEFAULT_EVAL_CLIPS = 8
# What bad input raises while the job lists clips, claims its folder and loads weights: refused, one line, no trace.
INPUT_ERRORS = (ValueError, OSError, CheckpointError, FrameReadError)


# Flags that say where and how a run executes, or what else it writes, not what its rows hold: a resume may change
# them. Every other flag is recorded in the manifest and must be repeated by a resume (a new flag too, until it is
# listed here). ``blockcopy`` is the block_* flags again, as one object.
NOT_RESULT_AFFECTING = frozenset({
    "executor", "address", "num_actors", "cpus_per_actor", "gpus_per_actor", "max_actor_restarts", "device",
    "prefetch", "timings", "output_dir", "save_predictions", "report_dir", "resume", "block_policy_verbose", "debug",
    "blockcopy",
})


@dataclass
class Plan:
    """What a run was checked and claimed for before compute."""

    folder: RunFolder
    eval_clips: list[Clip]
    warmup_clips: list[Clip]  # the learned policy's
    weights: dict[str, torch.Tensor]
    unreadable: list[VideoInputError]  # videos that cannot run: each recorded as a failed clip
    resume: str  # the command that continues this run


@dataclass
class Session:
    """What this job ran of the evaluation: frames, wall time (the audit's excluded), actors, seconds per stage."""

    frames: int = 0
    wall_s: float = math.nan
    num_actors: int | None = None
    timings: Counter = field(default_factory=Counter)

    @property
    def fps(self) -> float:
        """Evaluation frames per wall-clock second of this session (NaN when it ran nothing)."""
        return self.frames / self.wall_s if self.wall_s > 0 else math.nan


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def initial_weights(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """The network's weights: from the checkpoint, or seeded random ones (said loudly)."""
    torch.manual_seed(args.seed)
    model = build_swiftnet(args.model_backbone, args.blockcopy.block_num_classes)
    if args.model_checkpoint:
        load_checkpoint(model, args.model_checkpoint)
        log.info("loaded weights from %s", args.model_checkpoint)
    else:
        log.warning("!" * 88)
        log.warning("!! RANDOM WEIGHTS (--random-weights): the mIoU figures of this run are meaningless. !!")
        log.warning("!" * 88)
    return model.state_dict()


def runner_config(args: argparse.Namespace, report_dir: str) -> RunnerConfig:
    return RunnerConfig(
        backbone=args.model_backbone, blockcopy=args.blockcopy,
        device=args.device, half=args.half, res=args.res if args.data != "synthetic" else None,
        measure=not args.fast, prefetch=args.prefetch, output_dir=args.output_dir, seed=args.seed,
        predictions_dir=os.path.join(report_dir, "predictions") if args.save_predictions else None,
        audit_every=args.audit_every,
    )


def list_source(args: argparse.Namespace, mode: str) -> tuple[list[Clip], list[VideoInputError]]:
    """Every clip of the source (Cityscapes: of split ``mode``) and the videos that cannot be read; a synthetic
    source has no end, so none (its ranges are made by ``synthetic_range``)."""
    if args.data == "synthetic":
        return [], []
    if args.data == "video":
        return video_clips(args.video, args.segment_length, args.max_frames, args.start, args.end, args.stride)
    return build_clips(args.data, cityscapes_dir=args.cityscapes_dir, mode=mode, demo_dir=args.demo_dir,
                       clip_length=args.clip_length), []


def synthetic_range(args: argparse.Namespace, count: int | None, first_clip: int) -> list[Clip]:
    height = args.res or SYNTHETIC_DEFAULT_RES
    return build_clips("synthetic", clip_length=args.clip_length, num_clips=count, seed=args.seed, height=height,
                       width=2 * height, first_clip=first_clip)


def make_clips(args: argparse.Namespace, count: int | None, listed: list[Clip]) -> list[Clip]:
    """The evaluation clips (``count``; None = all): the first of the ``listed`` source, or synthetic ones."""
    if args.data == "synthetic":
        return synthetic_range(args, count, EVAL_FIRST)
    return listed[:count]


def make_warmup_clips(args: argparse.Namespace, eval_clips: list[Clip], listed: list[Clip]) -> list[Clip]:
    """The learned policy's warm-up clips, never evaluation clips unless there are no others and
    ``--num-clips-warmup`` asks for some: synthetic ones of their own range; Cityscapes' train split (else the
    split's other ``listed`` clips); the other clips of a folder. Drawn in a seeded order, cycling when fewer."""
    if args.data == "synthetic":
        count = default_warmup_count("synthetic", len(eval_clips), 0) if args.num_clips_warmup is None \
            else args.num_clips_warmup
        return synthetic_range(args, count, WARMUP_FIRST) if count else []
    spare = []
    if args.data == "cityscapes" and args.mode != "train":
        try:
            spare = list_source(args, "train")[0]
        except ValueError:  # no train split here: the other clips of this one
            pass
    if not spare:
        evaluated = {clip.clip_id for clip in eval_clips}
        spare = [clip for clip in listed if clip.clip_id not in evaluated]
    count = args.num_clips_warmup
    if count is None:
        count = default_warmup_count(args.data, len(eval_clips), len(spare))
        if not spare:
            log.info("no warm-up: every clip of this source is an evaluation clip (the policy learns as it "
                     "evaluates; --num-clips-warmup N warms it up on the evaluation clips themselves)")
    elif count and not spare:
        log.warning("warming up on the evaluation clips themselves: this source has no other clips")
        spare = eval_clips
    order = random.Random(args.seed).sample(spare, len(spare))
    return [order[i % len(order)] for i in range(count)]


def make_executor(args: argparse.Namespace, config: RunnerConfig, weights: dict[str, torch.Tensor],
                  resume: str) -> Executor:
    if args.executor == "inline":
        return InlineExecutor(config, weights)

    def ray_lost(reason: str) -> None:  # from the watchdog's thread: Ray's core would end the process anyway
        log.error("Ray stopped under the job (%s): the clips finished so far are recorded; once Ray runs again, "
                  "continue with:\n  %s", reason, resume)
        logging.shutdown()
        os._exit(ExitStatus.ABORTED)

    ray_executor = import_ray_executor(local=not (args.address or os.environ.get("RAY_ADDRESS")))
    connected = ray_executor.connect(args.address)
    stop_on_sigterm()  # again: ray.init replaced our handler with one that exits at once
    return ray_executor.RayExecutor(config, weights, num_actors=args.num_actors, cpus_per_actor=args.cpus_per_actor,
                                    gpus_per_actor=args.gpus_per_actor, max_restarts=args.max_actor_restarts,
                                    disconnect_on_close=connected, on_ray_lost=ray_lost)


def log_results(clips: pa.Table, summary: dict, confusion: ConfusionMatrix, timings: Counter | None) -> None:
    """Failed clips, per-class IoUs, the original release's summary lines, the audit and stage timings."""
    for row in clips.to_pylist():
        if row["status"] != "ok":
            log.error("clip %s failed: %s", row["clip_id"], row["error"])
    if confusion.counts.sum():
        log.info("Per-class IoU:\n%s", format_iou_table(confusion))
    log.info("Number of images: %d", summary["num_frames"])
    if confusion.counts.sum():
        log.info("Mean IoU %.2f", summary["mean_iou"])
    else:
        log.info("Mean IoU: not measured, no frame has a label (the agreement with the dense model, with "
                 "--audit-every, measures fidelity to the dense model, not accuracy)")
    log.info("Computational cost (avg per img): %.3f GMACs", summary["gmacs_per_frame"])
    log.info("Average FPS: %.2f", summary["fps"])
    log.info("FPS per actor (model time only): %.2f", summary["fps_per_actor"])
    if summary["num_frames_audited"]:
        log.info("Agreement with the dense model: %.2f%% of pixels, mean KL %.4f nats (%d audited frames)",
                 100 * summary["dense_agreement"], summary["dense_kl"], summary["num_frames_audited"])
    for stage, seconds in (timings or Counter()).most_common():
        log.info("time in %-8s %9.2f s (summed over actors)", stage, seconds)


def result_settings(args: argparse.Namespace) -> dict:
    """The flags that decide what a run's rows hold (a resume must repeat them), with the checkpoint files named
    by their content."""
    settings = {key: value for key, value in vars(args).items() if key not in NOT_RESULT_AFFECTING}
    for flag in ("model_checkpoint", "policy_checkpoint"):
        settings[f"{flag}_sha256"] = file_digest(settings[flag]) if settings[flag] else ""
    return settings


def shown_path(path: str | None) -> str:
    """A file as reports name it: relative to the package's checkout when inside it (the shipped checkpoint under
    ``ray job submit`` would otherwise be named by Ray's temporary copy of the working directory)."""
    if not path:
        return ""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(PACKAGE_ROOT)) if resolved.is_relative_to(PACKAGE_ROOT) else path


def eval_count(args: argparse.Namespace) -> int | None:
    if args.num_clips_eval >= 0:
        return args.num_clips_eval
    return SYNTHETIC_DEFAULT_EVAL_CLIPS if args.data == "synthetic" else None


def main(argv: list[str] | None = None) -> int:
    """Run the job; the exit status says how it ended (:class:`ExitStatus`, docs/reliability.md)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s", stream=sys.stdout,
                        force=True)
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)  # usage errors: argparse says so and exits with status 2 (REFUSED)
    stop_on_sigterm()
    run_id = new_run_id()
    report_dir = args.report_dir or f"runs/{run_id}"
    try:
        plan = prepare(args, run_id, report_dir, resume_command(argv, report_dir))
        with plan.folder:
            try:
                return run(args, plan)
            except KeyboardInterrupt as exc:
                log.error("interrupted (%s): the clips finished so far are recorded in %s; continue with:\n  %s",
                          str(exc) or "SIGINT", report_dir, plan.resume,
                          exc_info=exc if args.debug else None)
            except OSError as exc:  # the report cannot be written (disk full, folder removed, ...)
                log.error("error: cannot write the report in %s: %s", report_dir, exc)
            return ExitStatus.ABORTED
    except Refused as exc:
        log.error("error: %s", exc, exc_info=exc.__cause__ if args.debug else None)
        return ExitStatus.REFUSED
    except KeyboardInterrupt as exc:  # before the run folder was claimed: nothing ran
        log.error("interrupted (%s) before any compute", str(exc) or "SIGINT")
        return ExitStatus.ABORTED
    except Exception:  # noqa: BLE001 - a crash: its traceback, and the status that says so
        log.exception("the job crashed; the clips recorded so far stay in %s (continue with --resume)", report_dir)
        return ExitStatus.ABORTED


def prepare(args: argparse.Namespace, run_id: str, report_dir: str, resume: str) -> Plan:
    """Everything checked before compute, bad input refused (:class:`Refused`): the clips, the weights, and last
    the run folder claimed for them (writable, locked, a run of its own or the same run resumed)."""
    try:
        listed, unreadable = list_source(args, args.mode)  # once: listing videos probes every file
        eval_clips = make_clips(args, eval_count(args), listed)
        if not eval_clips:  # every video unreadable (other sources refuse an empty listing themselves)
            raise ValueError(f"no readable video: {'; '.join(map(str, unreadable))}")
        size = model_input_size(eval_clips[0], args.res) if args.block_policy != "static" else None
        if size is not None:
            check_block_size(args.blockcopy.block_size, size)
        learns = args.block_policy in POLICIES_THAT_LEARN
        warmup_clips = make_warmup_clips(args, eval_clips, listed) if learns else []
        weights = initial_weights(args)
        manifest = Manifest.create(run_id, result_settings(args), eval_clips, code_version())
        return Plan(open_run(report_dir, manifest, resume=args.resume), eval_clips, warmup_clips, weights,
                    unreadable, resume)
    except INPUT_ERRORS as exc:
        raise Refused(exc) from exc


def run(args: argparse.Namespace, plan: Plan) -> ExitStatus:
    """Run the clips the run folder has not recorded ok yet, then write the summary."""
    folder = plan.folder
    report_dir, run_id = str(folder.path), folder.run_id
    todo = [clip for clip in plan.eval_clips if clip.clip_id not in folder.done]
    if folder.done:
        log.info("resuming run %s: %d of %d clips already recorded in %s", run_id, len(folder.done),
                 len(plan.eval_clips), report_dir)
    if folder.complete:
        log.info("run %s is complete: nothing to run, its report in %s stays as it is", run_id, report_dir)
        return ExitStatus.OK
    config = runner_config(args, report_dir)
    run_config = {**vars(args), "run_id": run_id, "report_dir": report_dir, "runner": asdict(config),
                  "model_checkpoint": shown_path(args.model_checkpoint),
                  "model_checkpoint_sha256": folder.manifest.settings["model_checkpoint_sha256"]}
    del run_config["blockcopy"]  # its fields are the block_* flags, already there
    writer = RunWriter(report_dir, run_id, run_config)
    if plan.unreadable:
        writer.append([ClipResult(Path(error.path).name, "eval", status="failed", error=str(error))
                       for error in plan.unreadable])
    # Nothing left to run (an interrupted run whose clips all finished): the summary, with no speed measured.
    session = evaluate(args, config, writer, todo, plan) if todo else Session()
    if args.output_dir:
        stitch_videos(args.output_dir, plan.eval_clips)

    clips = read_table(report_dir, "clips")
    figures, confusion = aggregate_clips(clips, args.blockcopy.block_num_classes)
    figures.update(aggregate_audit(read_table(report_dir, "frames")))
    if args.fast:
        figures["mean_iou"] = figures["gmacs_per_frame"] = float("nan")
    summary = summary_row(run_config, figures, fps=session.fps, num_actors=session.num_actors,
                          wall_s=session.wall_s, **provenance(folder.manifest.code))
    path = writer.write_summary(summary)
    log_results(clips, summary, confusion, session.timings if args.timings else None)
    log.info("summary written to %s", path)
    return ExitStatus.CLIPS_FAILED if summary["num_clips_failed"] else ExitStatus.OK


def evaluate(args: argparse.Namespace, config: RunnerConfig, writer: RunWriter, eval_clips: list[Clip],
             plan: Plan) -> Session:
    """Warm up (the learned policy), run ``eval_clips`` recording each batch with ``writer``, keep the policy."""
    warmup_clips = plan.warmup_clips
    report_dir = writer.report_dir
    executor = make_executor(args, config, plan.weights, plan.resume)
    log.info("run %s: %s, policy %s, %s data; %d warm-up and %d evaluation clips on %d actor(s); report in %s",
             writer.run_id, args.model_backbone, args.block_policy, args.data, len(warmup_clips), len(eval_clips),
             executor.num_actors, report_dir)
    try:
        if args.policy_checkpoint:
            executor.load_policy_state(Path(args.policy_checkpoint).read_bytes())
            log.info("policy state loaded from %s", args.policy_checkpoint)
        if warmup_clips:
            run_warmup(executor, warmup_clips, args.batch_size, Path(report_dir))
        if args.single_clip_loop:
            executor.loop_first_clip(eval_clips[0])
        if eval_clips:
            executor.prime(eval_clips[0], args.batch_size)
        start = time.perf_counter()
        timings: Counter[str] = Counter()
        with Progress("eval", len(eval_clips), sum(clip.num_frames for clip in eval_clips),
                      executor.frames_done) as progress:
            def record(results: list[ClipResult]) -> None:
                writer.append(results)
                progress.add(results)
                for result in results:
                    timings.update(result.timings)

            executor.run_phase(batches(eval_clips, args.batch_size), "eval", record)
        wall_s = time.perf_counter() - start
        policy_state = executor.policy_state()
        if policy_state is not None:
            Path(report_dir, POLICY_FILE).write_bytes(policy_state)
            log.info("policy state written to %s", Path(report_dir, POLICY_FILE))
    finally:
        executor.close()
    # The audit's dense passes are not part of the timed run: take their time (spread over actors) out.
    wall_s -= timings.get("audit", 0.0) / executor.num_actors
    return Session(progress.frames, wall_s, executor.num_actors, timings)


if __name__ == "__main__":
    sys.exit(main())
