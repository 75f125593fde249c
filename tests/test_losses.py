"""Tests for clinical_peft.stages.losses: DPO variants (by hand and against TRL), log-probs, weights."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from clinical_peft.stages.losses import (
    DPO_LOSSES,
    LossConfigError,
    causal_lm_loss_sums,
    check_dpo_loss,
    completion_logps,
    dpo_loss,
    sequence_logps,
)
from clinical_peft.tasks.outcomes import class_weights

# Two pairs: h = (-10 + 11) - (-12 + 11.5) = 1.5 and h = (-20 + 19) - (-15 + 16) = -2.
PC = torch.tensor([-10.0, -20.0])
PR = torch.tensor([-12.0, -15.0])
RC = torch.tensor([-11.0, -19.0])
RR = torch.tensor([-11.5, -16.0])
H = [1.5, -2.0]
CHOSEN, REJECTED = [1.0, -1.0], [-0.5, 1.0]  # the log-ratios policy - reference


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_losses_by_hand(beta: float) -> None:
    expected = {
        "sigmoid": [-log_sigmoid(beta * h) for h in H],
        "ipo": [(h - 1 / (2 * beta)) ** 2 for h in H],
        "hinge": [max(0.0, 1 - beta * h) for h in H],
        "robust": [-log_sigmoid(beta * h) for h in H],  # label_smoothing 0: plain sigmoid
        "nca_pair": [
            -log_sigmoid(beta * c) - 0.5 * log_sigmoid(-beta * c) - 0.5 * log_sigmoid(-beta * r)
            for c, r in zip(CHOSEN, REJECTED, strict=True)
        ],
        "sppo_hard": [
            (c - 0.5 / beta) ** 2 + (r + 0.5 / beta) ** 2
            for c, r in zip(CHOSEN, REJECTED, strict=True)
        ],
    }
    # every registered loss is checked by hand: these here, the others in the tests below
    by_hand_elsewhere = {"simpo", "cpo", "orpo", "kto"}
    assert set(expected) | by_hand_elsewhere == set(DPO_LOSSES)
    for loss_type, values in expected.items():
        losses, chosen, rejected = dpo_loss(PC, PR, RC, RR, beta=beta, loss_type=loss_type)
        assert losses.tolist() == pytest.approx(values, rel=1e-6), loss_type
        assert chosen.tolist() == pytest.approx([beta * 1.0, beta * -1.0], rel=1e-6)
        assert rejected.tolist() == pytest.approx([beta * -0.5, beta * 1.0], rel=1e-6)


def test_hinge_is_zero_past_margin() -> None:
    losses, _, _ = dpo_loss(PC, PR, RC, RR, beta=1.0, loss_type="hinge")
    assert losses.tolist() == pytest.approx([0.0, 3.0])


def test_label_smoothing_by_hand() -> None:
    beta, ls = 0.5, 0.2
    cdpo = [-(1 - ls) * log_sigmoid(beta * h) - ls * log_sigmoid(-beta * h) for h in H]
    robust = [
        (-(1 - ls) * log_sigmoid(beta * h) + ls * log_sigmoid(-beta * h)) / (1 - 2 * ls) for h in H
    ]
    sig, _, _ = dpo_loss(PC, PR, RC, RR, beta, "sigmoid", label_smoothing=ls)
    rob, _, _ = dpo_loss(PC, PR, RC, RR, beta, "robust", label_smoothing=ls)
    assert sig.tolist() == pytest.approx(cdpo, rel=1e-6)
    assert rob.tolist() == pytest.approx(robust, rel=1e-6)
    plain, _, _ = dpo_loss(PC, PR, RC, RR, beta, "sigmoid")
    assert not torch.allclose(sig, plain)


def test_step_zero_policy_equals_reference() -> None:
    logps = torch.tensor([-3.0, -40.0, -7.5])
    for ls in (0.0, 0.1):
        losses, chosen, rejected = dpo_loss(logps, logps - 1, logps, logps - 1, 0.1, "sigmoid", ls)
        assert losses.tolist() == pytest.approx([math.log(2)] * 3, rel=1e-6)
        assert chosen.tolist() == [0.0] * 3 and rejected.tolist() == [0.0] * 3
    robust, _, _ = dpo_loss(logps, logps, logps, logps, 0.1, "robust", 0.2)
    assert robust.tolist() == pytest.approx([math.log(2)] * 3, rel=1e-6)


def test_ipo_length_normalisation_by_hand() -> None:
    beta = 0.1
    lc, lr = torch.tensor([4, 2]), torch.tensor([5, 0])  # 0 is clamped to 1 as in TRL
    losses, _, _ = dpo_loss(PC, PR, RC, RR, beta, "ipo", chosen_lengths=lc, rejected_lengths=lr)
    h = [1.0 / 4 - (-0.5) / 5, -1.0 / 2 - 1.0 / 1]
    assert losses.tolist() == pytest.approx([(x - 1 / (2 * beta)) ** 2 for x in h], rel=1e-6)
    with pytest.raises(ValueError, match="both"):
        dpo_loss(PC, PR, RC, RR, beta, "ipo", chosen_lengths=lc)


def test_gradients_flow_to_loss_not_rewards() -> None:
    pc = PC.clone().requires_grad_(True)
    losses, chosen, rejected = dpo_loss(pc, PR, RC, RR)
    assert not chosen.requires_grad and not rejected.requires_grad
    losses.sum().backward()
    # d/dpc of -logsigmoid(beta*h) = -beta * sigmoid(-beta*h)
    expected = [-0.1 / (1 + math.exp(0.1 * h)) for h in H]
    assert pc.grad.tolist() == pytest.approx(expected, rel=1e-5)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="sigmoid, ipo, hinge, robust"):
        dpo_loss(PC, PR, RC, RR, loss_type="unknown")
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(PC, PR, RC, RR, loss_type="robust", label_smoothing=0.5)
    assert set(DPO_LOSSES) == {"sigmoid", "ipo", "hinge", "robust", "nca_pair", "sppo_hard",
                               "simpo", "cpo", "orpo", "kto"}  # fmt: skip


def test_checks_live_in_the_registry() -> None:
    """Which losses use label_smoothing or need a reference is read from the registry only."""
    smoothed = {"sigmoid", "robust", "simpo", "cpo"}
    assert {k for k, v in DPO_LOSSES.items() if v.label_smoothing} == smoothed
    assert {k for k, v in DPO_LOSSES.items() if not v.reference} == {"simpo", "cpo", "orpo"}
    for loss_type, beta, ls, field in [
        ("unknown", 0.1, 0.0, "loss_type"),
        ("sigmoid", 0.0, 0.0, "beta"),
        ("ipo", -1.0, 0.0, "beta"),
        ("robust", 0.1, -0.1, "label_smoothing"),
        ("hinge", 0.1, 0.1, "label_smoothing"),  # a loss that would silently ignore it
        ("sppo_hard", 0.1, 0.2, "label_smoothing"),
    ]:
        with pytest.raises(LossConfigError) as caught:
            check_dpo_loss(loss_type, beta, ls)
        assert caught.value.field == field, loss_type
    assert check_dpo_loss("robust", 0.1, 0.4) is DPO_LOSSES["robust"]
    with pytest.raises(ValueError, match="both"):
        dpo_loss(PC, PR, RC, RR, 0.1, "sigmoid", chosen_lengths=torch.tensor([1, 2]))


# --- against TRL 1.16 ------------------------------------------------------------------------
# TRL 1.16 has no standalone dpo_loss: the formulas live inline in DPOTrainer._compute_loss.
# We call that method with a stand-in `self` and a stand-in model whose fused-LM-head output
# carries per-token log-probs that sum to the chosen sequence log-probs.


def trl_mean_loss(pc, pr, rc, rr, beta, loss_type, ls, lengths_c, lengths_r):
    dpo_trainer = pytest.importorskip("trl.trainer.dpo_trainer")
    batch = pc.shape[0]
    lengths = torch.cat([lengths_c, lengths_r])
    seq_len = int(lengths.max()) + 2
    completion_mask = torch.zeros(2 * batch, seq_len, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        completion_mask[i, 2 : 2 + n] = 1  # two prompt tokens, then the completion
    per_token = completion_mask[:, 1:].double() * (
        torch.cat([pc, pr]).double() / lengths.clamp(min=1).double()
    ).unsqueeze(1)
    outputs = SimpleNamespace(
        log_probs=per_token,
        entropy=torch.zeros_like(per_token),
        mean_logits=torch.zeros_like(per_token),
        is_top1=torch.zeros_like(per_token, dtype=torch.bool),
    )
    accelerator = SimpleNamespace(
        device=torch.device("cpu"), gather_for_metrics=lambda x: x, gather=lambda x: x
    )
    stub = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=accelerator,
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=[loss_type],
        loss_weights=[1.0],
        beta=beta,
        label_smoothing=ls,
        use_weighting=False,
        _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.zeros(2 * batch, seq_len, dtype=torch.long),
        "attention_mask": torch.ones(2 * batch, seq_len, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": rc.double(),
        "ref_rejected_logps": rr.double(),
    }
    loss = dpo_trainer.DPOTrainer._compute_loss(stub, lambda **_: outputs, inputs, False)
    return float(loss), stub._metrics["train"]


@pytest.fixture(scope="module")
def random_pairs():
    g = torch.Generator().manual_seed(0)
    logps = [-50 * torch.rand(6, generator=g, dtype=torch.float64) for _ in range(4)]
    lengths = [torch.randint(1, 9, (6,), generator=g) for _ in range(2)]
    return logps, lengths


@pytest.mark.parametrize(
    ("loss_type", "ls"),
    [
        ("sigmoid", 0.0),
        ("ipo", 0.0),
        ("hinge", 0.0),
        ("robust", 0.1),
        ("nca_pair", 0.0),
        ("sppo_hard", 0.0),
    ],  # fmt: skip
)
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_matches_trl(random_pairs, loss_type: str, ls: float, beta: float) -> None:
    (pc, pr, rc, rr), (lc, lr) = random_pairs
    trl_loss, trl_metrics = trl_mean_loss(pc, pr, rc, rr, beta, loss_type, ls, lc, lr)
    lengths = {"chosen_lengths": lc, "rejected_lengths": lr} if loss_type == "ipo" else {}
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta, loss_type, ls, **lengths)
    assert float(losses.mean()) == pytest.approx(trl_loss, rel=1e-9)
    assert float(chosen.mean()) == pytest.approx(trl_metrics["rewards/chosen"][0], rel=1e-9)
    assert float(rejected.mean()) == pytest.approx(trl_metrics["rewards/rejected"][0], rel=1e-9)


def test_trl_ignores_label_smoothing_for_sigmoid(random_pairs) -> None:
    """Documents the one divergence: TRL 1.16's sigmoid loss is plain DPO whatever ls is."""
    (pc, pr, rc, rr), (lc, lr) = random_pairs
    trl_loss, _ = trl_mean_loss(pc, pr, rc, rr, 0.1, "sigmoid", 0.1, lc, lr)
    plain, _, _ = dpo_loss(pc, pr, rc, rr, 0.1, "sigmoid", 0.0)
    smoothed, _, _ = dpo_loss(pc, pr, rc, rr, 0.1, "sigmoid", 0.1)
    assert float(plain.mean()) == pytest.approx(trl_loss, rel=1e-9)
    assert float(smoothed.mean()) != pytest.approx(trl_loss, rel=1e-6)


# --- log-probs, LM sums, class weights -------------------------------------------------------


def brute_force_logps(logits: torch.Tensor, labels: torch.Tensor) -> list[float]:
    out = []
    for b in range(logits.shape[0]):
        total = 0.0
        for t in range(1, logits.shape[1]):
            if labels[b, t] != -100:
                probs = torch.softmax(logits[b, t - 1].double(), dim=-1)
                total += math.log(float(probs[labels[b, t]]))
        out.append(total)
    return out


def make_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(3, 7, 11, generator=g)
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[0, :3] = -100  # prompt
    labels[1, 5:] = -100  # padding
    labels[2, 0] = 5  # position 0 is never predicted
    return logits, labels


def test_sequence_logps_matches_brute_force() -> None:
    logits, labels = make_batch()
    got = sequence_logps(logits, labels)
    assert got.shape == (3,) and got.dtype == torch.float32
    assert got.tolist() == pytest.approx(brute_force_logps(logits, labels), rel=1e-5)
    # bf16 logits are upcast, so the result stays close to the float32 one.
    got_bf16 = sequence_logps(logits.bfloat16(), labels)
    assert got_bf16.tolist() == pytest.approx(
        brute_force_logps(logits.bfloat16().float(), labels), rel=1e-5
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk_tokens", [2, 512])
def test_completion_logps_equals_full_logits(dtype: torch.dtype, chunk_tokens: int) -> None:
    """Values and gradients (to the hidden states and to the head) of the full-logits path."""
    _, labels = make_batch(2)
    labels[1] = -100  # a row with no completion token at all
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(3, 7, 5, generator=g).to(dtype)
    head = torch.nn.Linear(5, 11).to(dtype)
    grads = []
    for fast in (True, False):
        h = hidden.clone().requires_grad_(True)
        head.zero_grad()
        if fast:
            got = completion_logps(h, labels, head, chunk_tokens=chunk_tokens)
        else:
            got = sequence_logps(head(h), labels)
        (got * torch.tensor([1.0, 2.0, -3.0])).sum().backward()
        grads.append((got.detach(), h.grad.float(), head.weight.grad.float()))
    (fast_logps, fast_dh, fast_dw), (full_logps, full_dh, full_dw) = grads
    assert fast_logps.dtype == torch.float32 and fast_logps[1] == 0.0
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    torch.testing.assert_close(fast_logps, full_logps, **tol)
    torch.testing.assert_close(fast_dh, full_dh, **tol)
    torch.testing.assert_close(fast_dw, full_dw, **tol)
    with torch.no_grad():  # the reference pass: no graph at all
        assert not completion_logps(hidden, labels, head, chunk_tokens=chunk_tokens).requires_grad


def test_completion_logps_keeps_the_graph_without_completion_tokens() -> None:
    hidden = torch.randn(2, 4, 3, requires_grad=True)
    labels = torch.full((2, 4), -100)
    logps = completion_logps(hidden, labels, torch.nn.Linear(3, 6))
    assert logps.tolist() == [0.0, 0.0]
    logps.sum().backward()  # a batch of empty completions still back-propagates (zeros)
    assert hidden.grad is not None and not hidden.grad.any()


def test_causal_lm_loss_sums() -> None:
    logits, labels = make_batch(1)
    nll_sum, n_tokens = causal_lm_loss_sums(logits, labels)
    assert int(n_tokens) == (labels[:, 1:] != -100).sum().item() == 3 * 6 - 2 - 2
    assert float(nll_sum) == pytest.approx(-sum(brute_force_logps(logits, labels)), rel=1e-5)
    mean = F.cross_entropy(logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1))
    assert float(nll_sum / n_tokens) == pytest.approx(float(mean), rel=1e-5)
    # the labels are shifted, not the logits: the same gradient, none at the last position
    ours, reference = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    causal_lm_loss_sums(ours, labels)[0].backward()
    F.cross_entropy(reference[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1),
                    reduction="sum").backward()  # fmt: skip
    torch.testing.assert_close(ours.grad, reference.grad)
    assert not ours.grad[:, -1].any()


def test_class_weights_fixed_example() -> None:
    labels = torch.tensor([0, 0, 0, 1, 2, 2, 0, 0])  # N=8, C=3, counts 5, 1, 2
    weights = class_weights(labels, 3)
    assert weights.tolist() == pytest.approx([8 / 15, 8 / 3, 8 / 6], rel=1e-6)
    assert float((weights * torch.tensor([5.0, 1.0, 2.0])).sum()) == pytest.approx(8.0)


def test_class_weights_missing_class_raises() -> None:
    with pytest.raises(ValueError, match=r"\[2\]"):
        class_weights(torch.tensor([0, 1, 1, 3]), 4)
    with pytest.raises(ValueError, match="lie in"):
        class_weights(torch.tensor([0, 1, 4]), 4)
