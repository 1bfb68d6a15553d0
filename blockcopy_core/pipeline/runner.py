"""Running a segmentation model over clips: the clip runner that both executors (inline and Ray) use.

The runner reads (or generates) the frames itself from the clip descriptor, feeds the model one frame per clip
at a time (several clips side by side), and returns small results: per-frame statistics and a per-clip
confusion matrix. It knows nothing of Ray.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Clip, Frame, FrameReadError, iter_frames
from ..data.transforms import check_rgb, normalize_pixels, pad_to_multiple, resize_image, target_size
from ..engine.kernels import extension
from ..macs import count_macs
from ..metrics import ConfusionMatrix
from ..reporting.results import ClipResult, FrameResult
from .audit import dense_fidelity
from .prefetch import Prefetcher

T = TypeVar("T")
PRIME_FRAMES = 3  # a BlockCopy model primes on a dense frame, a recorded sparse one and a replayed one


def resident_mb() -> float:
    """This process's resident memory now, in MB (NaN where /proc is not there)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return math.nan


def timed(items: Iterator[T], seconds: list[float]) -> Iterator[T]:
    """``items``, adding the time each takes to produce to ``seconds[0]`` (in the thread that produces them)."""
    while True:
        tick = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            return
        finally:
            seconds[0] += time.perf_counter() - tick
        yield item


def clip_seed(seed: int, clip_id: str) -> int:
    """The seed of one clip's random draws: from the run's seed and the clip's id only, so a clip draws the same
    whichever actor runs it, after whichever clips, in a first run or a resumed one."""
    digest = hashlib.sha256(f"{seed}:{clip_id}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


class FrameOutput(Protocol):
    """Receives every evaluated frame's prediction (trainIds at the frame's size) and execution grid."""

    def add_frame(self, clip: Clip, frame: Frame, prediction: np.ndarray, grid: torch.Tensor | None) -> None: ...

    def finish_clip(self, clip: Clip) -> None: ...


class ClipRunner:
    """Runs ``model`` (a plain network or a BlockCopy wrapper) over batches of clips.

    ``model(frames) -> logits``; a wrapper also has ``reset_temporal()`` and ``last_exec_fraction`` and
    ``last_grid``. Frames are resized so the short side is ``res`` (when given) and padded to a multiple of
    ``pad_multiple``; predictions are cropped back and compared with labels at the label's own size. Metrics and
    MACs are measured on evaluation clips when ``measure`` is on (never on warm-up clips); results carry
    ``actor`` and ``node``, the names of where they ran.
    """

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                 dtype: torch.dtype = torch.float32, res: int | None = None, pad_multiple: int = 32,
                 measure: bool = True, prefetch_depth: int = 0, channels_last: bool = False,
                 outputs: Sequence[FrameOutput] = (), num_classes: int = 19, audit_every: int = 0,
                 actor: str = "inline", node: str = "local", seed: int = 0):
        self.model = model
        self.device = device
        self.dtype = dtype
        self.res = res
        self.pad_multiple = pad_multiple
        self.measure = measure
        self.prefetch_depth = prefetch_depth
        self.actor = actor
        self.node = node
        self.seed = seed
        self.channels_last = channels_last
        self.outputs = list(outputs)
        self.audit_every = audit_every
        # The dense model the audit compares with: a BlockCopy wrapper's base model, or the model itself.
        self.dense_model = getattr(model, "base_model", model)
        self.num_classes = num_classes
        self.stage_seconds: dict[str, float] = defaultdict(float)  # since the current batch started
        self.on_frame: Callable[[int], None] | None = None  # told how many frames each step ran (progress)
        self._looped_frames: list[Frame] | None = None
        self._upcoming: list[Clip] = []  # the clips the next run is expected to get
        self._read_ahead: dict[str, tuple[Iterator[Frame], list[float]]] = {}  # their streams, by clip id

    def loop_first_clip(self, clip: Clip) -> None:
        """Keep ``clip``'s frames in memory and feed them for every later clip (``--single-clip-loop``)."""
        self._looped_frames = list(iter_frames(clip))

    def prime(self, clip: Clip, batch_size: int = 1) -> None:
        """Run the model, untimed, on ``clip``'s first frames (``batch_size`` copies side by side), so that the
        process's one-time costs stay out of the timed run: on CUDA, loading kernels and starting cuDNN and
        cuBLAS, which would otherwise land in the first timed frame. A plain model runs the first frame once. A
        BlockCopy model's block kernels are loaded (or built, once per machine) here too, and it runs its first
        ``PRIME_FRAMES`` frames as a clip, twice, leaving its policy's state as it was (``BlockCopyModel.prime``):
        its first sparse frames cost more than later ones. A frame that cannot be read primes nothing: its clip
        fails where it runs, and is recorded there."""
        blockcopy = self.model is not self.dense_model
        if blockcopy:
            extension(self.device)
        source = iter(self._looped_frames) if self._looped_frames else iter_frames(clip)
        batches = []
        try:
            for frame in itertools.islice(source, PRIME_FRAMES if blockcopy else 1):
                batches.append(self._prepare([frame] * batch_size)[0])
        except FrameReadError:
            pass
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        if not batches:
            return
        with torch.no_grad():
            if blockcopy:
                self.model.prime(batches)
            else:
                self.dense_model(batches[0])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def policy_state(self) -> bytes | None:
        """The learned policy's state (network, optimiser, statistics), or None for fixed policies."""
        save = getattr(self.model, "policy_state", None)
        return save() if save is not None else None

    def load_policy_state(self, state: bytes) -> None:
        load = getattr(self.model, "load_policy_state", None)
        if load is None:
            raise ValueError("this policy has no state to load: only rl_semseg learns")
        load(state)

    def run(self, clips: list[Clip], phase: str, upcoming: Sequence[Clip] = ()) -> list[ClipResult]:
        """Run clips side by side; if one fails, record it and re-run the others on their own. ``upcoming``: the
        clips the next call will probably get, whose first frames are read while these run (with a prefetch
        depth), so that opening them (a video's seek, a synthetic clip's scene) does not stall the model."""
        self._upcoming = list(upcoming)
        results = self._run_or_record(clips, phase)
        for result in results:
            result.actor, result.node, result.device = self.actor, self.node, str(self.device)
        return results

    def _run_or_record(self, clips: list[Clip], phase: str) -> list[ClipResult]:
        try:
            return self._run_batch(clips, phase, self.measure and phase == "eval")
        except Exception as exc:  # noqa: BLE001 - any failure of a clip is recorded, never fatal
            if len(clips) == 1:
                error = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, FrameReadError):  # a bug, not a bad file: where it happened
                    traceback.print_exc()
                return [ClipResult(clips[0].clip_id, phase, status="failed", error=error)]
            return [result for clip in clips for result in self._run_or_record([clip], phase)]

    def _open(self, clip: Clip) -> tuple[Iterator[Frame], list[float]]:
        """``clip``'s frames and the seconds spent reading them: the stream read ahead for it, or a new one."""
        if self._looped_frames is not None:
            return iter(self._looped_frames), [0.0]
        if clip.clip_id in self._read_ahead:
            return self._read_ahead.pop(clip.clip_id)
        seconds = [0.0]
        return Prefetcher(timed(iter_frames(clip), seconds), self.prefetch_depth), seconds

    def _start_reading_ahead(self) -> None:
        """Streams for the upcoming clips (kept where already open); those for other clips are closed."""
        if self._looped_frames is not None or self.prefetch_depth <= 0:
            return
        wanted = {clip.clip_id for clip in self._upcoming}
        for clip_id in [clip_id for clip_id in self._read_ahead if clip_id not in wanted]:
            self._read_ahead.pop(clip_id)[0].close()
        for clip in self._upcoming:
            if clip.clip_id not in self._read_ahead:
                seconds = [0.0]
                stream = Prefetcher(timed(iter_frames(clip), seconds), self.prefetch_depth)
                self._read_ahead[clip.clip_id] = stream, seconds

    @contextmanager
    def _streams(self, clips: list[Clip]) -> Iterator[tuple[list[Iterator[Frame]], list[list[float]]]]:
        """The clips' frame streams and their reading seconds, closed at the end; the upcoming clips' streams start
        reading meanwhile."""
        opened = [self._open(clip) for clip in clips]
        self._start_reading_ahead()
        try:
            yield [stream for stream, _ in opened], [seconds for _, seconds in opened]
        finally:
            for stream, _ in opened:
                if isinstance(stream, Prefetcher):
                    stream.close()

    def _run_batch(self, clips: list[Clip], phase: str, measure: bool) -> list[ClipResult]:
        lengths = {clip.num_frames for clip in clips}
        if len(lengths) != 1:
            raise ValueError(f"clips run side by side must have equal lengths, got {sorted(lengths)}")
        results = [ClipResult(clip.clip_id, phase) for clip in clips]
        for result, clip in zip(results, clips):
            if clip.video is not None:
                result.video, result.segment = clip.video.video_id, clip.video.segment_index
                result.start_frame, result.source_fps = clip.video.start_frame, clip.video.fps
        outputs = self.outputs if phase == "eval" else []
        confusions = [ConfusionMatrix(self.num_classes) for _ in clips]
        labelled = [False] * len(clips)
        if hasattr(self.model, "reset_temporal"):
            self.model.reset_temporal(seeds=[clip_seed(self.seed, clip.clip_id) for clip in clips])
        self.stage_seconds.clear()
        start = time.perf_counter()
        compute = 0.0
        with self._streams(clips) as (streams, decode_seconds):
            peak_mb, failure, size = resident_mb(), None, (0, 0)
            for index in range(lengths.pop()):
                tick = time.perf_counter()
                try:
                    frames = [next(stream) for stream in streams]
                except FrameReadError as exc:
                    if len(clips) > 1:
                        raise  # the clips run again one by one, so only the broken one fails
                    failure = f"{type(exc).__name__}: {exc}"  # the frames decoded so far stay recorded
                    break
                batch, size = self._prepare(frames)
                self.stage_seconds["load"] += time.perf_counter() - tick

                logits, macs, seconds = self._forward(batch, measure)
                compute += seconds
                grid = getattr(self.model, "last_grid", None)
                fractions = getattr(self.model, "last_execution_fractions", None)
                policy_gmacs = float(getattr(self.model, "last_policy_macs", 0)) / 1e9 / len(frames)

                audited = phase == "eval" and self.audit_every > 0 and index % self.audit_every == 0
                if audited:
                    tick = time.perf_counter()
                    agreement, kl = self._audit(batch, logits, size)
                    self.stage_seconds["audit"] += time.perf_counter() - tick
                tick = time.perf_counter()
                for i, (clip, frame) in enumerate(zip(clips, frames, strict=True)):
                    results[i].frames.append(FrameResult(
                        index, frame.name, 1.0 if fractions is None else float(fractions[i]), macs / len(frames) / 1e9,
                        1000 * seconds, policy_gmacs,
                        float(agreement[i]) if audited else math.nan, float(kl[i]) if audited else math.nan,
                        clip.video.frame_indices[index] if clip.video is not None else -1))
                    if not (measure or outputs):
                        continue
                    out_size = frame.label.shape if frame.label is not None else frame.image.shape[:2]
                    prediction = self._predict(logits[i : i + 1, :, : size[0], : size[1]], out_size)
                    if measure and frame.label is not None:
                        confusions[i].update(prediction, frame.label)
                        labelled[i] = True
                    for output in outputs:
                        output.add_frame(clip, frame, prediction, None if grid is None else grid[i].cpu())
                self.stage_seconds["metrics"] += time.perf_counter() - tick
                peak_mb = max(peak_mb, resident_mb())
                if self.on_frame is not None:
                    self.on_frame(len(clips))
        for clip in clips:
            for output in outputs:
                output.finish_clip(clip)
        wall = time.perf_counter() - start
        for result, confusion, has_labels in zip(results, confusions, labelled, strict=True):
            result.num_frames = len(result.frames)
            result.peak_rss_mb = peak_mb
            if failure is not None:
                result.status, result.error = "failed", failure
            result.wall_s = wall
            result.compute_s = compute / len(clips)
            result.height, result.width = size
            result.timings = {stage: seconds / len(clips) for stage, seconds in self.stage_seconds.items()}
            result.confusion = confusion.to_flat() if has_labels else None
        for result, clip, seconds in zip(results, clips, decode_seconds):
            if clip.video is not None:
                result.decode_s = seconds[0]
        return results

    def _prepare(self, frames: list[Frame]) -> tuple[torch.Tensor, tuple[int, int]]:
        """The model's input batch: frames resized (uint8, on the CPU), moved to the device as uint8 (through
        pinned memory to a GPU), normalised there, padded to the block grid, in the model's dtype and layout."""
        sizes = {frame.image.shape[:2] for frame in frames}
        if len(sizes) != 1:
            raise ValueError(f"frames run side by side differ in size: {sorted(sizes)}")
        height, width = sizes.pop()
        size = target_size(height, width, self.res)
        images = [check_rgb(resize_image(frame.image, size) if size != (height, width) else frame.image)
                  for frame in frames]
        pixels = torch.from_numpy(images[0][None] if len(images) == 1 else np.stack(images))  # N x H x W x 3
        if self.device.type == "cuda":
            pixels = pixels.pin_memory().to(self.device, non_blocking=True)
        # channels_last as normalize_pixels gives it: with one frame and no padding the layout costs no copy
        batch, original = pad_to_multiple(normalize_pixels(pixels), self.pad_multiple)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        batch = batch.to(self.dtype).contiguous(memory_format=memory_format)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the upload and the normalisation count as loading
        return batch, original

    @torch.no_grad()  # not inference_mode: BlockCopy keeps state tensors across frames and trains its policy
    def _forward(self, batch: torch.Tensor, measure: bool) -> tuple[torch.Tensor, int, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        tick = time.perf_counter()
        if measure:
            logits, macs = count_macs(self.model, batch)
            macs -= int(getattr(self.model, "last_update_macs", 0))  # the policy's learning step is not inference
        else:
            logits, macs = self.model(batch), 0
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - tick
        self.stage_seconds["model"] += seconds
        return logits, macs, seconds

    @torch.no_grad()  # not inference_mode: BlockCopy keeps state tensors across frames and trains its policy
    def _audit(self, batch: torch.Tensor, logits: torch.Tensor,
               size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the dense model on the same input (not timed, not counted) and compare the outputs."""
        dense = self.dense_model(batch)
        return dense_fidelity(dense[..., : size[0], : size[1]], logits[..., : size[0], : size[1]])

    @staticmethod
    def _predict(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        if tuple(logits.shape[2:]) != tuple(size):
            logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
        return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
