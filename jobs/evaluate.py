"""The evaluation job: SwiftNet, static or with BlockCopy, over video clips (``--help`` lists the flags).

    python -m jobs.evaluate                                   # synthetic clips, the default
    python -m jobs.evaluate --cityscapes-dir DIR --model-checkpoint pretrained/swiftnet_rn18.pth
    python -m jobs.evaluate --demo-dir FRAMES --random-weights --output-dir out/

Prints the original release's summary lines and writes ``REPORT_DIR/{clips,frames}/`` and
``REPORT_DIR/summary.parquet``. Exits 1 when any clip failed (after writing the complete report).
The job itself is ``blockcopy_core.pipeline.job``.
"""

import sys

from blockcopy_core.pipeline.job import main

if __name__ == "__main__":
    sys.exit(main())
