"""The evaluation job: SwiftNet, static or with BlockCopy, over video clips (``--help`` lists the flags).

    python -m jobs.evaluate                                   # synthetic clips, the default
    python -m jobs.evaluate --cityscapes-dir DIR --model-checkpoint pretrained/swiftnet_rn18.pth
    python -m jobs.evaluate --demo-dir FRAMES --random-weights --output-dir out/

Prints the original release's summary lines and writes ``REPORT_DIR/{clips,frames}/`` and
``REPORT_DIR/summary.parquet``. Exit status: 0 every clip ok, 1 some clips failed (after writing the complete
report), 2 refused before compute (bad usage or input), 3 aborted (interrupted, crashed, cannot write).
The job itself is ``blockcopy_core.pipeline.job``.
"""

import sys

from blockcopy_core.pipeline.job import main

if __name__ == "__main__":
    sys.exit(main())
