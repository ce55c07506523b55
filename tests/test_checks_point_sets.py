"""The chapter-05 self-checks pass the reference, fail wrong answers with a useful message, flag stubs."""

from __future__ import annotations

import math

import pytest
import torch
from check_helpers import stub

from course_lib import checks, ops

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- reference solutions ---------------------------------------------------
def chamfer_naive(x, y):
    def one_way(a, b):
        total = 0.0
        for p in a:
            total = total + min(((p - q) ** 2).sum() for q in b)
        return total / len(a)

    return one_way(x, y) + one_way(y, x)


def chamfer_batched(x, y):
    d = ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)
    return d.min(2).values.mean(1) + d.min(1).values.mean(1)


def sinkhorn_plan(cost, eps, n_iter, *, log_weights=True):
    """Log-domain Sinkhorn (the exercise's answer); ``log_weights=False`` forgets log a, log b (a mistake)."""
    n, m = cost.shape
    la, lb = (-math.log(n), -math.log(m)) if log_weights else (0.0, 0.0)
    f = torch.zeros(n, dtype=cost.dtype)
    g = torch.zeros(m, dtype=cost.dtype)
    for _ in range(n_iter):
        f = -eps * torch.logsumexp((g[None, :] - cost) / eps + lb, dim=1)
        g = -eps * torch.logsumexp((f[:, None] - cost) / eps + la, dim=0)
    return torch.exp((f[:, None] + g[None, :] - cost) / eps + la + lb)


def sinkhorn_scaling(cost, eps, n_iter):
    """The scaling form u = a / (K v), v = b / (K^T u): right in exact arithmetic, underflows at small eps."""
    n, m = cost.shape
    k = torch.exp(-cost / eps)
    a = torch.full((n,), 1 / n, dtype=cost.dtype)
    b = torch.full((m,), 1 / m, dtype=cost.dtype)
    v = torch.ones(m, dtype=cost.dtype)
    for _ in range(n_iter):
        u = a / (k @ v)
        v = b / (k.T @ u)
    return u[:, None] * k * v[None, :]


def ae_loss(model, batch):
    return chamfer_batched(model(batch["input"]), batch["target"]).mean()




def test_references_pass():
    assert checks.check_chamfer_naive(chamfer_naive, quiet=True).passed
    assert checks.check_chamfer_batched(chamfer_batched, quiet=True).passed
    assert checks.check_chamfer_batched(lambda x, y: ops.chamfer_distance(x, y, reduction="none"), quiet=True).passed
    assert checks.check_sinkhorn_plan(sinkhorn_plan, quiet=True).passed
    assert checks.check_ae_loss(ae_loss, quiet=True).passed
    assert checks.check_ae_loss(lambda m, b: {"loss": ops.chamfer_distance(m(b["input"]), b["target"])},
                                quiet=True).passed


def test_stubs_are_not_implemented():
    for check in (checks.check_chamfer_naive, checks.check_chamfer_batched, checks.check_sinkhorn_plan,
                  checks.check_ae_loss):
        res = check(stub, quiet=True)
        assert res.status == "not_implemented" and "not implemented yet" in res.verdict()


def test_wrong_chamfers_are_explained():
    one_way = checks.check_chamfer_naive(lambda x, y: torch.cdist(x, y).pow(2).min(1).values.mean(), quiet=True)
    assert not one_way.passed and "one direction" in one_way.message
    plain = checks.check_chamfer_naive(
        lambda x, y: torch.cdist(x, y).min(1).values.mean() + torch.cdist(x, y).min(0).values.mean(), quiet=True)
    assert not plain.passed and "squared" in plain.message
    summed = checks.check_chamfer_naive(
        lambda x, y: torch.cdist(x, y).pow(2).min(1).values.sum() + torch.cdist(x, y).pow(2).min(0).values.sum(),
        quiet=True)
    assert not summed.passed and "mean" in summed.message
    averaged = checks.check_chamfer_batched(lambda x, y: chamfer_batched(x, y).mean(), quiet=True)
    assert not averaged.passed and "(B,)" in averaged.message
    detached = checks.check_chamfer_batched(lambda x, y: chamfer_batched(x, y).detach(), quiet=True)
    assert not detached.passed and "gradient" in detached.message
    crash = checks.check_chamfer_batched(lambda x, y: x @ y, quiet=True)
    assert crash.status == "error" and "RuntimeError" in crash.message


def test_wrong_sinkhorn_is_caught():
    # one half-iteration only: columns right, rows wrong
    def half(cost, eps, n_iter):
        n, m = cost.shape
        k = torch.exp(-cost / eps)
        v = (1 / m) / k.sum(0)
        return k * v[None, :]

    res = checks.check_sinkhorn_plan(half, quiet=True)
    assert not res.passed and "row sums" in res.message
    # the independent coupling is feasible but not optimal
    res = checks.check_sinkhorn_plan(lambda c, e, n: torch.full_like(c, 1 / c.numel()), quiet=True)
    assert not res.passed and "independent coupling" in res.message
    # the kernel without eps, and with the wrong sign
    res = checks.check_sinkhorn_plan(lambda c, e, n: sinkhorn_plan(c, 1.0, n), quiet=True)
    assert not res.passed and "eps = 1" in res.message
    res = checks.check_sinkhorn_plan(lambda c, e, n: sinkhorn_plan(-c, e, n), quiet=True)
    assert not res.passed and "maximised the cost" in res.message
    # the scaling form: exact in theory, but exp(-C / eps) underflows in float32 at eps = 1e-3
    res = checks.check_sinkhorn_plan(sinkhorn_scaling, quiet=True)
    assert not res.passed and "NaN" in res.message and "logsumexp" in res.message, res.message
    # ... and the scaling form in float64 does not get through either (exp(-1169) underflows there too)
    res = checks.check_sinkhorn_plan(lambda c, e, n: sinkhorn_scaling(c.double(), e, n).to(c.dtype), quiet=True)
    assert not res.passed and "underflows" in res.message, res.message
    # the log domain without the marginals' logarithms: the mass is N, not 1
    res = checks.check_sinkhorn_plan(lambda c, e, n: sinkhorn_plan(c, e, n, log_weights=False), quiet=True)
    assert not res.passed and "log a_i" in res.message, res.message
    # a float64 detour that returns float64 for a float32 cost
    res = checks.check_sinkhorn_plan(lambda c, e, n: sinkhorn_plan(c.double(), e, n), quiet=True)
    assert not res.passed and "keep the dtype" in res.message, res.message


def test_sinkhorn_hidden_part(monkeypatch):
    from check_helpers import hidden_results_on

    res, hid = hidden_results_on(monkeypatch, checks.check_sinkhorn_plan, sinkhorn_plan)
    assert res.passed and hid.passed, hid.verdict()

    def always_float32(c, e, n):  # passes the public part (whose float64 case does not look at the dtype)
        return sinkhorn_plan(c.float(), e, n)

    res, hid = hidden_results_on(monkeypatch, checks.check_sinkhorn_plan, always_float32)
    assert res.passed and hid.status == "failed" and "keep the dtype" in hid.message, hid.verdict()

    def in_place(c, e, n):  # divides the caller's cost matrix by eps
        c /= e
        return sinkhorn_plan(c * e, e, n)

    res, hid = hidden_results_on(monkeypatch, checks.check_sinkhorn_plan, in_place)
    assert res.passed and hid.status == "failed" and "in place" in hid.message, hid.verdict()


def test_wrong_ae_loss_is_caught():
    res = checks.check_ae_loss(lambda m, b: chamfer_batched(m(b["input"]), b["input"]).mean(), quiet=True)
    assert not res.passed and "target" in res.message
    res = checks.check_ae_loss(lambda m, b: chamfer_batched(m(b["input"]), b["target"]).sum(), quiet=True)
    assert not res.passed and "summed over the batch" in res.message
    res = checks.check_ae_loss(lambda m, b: chamfer_batched(m(b["input"]), b["target"])[0], quiet=True)
    assert not res.passed and "first cloud only" in res.message
    res = checks.check_ae_loss(lambda m, b: chamfer_batched(m(b["input"]), b["target"]).mean().detach(), quiet=True)
    assert not res.passed and "no gradient" in res.message
    res = checks.check_ae_loss(lambda m, b: chamfer_batched(m(b["input"]), b["target"]).mean() * float("nan"),
                               quiet=True)
    assert not res.passed and "NaN" in res.message


def test_more_wrong_batched_chamfers():
    d = lambda x, y: ((x[:, :, None] - y[:, None]) ** 2).sum(-1)  # noqa: E731
    res = checks.check_chamfer_batched(lambda x, y: d(x, y).min(2).values.mean(1), quiet=True)
    assert not res.passed and "one direction (x to y)" in res.message
    res = checks.check_chamfer_batched(lambda x, y: d(x, y).sqrt().min(2).values.mean(1)
                                       + d(x, y).sqrt().min(1).values.mean(1), quiet=True)
    assert not res.passed and "plain distances" in res.message
    res = checks.check_chamfer_batched(lambda x, y: d(x, y).min(2).values.sum(1) + d(x, y).min(1).values.sum(1),
                                       quiet=True)
    assert not res.passed and "summed over the points" in res.message
    res = checks.check_chamfer_batched(lambda x, y: torch.tensor([float(chamfer_naive(a, b).detach()) for a, b in zip(x, y)]),
                                       quiet=True)
    assert not res.passed and "gradient" in res.message


def test_hidden_parts_of_the_chamfer_checks(monkeypatch):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    assert checks.check_chamfer_naive(chamfer_naive, quiet=True).passed
    assert _core.RESULTS["check_chamfer_naive:hidden"].passed, _core.RESULTS["check_chamfer_naive:hidden"].verdict()
    assert checks.check_chamfer_batched(chamfer_batched, quiet=True).passed
    assert _core.RESULTS["check_chamfer_batched:hidden"].passed

    def squeezed(x, y):  # right on the public batch of 3, wrong shape on a batch of one
        return chamfer_batched(x, y).squeeze()

    def pooled(x, y):  # mixes the clouds: nearest neighbours searched over the whole batch at once
        xf, yf = x.reshape(1, -1, 3), y.reshape(1, -1, 3)
        d = ((xf[:, :, None] - yf[:, None]) ** 2).sum(-1)
        per_x = d.min(2).values.reshape(x.shape[0], -1).mean(1)
        per_y = d.min(1).values.reshape(y.shape[0], -1).mean(1)
        return per_x + per_y

    assert checks.check_chamfer_batched(squeezed, quiet=True).passed
    assert "has shape" in _core.RESULTS["check_chamfer_batched:hidden"].message
    # (pooled is wrong on the public data already: its clouds are close together)
    assert not checks.check_chamfer_batched(pooled, quiet=True).passed
    checks.check_chamfer_batched(lambda x, y: ops.chamfer_distance(x, y, reduction="none"), quiet=True)
    assert "delegated to course_lib.ops.chamfer.chamfer_distance" in _core.RESULTS["check_chamfer_batched:hidden"].message
