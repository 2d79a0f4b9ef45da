"""Length-grouped batches that train the same rows as the plain random order.

A random micro-batch is padded to its longest row: on the LLaMA-Factory demo data (rows of 20 to 512
tokens) a batch of 4 feeds the model 1.6x its real tokens. HF's ``group_by_length`` sorts 50-batch
"megabatches", but its permutation is not the one the default sampler draws, so a run cut by
``max_steps`` trains other rows than the same run without it.

:class:`WindowGroupedSampler` starts from exactly the permutation of accelerate's seedable random
sampler (``torch.randperm`` seeded with ``data_seed + epoch``), cuts it into windows of consecutive
positions, sorts each window by length, chunks it into micro-batches and shuffles the order of those
micro-batches inside the window. Every window holds the same rows as the random order, a window boundary
is placed where ``max_steps`` stops the epoch, so a truncated run trains exactly the rows of the
ungrouped run (tested), and batches within a window are mixed so the loss curve has no long-to-short
trend. Only the composition of the micro-batches changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

# windows of this many optimizer steps' worth of rows: large enough to find rows of similar length
# (padding 1.62x -> 1.04x on alpaca_zh_demo at batch 4), small enough to keep the order random at scale
WINDOW_STEPS = 16


class WindowGroupedSampler:
    """Indices of ``lengths`` in length-grouped micro-batches (see the module docstring).

    ``rows_per_step``: rows one optimizer step consumes (micro-batch x accumulation x processes);
    ``limit``: rows the run consumes in total when ``max_steps`` stops it early (None: whole epochs).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        micro_batch: int,
        rows_per_step: int,
        seed: int,
        limit: int | None = None,
        window_steps: int = WINDOW_STEPS,
    ):
        if micro_batch < 1 or rows_per_step < 1:
            raise ValueError("micro_batch and rows_per_step must be >= 1")
        self.lengths = [int(n) for n in lengths]
        self.micro_batch = micro_batch
        self.window = max(rows_per_step * window_steps, micro_batch)
        self.seed = seed
        self.limit = limit
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.lengths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _boundaries(self, n: int) -> list[int]:
        cuts = set(range(0, n, self.window)) | {n}
        if self.limit is not None:
            stop = self.limit - self.epoch * n  # where max_steps ends this epoch
            if 0 < stop < n:
                cuts.add(stop)
        return sorted(cuts)

    def order(self) -> list[int]:
        import torch

        n = len(self.lengths)
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        perm = torch.randperm(n, generator=g).tolist()  # accelerate's SeedableRandomSampler order
        out: list[int] = []
        cuts = self._boundaries(n)
        for a, b in zip(cuts, cuts[1:], strict=False):
            window = sorted(perm[a:b], key=lambda i: (-self.lengths[i], i))
            batches = [window[k : k + self.micro_batch] for k in range(0, len(window), self.micro_batch)]
            # a partial micro-batch stays last in its window (it is where the random order has one too)
            full = [bt for bt in batches if len(bt) == self.micro_batch]
            rest = [bt for bt in batches if len(bt) != self.micro_batch]
            for k in torch.randperm(len(full), generator=g).tolist():
                out.extend(full[k])
            for bt in rest:
                out.extend(bt)
        return out

    def __iter__(self) -> Iterator[int]:
        yield from self.order()
        self.epoch += 1


def train_sampler(trainer, lengths: Sequence[int]) -> WindowGroupedSampler:
    """The grouped sampler for a Trainer's training set (its batch size, accumulation, processes, seed
    and ``max_steps``)."""
    args = trainer.args
    world = max(1, args.world_size)
    rows_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
    limit = args.max_steps * rows_per_step if args.max_steps and args.max_steps > 0 else None
    seed = args.data_seed if args.data_seed is not None else args.seed
    return WindowGroupedSampler(
        lengths,
        micro_batch=args.per_device_train_batch_size * world,
        rows_per_step=rows_per_step,
        seed=seed,
        limit=limit,
    )
