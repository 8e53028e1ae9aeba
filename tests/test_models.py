"""clml_lib.models: shapes, the small ResNet, weights-only loading with clear errors, torchvision
state dicts, heads trained on another label set."""

import pathlib
import pickle
import warnings

import pytest
import torch
import torchvision

from clml_lib.models import (
    BasicBlock,
    SmallResNet,
    available_backbones,
    build_model,
    count_parameters,
    read_weights_file,
)


def test_tiny_cnn_shapes_and_size():
    torch.manual_seed(0)
    model = build_model("tiny_cnn", num_classes=12)
    logits, feats = model(torch.rand(5, 3, 32, 32))
    assert logits.shape == (5, 12) and feats.shape == (5, model.feature_dim)
    assert (feats >= 0).all()  # post-ReLU pooled features
    assert 50_000 <= count_parameters(model) <= 150_000


def test_small_resnet_shapes_blocks_and_size():
    torch.manual_seed(0)
    assert "small_resnet" in available_backbones()
    model = build_model("small_resnet", num_classes=12).eval()
    logits, feats = model(torch.rand(5, 3, 32, 32))
    assert logits.shape == (5, 12) and feats.shape == (5, 64) and model.feature_dim == 64
    assert (feats >= 0).all() and (feats > 0).any()  # post-ReLU GAP features, unnormalised
    assert not torch.allclose(feats.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(logits, feats @ model.head.weight.T + model.head.bias)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    bns = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert len(blocks) == 3 and bns >= 7
    assert 50_000 <= count_parameters(model) <= 150_000
    # features are the global average of the last stage's post-ReLU map (4 x 4 at 32 px)
    body = model.body
    fmap = body.stages(body.stem(torch.rand(2, 3, 32, 32)))
    assert fmap.shape == (2, 64, 4, 4) and (fmap >= 0).all()
    # other sizes and widths
    assert SmallResNet(width=8, blocks=(2, 2))(torch.rand(1, 3, 48, 48)).shape == (1, 16)
    with pytest.raises(ValueError, match="width"):
        SmallResNet(width=0)
    with pytest.raises(ValueError, match="blocks"):
        SmallResNet(blocks=(1, 0))


def test_basic_block_is_residual():
    """With conv2's output zeroed (bn2's affine weight 0, bias 0) a block is relu(shortcut(x))."""
    torch.manual_seed(0)
    same = BasicBlock(4, 4, 1).eval()
    torch.nn.init.zeros_(same.bn2.weight)
    x = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(same(x), torch.relu(x))
    down = BasicBlock(4, 8, 2).eval()
    torch.nn.init.zeros_(down.bn2.weight)
    torch.testing.assert_close(down(x), torch.relu(down.shortcut(x)))
    assert down(x).shape == (2, 8, 4, 4)


def test_resnet18_random_init_shapes_and_head():
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=7).eval()
    logits, feats = model(torch.rand(2, 3, 64, 64))
    assert logits.shape == (2, 7) and feats.shape == (2, 512)
    assert (feats >= 0).all()
    # logits are exactly the fresh head applied to the features
    torch.testing.assert_close(logits, feats @ model.head.weight.T + model.head.bias)


def test_torchvision_state_dict_loads_and_drops_fc(tmp_path):
    torch.manual_seed(1)
    tv = torchvision.models.resnet18(weights=None)  # 1000-way fc, torchvision key layout
    path = tmp_path / "resnet18_tv.pth"
    torch.save(tv.state_dict(), path)
    with pytest.warns(UserWarning, match=r"dropped its classifier \(fc\.\*\)"):
        model = build_model("resnet18", num_classes=5, weights_path=str(path)).eval()
    torch.testing.assert_close(model.body.conv1.weight, tv.conv1.weight)
    torch.testing.assert_close(model.body.layer4[1].bn2.running_var, tv.layer4[1].bn2.running_var)
    x = torch.rand(2, 3, 64, 64)
    tv.fc = torch.nn.Identity()
    torch.testing.assert_close(model(x)[1], tv.eval()(x))  # same features as the torchvision body
    # a DataParallel-style 'module.' prefix is accepted too
    sd = torchvision.models.resnet18().state_dict()
    torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    with pytest.warns(UserWarning):
        build_model("resnet18", num_classes=5, weights_path=str(path))


def test_own_state_dict_round_trip(tmp_path):
    a = build_model("small_resnet", num_classes=4)
    path = tmp_path / "own.pt"
    torch.save({"model": a.state_dict()}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same classes: everything loads, nothing to say
        b = build_model("small_resnet", num_classes=4, weights_path=path)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_head_of_another_label_set_is_replaced_once(tmp_path):
    """A backbone pretrained on another label set: body strict, fresh head, one warning."""
    torch.manual_seed(0)
    src = build_model("small_resnet", num_classes=36)
    path = tmp_path / "pretrained.pt"
    torch.save(src.state_dict(), path)
    torch.manual_seed(5)
    fresh = build_model("small_resnet", num_classes=12)  # what the head is without the file
    torch.manual_seed(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dst = build_model("small_resnet", num_classes=12, weights_path=path)
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "head for 36 classes" in msgs[0] and "fresh head for 12" in msgs[0]
    assert str(path) in msgs[0]
    for k, v in src.body.state_dict().items():
        assert torch.equal(v, dst.body.state_dict()[k]), k
    assert torch.equal(dst.head.weight, fresh.head.weight)  # the head is a fresh one
    # a file with no head at all (body only) loads the same way
    torch.save({f"body.{k}": v for k, v in src.body.state_dict().items()}, path)
    with pytest.warns(UserWarning, match="holds no head"):
        dst = build_model("small_resnet", num_classes=3, weights_path=path)
    assert torch.equal(dst.body.stem[0].weight, src.body.stem[0].weight)


def test_body_mismatch_still_raises_when_the_head_differs(tmp_path):
    src = build_model("small_resnet", num_classes=36).state_dict()
    path = tmp_path / "broken.pt"
    broken = dict(src)
    del broken["body.stages.1.0.conv1.weight"]
    broken["body.extra.weight"] = torch.zeros(3)
    torch.save(broken, path)
    with pytest.raises(ValueError, match=r"missing keys: body\.stages\.1\.0\.conv1\.weight.*"
                                         r"unexpected keys: body\.extra\.weight") as err:
        build_model("small_resnet", num_classes=12, weights_path=path)
    assert str(path) in str(err.value)
    wrong_shape = dict(src, **{"body.stem.0.weight": torch.zeros(8, 3, 3, 3)})
    torch.save(wrong_shape, path)
    with pytest.raises(ValueError, match=r"shape mismatches: body\.stem\.0\.weight"):
        build_model("small_resnet", num_classes=12, weights_path=path)
    # a head whose input size is not the body's feature size
    torch.save(dict(src, **{"head.weight": torch.zeros(36, 10)}), path)
    with pytest.raises(ValueError, match=r"head\.weight has shape \(36, 10\), expected \(C, 64\)"):
        build_model("small_resnet", num_classes=12, weights_path=path)
    # keys outside body./head. in our layout
    torch.save(dict(src, **{"projector.weight": torch.zeros(2)}), path)
    with pytest.raises(ValueError, match=r"unexpected keys: projector\.weight"):
        build_model("small_resnet", num_classes=36, weights_path=path)


def test_wrong_architecture_lists_keys(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match=r"missing keys: .*layer1\.0\.conv3\.weight") as err:
        build_model("resnet50", num_classes=3, weights_path=str(path))
    assert "shape mismatches" in str(err.value) and str(path) in str(err.value)
    torch.save(build_model("tiny_cnn", 3).state_dict(), path)
    with pytest.raises(ValueError, match=r"missing keys: body\.conv1\.weight.*"
                                         r"unexpected keys: body\.features"):
        build_model("resnet18", num_classes=3, weights_path=str(path))


class _Payload:
    """Unpickling this object calls pathlib.Path.touch on a marker file (a harmless payload)."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("wrap", ["bare", "in_state_dict", "in_checkpoint", "torch_save"])
def test_pickle_payload_is_refused_and_not_run(tmp_path, wrap):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pt"
    good = build_model("small_resnet", 4).state_dict()
    obj = {
        "bare": _Payload(marker),
        "in_state_dict": dict(good, **{"body.x": _Payload(marker)}),
        "in_checkpoint": {"model": good, "rng": _Payload(marker)},
        "torch_save": {"model": good, "extra": _Payload(marker)},
    }[wrap]
    if wrap == "torch_save":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj, protocol=2))
    assert not marker.exists()
    with pytest.raises(ValueError) as err:
        build_model("small_resnet", 4, weights_path=path)
    msg = str(err.value)
    assert str(path) in msg and "refused without being unpickled" in msg
    assert "weights_only=False" not in msg and "Re-running" not in msg
    assert not marker.exists()  # the payload never ran
    with pytest.raises(ValueError):
        read_weights_file(path)
    assert not marker.exists()


def test_training_checkpoint_is_accepted_as_weights(tmp_path):
    """A weights-only training checkpoint ({'model': state dict, ...} with RNG states as tensors
    and the config as plain types) loads as weights; one holding NumPy objects is refused."""
    import numpy as np

    src = build_model("small_resnet", 5)
    state = {"format": "clml-train-checkpoint", "epoch": 3, "config": {"lr": 0.1, "name": "x"},
             "model": src.state_dict(), "ema": {}, "optimizer": {},
             "rng": {"torch": torch.get_rng_state()}, "metrics": {"val": [1.0, 2.0]}}
    torch.save(state, tmp_path / "checkpoint.pt")
    dst = build_model("small_resnet", 5, tmp_path / "checkpoint.pt")
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k
    state["rng"]["numpy"] = np.random.get_state()  # an object weights_only refuses
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"old\.pt: it is not a weights-only torch file"):
        build_model("small_resnet", 5, tmp_path / "old.pt")


def test_bad_names_and_files(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'resnet101'"):
        build_model("resnet011", 3)
    with pytest.raises(ValueError, match="did you mean 'small_resnet'"):
        build_model("small_resnt", 3)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("tiny_cnn", 0)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model("tiny_cnn", 3, weights_path=str(tmp_path / "nope.pth"))
    with pytest.raises(FileNotFoundError, match="is a directory"):
        build_model("tiny_cnn", 3, weights_path=str(tmp_path))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"could not read weights file .*bad\.pth") as err:
        build_model("tiny_cnn", 3, weights_path=str(bad))
    assert "weights_only=False" not in str(err.value)
    torch.save([torch.zeros(2)], bad)  # weights-only readable, but no state dict
    with pytest.raises(ValueError, match=r"bad\.pth does not hold a state dict of tensors"):
        build_model("tiny_cnn", 3, weights_path=str(bad))
    torch.save({}, bad)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        build_model("tiny_cnn", 3, weights_path=str(bad))
    for name in ("tiny_cnn", "small_resnet"):
        with pytest.raises(ValueError, match=f"no ImageNet weights for '{name}'"):
            build_model(name, 3, weights_path="imagenet")


def test_own_backbones_and_the_engine_do_not_import_torchvision():
    """torchvision costs ~3.5 s to import: the teaching runs (own backbones) must not pay it."""
    import subprocess
    import sys

    code = ("import sys; import clml_lib.train.engine; from clml_lib.models import build_model; "
            "build_model('small_resnet', 3); build_model('tiny_cnn', 3); "
            "print('torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=pathlib.Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False", out.stdout + out.stderr
    code = "import sys; from clml_lib.models import build_model; build_model('resnet18', 3); " \
           "print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=pathlib.Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "True", out.stdout + out.stderr
