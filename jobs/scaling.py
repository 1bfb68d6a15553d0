"""Throughput of the Ray job with 1 and with N actors: ``python -m jobs.scaling --help``
(``blockcopy_core.benchmarks.scaling``)."""

import sys

from blockcopy_core.benchmarks.scaling import main

if __name__ == "__main__":
    sys.exit(main())
