"""clml_lib.models: shapes, strict weight loading with clear errors, torchvision state dicts."""

import pytest
import torch
import torchvision

from clml_lib.models import build_model, count_parameters


def test_tiny_cnn_shapes_and_size():
    torch.manual_seed(0)
    model = build_model("tiny_cnn", num_classes=12)
    logits, feats = model(torch.rand(5, 3, 32, 32))
    assert logits.shape == (5, 12) and feats.shape == (5, model.feature_dim)
    assert (feats >= 0).all()  # post-ReLU pooled features
    assert 50_000 <= count_parameters(model) <= 150_000


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
    model = build_model("resnet18", num_classes=5, weights_path=str(path)).eval()
    torch.testing.assert_close(model.body.conv1.weight, tv.conv1.weight)
    torch.testing.assert_close(model.body.layer4[1].bn2.running_var, tv.layer4[1].bn2.running_var)
    x = torch.rand(2, 3, 64, 64)
    tv.fc = torch.nn.Identity()
    torch.testing.assert_close(model(x)[1], tv.eval()(x))  # same features as the torchvision body
    # a DataParallel-style 'module.' prefix is accepted too
    torch.save({f"module.{k}": v for k, v in torchvision.models.resnet18().state_dict().items()}, path)
    build_model("resnet18", num_classes=5, weights_path=str(path))


def test_own_state_dict_round_trip(tmp_path):
    a = build_model("tiny_cnn", num_classes=4)
    path = tmp_path / "own.pt"
    torch.save({"model": a.state_dict()}, path)
    b = build_model("tiny_cnn", num_classes=4, weights_path=path)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    with pytest.raises(ValueError, match=r"shape mismatches: head.weight"):
        build_model("tiny_cnn", num_classes=6, weights_path=path)


def test_wrong_architecture_lists_keys(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match=r"missing keys: .*layer1\.0\.conv3\.weight") as err:
        build_model("resnet50", num_classes=3, weights_path=str(path))
    assert "shape mismatches" in str(err.value) and str(path) in str(err.value)
    torch.save(build_model("tiny_cnn", 3).state_dict(), path)
    with pytest.raises(ValueError, match=r"missing keys: body\.conv1\.weight.*unexpected keys: body\.features"):
        build_model("resnet18", num_classes=3, weights_path=str(path))


def test_bad_names_and_files(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'resnet101'"):
        build_model("resnet011", 3)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("tiny_cnn", 0)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model("tiny_cnn", 3, weights_path=str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="could not read weights file"):
        build_model("tiny_cnn", 3, weights_path=str(bad))
    with pytest.raises(ValueError, match="no ImageNet weights for 'tiny_cnn'"):
        build_model("tiny_cnn", 3, weights_path="imagenet")


def test_build_model_reads_a_training_checkpoint(tmp_path):
    """A checkpoint.pt written by the engine (with NumPy RNG states inside) loads as weights."""
    import numpy as np

    from clml_lib.train.checkpoint import CHECKPOINT_FORMAT, save_checkpoint

    src = build_model("tiny_cnn", 5)
    state = {"format": CHECKPOINT_FORMAT, "epoch": 0, "config": {}, "model": src.state_dict(), "ema": {},
             "optimizer": {}, "scheduler": {}, "scaler": {}, "rng": {"numpy": np.random.get_state()},
             "metrics": {}}
    save_checkpoint(tmp_path / "checkpoint.pt", state)
    dst = build_model("tiny_cnn", 5, tmp_path / "checkpoint.pt")
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k
