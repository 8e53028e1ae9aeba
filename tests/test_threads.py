"""clml_lib.threads.pin_threads: the one way the workers, benchmarks and notebooks pin threads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from clml_lib.threads import THREAD_ENV_VARS, pin_threads


def test_pin_threads_sets_torch_and_optionally_the_environment(monkeypatch, one_torch_thread):
    for var in THREAD_ENV_VARS:
        monkeypatch.setenv(var, "7")
    assert pin_threads(2, environment=False) == "torch intra-op=2"
    assert torch.get_num_threads() == 2 and all(os.environ[v] == "7" for v in THREAD_ENV_VARS)
    assert pin_threads(1).startswith("torch intra-op=1")
    assert all(os.environ[v] == "1" for v in THREAD_ENV_VARS)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be"):
            pin_threads(bad)


def test_pin_threads_caps_the_blas_pools_in_a_fresh_process():
    code = ("import numpy, threadpoolctl; from clml_lib.threads import pin_threads; "
            "print(pin_threads(1, blas_pools=True)); "
            "print(max(p['num_threads'] for p in threadpoolctl.threadpool_info()))")
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.splitlines()
    assert out[0].startswith("torch intra-op=1, ") and out[1] == "1"
