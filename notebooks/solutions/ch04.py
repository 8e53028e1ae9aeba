"""Solutions to the exercises of notebook 04 (training with CLML); written solutions in ch04.md.

Each ``solve_<name>()`` returns an answer that ``clml_lib.exercises.ch04.check_<name>`` accepts;
``WRONG`` lists typical wrong answers the checkers must reject (tests/test_solutions.py).
"""

import math

import numpy as np
import torch
from scipy import stats


def solve_ap_by_hand():
    # positives at ranks 1, 3, 4: precisions 1/1, 2/3, 3/4
    return (1 / 1 + 2 / 3 + 3 / 4) / 3


def solve_onecycle():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, epochs=3, steps_per_epoch=17,
                                                pct_start=0.2)
    lrs = []
    for _ in range(51):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return int(np.argmax(lrs)), lrs[-1]


def solve_ema_weight():
    return lambda d, T: d**T


def solve_adam_first_step():
    def step(theta, grad, lr, weight_decay, beta1=0.9, beta2=0.999, eps=1e-8):
        g = grad + weight_decay * theta  # coupled decay: added to the gradient
        m_hat = (1 - beta1) * g / (1 - beta1)  # = g
        v_hat = (1 - beta2) * g * g / (1 - beta2)  # = g^2
        return theta - lr * m_hat / (v_hat.sqrt() + eps)

    return step


def solve_paired_interval():
    g = np.array([0.31, -0.12, 0.45, 0.08, 0.27])
    half = stats.t.ppf(0.975, len(g) - 1) * g.std(ddof=1) / math.sqrt(len(g))
    return g.mean() - half, g.mean() + half


def _normal_interval():
    g = np.array([0.31, -0.12, 0.45, 0.08, 0.27])
    half = 1.959963984540054 * g.std(ddof=1) / math.sqrt(len(g))
    return g.mean() - half, g.mean() + half


WRONG = {
    "ap_by_hand": [(1 + 2 / 3 + 3 / 4) / 6, 100 * (1 + 2 / 3 + 3 / 4) / 3, 0.5],
    "onecycle": [(10, 3e-3 / 25), (9, 3e-3 / 25e4), (10, 0.0), (10, 3e-3 / 25e3)],
    "ema_weight": [lambda d, T: 1 - d**T, lambda d, T: (1 - d) * d**T, lambda d, T: d * T],
    "adam_first_step": [
        lambda theta, grad, lr, wd: theta - lr * grad,
        lambda theta, grad, lr, wd: theta - lr * torch.sign(grad),
        lambda theta, grad, lr, wd: theta * (1 - lr * wd) - lr * grad / (grad.abs() + 1e-8),
    ],
    "paired_interval": [_normal_interval(), (0.0, 0.4), (0.198 - 0.1, 0.198 + 0.1)],
}
