"""Losses against hand-computed values, in-batch pairing, and the combined reward loss."""

from __future__ import annotations

import math

import pytest
import torch

from solireward.errors import ConfigError
from solireward.evaluation import pair_accuracy
from solireward.losses import (LossConfig, bce_loss, bt_loss, bt_wt_loss, btt_loss, in_batch_pairs, count_correct_pairs,
                               rao_kupper_loss, reward_loss)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def softplus(x: float) -> float:
    """−log σ(−x) = log(1 + e^x), the building block of every hand value below."""
    return math.log1p(math.exp(x))


def test_bt_loss_hand_values_margin_and_smoothing():
    # d = 0, m = 0: −log σ(0) = log 2 = 0.693147
    # d = 1, m = 3: −log σ(1 − 3) = log(1 + e^2) = 2.126928
    assert bt_loss(t(0.0, 1.0), margin=0.0).tolist() == pytest.approx([math.log(2), softplus(-1.0)])
    assert bt_loss(t(1.0), margin=3.0).item() == pytest.approx(2.126928, abs=1e-6)
    # smoothing ε = 0.1, d = 1, m = 0: 0.9·log(1 + e^−1) + 0.1·log(1 + e^1)
    #   = 0.9·0.313262 + 0.1·1.313262 = 0.413262
    assert bt_loss(t(1.0), label_smoothing=0.1).item() == pytest.approx(0.413262, abs=1e-6)
    # stable for large |d| (no inf/NaN): −log σ(−1000) ≈ 1000
    assert bt_loss(t(-1000.0)).item() == pytest.approx(1000.0)
    assert bt_loss(t(1000.0)).item() == pytest.approx(0.0, abs=1e-12)


def test_btt_loss_symmetric_and_minimal_at_zero():
    # d = 0, m = 3: 2·log(1 + e^3) = 2·3.048587 = 6.097174
    assert btt_loss(t(0.0), margin=3.0).item() == pytest.approx(6.097174, abs=1e-6)
    # d = 1, m = 3: log(1 + e^2) + log(1 + e^4) = 2.126928 + 4.018150 = 6.145078
    assert btt_loss(t(1.0), margin=3.0).item() == pytest.approx(6.145078, abs=1e-6)
    grid = torch.linspace(-4, 4, 81, dtype=torch.float64)
    values = btt_loss(grid, margin=3.0)
    assert grid[values.argmin()].item() == pytest.approx(0.0)
    assert torch.allclose(values, values.flip(0))


def test_bt_wt_loss_paper_form():
    # μ = 0.5, d = 2: 0.5·log(1 + e^−2) + 0.5·log(1 + e^2) = 0.5·(0.126928 + 2.126928) = 1.126928
    assert bt_wt_loss(t(2.0), 0.5).item() == pytest.approx(1.126928, abs=1e-6)
    # μ = 1 is plain BT without margin: log(1 + e^−2) = 0.126928
    assert bt_wt_loss(t(2.0), 1.0).item() == pytest.approx(bt_loss(t(2.0)).item())
    assert bt_wt_loss(t(2.0), torch.tensor(1.0, dtype=torch.float64)).item() == pytest.approx(0.126928, abs=1e-6)


def test_rao_kupper_hand_values_and_normalisation():
    # k = 5, d = 0: win −log σ(−log 5) = log(1 + 5) = 1.791759
    #              tie 2·log 6 − log(25 − 1) = log(36 / 24) = log 1.5 = 0.405465
    out = rao_kupper_loss(t(0.0, 0.0), torch.tensor([False, True]), k=5.0)
    assert out.tolist() == pytest.approx([math.log(6), math.log(1.5)])
    # P(win) + P(lose) + P(tie) = 1 for any d: exp(−win(d)) + exp(−win(−d)) + exp(−tie(d))
    d = t(-2.0, -0.3, 0.0, 0.7, 3.0)
    no, yes = torch.zeros(5, dtype=torch.bool), torch.ones(5, dtype=torch.bool)
    total = (-rao_kupper_loss(d, no)).exp() + (-rao_kupper_loss(-d, no)).exp() + (-rao_kupper_loss(d, yes)).exp()
    assert torch.allclose(total, torch.ones(5, dtype=torch.float64))
    with pytest.raises(ConfigError, match="> 1"):
        rao_kupper_loss(d, no, k=1.0)


def test_bce_loss_hand_values():
    # s = 0, t = 1: log 2; s = 2, t = 0: log(1 + e^2) = 2.126928
    assert bce_loss(t(0.0, 2.0), t(1.0, 0.0)).tolist() == pytest.approx([math.log(2), 2.126928], abs=1e-6)


def test_in_batch_pairs_binary_counts():
    # 3 Pass (0, 2, 4) and 2 Fail (1, 3): 3·2 = 6 win–lose pairs, C(3,2) = 3 win–tie pairs, no Fail×Fail
    q = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    win, lose, tie = in_batch_pairs(q)
    assert win.dtype == torch.long and tie.dtype == torch.bool
    wl = set(zip(win[~tie].tolist(), lose[~tie].tolist()))
    assert wl == {(p, f) for p in (0, 2, 4) for f in (1, 3)}
    assert set(zip(win[tie].tolist(), lose[tie].tolist())) == {(0, 2), (0, 4), (2, 4)}
    assert int(tie.sum()) == 3 and len(win) == 9


def test_in_batch_pairs_groups_and_graded_qualities():
    # groups: prompt A = {0, 1, 2}, prompt B = {3, 4}
    # A: Pass 0, 2 and Fail 1 -> win–lose (0,1), (2,1); tie (0,2).  B: Pass 3, Fail 4 -> (3,4)
    q = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    win, lose, tie = in_batch_pairs(q, torch.tensor([7, 7, 7, 9, 9]))
    pairs = set(zip(win.tolist(), lose.tolist(), tie.tolist()))
    assert pairs == {(0, 1, False), (2, 1, False), (0, 2, True), (3, 4, False)}
    win, lose, _ = in_batch_pairs(q, ["A", "A", "A", "B", "B"])  # any hashable ids
    assert set(zip(win.tolist(), lose.tolist())) == {(0, 1), (2, 1), (0, 2), (3, 4)}
    # graded: the higher quality wins; 0.5 vs 0.0 is Fail × Fail (skipped); 0.5 vs 0.5 likewise
    win, lose, tie = in_batch_pairs(torch.tensor([0.5, 1.0, 0.0, 0.5]))
    assert set(zip(win.tolist(), lose.tolist(), tie.tolist())) == {(1, 0, False), (1, 2, False), (1, 3, False)}
    with pytest.raises(ValueError, match="one entry per video"):
        in_batch_pairs(q, torch.tensor([0, 1]))


def _hand_batch():
    # scores [2, 0, 1], qualities [1, 0, 1] -> pairs: (0 beats 1, d = 2), (0 ties 2, d = 1), (2 beats 1, d = 1)
    scores = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
    qualities = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    return (scores, *in_batch_pairs(qualities), qualities)


def test_reward_loss_hand_values():
    scores, win, lose, tie, q = _hand_batch()
    assert sorted(zip(win.tolist(), lose.tolist(), tie.tolist())) == [(0, 1, False), (0, 2, True), (2, 1, False)]
    bt2, bt1 = softplus(-2.0), softplus(-1.0)  # 0.126928, 0.313262
    btt1 = softplus(-1.0) + softplus(1.0)      # 0.313262 + 1.313262 = 1.626524
    # three contributing pairs: (0.126928 + 0.313262 + 1.626524) / 3 = 0.688905
    cfg = LossConfig(reward_margin=0.0)
    loss, parts = reward_loss(scores, win, lose, tie, q, cfg)
    assert loss.item() == pytest.approx((bt2 + bt1 + btt1) / 3)
    assert parts["bt"].item() == pytest.approx((bt2 + bt1) / 2)
    assert parts["tie"].item() == pytest.approx(btt1)
    assert (int(parts["n_win_lose"]), int(parts["n_tie"]), int(parts["n_pairs"])) == (2, 1, 3)
    assert parts["correct"].item() == 2.0 and not any(p.requires_grad for p in parts.values())
    # ties off: they are dropped, mean over the 2 win–lose pairs = 0.220095
    loss, parts = reward_loss(scores, win, lose, tie, q, LossConfig(reward_margin=0.0, enable_btt_loss=False))
    assert loss.item() == pytest.approx((bt2 + bt1) / 2) and int(parts["n_pairs"]) == 2
    # BCE weight 0.5: mean of log(1+e^−2), log 2, log(1+e^−1) = 1.133337 / 3 = 0.377779, ×0.5 added
    bce = (softplus(-2.0) + math.log(2) + softplus(-1.0)) / 3
    loss, parts = reward_loss(scores, win, lose, tie, q, LossConfig(reward_margin=0.0, bce_loss_coeff=0.5))
    assert loss.item() == pytest.approx((bt2 + bt1 + btt1) / 3 + 0.5 * bce)
    assert parts["bce"].item() == pytest.approx(bce)
    # coefficients and margin: 2·BT(d − 3) on win–lose, 0.5·BTT(d, 3) on the tie
    cfg = LossConfig(bt_loss_coeff=2.0, btt_loss_coeff=0.5, reward_margin=3.0)
    loss, _ = reward_loss(scores, win, lose, tie, q, cfg)
    expected = (2 * softplus(1.0) + 2 * softplus(2.0) + 0.5 * (softplus(2.0) + softplus(4.0))) / 3
    assert loss.item() == pytest.approx(expected)


@pytest.mark.parametrize("tie_loss, tie_value", [
    ("bt_wt", 0.5 * softplus(-1.0) + 0.5 * softplus(1.0)),                           # μ = 0.5, d = 1
    ("rao_kupper", softplus(math.log(5) - 1) + softplus(1 + math.log(5)) - math.log(24)),  # k = 5, d = 1
])
def test_reward_loss_tie_variants(tie_loss, tie_value):
    scores, win, lose, tie, q = _hand_batch()
    loss, parts = reward_loss(scores, win, lose, tie, q, LossConfig(reward_margin=0.0, tie_loss=tie_loss))
    assert parts["tie"].item() == pytest.approx(tie_value)
    assert loss.item() == pytest.approx((softplus(-2.0) + softplus(-1.0) + tie_value) / 3)


@pytest.mark.parametrize("qualities", [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
def test_reward_loss_no_nan_with_empty_masks_and_gradient_flows(qualities):
    scores = torch.tensor([0.3, -0.2, 0.1], requires_grad=True)
    q = torch.tensor(qualities)
    win, lose, tie = in_batch_pairs(q)
    for cfg in (LossConfig(), LossConfig(enable_btt_loss=False), LossConfig(bce_loss_coeff=1.0)):
        loss, parts = reward_loss(scores, win, lose, tie, q, cfg)
        assert torch.isfinite(loss) and all(torch.isfinite(v).all() for v in parts.values())
        scores.grad = None
        loss.backward()
        assert scores.grad is not None and torch.isfinite(scores.grad).all()
    # all-Pass with ties: the BTT gradient pulls the tied scores together (d = 0.3 − (−0.2) > 0)
    if qualities == [1.0, 1.0, 1.0]:
        scores.grad = None
        reward_loss(scores, win, lose, tie, q, LossConfig())[0].backward()
        assert scores.grad[0] > 0 > scores.grad[1]


def test_gradient_descent_orders_win_above_lose():
    scores, win, lose, tie, q = _hand_batch()
    scores.data = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    loss, _ = reward_loss(scores, win, lose, tie, q, LossConfig())
    loss.backward()
    # the Fail video (1) is pushed down, the Pass videos (0, 2) up
    assert scores.grad[1] > 0 and scores.grad[0] < 0 and scores.grad[2] < 0


def test_pair_correct_counts_equal_scores_half_as_evaluation_does():
    scores = torch.tensor([1.0, 0.0, 0.0, 2.0])
    win, lose, tie = torch.tensor([0, 1, 3, 0]), torch.tensor([1, 2, 0, 3]), torch.tensor([False, False, False, True])
    # win–lose pairs: 1 > 0 right, 0 = 0 half, 2 > 1 right -> 2.5 / 3; the tie pair is ignored
    correct, count = count_correct_pairs(scores, win, lose, tie)
    assert (float(correct), int(count)) == (2.5, 3)
    d = (scores[win] - scores[lose])[~tie].numpy()
    assert pair_accuracy(d) == pytest.approx(float(correct) / int(count)) == pytest.approx(2.5 / 3)
    correct, count = count_correct_pairs(scores, win[3:], lose[3:], tie[3:])
    assert (float(correct), int(count)) == (0.0, 0)
    assert pair_accuracy((scores[win[3:]] - scores[lose[3:]])[~tie[3:]].numpy()) is None


@pytest.mark.parametrize("field, value", [("bt_loss_coeff", -1.0), ("bce_loss_coeff", -0.1),
                                          ("btt_loss_coeff", float("nan")), ("reward_margin", -1.0),
                                          ("label_smoothing", 0.5), ("rao_kupper_k", 1.0),
                                          ("tie_loss", "hinge")])
def test_loss_config_validation(field, value):
    with pytest.raises(ConfigError, match=field):
        LossConfig(**{field: value})


def test_loss_config_defaults_are_the_release_ones():
    cfg = LossConfig()
    assert (cfg.bt_loss_coeff, cfg.bce_loss_coeff, cfg.btt_loss_coeff, cfg.reward_margin,
            cfg.enable_btt_loss, cfg.tie_loss) == (1.0, 0.0, 1.0, 3.0, True, "btt")


def test_consistency_loss_is_the_squared_shift_in_score_std():
    from solireward.losses import consistency_loss

    scores = torch.tensor([0.0, 2.0, 4.0, 6.0])
    assert consistency_loss(scores, scores.clone()).item() == 0.0
    shifted = consistency_loss(scores, scores + scores.std() / 2)  # every twin half a std higher
    assert shifted.item() == pytest.approx(0.25)
    assert consistency_loss(10 * scores, 10 * scores + 5 * scores.std()).item() == pytest.approx(0.25)  # unit-free
    flat = torch.zeros(4)  # no spread yet: the std is floored, not a division by zero
    assert consistency_loss(flat, flat + 0.5).item() == pytest.approx(0.25)
    twins = scores.clone().requires_grad_(True)
    consistency_loss(scores.clone().requires_grad_(True), twins).backward()
    assert torch.all(twins.grad == 0)  # both sides identical: no pull
