"""clml_lib.reproduce.many.fit_many: runs trained in worker processes (one torch thread each)
give the numbers of fit in this process, print their summary lines, and name failures."""

from __future__ import annotations

import pytest
import torch

from clml_lib.reproduce.many import fit_many, summary_line
from clml_lib.train import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(dataset="teaching", backbone="tiny_cnn", weights_path="",  # random init
            image_size=32, num_train_images=96,
            batch_size=32, epochs=2, lr=2e-3, ema_decay=0.9, max_eval_batches=2, verbose=False,
            resume=True)


@pytest.mark.slow
def test_workers_give_the_numbers_of_fit_print_summary_lines_and_name_failures(tmp_path):
    cfgs = {(arm, 0): TrainConfig.from_dict({**TINY, "use_clml": arm == "clml",
                                             "out_dir": str(tmp_path / arm)})
            for arm in ("bce", "clml")}
    lines: list[str] = []
    got = fit_many(cfgs, jobs=2, log=lines.append)
    assert list(got) == list(cfgs)
    assert sorted(ln.split(" | ")[1] for ln in lines) == [
        "BCE (no CLML; mining at tau 0.75 counted, not used)",
        "BCE +CLML (lambda 1, correction tau 0.75 from epoch 1)"]
    assert all(" 2 epochs trained in " in ln for ln in lines)
    torch.set_num_threads(1)
    here = fit(cfgs[("clml", 0)].replace(out_dir=str(tmp_path / "here")))
    assert got[("clml", 0)] == here  # bit-identical numbers, one thread in both

    bad = TrainConfig.from_dict({**TINY, "weights_path": str(tmp_path / "no.pt"),
                                 "out_dir": str(tmp_path / "bad")})
    again: list[str] = []
    with pytest.raises(RuntimeError, match=r"1 of 2 runs failed:\n'bad': FileNotFoundError"):
        fit_many({"bad": bad, "bce": cfgs[("bce", 0)]}, jobs=1, log=again.append)
    assert len(again) == 1 and "epochs 0-1 read from disk, nothing trained" in again[0]
    assert summary_line(tmp_path / "bce") == again[0] and summary_line(tmp_path / "bad") == ""
    with pytest.raises(ValueError, match="share the out_dir"):
        fit_many({1: cfgs[("bce", 0)], 2: cfgs[("bce", 0)]})
