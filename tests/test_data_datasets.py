"""COCO / VOC / NUS-WIDE datasets on fixtures in the real formats, PartialLabelDataset,
transforms."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from clml_lib.data import (
    COCO_CATEGORY_IDS,
    COCO_CLASSES,
    NUS_WIDE_CLASSES,
    VOC_CLASSES,
    CocoMultiLabel,
    Cutout,
    EnsurePIL,
    MissingFilesError,
    NusWideMultiLabel,
    PartialLabelDataset,
    VOCMultiLabel,
    build_transforms,
    load_image,
    simulate_missing,
)

try:  # tests/ on sys.path (pytest's default rootdir import mode)
    from data_fixtures import make_coco_tree, make_voc_tree, write_coco_split, write_jpeg
except ImportError:  # tests imported as a package
    from tests.data_fixtures import make_coco_tree, make_voc_tree, write_coco_split, write_jpeg


def _vec(indices, c):
    v = torch.zeros(c)
    v[list(indices)] = 1
    return v


# --------------------------------------------------------------------------- COCO
@pytest.fixture()
def coco_root(tmp_path):
    root = tmp_path / "coco"
    # image ids deliberately unsorted in the JSON; category ids non-contiguous:
    # 1 person -> 0, 13 stop sign -> 11, 27 backpack -> 24, 90 toothbrush -> 79, 3 car -> 2
    write_coco_split(
        root,
        "train",
        [(42, [90, 1]), (7, [13]), (100, [3, 3, 27]), (5, []), (9, [])],
        crowd=[(9, 1)],  # image 9 has only a crowd annotation: kept, as in the reference
    )
    write_coco_split(root, "val", [(3, [1]), (4, [])])
    return root


def test_coco_exact_labels(coco_root):
    ds = CocoMultiLabel(coco_root, "train")
    assert ds.classes == COCO_CLASSES and ds.category_ids == COCO_CATEGORY_IDS
    # images with >= 1 annotation, sorted by image id; image 5 (no annotation) excluded
    assert ds.names == [
        "COCO_train2014_000000000007.jpg",
        "COCO_train2014_000000000009.jpg",
        "COCO_train2014_000000000042.jpg",
        "COCO_train2014_000000000100.jpg",
    ]
    expected = torch.stack([_vec([11], 80), _vec([0], 80), _vec([0, 79], 80), _vec([2, 24], 80)])
    assert torch.equal(ds.labels, expected)
    assert ds.true_labels is ds.labels
    image, y = ds[2]
    assert isinstance(image, Image.Image) and image.size == (48, 48) and image.mode == "RGB"
    assert torch.equal(y, _vec([0, 79], 80))
    val = CocoMultiLabel(coco_root, "val2014", transform=build_transforms(False, image_size=32))
    assert len(val) == 1 and torch.equal(val.labels[0], _vec([0], 80))
    x, _ = val[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_coco_label_list_overrides_annotations(coco_root, tmp_path):
    split = tmp_path / "coco_train_single.txt"
    split.write_text(
        "COCO_train2014_000000000100.jpg, 24\n"
        "COCO_train2014_000000000042.jpg,79\n"
        "COCO_train2014_000000000005.jpg, 3\n"  # no annotation in the JSON, but a listed image
    )
    ds = CocoMultiLabel(coco_root, "train", label_list=split)
    assert ds.names == [
        "COCO_train2014_000000000100.jpg",
        "COCO_train2014_000000000042.jpg",
        "COCO_train2014_000000000005.jpg",
    ]
    assert torch.equal(ds.labels, torch.stack([_vec([24], 80), _vec([79], 80), _vec([3], 80)]))
    assert torch.equal(
        ds.true_labels, torch.stack([_vec([2, 24], 80), _vec([0, 79], 80), torch.zeros(80)])
    )
    # a (names, labels) pair works too
    ds2 = CocoMultiLabel(coco_root, "train", label_list=(ds.names, ds.labels))
    assert torch.equal(ds2.labels, ds.labels)


def test_coco_label_list_unknown_names_listed(coco_root, tmp_path):
    split = tmp_path / "bad.txt"
    split.write_text(
        "COCO_train2014_000000000100.jpg, 24\nCOCO_train2014_000000999999.jpg, 1\nnot_coco.jpg, 0\n"
    )
    with pytest.raises(
        ValueError,
        match=re.escape(
            "2 images not in instances_train2014.json: 'COCO_train2014_000000999999"
            ".jpg', 'not_coco.jpg'"
        ),
    ):
        CocoMultiLabel(coco_root, "train", label_list=split)
    with pytest.raises(ValueError, match=r"label_list labels must be \(1, 80\), got \(1, 3\)"):
        CocoMultiLabel(
            coco_root, "train", label_list=(["COCO_train2014_000000000100.jpg"], torch.zeros(1, 3))
        )


def test_coco_layout_errors(coco_root, tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=(
            r"COCO root not found: .*nowhere; expected layout: root/annotations/inst"
            r"ances_train2014\.json"
        ),
    ):
        CocoMultiLabel(tmp_path / "nowhere", "train")
    (coco_root / "annotations" / "instances_val2014.json").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=r"COCO annotation file not found: .*instances_val2014\.json; expected layout",
    ):
        CocoMultiLabel(coco_root, "val")
    with pytest.raises(ValueError, match="split must be 'train' or 'val', got 'test'"):
        CocoMultiLabel(coco_root, "test")
    for f in (coco_root / "train2014").iterdir():
        f.rename(tmp_path / f.name)
    (coco_root / "train2014").rmdir()
    with pytest.raises(
        FileNotFoundError, match=r"COCO image folder not found: .*train2014; expected layout"
    ):
        CocoMultiLabel(coco_root, "train")


def test_coco_missing_and_corrupt_images(coco_root):
    (coco_root / "train2014" / "COCO_train2014_000000000042.jpg").unlink()
    (coco_root / "train2014" / "COCO_train2014_000000000007.jpg").unlink()
    with pytest.raises(
        MissingFilesError,
        match=(
            r"2 COCO train2014 image files missing:\n  .*000000000007\.jpg\n  .*0000"
            r"00000042\.jpg"
        ),
    ) as info:
        CocoMultiLabel(coco_root, "train")
    assert len(info.value.missing) == 2 and isinstance(info.value, FileNotFoundError)
    ds = CocoMultiLabel(coco_root, "train", verify_files=False)
    with pytest.raises(
        FileNotFoundError, match=r"image not found: .*COCO_train2014_000000000007\.jpg"
    ):
        ds[0]
    corrupt = coco_root / "train2014" / "COCO_train2014_000000000100.jpg"
    corrupt.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match=r"cannot read image .*COCO_train2014_000000000100\.jpg"):
        ds[3]
    truncated = coco_root / "train2014" / "COCO_train2014_000000000009.jpg"
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cannot read image .*COCO_train2014_000000000009\.jpg"):
        load_image(truncated)


def test_coco_bad_annotation_files(coco_root):
    ann = coco_root / "annotations" / "instances_train2014.json"
    data = json.loads(ann.read_text())
    data["annotations"][0]["category_id"] = 12  # 12 is one of COCO's unused ids
    ann.write_text(json.dumps(data))
    with pytest.raises(
        ValueError, match=r"instances_train2014\.json: annotation 1 has unknown category id 12"
    ):
        CocoMultiLabel(coco_root, "train")
    ann.write_text("{not json")
    with pytest.raises(
        ValueError, match=r"instances_train2014\.json:1:2: not valid JSON: Expecting property name"
    ):
        CocoMultiLabel(coco_root, "train")


def test_make_coco_tree_fixture(tmp_path):
    root = make_coco_tree(tmp_path / "c", num_train=16, num_val=8, image_size=48, seed=0)
    train, val = CocoMultiLabel(root, "train"), CocoMultiLabel(root, "val")
    assert (len(train), len(val)) == (16, 8)
    assert len(list((root / "train2014").glob("*.jpg"))) == 17  # + the unannotated image
    assert bool((train.labels.sum(1) >= 1).all()) and bool((train.labels.sum(1) <= 4).all())
    assert train[0][0].size == (48, 48)
    again = CocoMultiLabel(make_coco_tree(tmp_path / "d", seed=0), "train")
    assert torch.equal(again.labels, train.labels) and again.names == train.names


# --------------------------------------------------------------------------- VOC
VOC_OBJECTS = {
    "000005": [("chair", 0), ("chair", 1), ("diningtable", 0)],
    "000007": [("car", 0)],
    "000009": [("horse", 0), ("person", 1), ("person", 1)],  # person only difficult
    "000012": [("tvmonitor", 1)],  # only a difficult object
}


@pytest.fixture()
def voc_root(tmp_path):
    make_voc_tree(
        tmp_path / "voc",
        VOC_OBJECTS,
        {"trainval": ["000005", "000007", "000009"], "test": ["000012"]},
    )
    return tmp_path / "voc"


def test_voc_exact_labels_and_difficult_policies(voc_root):
    c = VOC_CLASSES.index
    pos = VOCMultiLabel(voc_root)  # default: year 2007, trainval, difficult='positive'
    assert pos.classes == VOC_CLASSES and pos.ids == ["000005", "000007", "000009"]
    expected = torch.stack(
        [
            _vec([c("chair"), c("diningtable")], 20),
            _vec([c("car")], 20),
            _vec([c("horse"), c("person")], 20),
        ]
    )
    assert torch.equal(pos.labels, expected)
    mask = torch.zeros(3, 20, dtype=torch.bool)
    mask[2, c("person")] = True  # chair in 000005 has a non-difficult instance too
    assert torch.equal(pos.difficult_mask, mask)
    neg = VOCMultiLabel(voc_root, difficult="negative")
    expected_neg = expected.clone()
    expected_neg[2, c("person")] = 0
    assert torch.equal(neg.labels, expected_neg)
    ign = VOCMultiLabel(voc_root, difficult="ignore")
    expected_ign = expected.clone()
    expected_ign[2, c("person")] = -1
    assert torch.equal(ign.labels, expected_ign)
    test = VOCMultiLabel(voc_root, image_set="test", difficult="negative")
    assert torch.equal(test.labels, torch.zeros(1, 20)) and bool(
        test.difficult_mask[0, c("tvmonitor")]
    )
    image, y = pos[0]
    assert image.size == (40, 40) and torch.equal(y, expected[0])


def test_voc_root_variants(voc_root):
    a = VOCMultiLabel(voc_root)
    for root in (voc_root / "VOCdevkit", voc_root / "VOCdevkit" / "VOC2007"):
        assert torch.equal(VOCMultiLabel(root).labels, a.labels)


def test_voc_errors(voc_root, tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"VOC root not found: .*missing; expected layout: root/VOCdevkit/VOC2007/",
    ):
        VOCMultiLabel(tmp_path / "missing")
    with pytest.raises(
        FileNotFoundError, match=r"no VOC2012 folder with Annotations/ and ImageSets/Main/ under"
    ):
        VOCMultiLabel(voc_root, year="2012")
    with pytest.raises(FileNotFoundError, match=re.escape("available: ['test', 'trainval']")):
        VOCMultiLabel(voc_root, image_set="val")
    with pytest.raises(
        ValueError,
        match=r"difficult must be one of \('positive', 'negative', 'ignore'\), got 'skip'",
    ):
        VOCMultiLabel(voc_root, difficult="skip")
    voc = voc_root / "VOCdevkit" / "VOC2007"
    (voc / "ImageSets" / "Main" / "dup.txt").write_text("000005\n000007\n000005\n")
    with pytest.raises(
        ValueError, match=r"dup\.txt:3: image id '000005' listed again \(first at line 1\)"
    ):
        VOCMultiLabel(voc_root, image_set="dup")
    (voc / "ImageSets" / "Main" / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"empty\.txt: empty image set"):
        VOCMultiLabel(voc_root, image_set="empty")
    xml = voc / "Annotations" / "000007.xml"
    xml.write_text(xml.read_text().replace("<name>car</name>", "<name>automobile</name>"))
    with pytest.raises(ValueError, match=r"000007\.xml: unknown VOC class 'automobile'"):
        VOCMultiLabel(voc_root)
    xml.write_text("<annotation><object>")
    with pytest.raises(ValueError, match=r"cannot parse VOC annotation .*000007\.xml"):
        VOCMultiLabel(voc_root)
    xml.unlink()
    (voc / "JPEGImages" / "000009.jpg").unlink()
    with pytest.raises(
        MissingFilesError, match=r"1 VOC2007 annotation files missing:\n  .*000007\.xml"
    ):
        VOCMultiLabel(voc_root)
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("000005\n000009\n")
    with pytest.raises(MissingFilesError, match=r"1 VOC2007 image files missing:\n  .*000009\.jpg"):
        VOCMultiLabel(voc_root)


# --------------------------------------------------------------------------- NUS-WIDE
def test_nus_exact_labels_with_trailing_dot_line(tmp_path):
    root = tmp_path / "nus"
    names = ["0001_2124494179.jpg", "0437_424259217.jpg", "0002_100.jpg"]
    for k, n in enumerate(names):
        write_jpeg(root / "images" / n, 24, seed=k)
    lst = tmp_path / "nus_train_full.txt"
    lst.write_text("0001_2124494179.jpg, 13 24\n0437_424259217.jpg,2.\n0002_100.jpg, 80 0\n")
    with pytest.warns(
        UserWarning, match=r"nus_train_full\.txt:2: class index '2\.' has a trailing dot"
    ):
        ds = NusWideMultiLabel(root, lst)
    assert ds.classes == NUS_WIDE_CLASSES and ds.names == names
    assert torch.equal(
        ds.labels, torch.stack([_vec([13, 24], 81), _vec([2], 81), _vec([0, 80], 81)])
    )
    assert ds.classes[13] == "clouds" and ds.classes[80] == "zebra"
    image, y = ds[1]
    assert image.size == (24, 24) and torch.equal(y, _vec([2], 81))
    # images directly in root (no images/ folder)
    flat = tmp_path / "flat"
    for k, n in enumerate(names):
        write_jpeg(flat / n, 24, seed=k)
    assert torch.equal(NusWideMultiLabel(flat, (names, ds.labels)).labels, ds.labels)


def test_nus_errors(tmp_path):
    root = tmp_path / "nus"
    write_jpeg(root / "images" / "a.jpg", 16)
    lst = tmp_path / "list.txt"
    lst.write_text("a.jpg, 1\nb.jpg, 2\nc.jpg, 3\n")
    with pytest.raises(
        MissingFilesError,
        match=r"2 NUS-WIDE image files missing:\n  .*images/b\.jpg\n  .*images/c\.jpg",
    ):
        NusWideMultiLabel(root, lst)
    with pytest.raises(
        FileNotFoundError, match=r"NUS-WIDE root not found: .*nope; expected layout: root/images/"
    ):
        NusWideMultiLabel(tmp_path / "nope", lst)
    lst.write_text("a.jpg, 81\n")
    with pytest.raises(
        ValueError, match=r"list\.txt:1: class index 81 out of range for 81 classes"
    ):
        NusWideMultiLabel(root, lst)
    with pytest.raises(
        ValueError,
        match=(
            r"label_list labels must hold only \{0, 1\}, found 2 in 81 of 81 entries"
            r" \(first at row 0 \('a.jpg'\), class 0\)"
        ),
    ):
        NusWideMultiLabel(root, (["a.jpg"], torch.full((1, 81), 2.0)))


# --------------------------------------------------------------------------- PartialLabelDataset
def test_partial_label_dataset(coco_root):
    base = CocoMultiLabel(coco_root, "train", transform=build_transforms(False, image_size=16))
    observed = simulate_missing(base.labels, "single", seed=0)
    ds = PartialLabelDataset(base, observed)
    assert len(ds) == 4 and ds.classes == COCO_CLASSES and ds.labels is ds.observed
    image, obs_i, truth_i = ds[3]
    assert image.shape == (3, 16, 16)
    assert torch.equal(obs_i, observed[3]) and torch.equal(truth_i, base.labels[3])
    assert obs_i.sum() == 1 and bool((obs_i <= truth_i).all())
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert [t.shape for t in batch] == [(4, 3, 16, 16), (4, 80), (4, 80)]
    signed = torch.where(observed == 1, 1.0, -1.0)  # 1/0/-1 encoding accepted
    assert torch.equal(PartialLabelDataset(base, signed)[0][1], signed[0])


def test_partial_label_dataset_errors(coco_root):
    base = CocoMultiLabel(coco_root, "train")
    with pytest.raises(
        ValueError, match=r"observed must have the shape of base\.labels \(4, 80\), got \(4, 79\)"
    ):
        PartialLabelDataset(base, torch.zeros(4, 79))
    with pytest.raises(
        ValueError,
        match=(
            r"observed must hold only \{-1, 0, 1\} \(-1 = unknown\), found 0.5 in 32"
            r"0 of 320 entries \(first at row 0 \('COCO_train2014_000000000007.jpg'\), class 0\)"
        ),
    ):
        PartialLabelDataset(base, torch.full((4, 80), 0.5))
    invented = base.labels.clone()
    invented[1, 5] = 1
    with pytest.raises(
        ValueError,
        match=(
            r"observed has 1 positives that the ground truth marks 0 \(first: row 1 "
            r"\('COCO_train2014_\d+.jpg'\), class 5 'bus'\).*training config field `label_list`"
        ),
    ):
        PartialLabelDataset(base, invented)
    assert PartialLabelDataset(base, invented, strict=False)[1][1][5] == 1
    with pytest.raises(ValueError, match=r"base dataset list has no \.labels tensor"):
        PartialLabelDataset([1, 2], torch.zeros(2, 3))


# --------------------------------------------------------------------------- transforms
def test_cutout_pil_and_tensor():
    torch.manual_seed(0)
    img = Image.new("RGB", (40, 20), (10, 20, 30))
    out = Cutout(0.5)(img)
    diff = (torch.from_numpy(np.array(out)) != torch.tensor([10, 20, 30], dtype=torch.uint8)).any(
        2
    )  # (H, W)
    rows, cols = diff.nonzero(as_tuple=True)
    assert 0 < diff.sum() <= 10 * 20  # one rectangle of at most (0.5 H) x (0.5 W)
    assert diff[
        rows.min() : rows.max() + 1, cols.min() : cols.max() + 1
    ].all()  # a filled rectangle
    assert img.getpixel((0, 0)) == (10, 20, 30)  # input untouched
    x = torch.zeros(3, 32, 32)
    y = Cutout(0.25)(x)
    changed = (y != 0).any(0)
    assert 0 < changed.sum() <= 8 * 8 and torch.equal(x, torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match=r"cutout fraction must be in \(0, 1\], got 0"):
        Cutout(0)
    with pytest.raises(TypeError, match="Cutout expects a PIL image or a"):
        Cutout()(3)


def test_build_transforms():
    img = Image.new("RGB", (64, 48), (200, 100, 50))
    torch.manual_seed(0)
    train = build_transforms(True, image_size=32)
    x = train(img)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    names = [type(t).__name__ for t in train.transforms]
    assert names == ["EnsurePIL", "Resize", "Cutout", "RandAugment", "ToTensor"]
    evaluation = build_transforms(False, image_size=16, normalize=True)
    assert [type(t).__name__ for t in evaluation.transforms] == [
        "EnsurePIL",
        "Resize",
        "ToTensor",
        "Normalize",
    ]
    y = evaluation(img)
    assert torch.allclose(
        y[:, 0, 0],
        (torch.tensor([200, 100, 50]) / 255 - torch.tensor([0.485, 0.456, 0.406]))
        / torch.tensor([0.229, 0.224, 0.225]),
        atol=1e-2,
    )
    plain = build_transforms(True, image_size=8, cutout=0, randaugment=False)
    assert [type(t).__name__ for t in plain.transforms] == ["EnsurePIL", "Resize", "ToTensor"]
    assert torch.allclose(plain(torch.full((3, 8, 8), 0.5)), torch.full((3, 8, 8), 128 / 255))
    with pytest.raises(ValueError, match="image_size must be a positive int, got 0"):
        build_transforms(True, image_size=0)
    with pytest.raises(ValueError, match=r"cutout must be in \[0, 1\], got 1\.5"):
        build_transforms(True, cutout=1.5)
    with pytest.raises(TypeError, match=r"got ndarray \(4, 4\)"):
        EnsurePIL()(torch.zeros(4, 4).numpy())


# --------------------------------------------------------------------------- identity columns
def _edit_coco(root, edit):
    ann = root / "annotations" / "instances_train2014.json"
    doc = json.loads(ann.read_text())
    edit(doc)
    ann.write_text(json.dumps(doc))
    return ann


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d["images"].append(dict(d["images"][0], file_name="other.jpg")),
            r"1 duplicated image ids: 42; each must be unique",
        ),
        (
            lambda d: d["images"].append(dict(d["images"][1], id=1234)),
            r"1 duplicated image file names: 'COCO_train2014_000000000007\.jpg'",
        ),
        (
            lambda d: d["categories"].append({"id": 1, "name": "human"}),
            r"1 duplicated category ids: 1;",
        ),
        (
            lambda d: d["categories"].append({"id": 91, "name": "person"}),
            r"1 duplicated category names: 'person'",
        ),
        (
            lambda d: d["annotations"].append(dict(d["annotations"][0])),
            r"1 duplicated annotation ids: 1;",
        ),
    ],
    ids=["image id", "file name", "category id", "category name", "annotation id"],
)
def test_coco_duplicate_ids_are_refused(coco_root, edit, message):
    ann = _edit_coco(coco_root, edit)
    with pytest.raises(ValueError, match=re.escape(str(ann)) + ": " + message):
        CocoMultiLabel(coco_root, "train")


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d.pop("categories"),
            r"no 'categories' key \(a COCO instances file has 'images', 'categories' and "
            r"'annotations'; found \['annotations', 'images'",
        ),
        (lambda d: d.pop("images"), r"no 'images' key"),
        (lambda d: d.pop("annotations"), r"no 'annotations' key"),
        (lambda d: d.update(categories=[]), r"'categories' is empty"),
        (lambda d: d.update(categories={"1": "person"}), r"'categories' must be a list, got dict"),
        (lambda d: d["images"][2].pop("file_name"), r"images\[2\] has no 'file_name' key"),
        (lambda d: d["images"][0].update(id="42"), r"images\[0\]\['id'\] must be int, got '42'"),
        (
            lambda d: d["annotations"][1].update(category_id=1.0),
            r"annotations\[1\]\['category_id'\] must be int, got 1\.0",
        ),
        (
            lambda d: d["annotations"][0].update(image_id=77),
            r"annotation 1 refers to unknown image id 77",
        ),
    ],
)
def test_coco_structure_errors_name_file_and_key(coco_root, edit, message):
    ann = _edit_coco(coco_root, edit)
    with pytest.raises(ValueError, match=re.escape(str(ann)) + ": " + message):
        CocoMultiLabel(coco_root, "train")


def test_coco_annotation_encoding(coco_root):
    ann = coco_root / "annotations" / "instances_train2014.json"
    ann.write_bytes(b"\xef\xbb\xbf" + ann.read_bytes())  # a BOM is accepted
    assert len(CocoMultiLabel(coco_root, "train")) == 4
    ann.write_bytes(ann.read_bytes().replace(b"person", b"p\xe9rson"))
    with pytest.raises(ValueError, match=re.escape(str(ann)) + r": not valid UTF-8"):
        CocoMultiLabel(coco_root, "train")
    ann.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"expected a JSON object .* got a list"):
        CocoMultiLabel(coco_root, "train")


def test_label_list_pairs_with_duplicate_names_are_refused(coco_root, tmp_path):
    ds = CocoMultiLabel(coco_root, "train")
    names = [ds.names[0], ds.names[1], ds.names[0]]
    with pytest.raises(
        ValueError,
        match=r"label_list names\[2\]: image name .* appears twice "
        r"\(first at label_list names\[0\]\)",
    ):
        CocoMultiLabel(coco_root, "train", label_list=(names, torch.zeros(3, 80)))
    root = tmp_path / "nus"
    write_jpeg(root / "images" / "a.jpg", 16)
    with pytest.raises(
        ValueError, match=r"label_list names\[1\]: image name 'a\.jpg' appears twice"
    ):
        NusWideMultiLabel(root, (["a.jpg", "a.jpg"], torch.zeros(2, 81)))


def test_voc_identity_columns(voc_root):
    main = voc_root / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main"
    (main / "aeroplane_trainval.txt").write_text("000005 -1\n000007  1\n")
    with pytest.raises(
        ValueError,
        match=r"aeroplane_trainval\.txt:1: expected one image id per "
        r"line, got '000005 -1' \(a per-class list",
    ):
        VOCMultiLabel(voc_root, image_set="aeroplane_trainval")
    (main / "bom.txt").write_bytes(b"\xef\xbb\xbf000005\n000007\n")
    assert VOCMultiLabel(voc_root, image_set="bom").ids == ["000005", "000007"]
    (main / "dup.txt").write_text("000005\n000007\n000005\n")
    with pytest.raises(
        ValueError, match=r"dup\.txt:3: image id '000005' listed again \(first at line 1\)"
    ):
        VOCMultiLabel(voc_root, image_set="dup")
    xml = voc_root / "VOCdevkit" / "VOC2007" / "Annotations" / "000007.xml"
    xml.write_text(xml.read_text().replace("<filename>000007.jpg", "<filename>000005.jpg"))
    with pytest.raises(
        ValueError,
        match=r"000007\.xml: <filename> is '000005\.jpg', but this is the "
        r"annotation of image '000007'",
    ):
        VOCMultiLabel(voc_root)
