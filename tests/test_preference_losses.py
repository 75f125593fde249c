"""The reference-free (SimPO, CPO, ORPO) and unpaired (KTO) losses: by hand and against TRL 1.16's
own loss code on the same numbers (CPOTrainer, ORPOTrainer, KTOTrainer with a stand-in `self`)."""

from __future__ import annotations

import math
from collections import defaultdict
from functools import partial
from types import SimpleNamespace

import pytest
import torch

from clinical_peft.stages.losses import (
    DPO_LOSSES,
    LossConfigError,
    check_dpo_loss,
    dpo_loss,
    kto_kl,
    kto_loss,
)

PC, PR = torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -15.0])  # policy log-prob sums
LC, LR = torch.tensor([4, 5]), torch.tensor([3, 10])  # completion lengths
ZERO = torch.zeros(2)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def log1mexp(x: float) -> float:
    return math.log(1 - math.exp(x))


@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_reference_free_losses_by_hand(beta: float) -> None:
    avg_c, avg_r = [-10 / 4, -20 / 5], [-12 / 3, -15 / 10]
    cpo_nll = [10 * 2 / 9, 20 * 2 / 9]  # shares of the token-mean NLL: their mean is 30 / 9
    seq_sums, seq_counts = torch.tensor([30.0, 26.0]), torch.tensor([12, 14])
    orpo_nll = [30 * 2 / 26, 26 * 2 / 26]
    expected = {
        "simpo": [-log_sigmoid(beta * (c - r) - 0.5) for c, r in zip(avg_c, avg_r, strict=True)],
        "cpo": [
            -log_sigmoid(beta * (c - r)) + nll
            for c, r, nll in zip(PC.tolist(), PR.tolist(), cpo_nll, strict=True)
        ],
        "orpo": [
            nll - beta * log_sigmoid((c - r) - (log1mexp(c) - log1mexp(r)))
            for c, r, nll in zip(avg_c, avg_r, orpo_nll, strict=True)
        ],
    }
    assert set(expected) == {k for k, v in DPO_LOSSES.items() if not v.reference}
    for loss_type, values in expected.items():
        nll = (seq_sums, seq_counts) if loss_type == "orpo" else None
        losses, chosen, rejected = dpo_loss(
            PC, PR, ZERO, ZERO, beta, loss_type, chosen_lengths=LC, rejected_lengths=LR,
            chosen_nll=nll,
        )  # fmt: skip
        assert losses.tolist() == pytest.approx(values, rel=1e-6), loss_type
        # rewards: beta times the log-probs, per-token averages where the loss normalises
        normalised = DPO_LOSSES[loss_type].normalise
        assert chosen.tolist() == pytest.approx(
            [beta * c for c in (avg_c if normalised else PC.tolist())], rel=1e-6
        )
        assert rejected.tolist() == pytest.approx(
            [beta * r for r in (avg_r if normalised else PR.tolist())], rel=1e-6
        )
    assert cpo_nll == pytest.approx([x * 2 / 9 for x in (10, 20)])


def test_loss_options_by_hand() -> None:
    """simpo_gamma shifts SimPO's margin; cpo_alpha weighs the NLL (SimPO: 0, CPO: 1 unless set);
    label smoothing works as in DPO."""
    lengths = {"chosen_lengths": LC, "rejected_lengths": LR}
    h = [-10 / 4 - -12 / 3, -20 / 5 - -15 / 10]
    gamma, alpha, ls = 1.5, 0.25, 0.2
    opts = {"simpo_gamma": gamma, "cpo_alpha": alpha}
    simpo, _, _ = dpo_loss(PC, PR, ZERO, ZERO, 1.0, "simpo", ls, options=opts, **lengths)
    nll = [10 * 2 / 9, 20 * 2 / 9]
    assert simpo.tolist() == pytest.approx(
        [-(1 - ls) * log_sigmoid(x - gamma) - ls * log_sigmoid(gamma - x) + alpha * n
         for x, n in zip(h, nll, strict=True)], rel=1e-6,
    )  # fmt: skip
    cpo, _, _ = dpo_loss(PC, PR, ZERO, ZERO, 0.1, "cpo", options={"cpo_alpha": 0.0}, **lengths)
    assert cpo.tolist() == pytest.approx([-log_sigmoid(0.1 * 2), -log_sigmoid(-0.1 * 5)])


def test_kto_by_hand() -> None:
    policy, reference = torch.tensor([-5.0, -9.0, -4.0]), torch.tensor([-6.0, -8.0, -4.5])
    desirable = torch.tensor([True, False, True])
    kl = kto_kl(torch.tensor([-7.0, -3.0]), torch.tensor([-7.5, -3.1]))
    assert float(kl) == pytest.approx(0.3)
    # a negative estimate is clamped to 0, as TRL does
    assert float(kto_kl(torch.tensor([-9.0]), torch.tensor([-8.0]))) == 0.0
    beta, wd, wu = 0.5, 1.0, 1.33
    opts = {"undesirable_weight": wu}
    losses, rewards = kto_loss(policy, reference, kl, desirable, beta, options=opts)
    r = [1.0, -1.0, 0.5]

    def sig(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    assert losses.tolist() == pytest.approx(
        [wd * (1 - sig(beta * (r[0] - 0.3))), wu * (1 - sig(beta * (0.3 - r[1]))),
         wd * (1 - sig(beta * (r[2] - 0.3)))], rel=1e-6,
    )  # fmt: skip
    assert rewards.tolist() == pytest.approx([beta * x for x in r], rel=1e-6)
    with pytest.raises(ValueError, match="unpaired"):
        dpo_loss(PC, PR, ZERO, ZERO, 0.1, "kto")
    with pytest.raises(ValueError, match="paired loss"):
        kto_loss(policy, reference, kl, desirable, 0.1, "sigmoid")


def test_options_are_checked_by_the_registry() -> None:
    assert DPO_LOSSES["simpo"].options == {"simpo_gamma": 0.5, "cpo_alpha": 0.0}
    assert DPO_LOSSES["kto"].unpaired and DPO_LOSSES["kto"].reference
    for loss_type, options, field, problem in [
        ("sigmoid", {"simpo_gamma": 1.0}, "simpo_gamma", "does not use it"),  # silently ignored
        ("orpo", {"cpo_alpha": 0.5}, "cpo_alpha", "used by: simpo, cpo"),
        ("simpo", {"simpo_gamma": -1.0}, "simpo_gamma", "must be >= 0"),
        ("cpo", {"cpo_alpha": -0.1}, "cpo_alpha", "must be >= 0"),
        ("kto", {"desirable_weight": 0.0}, "desirable_weight", "must be > 0"),
        ("orpo", {}, "label_smoothing", "does not use it"),
    ]:
        ls = 0.1 if field == "label_smoothing" else 0.0
        with pytest.raises(LossConfigError, match=problem) as caught:
            check_dpo_loss(loss_type, 0.1, ls, options)
        assert caught.value.field == field, loss_type
    # None: not given (the loss's default), accepted for any loss
    assert check_dpo_loss("sigmoid", 0.1, 0.0, {"simpo_gamma": None}) is DPO_LOSSES["sigmoid"]
    with pytest.raises(ValueError, match="needs chosen_lengths"):
        dpo_loss(PC, PR, ZERO, ZERO, 0.1, "simpo")
    with pytest.raises(ValueError, match="whole sequence"):
        dpo_loss(PC, PR, ZERO, ZERO, 0.1, "orpo", chosen_lengths=LC, rejected_lengths=LR)


# --- against TRL 1.16 ------------------------------------------------------------------------
ACCELERATOR = SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=lambda x: x)


@pytest.fixture(scope="module")
def numbers():
    g = torch.Generator().manual_seed(0)
    pc, pr = (-40 * torch.rand(6, generator=g, dtype=torch.float64) - 1 for _ in range(2))
    lc, lr = (torch.randint(1, 9, (6,), generator=g) for _ in range(2))
    nll_sums = 60 * torch.rand(6, generator=g, dtype=torch.float64)
    nll_counts = lc + torch.randint(3, 20, (6,), generator=g)
    return pc, pr, lc, lr, nll_sums, nll_counts


def trl_batch_loss(trainer_class, stub, forward_output) -> tuple[float, dict]:
    """TRL's `get_batch_loss_metrics` with `concatenated_forward` replaced by its output: the
    log-probs (averaged where TRL averages) and the batch's token-mean NLL."""
    stub.concatenated_forward = lambda model, batch: forward_output
    for name in ("cpo_loss", "odds_ratio_loss"):
        if hasattr(trainer_class, name):
            setattr(stub, name, partial(getattr(trainer_class, name), stub))
    loss, metrics = trainer_class.get_batch_loss_metrics(stub, None, {})
    return float(loss), metrics


@pytest.mark.parametrize(
    ("loss_type", "trl_type", "options", "ls"),
    [
        ("cpo", "sigmoid", {"cpo_alpha": 1.0}, 0.0),
        ("cpo", "sigmoid", {"cpo_alpha": 0.3}, 0.1),
        ("simpo", "simpo", {"simpo_gamma": 0.5, "cpo_alpha": 0.0}, 0.0),
        ("simpo", "simpo", {"simpo_gamma": 1.2, "cpo_alpha": 0.5}, 0.2),  # TRL's CPO-SimPO
    ],
)
@pytest.mark.parametrize("beta", [0.1, 2.0])
def test_cpo_and_simpo_match_trl(numbers, loss_type, trl_type, options, ls, beta) -> None:
    cpo = pytest.importorskip("trl.experimental.cpo.cpo_trainer")
    pc, pr, lc, lr, _, _ = numbers
    average = trl_type == "simpo"  # TRL's average_log_prob for simpo (and ipo)
    c, r = (pc / lc, pr / lr) if average else (pc, pr)
    nll = -pc.sum() / lc.sum()  # CrossEntropyLoss over every chosen completion token
    stub = SimpleNamespace(
        alpha=0.0, beta=beta, label_smoothing=ls, loss_type=trl_type, accelerator=ACCELERATOR,
        simpo_gamma=options.get("simpo_gamma"), cpo_alpha=options["cpo_alpha"],
        aux_loss_enabled=False, store_metrics=lambda *a, **k: None,
    )  # fmt: skip
    trl_loss, metrics = trl_batch_loss(
        cpo.CPOTrainer, stub, (c, r, torch.zeros(1), torch.zeros(1), nll)
    )
    losses, chosen, rejected = dpo_loss(
        pc, pr, 0 * pc, 0 * pr, beta, loss_type, ls, chosen_lengths=lc, rejected_lengths=lr,
        options=options,
    )  # fmt: skip
    assert float(losses.mean()) == pytest.approx(trl_loss, rel=1e-9)
    assert float(chosen.mean()) == pytest.approx(metrics["rewards/chosen"], rel=1e-9)
    assert float(rejected.mean()) == pytest.approx(metrics["rewards/rejected"], rel=1e-9)


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_orpo_matches_trl(numbers, beta) -> None:
    orpo = pytest.importorskip("trl.experimental.orpo.orpo_trainer")
    pc, pr, lc, lr, nll_sums, nll_counts = numbers
    nll = nll_sums.sum() / nll_counts.sum()
    stub = SimpleNamespace(beta=beta, accelerator=ACCELERATOR, aux_loss_enabled=False)
    output = (pc / lc, pr / lr, torch.zeros(1), torch.zeros(1), nll)
    trl_loss, metrics = trl_batch_loss(orpo.ORPOTrainer, stub, output)
    losses, chosen, rejected = dpo_loss(
        pc, pr, 0 * pc, 0 * pr, beta, "orpo", chosen_lengths=lc, rejected_lengths=lr,
        chosen_nll=(nll_sums, nll_counts),
    )  # fmt: skip
    # TRL casts the log-probs to float32 (.float()), so does this: float32 precision
    assert float(losses.mean()) == pytest.approx(trl_loss, rel=1e-7)
    assert float(chosen.mean()) == pytest.approx(float(metrics["rewards/chosen"]), rel=1e-7)
    assert float(rejected.mean()) == pytest.approx(float(metrics["rewards/rejected"]), rel=1e-7)


@pytest.mark.parametrize(("wd", "wu"), [(1.0, 1.0), (1.0, 1.33), (0.7, 1.0)])
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_kto_matches_trl(wd: float, wu: float, beta: float) -> None:
    """KTOTrainer._compute_loss with a stand-in model whose fused-LM-head output carries
    per-token log-probs summing to the given ones, and precomputed reference log-probs."""
    kto = pytest.importorskip("trl.trainer.kto_trainer")
    g = torch.Generator().manual_seed(1)
    n = 7
    policy, reference, policy_kl, reference_kl = (
        -30 * torch.rand(n, generator=g, dtype=torch.float64) for _ in range(4)
    )
    policy_kl = reference_kl + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)  # KL > 0
    desirable = torch.tensor([True, False, True, True, False, False, True])
    inputs = {
        "input_ids": torch.zeros(n, 5, dtype=torch.long),
        "attention_mask": torch.ones(n, 5, dtype=torch.long),
        "completion_mask": torch.ones(n, 5, dtype=torch.long),
        "KL_input_ids": torch.ones(n, 5, dtype=torch.long),
        "KL_attention_mask": torch.ones(n, 5, dtype=torch.long),
        "KL_completion_mask": torch.ones(n, 5, dtype=torch.long),
        "label": desirable,
        "ref_logps": reference,
        "ref_KL_logps": reference_kl,
    }

    def model(input_ids, **_):  # 4 predicted positions per row, summing to the log-prob
        logps = policy_kl if input_ids is inputs["KL_input_ids"] else policy
        per_token = (logps / 4).unsqueeze(1).expand(n, 4)
        zeros = torch.zeros_like(per_token)
        return SimpleNamespace(log_probs=per_token, entropy=zeros, mean_logits=zeros)

    stub = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=ACCELERATOR, calculate_KL=True,
        precompute_ref_logps=True, aux_loss_enabled=False, loss_type="kto", beta=beta,
        desirable_weight=wd, undesirable_weight=wu, _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0, _tp_size=1,
    )  # fmt: skip
    stub._compute_kl_logps = partial(kto.KTOTrainer._compute_kl_logps, stub)
    trl_loss = float(kto.KTOTrainer._compute_loss(stub, model, inputs, False))
    kl = kto_kl(policy_kl, reference_kl)
    opts = {"desirable_weight": wd, "undesirable_weight": wu}
    losses, rewards = kto_loss(policy, reference, kl, desirable, beta, options=opts)
    metrics = stub._metrics["train"]
    assert float(losses.mean()) == pytest.approx(trl_loss, rel=1e-9)
    assert float(kl) == pytest.approx(metrics["kl"][0], rel=1e-9) and float(kl) > 0
    assert float(rewards[desirable].mean()) == pytest.approx(metrics["rewards/chosen"][0], rel=1e-9)
    assert float(rewards[~desirable].mean()) == pytest.approx(
        metrics["rewards/rejected"][0], rel=1e-9
    )
