"""A DataLoader that shards across ranks itself and resumes mid-epoch exactly.

Lightning saves a loader's `state_dict` in its checkpoints and restores it on resume; with
it, a run killed mid-epoch continues with the very next batch: no sample skipped or seen twice.
Trainers must run with `use_distributed_sampler=False` (the CLI sets it): this loader does the
sharding, and evaluation shards are not padded, so no example is counted twice in a metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, Sampler

#: ZeRO-3 gathers parameters inside every forward pass, so all ranks must run the same number
#: of evaluation batches too. Then a rank whose shard is a batch short ends with a filler batch
#: (one example, marked with FILLER) whose outputs the stages discard: no example is counted
#: twice. Set by the CLI for DeepSpeed stage 3 only.
FILLER = "filler_batch"


def is_filler(batch: dict) -> bool:
    """True for a batch that only keeps ZeRO-3 ranks in step: run it, count nothing of it."""
    return bool(batch.get(FILLER, False))


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def busiest_rank_batches(size: int, batch_size: int) -> int:
    """Batches in the largest rank's share of `size` examples: what each rank runs under ZeRO-3."""
    _, world = rank_and_world()
    return math.ceil(math.ceil(size / world) / batch_size)


class EpochSampler(Sampler[int]):
    """Order from (seed, epoch); this rank's share; an optional prefix to skip once."""

    def __init__(self, size: int, shuffle: bool, seed: int, even_shards: bool) -> None:
        self.size, self.shuffle, self.seed, self.even_shards = size, shuffle, seed, even_shards
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        rank, world = rank_and_world()
        if self.even_shards and world > 1:
            # Training ranks must take the same number of steps: wrap around like DistributedSampler.
            total = math.ceil(self.size / world) * world
            order += order[: total - self.size]
        return order[rank::world]

    def __iter__(self) -> Iterator[int]:
        indices, self.skip = self._indices()[self.skip :], 0
        return iter(indices)

    def __len__(self) -> int:
        return len(self._indices())


class ResumableLoader(DataLoader):
    """DataLoader over an EpochSampler with the state_dict/load_state_dict Lightning looks for."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        collate_fn: Callable,
        shuffle: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        even_evaluation: bool = False,
    ) -> None:
        """`even_evaluation`: an evaluation shard a batch short of the busiest rank's gets a
        filler batch, so that every rank runs as many forward passes (ZeRO-3 needs it)."""
        sampler = EpochSampler(len(dataset), shuffle, seed, even_shards=shuffle)
        self.even_evaluation = even_evaluation
        super().__init__(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collate_fn,
            num_workers=num_workers,
        )
        self._done_batches = 0
        self._resume: dict | None = None

    def _fillers(self) -> int:
        """Filler batches this rank appends so that every rank runs as many as the largest."""
        if not self.even_evaluation or self.sampler.even_shards:
            return 0
        return busiest_rank_batches(self.sampler.size, self.batch_size) - super().__len__()

    def __len__(self) -> int:
        return super().__len__() + self._fillers()

    def __iter__(self):
        # A generator: nothing runs until the first batch is asked for, which Lightning does
        # after it has set this epoch's number on the sampler.
        skip = 0
        if self._resume is not None and self._resume["epoch"] == self.sampler.epoch:
            skip = self._resume["batches"]
        self._resume = None
        self.sampler.skip = skip * self.batch_size
        self._done_batches = skip
        for batch in super().__iter__():
            self._done_batches += 1
            yield batch
        for _ in range(self._fillers()):
            yield {**self.collate_fn([self.dataset[0]]), FILLER: True}

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": self._done_batches}

    def load_state_dict(self, state: dict) -> None:
        self._resume = dict(state)


def pad_rows(rows: list, value: int, length: int | None = None, left: bool = False) -> torch.Tensor:
    """Token rows as one (n, length) tensor, padded with `value` on the right (or the left);
    `length` defaults to the longest row."""
    tensors = [torch.as_tensor(row, dtype=torch.long) for row in rows]
    side = "left" if left else "right"
    out = pad_sequence(tensors, batch_first=True, padding_value=value, padding_side=side)
    extra = (length or 0) - out.shape[1]
    if extra > 0:
        out = torch.nn.functional.pad(out, (extra, 0) if left else (0, extra), value=value)
    return out
