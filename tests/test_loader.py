"""ResumableLoader sharding: every evaluation example on exactly one rank, ranks kept in step."""

from __future__ import annotations

import pytest
import torch

from clinical_peft.data import loader
from clinical_peft.data.loader import ResumableLoader, is_filler


def collate(items: list[int]) -> dict:
    return {"index": torch.tensor(items)}


def batches_per_rank(
    size: int, world: int, batch_size: int, monkeypatch, even: bool = False
) -> list[list[dict]]:
    out = []
    for rank in range(world):
        monkeypatch.setattr(loader, "rank_and_world", lambda r=rank: (r, world))
        data = ResumableLoader(list(range(size)), batch_size, collate, even_evaluation=even)
        batches = list(data)
        assert len(batches) == len(data)  # Lightning plans the loop with len()
        out.append(batches)
    return out


@pytest.mark.parametrize("size,world,batch_size", [(17, 2, 8), (9, 2, 4), (10, 3, 2), (2, 3, 4)])
@pytest.mark.parametrize("even", [False, True])
def test_evaluation_shards_cover_each_example_once(size, world, batch_size, even, monkeypatch):
    ranks = batches_per_rank(size, world, batch_size, monkeypatch, even)
    counted = [i for batches in ranks for b in batches if not is_filler(b) for i in b["index"]]
    assert sorted(int(i) for i in counted) == list(range(size))
    if even:  # ZeRO-3: every rank runs as many forward passes as the busiest one
        assert len({len(batches) for batches in ranks}) == 1
        fillers = [b for batches in ranks for b in batches if is_filler(b)]
        assert all(len(b["index"]) == 1 for b in fillers)
    else:
        assert not any(is_filler(b) for batches in ranks for b in batches)


def test_uneven_shards_do_get_a_filler(monkeypatch):
    # 17 examples on 2 ranks in batches of 8: shards of 9 and 8 need 2 and 1 batches
    ranks = batches_per_rank(17, 2, 8, monkeypatch, True)
    assert [sum(is_filler(b) for b in batches) for batches in ranks] == [0, 1]


def test_training_shards_are_padded_to_equal_steps(monkeypatch):
    ranks = []
    for rank in range(2):
        monkeypatch.setattr(loader, "rank_and_world", lambda r=rank: (r, 2))
        ranks.append(list(ResumableLoader(list(range(9)), 2, collate, shuffle=True)))
    assert [len(batches) for batches in ranks] == [3, 3]
    seen = torch.cat([b["index"] for batches in ranks for b in batches]).tolist()
    assert set(seen) == set(range(9)) and len(seen) == 10  # one wrap-around repeat


def lm_batch(rows: int, length: int = 12) -> dict:
    ids = torch.randint(5, 500, (rows, length), generator=torch.Generator().manual_seed(rows))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def stage_and_batch(name: str, model: str):
    """A stage, a batch of two examples, and what its evaluation has counted so far."""
    from clinical_peft.stages.downstream import OutcomePrediction
    from clinical_peft.stages.dpo import PreferenceOptimization
    from clinical_peft.stages.pretrain import DomainAdaptation
    from clinical_peft.stages.sft import SupervisedFineTuning

    if name == "downstream":
        stage = OutcomePrediction(model, kind="binary", clinical="none")
        batch = {**lm_batch(2), "doc_index": torch.tensor([0, 1]), "labels": torch.tensor([0, 1]),
                 "ids": ["1", "2"]}  # fmt: skip
        return stage, batch, lambda: stage.loss_count.compute()
    if name == "dpo":
        stage = PreferenceOptimization(model)
        counts = next(iter(stage.val_counts.values()))  # one per statistic, all counted alike
        return stage, {**lm_batch(4), "index": torch.tensor([0, 1])}, counts.compute
    stage = (DomainAdaptation if name == "pretrain" else SupervisedFineTuning)(model)
    return stage, lm_batch(2), stage.val_loss.tokens.compute


@pytest.mark.parametrize("name", ["pretrain", "downstream", "sft", "dpo"])
def test_stages_run_a_filler_batch_but_count_nothing_of_it(tiny_model, name):
    stage, batch, counted = stage_and_batch(name, str(tiny_model))
    with torch.no_grad():
        stage.validation_step(batch, 0)
        before = counted().item()
        assert before > 0
        stage.validation_step({**batch, loader.FILLER: True}, 1)
    assert counted().item() == before
