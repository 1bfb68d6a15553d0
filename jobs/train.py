"""Train SwiftNet on synthetic street video (default) or on Cityscapes fine labels.

    python -m jobs.train --out pretrained/swiftnet_rn18_synthetic.pth --half-checkpoint
    python -m jobs.train --cityscapes-dir DIR --backbone resnet50 --iterations 40000 --out swiftnet_rn50.pth

Saves the published checkpoint format ({"state_dict", "epoch", "best_acc"}) at the best validation mIoU.
"""

import sys

from blockcopy_core.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
