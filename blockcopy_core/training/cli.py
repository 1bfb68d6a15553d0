"""The training command's flags and driver (``python -m jobs.train``): clips from the synthetic video or Cityscapes,
then :func:`~blockcopy_core.training.loop.train`."""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from ..data import build_clips
from ..data.synthetic import TRAIN_FIRST, VAL_FIRST
from ..models import BACKBONES, build_swiftnet, load_checkpoint
from .loop import TrainConfig, train

log = logging.getLogger("blockcopy")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.train", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train SwiftNet on synthetic street video (default) or on Cityscapes fine labels; saves the "
                    "published checkpoint format at the best validation mIoU.")
    parser.add_argument("--backbone", choices=BACKBONES, default="resnet18")
    parser.add_argument("--cityscapes-dir", help="train on Cityscapes fine labels (train split; val to validate)")
    parser.add_argument("--height", type=int, default=512, help="synthetic frame height (width = 2 x height)")
    parser.add_argument("--train-clips", type=int, default=400, help="synthetic training clips")
    parser.add_argument("--val-clips", type=int, default=8, help="validation clips (synthetic; Cityscapes: all)")
    parser.add_argument("--clip-length", type=int, default=8, help="frames per synthetic clip")
    parser.add_argument("--iterations", type=int, default=TrainConfig.iterations)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--crop", type=int, nargs=2, default=TrainConfig.crop, metavar=("H", "W"))
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--encoder-lr-ratio", type=float, default=TrainConfig.encoder_lr_ratio,
                        help="encoder learning rate as a share of --lr (1 when training from scratch)")
    parser.add_argument("--val-every", type=int, default=TrainConfig.val_every)
    parser.add_argument("--init", help="start from this checkpoint instead of random weights")
    parser.add_argument("--out", required=True, help="checkpoint to write")
    parser.add_argument("--half-checkpoint", action="store_true", help="store float16 weights (half the size)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s", stream=sys.stdout,
                        force=True)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.cityscapes_dir:
        train_clips = build_clips("cityscapes", cityscapes_dir=args.cityscapes_dir, mode="train", clip_length=1)
        val_clips = build_clips("cityscapes", cityscapes_dir=args.cityscapes_dir, mode="val", clip_length=1)
    else:
        size = {"clip_length": args.clip_length, "seed": args.seed, "height": args.height, "width": 2 * args.height}
        train_clips = build_clips("synthetic", num_clips=args.train_clips, first_clip=TRAIN_FIRST, **size)
        val_clips = build_clips("synthetic", num_clips=args.val_clips, first_clip=VAL_FIRST, **size)
    model = build_swiftnet(args.backbone)
    if args.init:
        load_checkpoint(model, args.init)
        model.float()
    config = TrainConfig(iterations=args.iterations, batch_size=args.batch_size, crop=tuple(args.crop), lr=args.lr,
                         encoder_lr_ratio=args.encoder_lr_ratio, val_every=args.val_every, seed=args.seed)
    log.info("training %s on %d clips (%d validation clips), %d iterations of %d crops %dx%d, %d threads",
             args.backbone, len(train_clips), len(val_clips), config.iterations, config.batch_size, *config.crop,
             torch.get_num_threads())
    train(model, train_clips, val_clips, config, checkpoint=args.out, half_checkpoint=args.half_checkpoint)
    log.info("checkpoint written to %s", args.out)
    return 0
