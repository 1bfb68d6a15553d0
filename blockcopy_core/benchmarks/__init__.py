"""Measurements behind docs/benchmarks.md: the engine against the static model (``engine``), the policies through
the real job (``accuracy``) and the Ray job's actor scaling (``scaling``). Entry points: ``python -m jobs.benchmark``
and ``python -m jobs.scaling``."""
