"""The shipped synthetic SwiftNet-RN18 checkpoint: a quick check of the file itself."""

from pathlib import Path

import torch

from blockcopy_core.data import build_clips
from blockcopy_core.data.synthetic import UNSEEN_FIRST
from blockcopy_core.models import build_swiftnet, load_checkpoint
from blockcopy_core.training import validate

CHECKPOINT = Path(__file__).resolve().parents[1] / "pretrained" / "swiftnet_rn18_synthetic.pth"


def test_shipped_checkpoint_loads_strictly_and_segments_synthetic_frames():
    assert CHECKPOINT.stat().st_size < 25 * 2**20
    payload = torch.load(CHECKPOINT, weights_only=True)
    assert set(payload) == {"state_dict", "epoch", "best_acc"}
    model = load_checkpoint(build_swiftnet("resnet18"), CHECKPOINT).eval()
    clips = build_clips("synthetic", clip_length=2, num_clips=3, seed=0, height=512, width=1024,
                        first_clip=UNSEEN_FIRST)
    assert validate(model, clips).mean_iou() >= 80
