"""Running clips on a device: the clip runner, what it is built from, where it runs (inline or on Ray actors),
what it gives back, and the evaluation job that drives it all (``python -m jobs.evaluate``).

Importing this package does not import Ray: only ``ray_executor`` does, when the job picks it.
"""

from .config import RunnerConfig, build_runner
from .executor import Executor, InlineExecutor
from .results import ClipResult, FrameResult
from .runner import ClipRunner

__all__ = ["ClipResult", "ClipRunner", "Executor", "FrameResult", "InlineExecutor", "RunnerConfig", "build_runner"]
