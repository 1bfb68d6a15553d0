"""Clip descriptors, lazy frame loading, bad input, and the frame -> tensor transforms."""

import pickle
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from blockcopy_core.constants import CITYSCAPES_MEAN, CITYSCAPES_STD
from blockcopy_core.data import Clip, FrameReadError, build_clips, iter_frames, load_image
from blockcopy_core.data.loading import load_train_ids
from blockcopy_core.data.transforms import normalize, pad_to_multiple, resize_image, target_size


def _png(path, value=0, size=(8, 16)):
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


# ----------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("content", [b"not a png", "truncated"])
def test_corrupt_frame_fails_lazily_naming_the_file(tmp_path, content):
    _png(tmp_path / "a1.png", 7)
    bad = tmp_path / "a2.png"
    if content == "truncated":
        whole = _png(tmp_path / "whole.png", 0, (64, 64)).read_bytes()
        (tmp_path / "whole.png").unlink()
        content = whole[: len(whole) // 2]
    bad.write_bytes(content)
    (clip,) = build_clips("demo", demo_dir=tmp_path)  # building the list reads no pixels
    frames = iter_frames(clip)
    first = next(frames)
    assert first.name == "a1" and (first.image == 7).all()
    with pytest.raises(FrameReadError, match=str(bad)) as info:
        next(frames)
    assert info.value.path == str(bad)
    assert isinstance(info.value, RuntimeError)
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


def test_missing_image_and_label_files_raise_frame_read_error(tmp_path):
    with pytest.raises(FrameReadError, match="nothing.png"):
        load_image(tmp_path / "nothing.png")
    with pytest.raises(FrameReadError, match="nothing_labelIds.png"):
        load_train_ids(tmp_path / "nothing_labelIds.png")


def test_colour_label_file_is_rejected(tmp_path):
    label = _png(tmp_path / "x_gtFine_labelIds.png")
    with pytest.raises(FrameReadError, match="one channel"):
        load_train_ids(label)


def test_label_of_another_size_is_an_error_naming_it(tmp_path):
    image = _png(tmp_path / "f.png", size=(8, 16))
    label = tmp_path / "f_gtFine_labelIds.png"
    Image.fromarray(np.full((4, 8), 7, np.uint8)).save(label)
    clip = Clip("c", "cityscapes", (str(image),), (str(label),))
    with pytest.raises(FrameReadError, match=str(label)):
        list(iter_frames(clip))


def _palette_image() -> Image.Image:
    image = Image.new("P", (3, 1))
    image.putpalette(PALETTE.ravel().tolist())
    image.putdata([0, 1, 2])
    return image


def _png_16_bit(path, array):
    """Write an HxWxC uint16 array (C = 1, 3 or 4) as a 16-bit PNG by hand: PIL writes no 16-bit colour PNG."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, channels = array.shape
    header = struct.pack(">IIBBBBB", width, height, 16, {1: 0, 3: 2, 4: 6}[channels], 0, 0, 0)
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in array)  # filter type 0 on every row
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def _as_rgb(grey):
    return np.repeat(np.asarray(grey, np.uint8)[..., None], 3, axis=2)


GREY = np.array([[0, 9, 200]], np.uint8)
PALETTE = np.array([[[10, 20, 30], [40, 50, 60], [70, 80, 90]]], np.uint8)
SIXTEEN = np.array([[0, 128, 129, 1000, 32896, 65535]], np.uint16)
ROUNDED = [[0, 0, 1, 4, 128, 255]]  # round(v / 257)
HIGH_BYTE = [[0, 0, 0, 3, 128, 255]]  # v // 256
NO_ALPHA = np.zeros((1, 3, 1), np.uint8)
MODES = {
    # case: (file name, write it, the HxWx3 image docs/data.md says it loads as)
    "L": ("f.png", lambda p: Image.fromarray(GREY).save(p), _as_rgb(GREY)),
    "1": ("f.png", lambda p: Image.fromarray(GREY > 0).save(p), _as_rgb(np.where(GREY > 0, 255, 0))),
    # alpha 0 is dropped, not composited over black: the stored grey or colour stays
    "LA": ("f.png", lambda p: Image.fromarray(np.stack([GREY, 0 * GREY], -1), "LA").save(p), _as_rgb(GREY)),
    "RGBA": ("f.png", lambda p: Image.fromarray(np.concatenate([PALETTE, NO_ALPHA], -1)).save(p), PALETTE),
    "P": ("f.png", lambda p: _palette_image().save(p), PALETTE),
    "P, transparent index": ("f.png", lambda p: _palette_image().save(p, transparency=1), PALETTE),
    "P, alpha per index": ("f.png", lambda p: _palette_image().save(p, transparency=b"\xff\x00\x80"), PALETTE),
    "P, GIF": ("f.gif", lambda p: _palette_image().save(p, transparency=1), PALETTE),
    "I;16": ("f.png", lambda p: Image.fromarray(SIXTEEN).save(p), _as_rgb(ROUNDED)),
    "I": ("f.tif", lambda p: Image.fromarray(SIXTEEN.astype(np.int32)).save(p), _as_rgb(ROUNDED)),
    # 16-bit colour: PIL keeps each value's high byte when it opens the file
    "RGB, 16-bit": ("f.png", lambda p: _png_16_bit(p, np.repeat(SIXTEEN[..., None], 3, 2)), _as_rgb(HIGH_BYTE)),
    "RGBA, 16-bit": ("f.png", lambda p: _png_16_bit(p, np.repeat(SIXTEEN[..., None], 4, 2)), _as_rgb(HIGH_BYTE)),
}


@pytest.mark.filterwarnings("error")  # PIL warns when it converts a palette with alpha per index to RGB itself
@pytest.mark.parametrize("case", MODES)
def test_every_image_mode_loads_as_documented(tmp_path, case):
    name, write, expected = MODES[case]
    write(tmp_path / name)
    image = load_image(tmp_path / name)
    assert image.dtype == np.uint8 and image.shape == (*expected.shape[:2], 3)
    np.testing.assert_array_equal(image, expected)


def test_16_bit_grey_keeps_its_brightness(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    image = load_image(tmp_path / "ramp.png")
    assert (image == 255).mean() < 0.01  # PIL's own convert("RGB") made 99.6% of these white
    np.testing.assert_array_equal(image, _as_rgb(np.round(ramp / 257)))


@pytest.mark.parametrize(("suffix", "tolerance"), [(".tif", 0), (".jpg", 2)])
def test_cmyk_goes_through_pils_conversion(tmp_path, suffix, tolerance):
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255], [100, 50, 20, 10]]], np.uint8)
    cmyk = cmyk.repeat(8, axis=0).repeat(8, axis=1)  # flat 8x8 blocks, which JPEG keeps (nearly) exact
    Image.fromarray(cmyk, "CMYK").save(tmp_path / f"f{suffix}", quality=100)
    image = load_image(tmp_path / f"f{suffix}")
    c_m_y, k = cmyk[..., :3].astype(float), cmyk[..., 3:].astype(float)
    expected = np.round((255 - c_m_y) * (255 - k) / 255)
    assert image.shape == (8, 32, 3) and image.dtype == np.uint8
    assert np.abs(image - expected).max() <= tolerance


def test_32_bit_grey_beyond_16_bits_is_refused(tmp_path):
    Image.fromarray(np.array([[0, 70000]], np.int32)).save(tmp_path / "f.tif")
    with pytest.raises(FrameReadError, match=r"f\.tif: mode I values 0\.\.70000 lie outside"):
        load_image(tmp_path / "f.tif")


# --------------------------------------------------------------------------------------- descriptors


def test_clip_is_small_picklable_and_names_frames_by_stem(tmp_path):
    clip = Clip("c", "demo", (str(tmp_path / "x" / "f1.png"), "f2.jpg"), (None, None))
    assert clip.frame_names == ("f1", "f2") and clip.num_frames == 2
    data = pickle.dumps(clip)
    assert pickle.loads(data) == clip and len(data) < 1000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(source="webcam"), "unknown source"),
        (dict(source="video"), "video segment"),
        (dict(frame_paths=()), "no frames"),
        (dict(label_paths=(None,)), "label paths"),
        (dict(frame_names=("a",)), "frame names"),
        (dict(source="synthetic"), "synthetic spec"),
    ],
)
def test_inconsistent_clip_is_rejected(kwargs, message):
    fields = dict(clip_id="c", source="demo", frame_paths=("a.png", "b.png"), label_paths=(None, None))
    with pytest.raises(ValueError, match=message):
        Clip(**{**fields, **kwargs})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(source="webcam"), "unknown clip source"),
        (dict(source="cityscapes"), "cityscapes_dir"),
        (dict(source="demo"), "demo_dir"),
        (dict(source="synthetic", clip_length=0), "clip_length"),
        (dict(source="synthetic", num_clips=0), "num_clips"),
        (dict(source="synthetic", height=100), "height"),
    ],
)
def test_build_clips_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_clips(**kwargs)


# ---------------------------------------------------------------------------------------- transforms


def test_normalize_uses_cityscapes_statistics():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 0, 128, 255
    tensor = normalize(image)
    assert tensor.shape == (3, 2, 3) and tensor.dtype == torch.float32
    for channel, value in enumerate((0, 128, 255)):
        expected = (value / 255 - CITYSCAPES_MEAN[channel]) / CITYSCAPES_STD[channel]
        assert torch.allclose(tensor[channel], torch.full((2, 3), expected), atol=1e-6)
    mean_colour = np.round(np.array(CITYSCAPES_MEAN) * 255).astype(np.uint8)[None, None]
    assert normalize(mean_colour).abs().max() < 0.02


def test_normalize_rejects_non_rgb_uint8():
    with pytest.raises(ValueError, match="uint8"):
        normalize(np.zeros((2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        normalize(np.zeros((2, 3), np.uint8))


@pytest.mark.parametrize(
    "height, width, res, expected",
    [
        (1024, 2048, 1024, (1024, 2048)),
        (1024, 2048, 512, (512, 1024)),
        (512, 1024, 1024, (1024, 2048)),
        (720, 1280, 512, (512, 910)),  # 910.2 rounds down
        (1080, 1920, 360, (360, 640)),
        (2048, 1024, 512, (1024, 512)),  # portrait: the width is the short side
        (600, 800, None, (600, 800)),
    ],
)
def test_target_size_keeps_the_aspect_ratio(height, width, res, expected):
    assert target_size(height, width, res) == expected


def test_target_size_rejects_bad_values():
    with pytest.raises(ValueError, match="res"):
        target_size(10, 20, 0)


def test_resize_image_is_bilinear():
    image = np.zeros((4, 8, 3), np.uint8)
    image[:, 4:] = 200
    resized = resize_image(image, (8, 16))
    assert resized.shape == (8, 16, 3)
    assert 0 < resized[0, 7, 0] < 200 or 0 < resized[0, 8, 0] < 200, "bilinear blends across the edge"
    assert resize_image(image, (4, 8)) is image


def test_pad_to_multiple_pads_bottom_right_and_returns_the_original_size():
    tensor = torch.ones(2, 3, 70, 100)
    padded, size = pad_to_multiple(tensor, 32)
    assert padded.shape == (2, 3, 96, 128) and size == (70, 100)
    assert (padded[..., :70, :100] == 1).all()
    assert (padded[..., 70:, :] == 0).all() and (padded[..., :, 100:] == 0).all()
    assert torch.equal(padded[..., : size[0], : size[1]], tensor)
    already, size = pad_to_multiple(torch.ones(64, 128), 32)
    assert already.shape == (64, 128) and size == (64, 128)
    labels, _ = pad_to_multiple(torch.zeros(1, 5, 5, dtype=torch.uint8), 4, value=255)
    assert labels.shape == (1, 8, 8) and labels[0, 5:].eq(255).all() and labels.dtype == torch.uint8
    with pytest.raises(ValueError, match="multiple"):
        pad_to_multiple(tensor, 0)


@given(height=st.integers(1, 90), width=st.integers(1, 90), multiple=st.integers(1, 40))
def test_padding_is_the_smallest_multiple_and_crops_back(height, width, multiple):
    tensor = torch.rand(2, height, width)
    padded, size = pad_to_multiple(tensor, multiple)
    for padded_dim, dim in zip(padded.shape[-2:], (height, width), strict=True):
        assert padded_dim % multiple == 0 and dim <= padded_dim < dim + multiple
    assert size == (height, width) and torch.equal(padded[..., : size[0], : size[1]], tensor)


@given(height=st.integers(1, 3000), width=st.integers(1, 3000), res=st.integers(1, 2048))
def test_target_size_short_side_is_res_and_aspect_is_kept(height, width, res):
    new_h, new_w = target_size(height, width, res)
    assert min(new_h, new_w) == res
    long_side, short_side = max(height, width), min(height, width)
    assert abs(max(new_h, new_w) - long_side * res / short_side) <= 0.5
