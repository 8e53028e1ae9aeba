"""Multi-process training with ``torchrun`` + DistributedDataParallel; the same code path runs a
single process (world size 1) without any process group.

* :func:`init_distributed` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``)
  and starts a process group: ``nccl`` on CUDA (one GPU per process, ``cuda:LOCAL_RANK``), ``gloo``
  on CPU.
* Under Slurm (``srun``, one task per GPU, one node or several) :func:`torchrun_env_from_slurm`
  derives the same variables from Slurm's (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``,
  the first host of ``SLURM_JOB_NODELIST`` as the rendezvous address, a port derived from
  ``SLURM_JOB_ID``), so a Slurm task takes the same path as a torchrun process.
* Data order: :class:`EpochShuffleSampler` draws one permutation per epoch from ``(seed, epoch)``,
  identical on every rank, pads it to a multiple of the world size and deals it out
  (``perm[rank::world]``), like ``DistributedSampler``; with one process it is a plain seeded
  shuffle. Evaluation uses :class:`ShardSampler` (``range(rank, n, world)``, no padding, so no image
  is counted twice) and :func:`gather_eval` puts the predictions back in dataset order.
* **The CLML batch.** The nuclear norms of CLML are per-batch quantities (rank <= N), so the batch
  the loss sees matters (docs/method.md section 6, Q7). The reference trains with ``DataParallel``,
  where the loss sees the full gathered batch. With ``ddp_gather=True`` (default) every rank
  gathers the logits, features and labels of all ranks with the differentiable
  :func:`all_gather_with_grad` and computes the *whole* loss (base + CLML) on the global batch, so
  the value equals the reference's global-batch loss. Gradient bookkeeping: all ranks compute the
  same loss L; the backward of the gather sums the incoming gradients over ranks, so each rank's
  local features get W * dL/dz_local; DDP then averages parameter gradients over the W ranks, which
  gives exactly dL/dtheta. ``TrainConfig.batch_size`` is the *global* batch (split evenly over
  ranks). With ``ddp_gather=False`` each rank computes the loss on its own N/W images (CLML nuclear
  norms over the local batch only) and DDP averages: the loss is the mean over ranks of local
  losses, i.e. for ``reduction='sum'`` the base loss is 1/W of the global sum.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ..seed import seed_for


@dataclass
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``, and whether this
    module started the process group (``owns_group``, so that :func:`cleanup` ends only that)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "cpu") -> DistInfo:
    """Start (or join) the process group described by torchrun's environment variables.

    Args:
        device: ``'cpu'`` | ``'cuda'`` | ``'cuda:N'``. Under torchrun with CUDA each process takes
            ``cuda:LOCAL_RANK`` (an explicit ``:N`` is ignored there).

    Returns:
        :class:`DistInfo`; world size 1 and no process group when ``WORLD_SIZE`` is unset or 1.

    Raises:
        ValueError: CUDA requested but not available, or not enough GPUs for the local ranks.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available; use device='cpu'")
        if world > 1:
            if local_rank >= torch.cuda.device_count():
                raise ValueError(
                    f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s)")
            dev = torch.device("cuda", local_rank)
        elif dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r} but only {torch.cuda.device_count()} CUDA "
                             "device(s)")
        torch.cuda.set_device(dev)
    if world <= 1:
        return DistInfo(device=dev)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world, **kwargs)
        owns = True
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev, owns_group=owns)


#: First port of the rendezvous ports derived from a Slurm job id (:func:`torchrun_env_from_slurm`).
SLURM_PORT_BASE = 20000
#: How many ports above :data:`SLURM_PORT_BASE` the job ids are spread over.
SLURM_PORT_SPAN = 20000


def first_host(nodelist: str) -> str:
    """The first host of a Slurm host list: ``"gpu[07-09,12],cpu3"`` -> ``"gpu07"``.

    Raises:
        ValueError: an empty list or unbalanced brackets (the list is named).
    """
    text = nodelist.strip()
    depth, group = 0, text
    for i, ch in enumerate(text):  # the first group ends at a comma outside brackets
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth not in (0, 1):
            raise ValueError(f"cannot read the Slurm host list {nodelist!r}: unbalanced brackets")
        if ch == "," and depth == 0:
            group = text[:i]
            break
    if not group or group.count("[") != group.count("]"):
        raise ValueError(f"cannot read the Slurm host list {nodelist!r}")
    host = ""
    while "[" in group:  # each bracket range contributes its first value, as written (0-padded)
        head, rest = group.split("[", 1)
        inside, group = rest.split("]", 1)
        first = inside.split(",", 1)[0].split("-", 1)[0]
        if not first:
            raise ValueError(f"cannot read the Slurm host list {nodelist!r}: empty range")
        host += head + first
    return host + group


def torchrun_env_from_slurm(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The torchrun variables of this Slurm task, from Slurm's environment.

    ``RANK = SLURM_PROCID``, ``WORLD_SIZE = SLURM_NTASKS``, ``LOCAL_RANK = SLURM_LOCALID``,
    ``LOCAL_WORLD_SIZE`` = tasks on this node (``SLURM_NTASKS_PER_NODE``, else
    ``SLURM_NTASKS / SLURM_JOB_NUM_NODES``), ``MASTER_ADDR`` = first host of
    ``SLURM_JOB_NODELIST``, ``MASTER_PORT = SLURM_PORT_BASE + SLURM_JOB_ID % SLURM_PORT_SPAN``
    (every task of a job computes the same; two jobs on one node differ unless their ids are
    ``SLURM_PORT_SPAN`` apart). ``MASTER_ADDR`` and ``MASTER_PORT`` already set in ``environ`` are
    kept (a cluster that sets them knows better).

    Args:
        environ: the environment to read (default ``os.environ``); nothing is modified.

    Returns:
        The variables to set; empty when ``SLURM_NTASKS`` is unset or 1 (one process: no group).

    Raises:
        ValueError: a variable is missing or not an integer, ``SLURM_PROCID`` is outside
            ``[0, SLURM_NTASKS)``, or the host list cannot be read (names the variable).
    """
    env = os.environ if environ is None else environ

    def number(name: str) -> int:
        value = env.get(name)
        if value is None:
            raise ValueError(f"{name} is not set: not inside a Slurm job step (srun)?")
        try:
            return int(value.split("(")[0])  # SLURM_TASKS_PER_NODE style "2(x3)"
        except ValueError:
            raise ValueError(f"{name}={value!r} is not an integer") from None

    if int(env.get("SLURM_NTASKS", "1") or 1) <= 1:
        return {}
    world, rank = number("SLURM_NTASKS"), number("SLURM_PROCID")
    if not 0 <= rank < world:
        raise ValueError(f"SLURM_PROCID={rank} is outside [0, SLURM_NTASKS={world})")
    if "SLURM_NTASKS_PER_NODE" in env:
        local_world = number("SLURM_NTASKS_PER_NODE")
    else:
        local_world = max(1, world // max(1, number("SLURM_JOB_NUM_NODES")))
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise ValueError("SLURM_JOB_NODELIST is not set: cannot choose the rendezvous host")
    out = {
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(number("SLURM_LOCALID")),
        "LOCAL_WORLD_SIZE": str(local_world),
        "MASTER_ADDR": env.get("MASTER_ADDR") or first_host(nodelist),
        "MASTER_PORT": env.get("MASTER_PORT")
        or str(SLURM_PORT_BASE + number("SLURM_JOB_ID") % SLURM_PORT_SPAN),
    }
    return out


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


class EpochShuffleSampler(Sampler[int]):
    """Per-epoch seeded shuffle, dealt out over ranks (see module doc).

    Args:
        n: dataset size. seed: run seed. rank, world_size: this process's share.

    Call :meth:`set_epoch` before iterating; every rank yields ``ceil(n / world_size)`` indices.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world_size: int = 1):
        if n < 1:
            raise ValueError(f"cannot sample from an empty dataset (n={n})")
        self.n, self.seed, self.rank, self.world_size = n, seed, rank, world_size
        self.epoch = 0
        self.per_rank = -(-n // world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator().manual_seed(seed_for(self.seed, self.epoch, 0x5A))
        perm = torch.randperm(self.n, generator=g)  # (n,)
        total = self.per_rank * self.world_size
        if total > self.n:  # pad by repeating the start, as DistributedSampler
            perm = torch.cat([perm, perm[: total - self.n]])
        return iter(perm[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return self.per_rank


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + W, rank + 2W, ...`` in order, no padding (evaluation)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


def _gather_padded(x: torch.Tensor, info: DistInfo) -> list[torch.Tensor]:
    """all_gather of tensors whose first dimension may differ between ranks (no gradient)."""
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(info.world_size)]
    dist.all_gather(sizes, n)
    sizes = [int(s.item()) for s in sizes]
    m = max(sizes)
    pad = torch.zeros((m - x.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
    buf = [torch.empty((m, *x.shape[1:]), dtype=x.dtype, device=x.device) for _ in sizes]
    dist.all_gather(buf, torch.cat([x, pad]).contiguous())
    return [b[:s] for b, s in zip(buf, sizes)]


def gather_eval(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Undo :class:`ShardSampler`: rank r holds items r, r+W, ...; return all items in order."""
    if not info.distributed:
        return x
    parts = _gather_padded(x, info)
    total = sum(p.shape[0] for p in parts)
    out = torch.empty((total, *x.shape[1:]), dtype=x.dtype, device=x.device)
    for r, p in enumerate(parts):
        out[r :: info.world_size] = p
    return out


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradients of all ranks and returns this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world, rank = dist.get_world_size(), dist.get_rank()
        buf = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(buf, x.contiguous())
        ctx.rank, ctx.n = rank, x.shape[0]
        return torch.cat(buf)  # (W * n, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # sum over ranks of dL_r / d(gathered)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def all_gather_with_grad(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate ``x`` (n, ...) of every rank in rank order -> (W * n, ...), differentiable.

    The backward returns, for this rank's rows, the *sum* over ranks of the gradients arriving at
    the gathered tensor (see module doc for why this, with DDP's averaging, is exact).

    Raises:
        ValueError: ranks hold different batch sizes (the samplers here never produce that).
    """
    if not info.distributed:
        return x
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(info.world_size)]
    dist.all_gather(sizes, n)
    if len({int(s.item()) for s in sizes}) != 1:
        raise ValueError(f"ranks hold different batch sizes {[int(s) for s in sizes]}; "
                         "cannot gather")
    return _GatherWithGrad.apply(x)


def all_gather_nograd(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate ``x`` of every rank (rank order), no gradient; sizes may differ."""
    if not info.distributed:
        return x
    return torch.cat(_gather_padded(x.detach(), info))


def all_reduce_sum(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (a copy; identity with one process)."""
    if not info.distributed:
        return x
    y = x.clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y
