"""Running clips on a device: the clip runner, what it is built from, where it runs (inline or on Ray actors),
and the evaluation job that drives it all (``python -m jobs.evaluate``). What a clip gives back, ``ClipResult``,
is a reporting record (``blockcopy_core.reporting.results``).

Importing this package does not import Ray: only ``ray_executor`` does, when the job picks it.
"""

from .config import RunnerConfig, build_runner
from .executor import Executor, InlineExecutor
from .runner import ClipRunner

__all__ = ["ClipRunner", "Executor", "InlineExecutor", "RunnerConfig", "build_runner"]
