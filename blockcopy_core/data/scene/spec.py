"""The description of one synthetic clip: a few integers, so clips cost nothing to pickle and ship."""

from __future__ import annotations

from dataclasses import dataclass

STRIDE = 32  # heights and widths must be multiples of the network stride


@dataclass(frozen=True)
class SyntheticClipSpec:
    """Everything needed to render one synthetic clip (a few integers, cheap to pickle)."""

    seed: int
    clip_index: int
    height: int
    width: int
    num_frames: int
    panning: bool

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if value <= 0 or value % STRIDE:
                raise ValueError(f"synthetic {name} must be a positive multiple of {STRIDE}, got {value}")
        if self.num_frames < 1:
            raise ValueError(f"synthetic num_frames must be >= 1, got {self.num_frames}")
        if self.seed < 0 or self.clip_index < 0:
            raise ValueError(f"synthetic seed and clip_index must be >= 0, got {self.seed}, {self.clip_index}")

    @property
    def name(self) -> str:
        """Stable human-readable id, e.g. ``s0_c3``."""
        return f"s{self.seed}_c{self.clip_index}"
