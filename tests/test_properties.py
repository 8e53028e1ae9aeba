"""Property tests: every annotation document is either read exactly or refused by name.

Hypothesis generates label lists, COCO instances files and VOC annotation trees (valid ones, and
the same documents with one corruption each), writes them in the real on-disk formats, and checks
the one guarantee of the readers (docs/reliability.md): a valid document is read exactly (the
round trip equals the generated truth), a corrupted one raises ``ValueError`` whose message names
the file (``file:line`` where the format has lines) and the problem. Nothing is read half-way,
shifted or dropped silently. Each property runs a bounded number of examples (fast on one core).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clml_lib.data import CocoMultiLabel, VOCMultiLabel, read_label_list, write_label_list
from clml_lib.data.classes import VOC_CLASSES

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# image names: letters, digits, '.', '_', '-', inner spaces and a few non-ASCII letters
NAME_CHARS = st.sampled_from(list("abcXYZ019._- ") + ["é", "ß", "日", "ж"])
NAMES = (st.text(NAME_CHARS, min_size=1, max_size=12).map(str.strip)
         .filter(lambda n: n not in ("", ".", "..")))  # "." and ".." name folders, not files


@st.composite
def label_lists(draw):
    """(names, labels (N, C) 0/1) with unique names."""
    c = draw(st.integers(1, 12))
    names = draw(st.lists(NAMES, min_size=1, max_size=8, unique=True))
    bits = draw(
        st.lists(
            st.lists(st.booleans(), min_size=c, max_size=c),
            min_size=len(names),
            max_size=len(names),
        )
    )
    return names, torch.tensor(bits, dtype=torch.float32).reshape(len(names), c)


def _hand_written(names, labels, style) -> bytes:
    """The label list as another tool may write it: spacing, CRLF, blank lines, a BOM."""
    sep = ", " if style["space"] else ","
    nl = "\r\n" if style["crlf"] else "\n"
    lines = []
    for name, row in zip(names, labels):
        idx = [str(j) for j in row.nonzero().flatten().tolist()]
        if style["reverse"]:
            idx.reverse()
        lines.append(f"{name}{sep}{'  '.join(idx) if style['wide'] else ' '.join(idx)}")
        if style["blank"]:
            lines.append("   ")
    text = nl.join(lines) + (nl if style["final_newline"] else "")
    return (b"\xef\xbb\xbf" if style["bom"] else b"") + text.encode("utf-8")


STYLES = st.fixed_dictionaries(
    {
        k: st.booleans()
        for k in ("space", "crlf", "reverse", "wide", "blank", "final_newline", "bom")
    }
)


@FAST
@given(label_lists(), STYLES)
def test_label_list_round_trip(doc, style):
    names, labels = doc
    with tempfile.TemporaryDirectory() as tmp:
        out = write_label_list(Path(tmp) / "split.txt", names, labels)
        assert _equal(read_label_list(out, labels.shape[1]), (names, labels))
        hand = Path(tmp) / "hand.txt"
        hand.write_bytes(_hand_written(names, labels, style))
        assert _equal(read_label_list(hand, labels.shape[1]), (names, labels))


def _equal(got, want) -> bool:
    return got[0] == want[0] and torch.equal(got[1], want[1])


CORRUPTIONS = [
    "duplicate",
    "out_of_range",
    "no_comma",
    "bad_token",
    "not_utf8",
    "vector",
    "empty_name",
    "inner_bom",
    "parent_dir",
    "absolute",
    "respelled",
]


@FAST
@given(label_lists(), st.sampled_from(CORRUPTIONS), st.data())
def test_corrupted_label_list_is_refused_with_file_and_line(doc, kind, data):
    names, labels = doc
    c = labels.shape[1]
    if kind == "vector" and c < 3:
        c = 3  # a 0/1 vector of C >= 3 columns always repeats a token
        labels = torch.cat([labels, torch.zeros(len(names), 3 - labels.shape[1])], 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_label_list(Path(tmp) / "split.txt", names, labels)
        lines = path.read_bytes().split(b"\n")[:-1]
        k = data.draw(st.integers(0, len(lines) - 1), label="line")
        name = names[k].encode()
        expected = {
            "duplicate": "is listed again",
            "out_of_range": f"class index {c + 3} out of range for {c} classes",
            "no_comma": "malformed line",
            "bad_token": "malformed class index '1.5'",
            "not_utf8": "not valid UTF-8 (byte 0xff",
            "vector": "0/1 label vector",
            "empty_name": "empty image name",
            "inner_bom": "byte-order mark (U+FEFF) inside",
            "parent_dir": "has a '..' component",
            "absolute": "is an absolute path",
            "respelled": "is listed again (as './",
        }[kind]
        if kind == "duplicate":
            lines.insert(k + 1, lines[k])
            k += 1
        elif kind == "out_of_range":
            lines[k] = name + b", " + str(c + 3).encode()
        elif kind == "no_comma":
            lines[k] = name.replace(b",", b"") + b" 1"
        elif kind == "bad_token":
            lines[k] = name + b", 1.5"
        elif kind == "not_utf8":
            lines[k] = name + b"\xff, 0"
        elif kind == "vector":
            row = data.draw(st.lists(st.sampled_from([b"0", b"1"]), min_size=c, max_size=c))
            lines[k] = name + b", " + b" ".join(row)
        elif kind == "empty_name":
            lines[k] = b" , 0"
        elif kind == "parent_dir":
            lines[k] = b"sub/../" + lines[k]
        elif kind == "absolute":
            lines[k] = b"/" + lines[k]
        elif kind == "respelled":  # one image under a second spelling
            lines.insert(k + 1, b"./" + lines[k])
            k += 1
        elif kind == "inner_bom":
            lines[k] = b"\xef\xbb\xbf" + lines[k]
            if k == 0:  # a BOM at the very start is the accepted one: put it on a new line 2
                lines.insert(1, b"\xef\xbb\xbfzz, 0")
                k = 1
        path.write_bytes(b"\n".join(lines) + b"\n")
        with pytest.raises(ValueError) as info:
            read_label_list(path, c)
        message = str(info.value)
        assert f"{path}:{k + 1}:" in message and expected in message, message


# --------------------------------------------------------------------------- COCO
@st.composite
def coco_documents(draw):
    """A COCO instances document and its truth: (doc, names sorted by image id, labels)."""
    cat_ids = draw(st.lists(st.integers(1, 300), min_size=1, max_size=6, unique=True))
    cat_names = draw(
        st.lists(
            st.text("abcdefgh", min_size=1, max_size=6),
            min_size=len(cat_ids),
            max_size=len(cat_ids),
            unique=True,
        )
    )
    img_ids = draw(st.lists(st.integers(0, 10**9), min_size=1, max_size=8, unique=True))
    anns, ann_id = [], draw(st.integers(1, 1000))
    for img in img_ids:
        for cid in draw(st.lists(st.sampled_from(cat_ids), max_size=4)):
            anns.append(
                {
                    "id": ann_id,
                    "image_id": img,
                    "category_id": cid,
                    "iscrowd": draw(st.integers(0, 1)),
                    "bbox": [0, 0, 1, 1],
                }
            )
            ann_id += 1
    doc = {
        "images": [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg"} for i in img_ids],
        "categories": [{"id": c, "name": n} for c, n in zip(cat_ids, cat_names)],
        "annotations": anns,
    }
    draw(st.randoms()).shuffle(doc["images"])  # file order must not matter
    order = sorted(cat_ids)
    annotated = sorted({a["image_id"] for a in anns})
    labels = torch.zeros(len(annotated), len(order))
    for a in anns:
        labels[annotated.index(a["image_id"]), order.index(a["category_id"])] = 1
    names = [f"COCO_train2014_{i:012d}.jpg" for i in annotated]
    return doc, names, labels, [dict(zip(cat_ids, cat_names))[c] for c in order]


def _coco_root(tmp: str, doc) -> tuple[Path, Path]:
    root = Path(tmp) / "coco"
    (root / "train2014").mkdir(parents=True)
    ann = root / "annotations" / "instances_train2014.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps(doc))
    return root, ann


@FAST
@given(coco_documents())
def test_coco_document_read_exactly(truth):
    doc, names, labels, classes = truth
    with tempfile.TemporaryDirectory() as tmp:
        root, _ = _coco_root(tmp, doc)
        ds = CocoMultiLabel(root, "train", verify_files=False)
        assert ds.names == names and ds.classes == classes and torch.equal(ds.labels, labels)


COCO_CORRUPTIONS = {
    "dup_image_id": ("images", "duplicated image ids"),
    "dup_file_name": ("images", "duplicated image file names"),
    "dup_category_id": ("categories", "duplicated category ids"),
    "dup_category_name": ("categories", "duplicated category names"),
    "dup_annotation_id": ("annotations", "duplicated annotation ids"),
    "missing_key": (None, "key (a COCO instances file has"),
    "unknown_image": ("annotations", "refers to unknown image id"),
    "unknown_category": ("annotations", "has unknown category id"),
    "wrong_type": ("images", "must be int"),
    "truncated": (None, "not valid JSON"),
    "escaping_name": ("images", "may not leave the dataset root"),
    "absolute_name": ("images", "is an absolute path"),
    "respelled_name": ("images", "duplicated image file names"),
    "deep_nesting": (None, "nested too deeply"),
}


@FAST
@given(coco_documents(), st.sampled_from(sorted(COCO_CORRUPTIONS)), st.data())
def test_corrupted_coco_document_is_refused_by_name(truth, kind, data):
    doc = json.loads(json.dumps(truth[0]))
    imgs, cats, anns = doc["images"], doc["categories"], doc["annotations"]
    if kind in ("dup_annotation_id", "unknown_image", "unknown_category") and not anns:
        anns.append({"id": 1, "image_id": imgs[0]["id"], "category_id": cats[0]["id"]})
    pick = data.draw(st.integers(0, 10**6), label="entry")
    if kind == "dup_image_id":
        imgs.append(dict(imgs[pick % len(imgs)], file_name="another.jpg"))
    elif kind == "dup_file_name":
        imgs.append(dict(imgs[pick % len(imgs)], id=-1))
    elif kind == "dup_category_id":
        cats.append(dict(cats[pick % len(cats)], name="zzzzzzzz"))
    elif kind == "dup_category_name":
        cats.append(dict(cats[pick % len(cats)], id=1000))
    elif kind == "dup_annotation_id":
        anns.append(dict(anns[pick % len(anns)]))
    elif kind == "missing_key":
        doc.pop(data.draw(st.sampled_from(["images", "categories", "annotations"])))
    elif kind == "unknown_image":
        anns[pick % len(anns)]["image_id"] = -5
    elif kind == "unknown_category":
        anns[pick % len(anns)]["category_id"] = 5000
    elif kind == "wrong_type":
        imgs[pick % len(imgs)]["id"] = str(imgs[pick % len(imgs)]["id"])
    elif kind == "escaping_name":
        imgs[pick % len(imgs)]["file_name"] = "../../" + imgs[pick % len(imgs)]["file_name"]
    elif kind == "absolute_name":
        imgs[pick % len(imgs)]["file_name"] = "/etc/" + imgs[pick % len(imgs)]["file_name"]
    elif kind == "respelled_name":  # one file under a second spelling
        imgs.append(dict(imgs[pick % len(imgs)], id=-1,
                         file_name="./" + imgs[pick % len(imgs)]["file_name"]))
    with tempfile.TemporaryDirectory() as tmp:
        root, ann = _coco_root(tmp, doc)
        if kind == "deep_nesting":  # 100,000 nested lists inside a valid document
            ann.write_text(json.dumps(doc)[:-1] + ', "info": ' + "[" * 100_000
                           + "]" * 100_000 + "}")
        if kind == "truncated":
            text = ann.read_text()
            ann.write_text(text[: max(1, (pick % len(text)))])
        with pytest.raises(ValueError) as info:
            CocoMultiLabel(root, "train", verify_files=False)
        message = str(info.value)
        assert str(ann) in message and COCO_CORRUPTIONS[kind][1] in message, message


# --------------------------------------------------------------------------- VOC
@st.composite
def voc_documents(draw):
    """{image id: [(class, difficult)]} and the image-set order."""
    ids = draw(
        st.lists(st.from_regex(r"[0-9]{6}", fullmatch=True), min_size=1, max_size=6, unique=True)
    )
    objects = {
        i: draw(st.lists(st.tuples(st.sampled_from(VOC_CLASSES), st.integers(0, 1)), max_size=4))
        for i in ids
    }
    return ids, objects


def _voc_tree(tmp: str, ids, objects, corrupt: dict | None = None) -> Path:
    voc = Path(tmp) / "VOCdevkit" / "VOC2007"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    for i, objs in objects.items():
        body = "".join(
            f"<object><name>{escape(n)}</name><difficult>{d}</difficult></object>" for n, d in objs
        )
        xml = f"<annotation><filename>{i}.jpg</filename>{body}</annotation>\n"
        (voc / "Annotations" / f"{i}.xml").write_text(xml)
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{i}\n" for i in ids))
    return voc


def _voc_truth(ids, objects, policy: str) -> torch.Tensor:
    y = np.zeros((len(ids), len(VOC_CLASSES)), dtype=np.float32)
    for r, i in enumerate(ids):
        easy = {VOC_CLASSES.index(n) for n, d in objects[i] if d == 0}
        hard = {VOC_CLASSES.index(n) for n, d in objects[i] if d == 1} - easy
        for k in easy:
            y[r, k] = 1
        for k in hard:
            y[r, k] = {"positive": 1, "negative": 0, "ignore": -1}[policy]
    return torch.from_numpy(y)


@FAST
@given(voc_documents(), st.sampled_from(["positive", "negative", "ignore"]))
def test_voc_document_read_exactly(doc, policy):
    ids, objects = doc
    with tempfile.TemporaryDirectory() as tmp:
        _voc_tree(tmp, ids, objects)
        ds = VOCMultiLabel(tmp, difficult=policy, verify_files=False)
        assert ds.ids == ids and torch.equal(ds.labels, _voc_truth(ids, objects, policy))


VOC_CORRUPTIONS = [
    "dup_id",
    "two_tokens",
    "unknown_class",
    "bad_difficult",
    "other_filename",
    "broken_xml",
    "escaping_id",
]


@FAST
@given(voc_documents(), st.sampled_from(VOC_CORRUPTIONS), st.data())
def test_corrupted_voc_document_is_refused_by_name(doc, kind, data):
    ids, objects = doc
    k = data.draw(st.integers(0, len(ids) - 1), label="image")
    with tempfile.TemporaryDirectory() as tmp:
        voc = _voc_tree(tmp, ids, objects)
        set_file = voc / "ImageSets" / "Main" / "trainval.txt"
        xml = voc / "Annotations" / f"{ids[k]}.xml"
        if kind == "dup_id":
            set_file.write_text("".join(f"{i}\n" for i in ids + [ids[k]]))
            where, expected = f"{set_file}:{len(ids) + 1}:", "listed again"
        elif kind == "two_tokens":
            lines = [f"{i}\n" for i in ids]
            lines[k] = f"{ids[k]}  -1\n"
            set_file.write_text("".join(lines))
            where, expected = f"{set_file}:{k + 1}:", "expected one image id per line"
        elif kind == "escaping_id":
            lines = [f"{i}\n" for i in ids]
            lines[k] = f"../../{ids[k]}\n"
            set_file.write_text("".join(lines))
            where, expected = f"{set_file}:{k + 1}:", "is not a plain file stem"
        else:
            where = str(xml)
            text = xml.read_text()
            if kind == "unknown_class":
                text = text.replace(
                    "</annotation>", "<object><name>unicorn</name></object></annotation>"
                )
                expected = "unknown VOC class 'unicorn'"
            elif kind == "bad_difficult":
                text = text.replace(
                    "</annotation>",
                    "<object><name>dog</name><difficult>2</difficult></object></annotation>",
                )
                expected = "<difficult> must be 0 or 1, got '2'"
            elif kind == "other_filename":
                text = text.replace(f"<filename>{ids[k]}.jpg", "<filename>999999x.jpg")
                expected = "describes another image"
            else:
                text = text[: len(text) // 2]
                expected = "cannot parse VOC annotation"
            xml.write_text(text)
        with pytest.raises(ValueError) as info:
            VOCMultiLabel(tmp, verify_files=False)
        message = str(info.value)
        assert where in message and expected in message, message
