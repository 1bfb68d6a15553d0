import json
from pathlib import Path

import pytest
import torch
from test_engine_support import randomize_bn

from blockcopy_core.macs import count_macs
from blockcopy_core.models import CheckpointError, build_swiftnet, check_state_dict, fold_batchnorm, load_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
PUBLISHED_SHAPES = json.loads((FIXTURES / "swiftnet_state_dict_shapes.json").read_text())


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_state_dict_matches_published_checkpoint_layout(backbone):
    model = build_swiftnet(backbone)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == PUBLISHED_SHAPES[backbone]


def test_resnet34_builds_and_runs():
    model = build_swiftnet("resnet34").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 128))
    assert out.shape == (1, 19, 64, 128)


def test_unknown_backbone_is_a_clear_error():
    with pytest.raises(ValueError, match="resnet101"):
        build_swiftnet("resnet101")


@pytest.mark.parametrize("wrapped", [True, False])
def test_load_checkpoint_accepts_both_formats(tmp_path, wrapped):
    source = randomize_bn(build_swiftnet("resnet18"), seed=1)
    state = source.state_dict()
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": state, "epoch": 3, "best_acc": 75.6} if wrapped else state, path)
    target = load_checkpoint(build_swiftnet("resnet18"), path)
    for key, value in target.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_load_checkpoint_lists_every_problem(tmp_path):
    state = build_swiftnet("resnet18").state_dict()
    del state["logits.conv.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["logits.conv.weight"] = torch.zeros(7, 128, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_swiftnet("resnet18"), path)
    message = str(info.value)
    assert "\n" not in message
    assert "1 missing keys (logits.conv.bias)" in message and "1 unexpected keys (extra.weight)" in message
    assert "1 mis-shaped keys (logits.conv.weight: checkpoint (7, 128, 1, 1) vs model (19, 128, 1, 1))" in message


def test_rn50_checkpoint_does_not_load_into_rn18(tmp_path):
    path = tmp_path / "rn50.pth"
    torch.save({"state_dict": build_swiftnet("resnet50").state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"rn50.pth does not match the model; it looks like a SwiftNet "
                       r"resnet50 with 19 classes \(--model-backbone resnet50 --num-classes 19\): .*mis-shaped keys"):
        load_checkpoint(build_swiftnet("resnet18"), path)


def test_a_file_of_another_kind_is_refused_in_one_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not weights\n")
    with pytest.raises(CheckpointError, match=r"^cannot read checkpoint .*notes.txt: not a PyTorch file of tensors "
                       r"\(a file of another kind, or one pickling Python objects\)$"):
        load_checkpoint(build_swiftnet("resnet18"), path)


def test_load_checkpoint_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": object()}}, path)
    with pytest.raises(CheckpointError, match="evil.pth"):
        load_checkpoint(build_swiftnet("resnet18"), path)


def test_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth"):
        load_checkpoint(build_swiftnet("resnet18"), tmp_path / "nope.pth")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensors(tmp_path, bad):
    state = build_swiftnet("resnet18").state_dict()
    state["logits.conv.weight"][0, 0] = bad
    state["backbone.bn1.running_var"][3] = bad
    torch.save({"state_dict": state}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_swiftnet("resnet18"), tmp_path / "broken.pth")
    assert str(info.value) == (f"{tmp_path / 'broken.pth'}: 2 of {len(state)} tensors hold NaN or inf: "
                               "backbone.bn1.running_var, logits.conv.weight")


def test_many_non_finite_tensors_are_counted_not_all_listed():
    model = build_swiftnet("resnet18")
    state = {key: torch.full_like(value, float("nan")) if value.is_floating_point() else value
             for key, value in model.state_dict().items()}
    floating = [key for key, value in state.items() if value.is_floating_point()]
    with pytest.raises(CheckpointError) as info:
        check_state_dict(model, state, source="weights")
    assert str(info.value) == (f"weights: {len(floating)} of {len(state)} tensors hold NaN or inf: "
                               f"{', '.join(floating[:5])} and {len(floating) - 5} more")


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_batchnorm_folding_keeps_the_output(backbone):
    torch.manual_seed(0)
    model = randomize_bn(build_swiftnet(backbone))
    folded = fold_batchnorm(model)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.backbone.modules()) == 0
    image = torch.randn(2, 3, 128, 256)
    with torch.no_grad():
        reference, result = model(image), folded(image)
    assert (result - reference).abs().max() <= 1e-5 * reference.abs().max()
    # the original stays untouched
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules()) > 0


@pytest.mark.parametrize(("backbone", "published"), [("resnet18", 104.0), ("resnet50", 205.8)])
def test_static_macs_at_1024x2048_match_the_release(backbone, published):
    # Shapes alone decide the count: run on the meta device, no memory or compute needed.
    model = build_swiftnet(backbone).to("meta").eval()
    _, macs = count_macs(model, torch.empty(1, 3, 1024, 2048, device="meta"))
    assert abs(macs / 1e9 - published) / published < 0.02


def test_mac_count_follows_the_shapes_that_run():
    model = build_swiftnet("resnet18").to("meta").eval()
    _, full = count_macs(model, torch.empty(1, 3, 256, 512, device="meta"))
    _, half = count_macs(model, torch.empty(1, 3, 256, 256, device="meta"))
    _, two = count_macs(model, torch.empty(2, 3, 256, 512, device="meta"))
    assert two == 2 * full
    assert 0.45 < half / full < 0.55
