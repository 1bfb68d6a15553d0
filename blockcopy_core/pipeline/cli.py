"""Command-line flags of the evaluation job: the original ``test_swiftnet.py`` flags plus our own.

The BlockCopy flags are generated from :class:`~blockcopy_core.settings.BlockCopySettings`, which holds their
defaults, help texts and validation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.clips import SOURCES
from ..data.segments import DEFAULT_SEGMENT_LENGTH
from ..models import BACKBONES, SYNTHETIC_CHECKPOINT
from ..policies import POLICIES
from ..settings import BlockCopySettings, add_arguments

VIDEO_AUDIT_EVERY = 10  # videos have no labels: compare every 10th frame with the dense model by default


class HelpWithDefaults(argparse.HelpFormatter):
    """Adds "(default: X)" to a flag's help where it tells something: not for defaults that are unset (None, off)
    or that the help text already describes."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default in (None, False, argparse.SUPPRESS)
        if unset or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.evaluate",
        description="Evaluate SwiftNet, static or with BlockCopy, over video clips: mIoU, GMACs per frame and FPS.",
        epilog="Exit status: 0 every clip ran, 1 some clips failed, 2 refused before compute, 3 aborted "
               "(docs/reliability.md).",
        formatter_class=HelpWithDefaults,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data", choices=SOURCES, default=None,
                      help="clip source; default: cityscapes if --cityscapes-dir, demo if --demo-dir, else synthetic")
    data.add_argument("--cityscapes-dir", help="Cityscapes root holding leftImg8bit, leftImg8bit_sequence, gtFine")
    data.add_argument("--mode", choices=("val", "test", "train"), default="val", help="Cityscapes split")
    data.add_argument("--demo-dir", help="folder of .png/.jpg frames, natural-sorted into one video")
    data.add_argument("--video", nargs="+", metavar="PATH",
                      help="video files (mp4, mkv, avi, mov, webm), folders (every video below, natural-sorted) or "
                           "globs; each video runs as one continuous stream, cut into --segment-length segments")
    data.add_argument("--clip-length", type=int, default=20, help="frames per clip (Cityscapes: at most 20)")
    data.add_argument("--res", type=int, default=None,
                      help="short side of the frames fed to the model (1024 -> 1024x2048); default: as stored "
                           "(synthetic: generated at this size, 512 if unset)")
    data.add_argument("--num-clips-warmup", type=int, default=None, metavar="N",
                      help="clips the learned policy learns on before evaluation (unscored; rl_semseg only), never "
                           "evaluation clips unless the source has no others; default: Cityscapes 600 from the train "
                           "split (as the release), a folder's clips that are not evaluated (at most 600), synthetic "
                           "5 per evaluation clip")
    data.add_argument("--num-clips-eval", type=int, default=-1,
                      help="evaluation clips; -1 = all (synthetic: 8)")
    data.add_argument("--prefetch", type=int, default=2,
                      help="frames read ahead of the model by a background thread (0: read in the model's thread)")
    data.add_argument("--workers", type=int, dest="prefetch", help=argparse.SUPPRESS)  # the old name of --prefetch
    data.add_argument("--single-clip-loop", action="store_true",
                      help="load the first evaluation clip once and run it for every evaluation clip (no I/O)")
    data.add_argument("--seed", type=int, default=0,
                      help="seed of the synthetic clips, the warm-up clip order, torch, and (with each clip's id) "
                           "every random draw of the policies")

    video = parser.add_argument_group("video files (--video)")
    video.add_argument("--segment-length", type=int, default=DEFAULT_SEGMENT_LENGTH, metavar="N",
                       help="frames per segment: segments of a video run on different actors, each starting with "
                            "a fully executed frame, and are stitched in order")
    video.add_argument("--max-frames", type=int, metavar="N", help="at most N frames of each video")
    video.add_argument("--start", type=float, metavar="S", help="start S seconds into each video")
    video.add_argument("--end", type=float, metavar="S", help="stop S seconds into each video")
    video.add_argument("--stride", type=int, default=1, metavar="K", help="run every K-th frame")

    model = parser.add_argument_group("model")
    model.add_argument("--model-backbone", choices=BACKBONES + ("rn18", "rn34", "rn50"), default="resnet18",
                       help="SwiftNet's ResNet encoder; it must match --model-checkpoint")
    model.add_argument("--num-classes", type=int, dest="block_num_classes", metavar="K",
                       default=BlockCopySettings.block_num_classes,
                       help="classes of SwiftNet's output (the learned policy reads as many class maps)")
    model.add_argument("--model-checkpoint", help="SwiftNet checkpoint ({'state_dict': ...} or a bare state dict); "
                                                  "synthetic data with resnet18: the shipped "
                                                  "pretrained/swiftnet_rn18_synthetic.pth unless given")
    model.add_argument("--random-weights", action="store_true", help="no checkpoint: random initialisation")
    model.add_argument("--half", action="store_true", help="float16 on GPU, bfloat16 on CPU")
    model.add_argument("--device", default=None, help="torch device; default: cuda if available, else cpu")
    model.add_argument("--batch-size", type=int, default=1, help="clips processed side by side")

    block = parser.add_argument_group("BlockCopy")
    add_arguments(block, defaults={"block_policy": "static"}, choices={"block_policy": ("static", *POLICIES)},
                  help={"block_policy": "static: the plain dense model, no BlockCopy; BlockCopy with all, none, random "
                                        "(each block with p=0.5) or the learned rl_semseg",
                        "block_num_classes": argparse.SUPPRESS})
    block.add_argument("--policy-checkpoint", metavar="PATH",
                       help="rl_semseg: start from this policy state (an earlier run's REPORT_DIR/policy.pt; the file "
                            "must exist), loaded before warm-up, so a short or no warm-up suffices; the final state "
                            "is always written to REPORT_DIR/policy.pt")

    out = parser.add_argument_group("output")
    out.add_argument("--report-dir", help="where summary.parquet goes; default runs/<run_id>")
    out.add_argument("--output-dir", help="write per evaluated frame the input, the colourised prediction and the "
                                          "execution grid, and an animated GIF per clip, here")
    out.add_argument("--save-predictions", action="store_true",
                     help="write Cityscapes-format labelId PNGs under REPORT_DIR/predictions/ (annotated frames of "
                          "Cityscapes clips, every evaluated frame otherwise)")
    out.add_argument("--audit-every", type=int, default=None, metavar="K",
                     help="also run the dense model on every K-th evaluated frame (not timed, not counted) and "
                          "record how far BlockCopy's output is from it: dense_agreement, dense_kl (0: off; "
                          f"default: {VIDEO_AUDIT_EVERY} for videos, which have no labels, else off)")
    out.add_argument("--fast", action="store_true", help="speed mode: no metrics and no MAC counting")
    out.add_argument("--timings", action="store_true", help="print the time spent per stage")
    out.add_argument("--resume", action="store_true",
                     help="continue the run in --report-dir: skip the clips already recorded there")

    ray_group = parser.add_argument_group("execution")
    ray_group.add_argument("--executor", choices=("ray", "inline"), default="ray",
                           help="ray: actors on a Ray cluster (local one on 127.0.0.1 unless --address or "
                                "RAY_ADDRESS); inline: everything in this process, no Ray")
    ray_group.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else start a local one)")
    ray_group.add_argument("--num-actors", type=int, default=None,
                           help="actors to start; default: one per GPU, else cluster CPUs / --cpus-per-actor")
    ray_group.add_argument("--cpus-per-actor", type=float, default=2,
                           help="CPU cores per CPU actor (torch uses that many threads)")
    ray_group.add_argument("--gpus-per-actor", type=float, default=1, help="GPUs per actor (may be fractional)")
    ray_group.add_argument("--max-actor-restarts", type=int, default=3,
                           help="times a dead actor is restarted and its clips re-run before they count as failed")
    ray_group.add_argument("--debug", action="store_true",
                           help="print the traceback of known errors too (bad input, interruptions)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is None:
        args.data = ("cityscapes" if args.cityscapes_dir else "demo" if args.demo_dir else "video" if args.video
                     else "synthetic")
    if args.data == "cityscapes" and not args.cityscapes_dir:
        parser.error("--data cityscapes needs --cityscapes-dir")
    if args.data == "demo" and not args.demo_dir:
        parser.error("--data demo needs --demo-dir")
    if args.data == "video" and not args.video:
        parser.error("--data video needs --video")
    if args.audit_every is None:
        args.audit_every = VIDEO_AUDIT_EVERY if args.data == "video" else 0
    for flag in ("segment_length", "stride", "max_frames"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if (args.start or 0) < 0 or (args.end is not None and args.end <= (args.start or 0)):
        parser.error("--start and --end must satisfy 0 <= start < end (seconds)")
    if args.model_checkpoint and args.random_weights:
        parser.error("--model-checkpoint and --random-weights exclude each other")
    args.model_backbone = {"rn18": "resnet18", "rn34": "resnet34", "rn50": "resnet50"}.get(
        args.model_backbone, args.model_backbone)
    if not (args.model_checkpoint or args.random_weights):
        if args.data != "synthetic":
            parser.error(f"--data {args.data} needs --model-checkpoint (or --random-weights to run untrained)")
        if args.model_backbone != "resnet18":
            parser.error(f"no synthetic checkpoint ships for {args.model_backbone} (only resnet18): train one with "
                         "python -m jobs.train and pass --model-checkpoint, or pass --random-weights")
        if not SYNTHETIC_CHECKPOINT.is_file():
            parser.error(f"the shipped synthetic checkpoint {SYNTHETIC_CHECKPOINT} is missing: pass "
                         "--model-checkpoint or --random-weights")
        args.model_checkpoint = str(SYNTHETIC_CHECKPOINT)
    if args.num_clips_warmup is not None and args.num_clips_warmup < 0:
        parser.error("--num-clips-warmup must be 0 or more")
    if args.audit_every < 0:
        parser.error("--audit-every must be 0 (off) or positive")
    if args.num_clips_eval == 0 or args.num_clips_eval < -1:
        parser.error(f"--num-clips-eval must be -1 (all) or at least 1, got {args.num_clips_eval}")
    for flag in ("clip_length", "batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    try:
        args.blockcopy = BlockCopySettings.from_args(args)
    except ValueError as exc:  # "block_size must be ...": say it with the flag's name
        name, reason = str(exc).split(" ", 1)
        parser.error(f"--{name.replace('_', '-')} {reason}")
    if args.policy_checkpoint and args.block_policy != "rl_semseg":
        parser.error("--policy-checkpoint goes with --block-policy rl_semseg (the only policy that learns)")
    if args.policy_checkpoint and not Path(args.policy_checkpoint).is_file():
        parser.error(f"--policy-checkpoint {args.policy_checkpoint}: no such file")
    if args.resume and not args.report_dir:
        parser.error("--resume needs the --report-dir of the run to continue")
    if args.num_actors is not None and args.num_actors < 1:
        parser.error("--num-actors must be at least 1")
    if args.cpus_per_actor <= 0 or args.gpus_per_actor <= 0:
        parser.error("--cpus-per-actor and --gpus-per-actor must be positive")
    if args.res is not None and args.res < 32:
        parser.error("--res must be at least 32")
    return args
