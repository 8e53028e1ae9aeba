"""Solutions to the exercises of notebook 02 (contrastive loss); written solutions in ch02.md.

Each ``solve_<name>()`` returns an answer that ``clml_lib.exercises.ch02.check_<name>`` accepts;
``WRONG`` lists typical wrong answers the checkers must reject (tests/test_solutions.py).
"""

import math

import torch


def solve_pair_nuclear_norm():
    # Gram [[1, c], [c, 1]] has eigenvalues 1 +- c: singular values sqrt(1 +- c)
    f = lambda theta: (1 + torch.cos(theta)).sqrt() + (1 - torch.cos(theta)).clamp_min(0).sqrt()  # noqa: E731
    return f, math.pi / 2


def solve_zero_loss_batch():
    # three labels on three orthogonal 2-D subspaces of R^6 (coordinate planes), 3 images each
    g = torch.Generator().manual_seed(0)
    rows, labels = [], []
    for k in range(3):
        for _ in range(3):
            z = torch.zeros(6, dtype=torch.float64)
            z[2 * k : 2 * k + 2] = torch.randn(2, generator=g, dtype=torch.float64)
            rows.append(z)
            labels.append([1.0 if j == k else 0.0 for j in range(3)])
    return torch.stack(rows), torch.tensor(labels, dtype=torch.float64)


def solve_push_weights():
    ang = torch.tensor([0.3, 0.9, 2.2, 2.8, 4.0, 5.2, 1.5, 3.4], dtype=torch.float64)
    P = torch.stack([ang.cos(), ang.sin()], 1)  # (8, 2)
    out = {}
    for T in (0.1, 2.0):
        q = torch.softmax(P[1:] @ P[0] / T, 0)  # (7,) candidates 1..7
        out[T] = (int(q.argmax()) + 1, float(q.max()))
    return out


def _nonorthogonal_batch():
    Z, Y = solve_zero_loss_batch()
    Z = Z.clone()
    Z[:, 2] += 0.5 * Z[:, 0]  # tilt label B's plane towards label A's
    return Z, Y


WRONG = {
    "pair_nuclear_norm": [
        (lambda t: 2 * torch.ones_like(t), math.pi / 2),
        (lambda t: (1 + torch.cos(t)).sqrt() + (1 - torch.cos(t)).sqrt(), math.pi),
    ],
    "zero_loss_batch": [_nonorthogonal_batch(), (torch.zeros(9, 6), solve_zero_loss_batch()[1])],
    "push_weights": [{0.1: (6, 1.0), 2.0: (1, 0.2)}, {0.1: (1, 0.5)}],
}
