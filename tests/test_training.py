import pytest
import torch

from blockcopy_core.data import build_clips
from blockcopy_core.models import build_swiftnet, load_checkpoint
from blockcopy_core.training import TrainConfig, train, validate


def test_training_lowers_the_loss_and_round_trips_its_checkpoint(tmp_path):
    clips = build_clips("synthetic", clip_length=2, num_clips=2, seed=0, height=64, width=128)
    model = build_swiftnet("resnet18")
    config = TrainConfig(iterations=30, batch_size=2, crop=(64, 128), scale_range=(1.0, 1.0), lr=2e-3,
                         frames_per_clip=2, val_every=30)
    path = tmp_path / "model.pth"
    losses = train(model, clips, clips[:1], config, checkpoint=path, half_checkpoint=True)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5

    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"state_dict", "epoch", "best_acc"}
    assert payload["state_dict"]["logits.conv.weight"].dtype == torch.float16
    restored = load_checkpoint(build_swiftnet("resnet18"), path).float()
    # float16 storage moves the figure by rounding only
    assert validate(restored, clips[:1]).mean_iou() == pytest.approx(payload["best_acc"], abs=0.5)
