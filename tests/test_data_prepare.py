"""The preparation CLI: layout checks, the written split, the printed statistics, the errors."""

from __future__ import annotations

import runpy
import sys

import pytest
import torch

from clml_lib.data import CocoMultiLabel, read_label_list, simulate_missing
from clml_lib.data.prepare import main, prepare

try:  # tests/ on sys.path (pytest's default rootdir import mode)
    from data_fixtures import make_coco_tree, make_voc_tree, write_jpeg
except ImportError:  # tests imported as a package
    from tests.data_fixtures import make_coco_tree, make_voc_tree, write_jpeg


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    return make_coco_tree(
        tmp_path_factory.mktemp("coco"), num_train=30, num_val=5, image_size=32, seed=1
    )


def test_coco_split_written_and_stats_printed(coco_root, tmp_path, capsys):
    out = tmp_path / "splits" / "coco_40left.txt"
    rc = main(
        [
            "--dataset",
            "coco",
            "--root",
            str(coco_root),
            "--setting",
            "40left",
            "--seed",
            "5",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    ds = CocoMultiLabel(coco_root, "train")
    names, observed = read_label_list(out, 80)
    assert names == ds.names
    assert torch.equal(observed, simulate_missing(ds.labels, "40left", seed=5))
    assert f"coco: {len(ds)} images, 80 classes, all image files present" in printed
    assert "31 .jpg files on disk" in printed  # 30 annotated + 1 without annotation
    assert "the real COCO-2014 train set has 82,081 images with annotations" in printed
    assert f"positives            {int(ds.labels.sum())}" in printed
    assert "kept fraction" in printed and "person" in printed


def test_prepare_function_returns_stats(coco_root, tmp_path):
    stats = prepare("coco", coco_root, "single", 0, tmp_path / "s.txt", split="val", verbose=False)
    assert stats.images == 5 and stats.observed_positives == 5 and stats.observed_empty_images == 0
    assert stats.invented == 0


def test_voc_and_nus(tmp_path, capsys):
    objects = {"000001": [("dog", 0), ("person", 0)], "000002": [("cat", 0), ("person", 1)]}
    make_voc_tree(tmp_path / "voc", objects, {"trainval": ["000001", "000002"]})
    out = tmp_path / "voc.txt"
    assert (
        main(
            [
                "--dataset",
                "voc",
                "--root",
                str(tmp_path / "voc"),
                "--setting",
                "full",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (
        out.read_text() == "000001.jpg, 11 14\n000002.jpg, 7 14\n"
    )  # difficult person kept ('positive')
    assert (
        main(
            [
                "--dataset",
                "voc",
                "--root",
                str(tmp_path / "voc"),
                "--setting",
                "full",
                "--difficult",
                "negative",
                "--out",
                str(out),
                "--force",
            ]
        )
        == 0
    )
    assert out.read_text() == "000001.jpg, 11 14\n000002.jpg, 7\n"
    assert "1 difficult-only labels" in capsys.readouterr().out

    root = tmp_path / "nus"
    for n in ("0001_1.jpg", "0437_424259217.jpg"):
        write_jpeg(root / "images" / n, 16)
    lst = tmp_path / "nus_train_full.txt"
    lst.write_text("0001_1.jpg, 3 4 5\n0437_424259217.jpg,2.\n")
    out = tmp_path / "nus_single.txt"
    with pytest.warns(UserWarning, match="trailing dot"):
        rc = main(
            [
                "--dataset",
                "nus",
                "--root",
                str(root),
                "--label-list",
                str(lst),
                "--setting",
                "single",
                "--out",
                str(out),
            ]
        )
    assert rc == 0
    names, observed = read_label_list(out, 81)
    assert names == ["0001_1.jpg", "0437_424259217.jpg"]
    assert (
        observed.sum(1).tolist() == [1.0, 1.0]
        and observed[1, 2] == 1
        and observed[0, 3:6].sum() == 1
    )


def test_errors_are_reported(coco_root, tmp_path, capsys):
    out = tmp_path / "x.txt"
    rc = main(
        [
            "--dataset",
            "coco",
            "--root",
            str(tmp_path / "nowhere"),
            "--setting",
            "full",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert (
        rc == 1
        and "error: COCO root not found" in err
        and "expected layout: root/annotations/instances_train2014.json" in err
    )
    rc = main(["--dataset", "nus", "--root", str(tmp_path), "--setting", "full", "--out", str(out)])
    assert rc == 1 and "--dataset nus needs --label-list" in capsys.readouterr().err
    rc = main(
        ["--dataset", "coco", "--root", str(coco_root), "--setting", "half", "--out", str(out)]
    )
    assert rc == 1 and "unknown missing-label setting 'half'" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit) as info:  # argparse usage error
        main(["--dataset", "imagenet", "--root", ".", "--setting", "full", "--out", str(out)])
    assert info.value.code == 2


def test_recipe_choice(coco_root, tmp_path, capsys):
    ds = CocoMultiLabel(coco_root, "train")
    base = ["--dataset", "coco", "--root", str(coco_root), "--setting", "40left", "--seed", "4"]
    out = tmp_path / "per_image.txt"
    assert main([*base, "--out", str(out), "--recipe", "per_image"]) == 0
    assert "(40left, seed 4, recipe per_image, nested=False)" in capsys.readouterr().out
    assert torch.equal(read_label_list(out, 80)[1], simulate_missing(ds.labels, "40left", 4))
    for flag, nested in (([], True), (["--nested"], True), (["--no-nested"], False)):
        out = tmp_path / f"global_{len(flag)}_{nested}.txt"
        assert main([*base, "--out", str(out), "--recipe", "global_quota", *flag]) == 0
        printed = capsys.readouterr().out
        assert f"(40left, seed 4, recipe global_quota, nested={nested})" in printed
        expected = simulate_missing(ds.labels, "40left", 4, recipe="global_quota", nested=nested)
        assert torch.equal(read_label_list(out, 80)[1], expected)
    stats = prepare(
        "coco", coco_root, "40left", 4, tmp_path / "f.txt", recipe="global_quota", verbose=False
    )
    assert stats.observed_positives == round(0.4 * stats.positives)
    # --nested / --no-nested mean nothing for the per-image recipe: a usage error, nothing written
    for flag in ("--nested", "--no-nested"):
        out = tmp_path / "refused.txt"
        with pytest.raises(SystemExit) as info:
            main([*base, "--out", str(out), flag])
        err = capsys.readouterr().err
        assert info.value.code == 2 and not out.exists()
        assert f"{flag} is an option of --recipe global_quota only" in err
    with pytest.raises(SystemExit) as info:
        main([*base, "--out", str(tmp_path / "x.txt"), "--recipe", "quota"])
    assert info.value.code == 2 and "invalid choice: 'quota'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="nested=True is an option of recipe='global_quota'"):
        prepare("coco", coco_root, "40left", 4, tmp_path / "y.txt", nested=True, verbose=False)
    assert not (tmp_path / "y.txt").exists()


def test_all_missing_files_listed_then_fail(tmp_path, capsys):
    root = make_coco_tree(tmp_path / "coco", num_train=6, num_val=2, image_size=16)
    images = sorted((root / "train2014").glob("*.jpg"))
    ds = CocoMultiLabel(root, "train")
    gone = [root / "train2014" / ds.names[k] for k in (0, 2, 5)]
    for p in gone:
        p.unlink()
    out = tmp_path / "split.txt"
    rc = main(["--dataset", "coco", "--root", str(root), "--setting", "single", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists() and len(images) == 7
    assert "error: 3 COCO train2014 image files missing:" in err
    for p in gone:
        assert f"  {p}\n" in err
    assert "expected layout: root/annotations/instances_train2014.json" in err


def test_module_entry_point(coco_root, tmp_path, monkeypatch, capsys):
    """``python -m clml_lib.data.prepare`` runs the module as __main__ (in-process here: a fresh
    interpreter would spend its time importing torch)."""
    out = tmp_path / "cli.txt"
    argv = [
        "prepare",
        "--dataset",
        "coco",
        "--root",
        str(coco_root),
        "--setting",
        "75left",
        "--seed",
        "2",
        "--out",
        str(out),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.delitem(sys.modules, "clml_lib.data.prepare")  # as in a fresh `python -m`
    with pytest.raises(SystemExit) as info:
        runpy.run_module("clml_lib.data.prepare", run_name="__main__", alter_sys=True)
    assert info.value.code == 0
    assert "wrote" in capsys.readouterr().out and out.is_file()
    ds = CocoMultiLabel(coco_root, "train")
    assert torch.equal(read_label_list(out, 80)[1], simulate_missing(ds.labels, "75left", seed=2))


# ------------------------------------------------------------------ outputs never replace inputs
def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def small_coco(tmp_path):
    return make_coco_tree(tmp_path / "coco", num_train=6, num_val=2, image_size=16, seed=3)


def _run(root, out, *extra):
    return main(
        ["--dataset", "coco", "--root", str(root), "--setting", "single", "--out", str(out), *extra]
    )


def test_out_equal_to_the_label_list_is_refused(small_coco, tmp_path, capsys):
    ds = CocoMultiLabel(small_coco, "train")
    full = tmp_path / "full.txt"
    full.write_text(
        "".join(
            f"{n}, {' '.join(map(str, r.nonzero().flatten().tolist()))}\n"
            for n, r in zip(ds.names, ds.labels)
        )
    )
    before = full.read_bytes()
    for out in (full, tmp_path / "." / "full.txt"):  # the same file, spelled two ways
        rc = _run(small_coco, out, "--label-list", str(full))
        err = capsys.readouterr().err
        assert rc == 1 and "is the input label list (--label-list" in err and "--force" in err
        assert "Traceback" not in err and full.read_bytes() == before
    # asked explicitly: the input is read completely, then replaced
    assert _run(small_coco, full, "--label-list", str(full), "--force") == 0
    assert torch.equal(read_label_list(full, 80)[1], simulate_missing(ds.labels, "single", 0))


@pytest.mark.parametrize(
    "target",
    [
        "annotations/instances_train2014.json",
        "annotations/instances_val2014.json",
        "train2014/COCO_train2014_000000000001.jpg",
    ],
)
def test_out_onto_a_dataset_file_is_refused(small_coco, capsys, target):
    before = _snapshot(small_coco)
    path = small_coco / target
    if not path.exists():  # the fixture's first image id may differ: take any image
        path = sorted((small_coco / "train2014").glob("*.jpg"))[0]
    rc = _run(small_coco, path)
    err = capsys.readouterr().err
    assert rc == 1 and "is an existing file of the dataset under --root" in err
    assert _snapshot(small_coco) == before


def test_existing_output_is_never_overwritten_silently(small_coco, tmp_path, capsys):
    out = tmp_path / "split.txt"
    assert _run(small_coco, out) == 0
    first = out.read_bytes()
    rc = main(
        ["--dataset", "coco", "--root", str(small_coco), "--setting", "full", "--out", str(out)]
    )
    assert (
        rc == 1
        and "is an existing file. Choose another --out, or pass --force" in capsys.readouterr().err
    )
    assert out.read_bytes() == first
    assert (
        main(
            [
                "--dataset",
                "coco",
                "--root",
                str(small_coco),
                "--setting",
                "full",
                "--out",
                str(out),
                "--force",
            ]
        )
        == 0
    )
    assert out.read_bytes() != first


def test_bad_out_is_an_error_message_not_a_traceback(small_coco, tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (tmp_path, "is a folder; give the path of the label-list file"),
        (a_file / "split.txt", f"{a_file} is a file, not a folder"),
        (a_file / "sub" / "split.txt", f"{a_file} is a file, not a folder"),
    ]
    for out, message in cases:
        for force in ([], ["--force"]):
            rc = _run(small_coco, out, *force)
            err = capsys.readouterr().err
            assert rc == 1 and message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco", "file.txt"]  # no temp file


def test_write_failure_leaves_no_temporary_file(small_coco, tmp_path, capsys, monkeypatch):
    import clml_lib.atomic as atomic

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    out = tmp_path / "splits" / "s.txt"
    rc = _run(small_coco, out)
    err = capsys.readouterr().err
    assert rc == 1 and f"error: cannot write --out {out}: [Errno 28] No space left" in err
    assert list((tmp_path / "splits").iterdir()) == []


def test_corrupt_jpeg_is_not_reported_as_checked(small_coco, tmp_path, capsys):
    ds = CocoMultiLabel(small_coco, "train")
    bad = ds.paths[1]
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG: present, not decodable
    assert _run(small_coco, tmp_path / "a.txt") == 0
    printed = capsys.readouterr().out
    assert "all image files present (presence only; --decode-images decodes each one)" in printed
    rc = _run(small_coco, tmp_path / "b.txt", "--decode-images")
    err = capsys.readouterr().err
    assert rc == 1 and f"1 of {len(ds)} images cannot be decoded" in err and str(bad) in err
    assert not (tmp_path / "b.txt").exists()
    bad.unlink()
    write_jpeg(bad, 16)
    assert _run(small_coco, tmp_path / "c.txt", "--decode-images") == 0
    assert "all image files present and decoded" in capsys.readouterr().out
