"""Lightning's DeepSpeed strategy with checkpoints that a crash cannot half-write."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from lightning.pytorch import strategies


class DeepSpeedStrategy(strategies.DeepSpeedStrategy):
    """DeepSpeed writes a checkpoint as a folder of shards, one file per rank, over the previous
    folder of that name. Here every rank writes into `<path>.partial`, and rank 0 swaps the
    finished folder in. A crash while writing leaves the previous checkpoint whole: at `<path>`,
    or at `<path>.old` if it struck between the two renames (the CLI points there). Assumes a
    filesystem that every rank sees, as DeepSpeed's own checkpoints do.
    """

    def save_checkpoint(
        self, checkpoint: dict, filepath: Any, storage_options: Any | None = None
    ) -> None:
        final = Path(self.broadcast(str(filepath)))
        partial = final.with_name(final.name + ".partial")
        old = final.with_name(final.name + ".old")
        if self.is_global_zero:
            shutil.rmtree(partial, ignore_errors=True)  # left by an earlier crash
        self.barrier("checkpoint_start")
        super().save_checkpoint(checkpoint, partial, storage_options)
        self.barrier("checkpoint_written")  # every rank's shards are in `partial`
        if self.is_global_zero:
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                final.rename(old)
            partial.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        self.barrier("checkpoint_swapped")
