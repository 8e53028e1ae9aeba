"""Solutions to the exercises of notebook 03 (low-rank terms); written solutions in ch03.md.

Each ``solve_<name>()`` returns an answer that ``clml_lib.exercises.ch03.check_<name>`` accepts;
``WRONG`` lists typical wrong answers the checkers must reject (tests/test_solutions.py).
"""

import torch

from clml_lib.data import TeachingMultiLabel


def solve_single_row_subgradient():
    def grad(z):
        n = z.norm()
        return z / n if n > 0 else torch.zeros_like(z)  # the 0 element of the subdifferential at 0

    return grad


def solve_labels_per_image():
    return float(TeachingMultiLabel("train", seed=0).labels.sum(1).mean())


def solve_bound_chain():
    g = torch.Generator().manual_seed(32)  # the batch of clml_lib.exercises.ch03.bound_batch
    Z = torch.randn(12, 5, generator=g, dtype=torch.float64).relu() + 0.05
    Y = (torch.rand(12, 4, generator=g) < 0.4).double()
    Y[torch.arange(12), torch.arange(12) % 4] = 1
    nuc = lambda A: float(torch.linalg.matrix_norm(A, ord="nuc"))  # noqa: E731
    m = Y.sum(1, keepdim=True)  # (12, 1) labels per image
    return nuc(Z), nuc(m * Z), sum(nuc(Z[Y[:, k] == 1]) for k in range(Y.shape[1]))


def solve_group_sizes():
    counts = (1, 2, 3, 5, 9, 17, 33, 64)
    key = lambda n: 0 if n == 1 else ((n - 1).bit_length() + 1) // 2  # noqa: E731
    return {n: max(m for m in counts if key(m) == key(n)) for n in counts}


WRONG = {
    "single_row_subgradient": [lambda z: z, lambda z: z / z.norm()],
    "labels_per_image": [2.5, 1.17],
    "bound_chain": [(1.0, 2.0, 3.0)],
    "group_sizes": [
        {n: n for n in (1, 2, 3, 5, 9, 17, 33, 64)},
        {n: 1 if n == 1 else 1 << (n - 1).bit_length() for n in (1, 2, 3, 5, 9, 17, 33, 64)},
    ],
}
