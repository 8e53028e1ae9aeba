r"""Exercise checkers of notebook 04 (training with CLML: mAP, OneCycle, EMA, Adam, intervals).

Solutions: ``notebooks/solutions/ch04.py`` and ``ch04.md``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import close, verdict

#: exercise 04.1: the labels of one class's 6 images, ranked by score (best first)
RANKED = (1, 0, 1, 1, 0, 0)
#: exercise 04.5: paired gains (mAP) of five seeds
GAINS = (0.31, -0.12, 0.45, 0.08, 0.27)


def check_ap_by_hand(answer) -> bool:
    """Exercise 04.1. ``answer``: the AP (in [0, 1]) of the ranking :data:`RANKED`."""
    hits = np.asarray(RANKED, dtype=np.float64)  # (6,)
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)  # (6,)
    expected = float(precision[hits == 1].mean())

    def judge(a):
        if close(a, 100 * expected, rtol=1e-6):
            return "give the AP as a fraction in [0, 1], not in %"
        if not close(a, expected, rtol=1e-6, atol=1e-4):
            return ("average the precision at the rank of each positive only (3 positives), "
                    "not over all 6 ranks")
        return None

    return verdict("04.1 AP by hand", answer, judge, ok=f"AP = {expected:.4f}")


def teaching_schedule_lrs(lr: float = 3e-3, epochs: int = 3, steps: int = 17) -> list[float]:
    """Learning rates of the ``epochs * steps`` steps of the OneCycle schedule (torch's)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, epochs=epochs,
                                                steps_per_epoch=steps, pct_start=0.2)
    out = []
    for _ in range(epochs * steps):
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return out


def check_onecycle(answer) -> bool:
    """Exercise 04.2. ``answer = (peak_step, last_lr)`` for a schedule of 3 epochs of 17 steps."""
    lrs = teaching_schedule_lrs()
    peak, last = int(np.argmax(lrs)), lrs[-1]

    def judge(a):
        step, lr = a
        if int(step) != peak:
            return ("the warm-up ends at step pct_start * total - 1 = 9.2 (0-based, a float): "
                    "compare the learning rates of the steps on either side of it")
        if not close(lr, last, rtol=1e-3, atol=0.0):
            return ("OneCycle anneals to its floor, initial lr / final_div_factor, on the last "
                    "step; the initial lr is max_lr / div_factor (div_factor 25, "
                    "final_div_factor 1e4)")
        return None

    return verdict("04.2 OneCycle", answer, judge, ok=f"peak at step {peak}, last lr {last:.2e}")


def check_ema_weight(answer) -> bool:
    """Exercise 04.3. ``answer``: a function ``f(d, T)`` giving the weight of the starting
    weights in the EMA after ``T`` updates with decay ``d``."""
    cases = ((0.9, 1), (0.9, 51), (0.97, 51), (0.5, 3), (0.0, 4), (0.999, 1000))

    def simulate(d: float, T: int) -> float:  # EMA of a sequence: start 1, every new model 0
        e = 1.0
        for _ in range(T):
            e = d * e + (1 - d) * 0.0
        return e

    def judge(f):
        for d, T in cases:
            if not close(f(d, T), simulate(d, T), rtol=1e-9, atol=1e-12):
                return (f"wrong for d = {d}, T = {T}: every update multiplies the old weights' "
                        "share by d")
        return None

    steps = math.ceil(math.log(0.01) / math.log(0.9))
    return verdict("04.3 EMA weight", answer, judge,
                   ok=f"d**T; below 1 % after {steps} steps at d = 0.9")


def check_adam_first_step(answer) -> bool:
    """Exercise 04.4. ``answer``: ``f(theta, grad, lr, weight_decay) -> new theta`` for the first
    step of Adam (coupled weight decay, betas 0.9 / 0.999, eps 1e-8)."""
    g = torch.Generator().manual_seed(44)

    def judge(f):
        for wd in (0.0, 1e-4, 0.5):
            theta = torch.randn(5, 3, generator=g, dtype=torch.float64)
            grad = torch.randn(5, 3, generator=g, dtype=torch.float64) * 1e-3
            grad[0, 0] = 0.0
            p = torch.nn.Parameter(theta.clone())
            opt = torch.optim.Adam([p], lr=1e-2, weight_decay=wd)
            p.grad = grad.clone()
            opt.step()
            got = torch.as_tensor(f(theta.clone(), grad.clone(), 1e-2, wd), dtype=torch.float64)
            if got.shape != theta.shape or not torch.allclose(got, p.detach(), rtol=1e-9,
                                                              atol=1e-12):
                return (f"differs from torch.optim.Adam (weight_decay {wd}): add the decay to "
                        "the gradient first, and remember the bias corrections of m and v")
        return None

    return verdict("04.4 Adam's first step", answer, judge,
                   ok="each entry moves by about lr * sign(g)")


def check_paired_interval(answer) -> bool:
    """Exercise 04.5. ``answer = (lo, hi)``: the 95 % t interval of the mean of :data:`GAINS`."""
    from scipy import stats as st

    g = np.asarray(GAINS, dtype=np.float64)
    half = st.t.ppf(0.975, g.size - 1) * g.std(ddof=1) / math.sqrt(g.size)
    lo, hi = g.mean() - half, g.mean() + half

    def judge(a):
        a_lo, a_hi = (float(v) for v in a)
        z = 1.959963984540054 * g.std(ddof=1) / math.sqrt(g.size)
        if close(a_hi - a_lo, 2 * z, rtol=1e-3):
            return "with 5 seeds use Student's t with 4 degrees of freedom, not the normal 1.96"
        if not (close(a_lo, lo, rtol=1e-4, atol=1e-4) and close(a_hi, hi, rtol=1e-4, atol=1e-4)):
            return ("mean +- t_{0.975, n-1} * s / sqrt(n), with s the sample standard deviation "
                    "(ddof = 1)")
        return None

    word = "CLML better" if lo > 0 else ("CLML worse" if hi < 0 else "no difference detected")
    return verdict("04.5 paired interval", answer, judge, ok=f"[{lo:+.3f}, {hi:+.3f}]: {word}")
