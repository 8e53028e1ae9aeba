"""Label lists: the reference split format, its quirks, and every bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from clml_lib.data import read_label_list, write_label_list


def _write(tmp_path, text: str, name: str = "split.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_reference_format_exact(tmp_path):
    path = _write(
        tmp_path,
        "COCO_train2014_000000480023.jpg, 0 52\n"
        "COCO_train2014_000000196094.jpg,79\n"  # no space after the comma
        "COCO_train2014_000000000009.jpg, 3  3 7 \n"  # repeated index, extra spaces
        "\n"  # blank line: skipped
        "COCO_train2014_000000000025.jpg,\n",  # no positive label
    )
    names, labels = read_label_list(path, 80)
    assert names == [
        "COCO_train2014_000000480023.jpg",
        "COCO_train2014_000000196094.jpg",
        "COCO_train2014_000000000009.jpg",
        "COCO_train2014_000000000025.jpg",
    ]
    expected = torch.zeros(4, 80)
    expected[0, [0, 52]] = 1
    expected[1, 79] = 1
    expected[2, [3, 7]] = 1
    assert labels.dtype == torch.float32 and labels.shape == (4, 80)
    assert torch.equal(labels, expected)


def test_trailing_dot_integer_warns_with_file_and_line(tmp_path):
    path = _write(tmp_path, "0001_2124494179.jpg, 13 24\n0437_424259217.jpg,2.\n", "nus.txt")
    with pytest.warns(
        UserWarning, match=re.escape(f"{path}:2: class index '2.' has a trailing dot; read as 2")
    ):
        names, labels = read_label_list(path, 81)
    assert names == ["0001_2124494179.jpg", "0437_424259217.jpg"]
    assert labels[1].nonzero().flatten().tolist() == [2]
    assert labels[0].nonzero().flatten().tolist() == [13, 24]


@pytest.mark.parametrize(
    "line, message",
    [
        ("a.jpg 0 1", "malformed line 'a.jpg 0 1': expected 'name, idx idx ...'"),
        ("a.jpg, 2.0", "malformed class index '2.0'"),
        ("a.jpg, -1", "malformed class index '-1'"),
        ("a.jpg, x", "malformed class index 'x'"),
        ("a.jpg, 1,2", "malformed class index '1,2'"),
        (", 1", "empty image name"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, message):
    path = _write(tmp_path, f"ok.jpg, 1\n{line}\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:2: ") + ".*" + re.escape(message)):
        read_label_list(path, 10)


def test_out_of_range_index(tmp_path):
    path = _write(tmp_path, "a.jpg, 0\nb.jpg, 79 80\n")
    with pytest.raises(
        ValueError,
        match=re.escape(f"{path}:2: class index 80 out of range for 80 classes (valid: 0..79)"),
    ):
        read_label_list(path, 80)


def test_duplicate_names_conflicting_and_identical(tmp_path):
    path = _write(tmp_path, "a.jpg, 0\nb.jpg, 1\na.jpg, 2\n")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{path}:3: image 'a.jpg' is listed again (conflicting labels; first listed at line 1)"
        ),
    ):
        read_label_list(path, 5)
    path = _write(tmp_path, "a.jpg, 0 1\nb.jpg, 1\na.jpg, 1 0\n", "same.txt")
    with pytest.raises(
        ValueError, match=r"same\.txt:3: image 'a\.jpg' is listed again \(identical labels"
    ):
        read_label_list(path, 5)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match=r"empty\.txt: empty label list"):
        read_label_list(_write(tmp_path, "", "empty.txt"), 3)
    with pytest.raises(ValueError, match=r"blank\.txt: empty label list"):
        read_label_list(_write(tmp_path, "\n  \n\n", "blank.txt"), 3)
    with pytest.raises(FileNotFoundError, match=r"label list not found: .*nope\.txt"):
        read_label_list(tmp_path / "nope.txt", 3)
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        read_label_list(_write(tmp_path, "a.jpg, 0\n"), 0)


def test_write_read_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    labels = torch.from_numpy((rng.random((50, 7)) < 0.3).astype(np.float32))
    labels[3] = 0  # an empty row survives the round trip
    names = [f"img_{i:03d}.jpg" for i in range(50)]
    out = write_label_list(tmp_path / "sub" / "split.txt", names, labels)
    assert out.is_file() and not (tmp_path / "sub" / "split.txt.tmp").exists()
    lines = out.read_text().splitlines()
    assert lines[3] == "img_003.jpg,"
    first = labels[0].nonzero().flatten().tolist()
    assert lines[0] == "img_000.jpg, " + " ".join(map(str, first))
    names2, labels2 = read_label_list(out, 7)
    assert names2 == names and torch.equal(labels2, labels)


def test_write_bad_inputs(tmp_path):
    out = tmp_path / "x.txt"
    with pytest.raises(
        ValueError,
        match=(
            r"labels must hold only \{0, 1\}, found -1 in 1 of 4 entries \(first at "
            r"row 1 \('b'\), class 0\).*to_assume_negative"
        ),
    ):
        write_label_list(out, ["a", "b"], torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
    with pytest.raises(ValueError, match="got 1 names for 2 label rows"):
        write_label_list(out, ["a"], torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"labels must be \(N, C\), got shape \(3,\)"):
        write_label_list(out, ["a", "b", "c"], torch.zeros(3))
    with pytest.raises(ValueError, match="image name 'a' appears twice"):
        write_label_list(out, ["a", "a"], torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"invalid image name 'a,b'"):
        write_label_list(out, ["a,b", "c"], torch.zeros(2, 3))
    assert not out.exists()


# --------------------------------------------------------------------------- one meaning per line
@pytest.mark.parametrize(
    "row, num_classes, columns",
    [
        ([0] * 13 + [1] + [0] * 10 + [1] + [0] * 56, 81, "exactly C = 81 columns"),  # NUS-WIDE row
        ([0] * 81, 81, "exactly C = 81 columns"),  # an image without labels, as a vector
        ([1] * 81, 81, "exactly C = 81 columns"),
        ([0, 1, 0, 0, 1] + [0] * 76, 80, "81 columns \\(C = 80\\)"),  # a vector for another C
        ([1, 0, 1], 20, "3 columns \\(C = 20\\)"),
        ([0, 0], 5, "2 columns \\(C = 5\\)"),
    ],
)
def test_vector_line_is_refused_with_file_and_line(tmp_path, row, num_classes, columns):
    text = "a.jpg, 3 1\n" + "b.jpg, " + " ".join(map(str, row)) + "\n"
    path = _write(tmp_path, text)
    with pytest.raises(
        ValueError,
        match=rf"{path.name}:2: the line holds {len(row)} tokens that "
        rf"are all 0 or 1 \({columns}\).*0/1 label vector",
    ):
        read_label_list(path, num_classes)


@pytest.mark.parametrize(
    "tokens, expected",
    [("0 1", [0, 1]), ("1", [1]), ("0", [0]), ("1 0", [0, 1]), ("3 3 7", [3, 7]), ("", [])],
)
def test_index_lines_with_zero_and_one_are_still_read(tmp_path, tokens, expected):
    names, labels = read_label_list(_write(tmp_path, f"a.jpg, {tokens}\n"), 81)
    assert labels[0].nonzero().flatten().tolist() == expected


# --------------------------------------------------------------------------- encoding
def test_utf8_bom_is_stripped_not_part_of_the_first_name(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfa.jpg, 1\r\nb.jpg, 2\r\n")  # Windows editor: BOM and CRLF
    names, labels = read_label_list(path, 3)
    assert names == ["a.jpg", "b.jpg"] and labels.tolist() == [[0, 1, 0], [0, 0, 1]]


def test_bom_inside_the_file_is_refused(tmp_path):
    path = tmp_path / "cat.txt"
    path.write_bytes(b"a.jpg, 1\n\xef\xbb\xbfb.jpg, 2\n")  # two files concatenated
    with pytest.raises(ValueError, match=r"cat\.txt:2: a byte-order mark \(U\+FEFF\) inside"):
        read_label_list(path, 3)


@pytest.mark.parametrize(
    "raw, line, byte",
    [(b"\xe9t\xe9.jpg, 1\n", 1, "0xe9"), (b"a.jpg, 1\nb\xff.jpg, 2\n", 2, "0xff")],
)
def test_non_utf8_names_file_and_line(tmp_path, raw, line, byte):
    path = tmp_path / "latin1.txt"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=rf"latin1\.txt:{line}: not valid UTF-8 \(byte {byte} at"):
        read_label_list(path, 3)


def test_unicode_names_round_trip(tmp_path):
    names = ["été.jpg", "日本.jpg", "a b.jpg"]
    out = write_label_list(tmp_path / "u.txt", names, torch.eye(3))
    names2, labels2 = read_label_list(out, 3)
    assert names2 == names and torch.equal(labels2, torch.eye(3))


# --------------------------------------------------------------------------- never overwrite
def test_write_never_overwrites_silently(tmp_path):
    out = write_label_list(tmp_path / "s.txt", ["a"], torch.ones(1, 2))
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match=r"s\.txt exists; refusing to overwrite"):
        write_label_list(out, ["b"], torch.zeros(1, 2))
    assert out.read_bytes() == before
    write_label_list(out, ["b"], torch.zeros(1, 2), overwrite=True)
    assert out.read_text() == "b,\n"
    with pytest.raises(IsADirectoryError):
        write_label_list(tmp_path, ["b"], torch.zeros(1, 2), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.txt"]  # no temporary file left


@pytest.mark.parametrize("bad", ["", " a", "a\n", "a\rb", "\ufeffa", 3, None])
def test_write_refuses_unwritable_names(tmp_path, bad):
    with pytest.raises(ValueError, match=r"names\[1\]: invalid image name"):
        write_label_list(tmp_path / "n.txt", ["ok.jpg", bad], torch.zeros(2, 2))
