"""What running a clip gives back: small, picklable records that cross from an actor to the driver and become
the rows of ``clips/`` and ``frames/`` (``schema``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class FrameResult:
    frame_index: int
    name: str
    exec_fraction: float
    gmacs: float
    latency_ms: float
    policy_gmacs: float = 0.0
    dense_agreement: float = math.nan  # audited frames only (see --audit-every)
    dense_kl: float = math.nan
    video_frame: int = -1  # the frame's index within its video file (-1: not from a video file)


@dataclass
class ClipResult:
    clip_id: str
    phase: str
    status: str = "ok"
    error: str = ""
    num_frames: int = 0
    wall_s: float = 0.0
    compute_s: float = 0.0
    actor: str = ""
    node: str = ""
    device: str = ""
    height: int = 0  # input size fed to the model, before padding
    width: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, this clip's share
    peak_rss_mb: float = math.nan  # the process's peak resident memory while it ran the clip
    # Video segments only: the video's id, the segment's index and first frame in it, the video's frame rate,
    # and the seconds spent decoding the segment's frames (in the background thread that reads ahead).
    video: str = ""
    segment: int = -1
    start_frame: int = -1
    source_fps: float = math.nan
    decode_s: float = math.nan
    confusion: list[int] | None = None
    frames: list[FrameResult] = field(default_factory=list)

    @property
    def exec_fraction(self) -> float:
        return float(np.mean([f.exec_fraction for f in self.frames])) if self.frames else float("nan")

    @property
    def gmacs_per_frame(self) -> float:
        return float(np.mean([f.gmacs for f in self.frames])) if self.frames else float("nan")

    @property
    def policy_gmacs_per_frame(self) -> float:
        return float(np.mean([f.policy_gmacs for f in self.frames])) if self.frames else float("nan")


