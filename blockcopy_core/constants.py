"""Cityscapes facts shared by data, metrics and visualisation."""

from __future__ import annotations

NUM_CLASSES = 19
IGNORE_INDEX = 255

# Input normalisation: Cityscapes RGB statistics, as fractions of 255.
CITYSCAPES_MEAN = (73.1584 / 255, 82.9090 / 255, 72.3924 / 255)
CITYSCAPES_STD = (44.9149 / 255, 46.1529 / 255, 45.3192 / 255)

CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)

# labelId of each trainId 0..18 (Cityscapes' official table); every other labelId is ignored.
TRAIN_ID_TO_LABEL_ID = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)

# Colour of each trainId (Cityscapes palette).
PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)
