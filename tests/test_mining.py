"""clml_lib.reproduce.mining: what correction would mine at several tau, counted by hand."""

from __future__ import annotations

import pytest
import torch

from clml_lib.reproduce.mining import RunScores, mining_table, render, run_folders


def test_mining_table_counts_by_hand():
    # 3 images x 2 classes; truth all 1 on class 0, observed keeps image 0 only
    truth = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    observed = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    probs = torch.tensor([[0.9, 0.1], [0.45, 0.35], [0.2, 0.6]])
    run = RunScores(torch.logit(probs.double()).float(), observed, truth)
    t = mining_table([run, run], taus=(0.75, 0.4, 0.3))
    assert t["runs"] == 2
    assert t["keep_rate"] == pytest.approx(2 / 8)  # 2 observed of 8 true positives (pooled)
    assert t["hidden"] == 6  # (1,0), (2,0), (2,1) per run
    assert t["hidden_mean"] == pytest.approx((0.45 + 0.2 + 0.6) / 3, rel=1e-5)
    by_tau = {r["tau"]: r for r in t["taus"]}
    assert by_tau[0.75]["per_run"] == 0 and by_tau[0.75]["precision"] is None
    # tau 0.4: unobserved entries above 0.4 are (1,0) 0.45 true and (2,1) 0.6 true -> 2 per run
    assert by_tau[0.4]["per_run"] == 2 and by_tau[0.4]["precision"] == 1.0
    assert by_tau[0.4]["recall"] == pytest.approx(4 / 6)
    # tau 0.3 adds (1,1) 0.35, a true negative -> 3 per run, precision 2/3
    assert by_tau[0.3]["per_run"] == 3 and by_tau[0.3]["precision"] == pytest.approx(2 / 3)
    text = render({"cell": t})
    assert "| cell | 2 | 0.250 |" in text and "0.4 | 2.0 | 100.0 % | 66.7 % |" in text


def test_run_folders_names_a_folder_without_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run folder with a checkpoint.pt"):
        run_folders([tmp_path])
    run = tmp_path / "seed0"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    assert run_folders([tmp_path]) == [run] == run_folders([run])
