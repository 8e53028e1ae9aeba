r"""Exercise checkers of notebook 03 (low-rank terms).

Solutions: ``notebooks/solutions/ch03.py``.
"""

from __future__ import annotations

import torch

from . import close, verdict


def check_single_row_subgradient(answer) -> bool:
    """Exercise 03.1. ``answer``: a function ``f(z)`` giving the (sub)gradient of
    $\\lVert\\mathbf z^\\top\\rVert_*$ for a row ``z`` of shape (D,), including ``z = 0``."""
    g = torch.Generator().manual_seed(31)

    def judge(f):
        for _ in range(5):
            z = torch.randn(7, generator=g, dtype=torch.float64).requires_grad_(True)
            (ref,) = torch.autograd.grad(torch.linalg.svdvals(z[None]).sum(), z)  # (7,)
            got = torch.as_tensor(f(z.detach()), dtype=torch.float64)
            if got.shape != ref.shape or not torch.allclose(got, ref, atol=1e-10):
                return "the nuclear norm of a single row is its Euclidean norm: differentiate that"
        zero = torch.as_tensor(f(torch.zeros(7, dtype=torch.float64)), dtype=torch.float64)
        if not torch.equal(zero, torch.zeros(7, dtype=torch.float64)):
            return "at z = 0 take the element of the subdifferential used by the library: 0"
        return None

    return verdict("03.1 single-row subgradient", answer, judge)


def check_labels_per_image(answer: float | None) -> bool:
    """Exercise 03.2. ``answer``: labels per image of the teaching training set with full labels."""
    from clml_lib.data import TeachingMultiLabel

    mean = float(TeachingMultiLabel("train", seed=0).labels.sum(1).mean())

    def judge(a):
        if not close(a, mean, rtol=0, atol=5e-3):
            return "read it from the data: the mean row sum of the full label matrix"
        return None

    return verdict("03.2 labels per image", answer, judge)


def bound_batch():
    """A multi-label batch: Z (12, 5) post-ReLU, Y (12, 4) with every image carrying a label."""
    g = torch.Generator().manual_seed(32)
    Z = torch.randn(12, 5, generator=g, dtype=torch.float64).relu() + 0.05  # (12, 5)
    Y = (torch.rand(12, 4, generator=g) < 0.4).double()  # (12, 4)
    Y[torch.arange(12), torch.arange(12) % 4] = 1  # every image has a label
    return Z, Y


def check_bound_chain(answer) -> bool:
    """Exercise 03.3. ``answer = (a, b, c)`` for the batch ``bound_batch()``:
    $a=\\lVert\\mathbf Z\\rVert_*$, $b=\\lVert\\operatorname{diag}(m)\\mathbf Z\\rVert_*$,
    $c=\\sum_k\\lVert\\mathbf Z_k\\rVert_*$."""
    Z, Y = bound_batch()
    nuc = lambda A: float(torch.linalg.svdvals(A).sum())  # noqa: E731
    a_, b_, c_ = (
        nuc(Z),
        nuc(Y.sum(1, keepdim=True) * Z),
        sum(nuc(Z[Y[:, k] == 1]) for k in range(4)),
    )

    def judge(ans):
        a, b, c = (float(x) for x in ans)
        for got, exp, name in (
            (a, a_, "||Z||_*"),
            (b, b_, "||diag(m) Z||_*"),
            (c, c_, "sum_k ||Z_k||_*"),
        ):
            if not close(got, exp, rtol=1e-8):
                return f"{name} is off (m = labels per image, Z_k = rows carrying label k)"
        return None

    return verdict("03.3 the bound chain", answer, judge, ok=f"{a_:.3f} <= {b_:.3f} <= {c_:.3f}")


def check_group_sizes(answer: dict | None) -> bool:
    """Exercise 03.4. ``answer = {n: padded size}`` for a batch with one label of each member
    count n in (1, 2, 3, 5, 9, 17, 33, 64): labels with one member form their own group, the
    others are grouped by the next power of four of their count (2-4, 5-16, 17-64, ...), and a
    group is padded to the largest count in it."""
    counts = (1, 2, 3, 5, 9, 17, 33, 64)

    def group(n: int) -> int:  # 0 for single members, then 1 for 2-4, 2 for 5-16, 3 for 17-64
        if n == 1:
            return 0
        k = 1
        while 4**k < n:
            k += 1
        return k

    padded = {n: max(m for m in counts if group(m) == group(n)) for n in counts}

    def judge(a):
        for n in counts:
            if int(a.get(n, -1)) != padded[n]:
                return (
                    f"count {n} is padded wrongly: find its group, then the largest count "
                    "in that group"
                )
        return None

    return verdict("03.4 group sizes", answer, judge, ok="4 groups, 3 batched eigh calls")
