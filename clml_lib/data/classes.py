"""Class-name tables of the three benchmark datasets, in the label-index order the reference
split files use.

* ``COCO_CLASSES`` (80): MS-COCO 2014 object categories sorted by category id; the ids are
  not contiguous (1..90 with 10 gaps), ``COCO_CATEGORY_IDS[i]`` is the id of class ``i``. This
  is the order of the reference split files (``coco_train_*.txt``: index ``i`` = ``i``-th
  category by id), and of ``CocoMultiLabel`` built from an instances file.
* ``VOC_CLASSES`` (20): PASCAL VOC in the standard (alphabetical) order.
* ``NUS_WIDE_CLASSES`` (81): the NUS-WIDE concepts in the order of the dataset's
  ``Concepts81.txt`` (alphabetical). INFERRED: the released CLML NUS-WIDE lists do not name their
  classes; this is the order every NUS-WIDE multi-label loader we know of uses.
"""

from __future__ import annotations

#: (category id, name) of the 80 MS-COCO 2014/2017 object categories, sorted by id.
COCO_CATEGORIES: list[tuple[int, str]] = [
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"),
    (6, "bus"), (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"),
    (11, "fire hydrant"), (13, "stop sign"), (14, "parking meter"), (15, "bench"),
    (16, "bird"), (17, "cat"), (18, "dog"), (19, "horse"), (20, "sheep"), (21, "cow"),
    (22, "elephant"), (23, "bear"), (24, "zebra"), (25, "giraffe"), (27, "backpack"),
    (28, "umbrella"), (31, "handbag"), (32, "tie"), (33, "suitcase"), (34, "frisbee"),
    (35, "skis"), (36, "snowboard"), (37, "sports ball"), (38, "kite"),
    (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"), (42, "surfboard"),
    (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"), (48, "fork"),
    (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"),
    (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"),
    (64, "potted plant"), (65, "bed"), (67, "dining table"), (70, "toilet"), (72, "tv"),
    (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"), (77, "cell phone"),
    (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"), (82, "refrigerator"),
    (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"),
    (89, "hair drier"), (90, "toothbrush"),
]  # fmt: skip

#: The 80 COCO class names, label index i = i-th category by id.
COCO_CLASSES: list[str] = [name for _, name in COCO_CATEGORIES]
#: The COCO category id of each label index (non-contiguous, 1..90).
COCO_CATEGORY_IDS: list[int] = [cid for cid, _ in COCO_CATEGORIES]

#: The 20 PASCAL VOC classes in the standard order.
VOC_CLASSES: list[str] = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
]  # fmt: skip

#: The 81 NUS-WIDE concepts in ``Concepts81.txt`` order.
NUS_WIDE_CLASSES: list[str] = [
    "airport", "animal", "beach", "bear", "birds", "boats", "book", "bridge", "buildings",
    "cars", "castle", "cat", "cityscape", "clouds", "computer", "coral", "cow", "dancing",
    "dog", "earthquake", "elk", "fire", "fish", "flags", "flowers", "food", "fox", "frost",
    "garden", "glacier", "grass", "harbor", "horses", "house", "lake", "leaf", "map",
    "military", "moon", "mountain", "nighttime", "ocean", "person", "plane", "plants",
    "police", "protest", "railroad", "rainbow", "reflection", "road", "rocks", "running",
    "sand", "sign", "sky", "snow", "soccer", "sports", "statue", "street", "sun", "sunset",
    "surf", "swimmers", "tattoo", "temple", "tiger", "tower", "town", "toy", "train", "tree",
    "valley", "vehicle", "water", "waterfall", "wedding", "whales", "window", "zebra",
]  # fmt: skip

assert len(COCO_CLASSES) == 80 and len(set(COCO_CATEGORY_IDS)) == 80
assert len(VOC_CLASSES) == 20 and len(NUS_WIDE_CLASSES) == 81
