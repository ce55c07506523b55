"""The chapter-02 self-checks pass the reference, fail wrong answers, and flag stubs."""

from __future__ import annotations

import pytest
import torch
from check_helpers import hidden_results_on, stub
from torch import nn

from course_lib import checks, ops

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- reference solutions (independent of course_lib where it matters) ------
def pointnet_encode(points, layers):
    x = points
    for i, layer in enumerate(layers):
        x = layer(x)
        if i < len(layers) - 1:
            x = torch.relu(x)
    return x.max(dim=1)


def fps(x, n, start_idx=0):
    B, N, _ = x.shape
    out = torch.zeros(B, n, dtype=torch.long)
    mins = torch.full((B, N), float("inf"))
    far = torch.full((B,), start_idx, dtype=torch.long)
    for i in range(n):
        out[:, i] = far
        d = ((x - x[torch.arange(B), far][:, None]) ** 2).sum(-1)
        mins = torch.minimum(mins, d)
        far = mins.argmax(-1)
    return out


def ball_query(x, centers, radius, k):
    B, M, N = x.shape[0], centers.shape[1], x.shape[1]
    out = torch.zeros(B, M, k, dtype=torch.long)
    for b in range(B):
        for m in range(M):
            inside = [j for j in range(N) if ((x[b, j] - centers[b, m]) ** 2).sum() <= radius**2][:k]
            out[b, m] = torch.tensor(inside + [inside[0]] * (k - len(inside)))
    return out




def test_references_pass():
    assert checks.check_pointnet_encode(pointnet_encode, quiet=True).passed
    assert checks.check_farthest_point_sampling(fps, quiet=True).passed
    assert checks.check_ball_query(ball_query, quiet=True).passed
    # and the library functions themselves
    assert checks.check_farthest_point_sampling(ops.farthest_point_sampling, quiet=True).passed
    assert checks.check_ball_query(ops.ball_query, quiet=True).passed


def test_stubs_are_not_implemented():
    for check in (checks.check_pointnet_encode, checks.check_farthest_point_sampling, checks.check_ball_query,
                  lambda fn, quiet: checks.check_pointnet_training(_StubModel(), _Tiny(), *_data(), profile="laptop",
                                                                   quiet=quiet)):
        res = check(stub, quiet=True)
        assert res.status == "not_implemented" and "not implemented yet" in res.verdict()


def test_pointnet_encode_wrong_answers():
    def mean_pool(points, layers):
        g, i = pointnet_encode(points, layers)
        x = points
        for j, layer in enumerate(layers):
            x = layer(x)
            if j < len(layers) - 1:
                x = torch.relu(x)
        return x.mean(dim=1), i

    res = checks.check_pointnet_encode(mean_pool, quiet=True)
    assert res.status == "failed" and "max" in res.message

    def relu_last(points, layers):
        x = points
        for layer in layers:
            x = torch.relu(layer(x))
        return x.max(dim=1)

    res = checks.check_pointnet_encode(relu_last, quiet=True)
    assert res.status == "failed" and "ReLU after the LAST" in res.message

    def no_idx(points, layers):
        return pointnet_encode(points, layers).values, torch.zeros(points.shape[0], 24, dtype=torch.long)

    res = checks.check_pointnet_encode(no_idx, quiet=True)
    assert res.status == "failed" and "critical_idx" in res.message

    def single_value(points, layers):
        return pointnet_encode(points, layers).values

    assert checks.check_pointnet_encode(single_value, quiet=True).status == "failed"

    def crash(points, layers):
        return points @ torch.zeros(5, 5)

    res = checks.check_pointnet_encode(crash, quiet=True)
    assert res.status == "error" and "RuntimeError" in res.message


def test_fps_wrong_answers():
    def nearest_not_min(x, n, start_idx=0):  # distance to the LAST pick only
        B, N, _ = x.shape
        out = torch.zeros(B, n, dtype=torch.long)
        far = torch.full((B,), start_idx, dtype=torch.long)
        for i in range(n):
            out[:, i] = far
            d = ((x - x[torch.arange(B), far][:, None]) ** 2).sum(-1)
            d[torch.arange(B)[:, None], out[:, : i + 1]] = -1
            far = d.argmax(-1)
        return out

    res = checks.check_farthest_point_sampling(nearest_not_min, quiet=True)
    assert res.status == "failed" and "farther" in res.message

    def random_pick(x, n, start_idx=0):
        return torch.stack([torch.randperm(x.shape[1])[:n] for _ in range(x.shape[0])])

    assert checks.check_farthest_point_sampling(random_pick, quiet=True).status == "failed"

    def float_idx(x, n, start_idx=0):
        return fps(x, n, start_idx).float()

    res = checks.check_farthest_point_sampling(float_idx, quiet=True)
    assert res.status == "failed" and "integer" in res.message

    def ignores_start(x, n, start_idx=0):
        return fps(x, n, 0)

    res = checks.check_farthest_point_sampling(ignores_start, quiet=True)
    assert res.status == "failed" and "start_idx=7" in res.message


def _inside(x, centers, radius):
    return ((centers[:, :, None] - x[:, None]) ** 2).sum(-1) < radius**2  # (B, M, N)


def _pad(lists, k):
    return torch.tensor([[row[:k] + [row[0]] * (k - len(row[:k])) for row in b] for b in lists])


def last_k(x, centers, radius, k):
    ins = _inside(x, centers, radius)
    return _pad([[m.nonzero().flatten().tolist()[-k:] for m in b] for b in ins], k)


def random_k(x, centers, radius, k):
    ins = _inside(x, centers, radius)
    g = torch.Generator().manual_seed(0)
    out = []
    for b in ins:
        rows = []
        for m in b:
            inside = m.nonzero().flatten()
            rows.append(sorted(inside[torch.randperm(len(inside), generator=g)][:k].tolist()))
        out.append(rows)
    return _pad(out, k)


def nearest_k_resorted(x, centers, radius, k):  # kNN capped at the radius, then sorted by index
    d = ((centers[:, :, None] - x[:, None]) ** 2).sum(-1)
    out = []
    for b in range(x.shape[0]):
        rows = []
        for m in range(centers.shape[1]):
            order = [j for j in d[b, m].argsort().tolist() if d[b, m, j] < radius**2][:k]
            rows.append(sorted(order))
        out.append(rows)
    return _pad(out, k)


def test_ball_query_data_has_sparse_and_dense_balls():
    from course_lib.checks import encoders as ce

    x, centers = ce._ball_query_data()
    counts = _inside(x, centers, 0.45).sum(-1)
    assert int(counts[:, :4].min()) >= 2 and int(counts[:, :4].max()) <= 5  # fewer than k = 6
    assert int(counts[:, 4:].min()) > 6  # more than k
    # in the dense balls the first 6 by index are not the 6 nearest (else nearest-k could pass)
    d = ((centers[:, :, None] - x[:, None]) ** 2).sum(-1)
    for b in range(2):
        for m in (4, 5):
            first = _inside(x, centers, 0.45)[b, m].nonzero().flatten()[:6].tolist()
            assert set(first) != set(d[b, m].argsort()[:6].tolist())


@pytest.mark.parametrize("wrong, words", [
    (last_k, ["LAST k"]),
    (random_k, ["not the first k points"]),
    (nearest_k_resorted, ["NEAREST"]),
    (lambda x, c, r, k: ((c[:, :, None] - x[:, None]) ** 2).sum(-1).topk(k, largest=False).indices,
     ["outside the ball"]),  # plain kNN: not capped at the radius
    (lambda x, c, r, k: ball_query(x, c, r, k).flip(-1), ["another order"]),
    (lambda x, c, r, k: ball_query(x, c, r**0.5, k), ["radius**2"]),
    (lambda x, c, r, k: ball_query(x, c, r, k).float(), ["integers"]),
    (lambda x, c, r, k: ball_query(x, c, r, k)[..., :-1], ["shape"]),
])
def test_ball_query_wrong_answers(wrong, words):
    res = checks.check_ball_query(wrong, quiet=True)
    assert res.status == "failed", res.verdict()
    for w in words:
        assert w in res.message, res.message


def test_ball_query_pad_mistakes():
    def pad_zero(x, centers, radius, k):
        out = ball_query(x, centers, radius, k)
        first = out[..., :1]
        dup = (out == first) & (torch.arange(k) > 0)
        return torch.where(dup, torch.zeros_like(out), out)

    res = checks.check_ball_query(pad_zero, quiet=True)
    assert res.status == "failed" and "index 0" in res.message, res.message

    def pad_last(x, centers, radius, k):
        ins = _inside(x, centers, radius)
        rows = [[m.nonzero().flatten().tolist()[:k] for m in b] for b in ins]
        return torch.tensor([[r + [r[-1]] * (k - len(r)) for r in b] for b in rows])

    res = checks.check_ball_query(pad_last, quiet=True)
    assert res.status == "failed" and "FIRST point found" in res.message, res.message


def test_pointnet_encode_more_wrong_answers():
    def weights_only(points, layers):  # skips whatever the layer does besides its linear map
        x = points
        for i, layer in enumerate(layers):
            x = torch.nn.functional.linear(x, layer.weight, layer.bias)
            if i < len(layers) - 1:
                x = torch.relu(x)
        return x.max(dim=1)

    res = checks.check_pointnet_encode(weights_only, quiet=True)
    assert res.status == "failed" and "layer(x)" in res.message, res.message

    def no_relu(points, layers):
        x = points
        for layer in layers:
            x = layer(x)
        return x.max(dim=1)

    res = checks.check_pointnet_encode(no_relu, quiet=True)
    assert res.status == "failed" and "no ReLU between" in res.message, res.message

    def max_over_channels(points, layers):
        x = points
        for i, layer in enumerate(layers):
            x = layer(x)
            if i < len(layers) - 1:
                x = torch.relu(x)
        return x.max(dim=-1)

    res = checks.check_pointnet_encode(max_over_channels, quiet=True)
    assert res.status == "failed" and "over the points (dim=1)" in res.message, res.message


def test_pointnet_encode_accepts_module_layers():
    """The reference calls layer(x), so Linear + BatchNorm blocks work (the lab trains with them)."""
    assert checks.check_pointnet_encode(pointnet_encode, quiet=True).passed


# --- the trained-model comparison of lab 02 --------------------------------------
def _data(n=40):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    points = torch.randn(n, 16, 3, generator=g) * 0.1
    points[..., 0] += labels[:, None].float() * 2 - 1  # class = sign of x
    return points, labels


class _Tiny(nn.Module):
    """A perfect classifier of _data: the sign of the mean x."""

    def __init__(self, flip=False):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(-1.0 if flip else 1.0))

    def forward(self, points):
        m = points[..., 0].mean(1) * self.w
        return torch.stack([-m, m], dim=1)


class _StubModel(_Tiny):
    def forward(self, points):
        raise NotImplementedError()


def test_pointnet_training_check():
    points, labels = _data()
    res = checks.check_pointnet_training(_Tiny(), _Tiny(), points, labels, profile="laptop", quiet=True)
    assert res.passed and "1.000" in res.verdict()
    # a model that learned nothing useful (here: the opposite rule) against a perfect reference
    res = checks.check_pointnet_training(_Tiny(flip=True), _Tiny(), points, labels, profile="laptop", quiet=True)
    assert res.status == "failed" and "a gap this large means a bug" in res.message and "0.000" in res.message

    class Constant(_Tiny):  # always the same class: chance accuracy
        def forward(self, points):
            return torch.tensor([[1.0, 0.0]]).expand(points.shape[0], 2) + 0 * self.w

    res = checks.check_pointnet_training(Constant(), _Tiny(), points, labels, profile="laptop", quiet=True)
    assert res.status == "failed" and "0.500" in res.message
    # in the ci profile the accuracies are reported, not compared
    res = checks.check_pointnet_training(Constant(), _Tiny(), points, labels, profile="ci", quiet=True)
    assert res.passed and "not compared" in res.verdict()
    # wrong inputs are named
    res = checks.check_pointnet_training(lambda p: p, _Tiny(), points, labels, profile="laptop", quiet=True)
    assert res.status == "failed" and "nn.Module" in res.message


@pytest.mark.parametrize("profile", ["ci", "laptop"])
def test_lab_02_student_pointnet_is_the_library_pointnet(profile):
    """With the lab's solution of exercise 1, lab 02's MyPointNet computes exactly what course_lib's
    PointNet classifier of the profile computes (same layers, BatchNorm, momentum, head), so that a
    correct answer trained with the same recipe reaches the library's accuracy."""
    import ast
    from pathlib import Path

    from course_lib import config
    from course_lib.data import CATEGORIES
    from course_lib.experiments import encoders as E

    path = Path(__file__).resolve().parents[1] / "nbsrc" / "solutions" / "02_encoders_lab.py"
    ns = {"torch": torch, "nn": nn, "S": config.sizes(profile, prefix="ch02.")}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in ("PointBatchNorm", "MyPointNet",
                                                                                "pointnet_encode"):
            exec(compile(ast.Module([node], []), str(path), "exec"), ns)
    torch.manual_seed(0)
    mine = ns["MyPointNet"](len(CATEGORIES))
    ref = E.build_classifier("pointnet", profile=profile)
    assert [tuple(p.shape) for p in mine.state_dict().values()] == [tuple(p.shape) for p in ref.state_dict().values()]
    assert ([m.momentum for m in mine.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            == [m.momentum for m in ref.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)])
    mine.load_state_dict(dict(zip(mine.state_dict().keys(), ref.state_dict().values())))
    x = torch.randn(4, 64, 3, generator=torch.Generator().manual_seed(1))
    mine.eval()
    ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(mine(x), ref(x), atol=1e-5, rtol=1e-5)
    mine.train()
    mine.apply(lambda m: m.eval() if isinstance(m, nn.Dropout) else None)
    ref.train()
    ref.apply(lambda m: m.eval() if isinstance(m, nn.Dropout) else None)
    with torch.no_grad():  # training mode too: batch statistics over the same (batch, points)
        torch.testing.assert_close(mine(x), ref(x), atol=1e-4, rtol=1e-4)


# --- one set-abstraction level ------------------------------------------------------
def _gather(x, idx):
    b = torch.arange(x.shape[0]).reshape(-1, *([1] * (idx.dim() - 1)))
    return x[b, idx]


def set_abstraction(x, n_centres, radius, k, mlp, *, local="minus", pool="max", group=None, centres_fn=None):
    centres = _gather(x, fps(x, n_centres)) if centres_fn is None else centres_fn(x, n_centres)
    groups = (group or ball_query)(x, centres, radius, k)
    nb = _gather(x, groups)
    rel = {"minus": nb - centres[:, :, None], "abs": nb, "rev": centres[:, :, None] - nb,
           "scaled": (nb - centres[:, :, None]) / radius}[local]
    h = mlp(rel)
    return centres, (h.max(dim=2).values if pool == "max" else h.mean(dim=2))


def _knn(x, centers, radius, k):
    return ((centers[:, :, None] - x[:, None]) ** 2).sum(-1).topk(k, largest=False).indices


def test_set_abstraction_reference_and_stub():
    assert checks.check_set_abstraction(set_abstraction, quiet=True).passed
    assert checks.check_set_abstraction(stub, quiet=True).status == "not_implemented"


@pytest.mark.parametrize("wrong, words", [
    (lambda *a: set_abstraction(*a, local="abs"), ["absolute coordinates"]),
    (lambda *a: set_abstraction(*a, local="rev"), ["centre - neighbour"]),
    (lambda *a: set_abstraction(*a, local="scaled"), ["divided the local coordinates"]),
    (lambda *a: set_abstraction(*a, pool="mean"), ["averaged over the neighbours"]),
    (lambda *a: set_abstraction(*a, group=_knn), ["k NEAREST"]),
    (lambda *a: set_abstraction(*a, centres_fn=lambda x, m: x[:, :m]), ["farthest point sampling"]),
    (lambda x, m, r, k, mlp: (set_abstraction(x, m, r, k, mlp)[0],
                              mlp(_gather(x, ball_query(x, set_abstraction(x, m, r, k, mlp)[0], r, k))
                                  - set_abstraction(x, m, r, k, mlp)[0][:, :, None]).max(dim=1).values),
     ["over the centres"]),
    (lambda *a: (set_abstraction(*a)[0], set_abstraction(*a)[1].detach()), ["no gradient"]),
    (lambda *a: set_abstraction(*a)[1], ["pair"]),
])
def test_set_abstraction_wrong_answers(wrong, words):
    res = checks.check_set_abstraction(wrong, quiet=True)
    assert res.status == "failed", res.verdict()
    for w in words:
        assert w in res.message, res.message


# --- hidden parts (the grader's) ----------------------------------------------------
def ball_query_open(x, centers, radius, k):
    """The lab's solution: vectorised, strictly inside the ball."""
    n = x.shape[1]
    d2 = ((centers[:, :, None] - x[:, None]) ** 2).sum(-1)
    idx = torch.arange(n).expand_as(d2)
    idx = torch.where(d2 < radius**2, idx, torch.full_like(idx, n)).sort(dim=-1).values[..., :k]
    return torch.where(idx == n, idx[..., :1], idx)


_hidden = hidden_results_on  # (public result, hidden result)


def test_hidden_parts_pass_the_references(monkeypatch):
    for check, answer in ((checks.check_pointnet_encode, pointnet_encode), (checks.check_farthest_point_sampling, fps),
                          (checks.check_ball_query, ball_query_open),
                          (checks.check_set_abstraction, lambda *a: set_abstraction(*a, group=ball_query_open))):
        res, hid = _hidden(monkeypatch, check, answer)
        assert res.passed and hid.passed, hid.verdict()


def test_hidden_parts_catch_a_squeeze(monkeypatch):
    def encode_squeezed(points, layers):
        g, idx = pointnet_encode(points, layers)
        return g.squeeze(), idx.squeeze()

    for check, answer in ((checks.check_pointnet_encode, encode_squeezed),
                          (checks.check_farthest_point_sampling, lambda x, n, start_idx=0: fps(x, n, start_idx).squeeze()),
                          (checks.check_set_abstraction,
                           lambda *a: tuple(t.squeeze() for t in set_abstraction(*a, group=ball_query_open)))):
        res, hid = _hidden(monkeypatch, check, answer)
        assert res.passed, res.verdict()
        assert hid.status == "failed" and ".squeeze()" in hid.message, hid.verdict()


def test_hidden_ball_query_catches_a_closed_ball(monkeypatch):
    res, hid = _hidden(monkeypatch, checks.check_ball_query, ball_query)  # the loop above keeps d2 <= radius**2
    assert res.passed
    assert hid.status == "failed" and "strictly" in hid.message, hid.verdict()



def test_hidden_fps_catches_a_start_that_ignores_ties_order(monkeypatch):
    def last_max(x, n, start_idx=0):  # argmax of the flipped row: ties go to the HIGHEST index
        B, N, _ = x.shape
        out = torch.zeros(B, n, dtype=torch.long)
        mins = torch.full((B, N), float("inf"), dtype=x.dtype)
        far = torch.full((B,), start_idx, dtype=torch.long)
        for i in range(n):
            out[:, i] = far
            mins = torch.minimum(mins, ((x - x[torch.arange(B), far][:, None]) ** 2).sum(-1))
            far = N - 1 - mins.flip(1).argmax(-1)
        return out

    res, hid = _hidden(monkeypatch, checks.check_farthest_point_sampling, last_max)
    assert res.passed  # random clouds have no ties
    assert hid.status == "failed" and "lowest index wins" in hid.message, hid.verdict()


def test_hidden_parts_flag_the_library(monkeypatch):
    res, hid = _hidden(monkeypatch, checks.check_farthest_point_sampling,
                       lambda x, n, start_idx=0: ops.farthest_point_sampling(x, n, start_idx=start_idx))
    assert res.passed
    assert "delegated to course_lib.ops.sampling.farthest_point_sampling" in hid.message, hid.verdict()
    res, hid = _hidden(monkeypatch, checks.check_ball_query, lambda x, c, r, k: ops.ball_query(x, c, r, k))
    assert res.passed
    assert "delegated to course_lib.ops.sampling.ball_query" in hid.message, hid.verdict()


def test_hidden_pointnet_training(monkeypatch):
    from course_lib.checks import _core

    points, labels = _data()
    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    assert checks.check_pointnet_training(_Tiny(), _Tiny(), points, labels, profile="laptop", quiet=True).passed
    assert _core.RESULTS["check_pointnet_training:hidden"].passed, _core.RESULTS["check_pointnet_training:hidden"]

    class FirstPoints(_Tiny):  # depends on the order of the points: right on the data, not permutation invariant
        def forward(self, points):
            return super().forward(points) + 0.1 * points[:, :1, :2].sum(1)

    class Squeezed(_Tiny):
        def forward(self, points):
            return super().forward(points).squeeze()

    for model, words in ((FirstPoints(), "shuffling"), (Squeezed(), ".squeeze()")):
        assert checks.check_pointnet_training(model, _Tiny(), points, labels, profile="laptop", quiet=True).passed
        hid = _core.RESULTS["check_pointnet_training:hidden"]
        assert hid.status == "failed" and words in hid.message, hid.verdict()


# --- EdgeConv and the T-Net orthogonality regulariser ----------------------------------
def edge_features(x, k, *, self_point=True, space=None, form="minus", mixed=False, largest=False):
    """A vectorised reference (the check's own is a loop), and its plausible wrong variants."""
    B, N, C = x.shape
    s = x if space is None else x[..., :space]
    if mixed:  # neighbours searched among every cloud of the batch
        d = torch.cdist(s.double(), s.double().reshape(1, B * N, -1).expand(B, -1, -1))
        pool = x.reshape(1, B * N, C).expand(B, -1, -1)
    else:
        d = torch.cdist(s.double(), s.double())
        pool = x
    if not self_point:
        d = d + torch.where(torch.eye(N, dtype=torch.bool), float("inf"), 0.0)
    idx = d.topk(k, dim=-1, largest=largest).indices
    nb = pool[torch.arange(B)[:, None, None], idx]
    xi = x[:, :, None].expand_as(nb)
    first, second = {"minus": (nb - xi, xi), "xj": (nb, xi), "swap": (xi, nb - xi), "rev": (xi - nb, xi)}[form]
    return torch.cat([first, second], -1)


def edge_conv(x, k, linear, pool="max", **kw):
    h = linear(edge_features(x, k, **kw))
    return h.max(dim=2).values if pool == "max" else h.mean(dim=2)


def orthogonality_loss(A, *, square=True, reduce="mean", sign=-1.0, product="aat", entries="sum"):
    eye = torch.eye(A.shape[-1], dtype=A.dtype)
    p = {"aat": A @ A.transpose(1, 2), "ata": A.transpose(1, 2) @ A, "aa": A @ A, "a": A}[product]
    per = (eye + sign * p).pow(2)
    per = per.sum(dim=(1, 2)) if entries == "sum" else per.mean(dim=(1, 2))
    if not square:
        per = per.sqrt()
    return per.mean() if reduce == "mean" else per.sum()


def test_edge_and_orthogonality_references_pass():
    assert checks.check_edge_features(edge_features, quiet=True).passed
    assert checks.check_edge_features(lambda x, k: edge_features(x, k).flip(2), quiet=True).passed  # any order
    assert checks.check_edge_conv(edge_conv, quiet=True).passed
    assert checks.check_orthogonality_loss(orthogonality_loss, quiet=True).passed
    # A^T A is not a mistake: for square A, I - A A^T and I - A^T A have the same Frobenius norm
    assert checks.check_orthogonality_loss(lambda A: orthogonality_loss(A, product="ata"), quiet=True).passed
    A = torch.randn(3, 5, 5, dtype=torch.float64)
    assert torch.allclose(orthogonality_loss(A), orthogonality_loss(A, product="ata"))
    from course_lib.models import encoders as E

    assert torch.allclose(E.orthogonality_regularizer(A), orthogonality_loss(A))  # the course's convention


def test_edge_and_orthogonality_stubs_are_not_implemented():
    for check in (checks.check_edge_features, checks.check_edge_conv, checks.check_orthogonality_loss):
        res = check(stub, quiet=True)
        assert res.status == "not_implemented", res.verdict()


@pytest.mark.parametrize("wrong, words", [
    (lambda x, k: edge_features(x, k, form="xj"), ["[x_j, x_i]"]),
    (lambda x, k: edge_features(x, k, form="swap"), ["[x_i, x_j - x_i]", "order [x_j - x_i, x_i]"]),
    (lambda x, k: edge_features(x, k, form="rev"), ["x_i - x_j"]),
    (lambda x, k: edge_features(x, k, self_point=False), ["left each point out", "itself"]),
    (lambda x, k: edge_features(x, k, space=3), ["first 3 channels", "all C = 5"]),
    (lambda x, k: edge_features(x, k, mixed=True), ["another cloud of the batch"]),
    (lambda x, k: edge_features(x, k, largest=True), ["FARTHEST"]),
    (lambda x, k: edge_features(x, k)[..., : x.shape[-1]], ["(B, N, k, C)", "2C"]),
    (lambda x, k: edge_features(x, k).detach(), ["no gradient"]),
    (lambda x, k: edge_features(x, k).double(), ["dtype"]),
])
def test_edge_features_wrong_answers(wrong, words):
    res = checks.check_edge_features(wrong, quiet=True)
    assert res.status == "failed", res.verdict()
    for w in words:
        assert w in res.message, res.message


@pytest.mark.parametrize("wrong, words", [
    (lambda x, k, lin: edge_conv(x, k, lin, pool="mean"), ["averaged"]),
    (lambda x, k, lin: edge_conv(x, k, lin, form="xj"), ["[x_j, x_i]"]),
    (lambda x, k, lin: edge_conv(x, k, lin, self_point=False), ["itself"]),
    (lambda x, k, lin: edge_conv(x, k, lin, space=3), ["first 3 channels"]),
    (lambda x, k, lin: lin(edge_features(x, k)), ["(B, N, k, C')"]),
    (lambda x, k, lin: lin(edge_features(x, k)).max(dim=1).values, ["over the points"]),
    (lambda x, k, lin: edge_conv(x, k, lin).detach(), ["no gradient"]),
])
def test_edge_conv_wrong_answers(wrong, words):
    res = checks.check_edge_conv(wrong, quiet=True)
    assert res.status == "failed", res.verdict()
    for w in words:
        assert w in res.message, res.message


@pytest.mark.parametrize("wrong, words", [
    (lambda A: orthogonality_loss(A, square=False), ["Frobenius norm", "SQUARE"]),
    (lambda A: orthogonality_loss(A, reduce="sum"), ["summed over the batch"]),
    (lambda A: orthogonality_loss(A, sign=1.0), ["I + A A^T"]),
    (lambda A: orthogonality_loss(A, entries="mean"), ["averaged over the K x K entries"]),
    (lambda A: orthogonality_loss(A, product="aa"), ["A A (no transpose)"]),
    (lambda A: orthogonality_loss(A, product="a"), ["||I - A||"]),
    (lambda A: (torch.eye(A.shape[-1]) - A @ A.transpose(1, 2)).pow(2).sum(dim=(1, 2)), ["one value per matrix"]),
    (lambda A: orthogonality_loss(A).detach(), ["no gradient"]),
])
def test_orthogonality_loss_wrong_answers(wrong, words):
    res = checks.check_orthogonality_loss(wrong, quiet=True)
    assert res.status == "failed", res.verdict()
    for w in words:
        assert w in res.message, res.message


def test_edge_and_orthogonality_hidden_parts(monkeypatch):
    from course_lib.models import encoders as E

    for check, answer in ((checks.check_edge_features, edge_features), (checks.check_edge_conv, edge_conv),
                          (checks.check_orthogonality_loss, orthogonality_loss)):
        res, hid = _hidden(monkeypatch, check, answer)
        assert res.passed and hid.passed, hid.verdict()
    # a squeeze passes the public part (B = 2) and fails the hidden one (B = 1)
    res, hid = _hidden(monkeypatch, checks.check_edge_features, lambda x, k: edge_features(x, k).squeeze())
    assert res.passed and hid.status == "failed" and ".squeeze()" in hid.message, hid.verdict()
    # float32 forced: fails the hidden float64 cases
    res, hid = _hidden(monkeypatch, checks.check_orthogonality_loss, lambda A: orthogonality_loss(A.float()))
    assert res.passed and hid.status == "failed" and "dtype" in hid.message, hid.verdict()

    def in_place(A):  # modifies its input
        A.mul_(1.0 + 1e-3)
        return orthogonality_loss(A.clone() / (1.0 + 1e-3))

    res, hid = _hidden(monkeypatch, checks.check_orthogonality_loss, lambda A: orthogonality_loss(A.detach().clone())
                       if A.requires_grad else in_place(A))
    assert hid.status == "failed", hid.verdict()

    # the library itself is flagged
    def via_library(x, k):
        idx = E._knn_idx(x, k)
        return torch.cat([ops.gather_points(x, idx) - x[:, :, None], x[:, :, None].expand(-1, -1, k, -1)], -1)

    res, hid = _hidden(monkeypatch, checks.check_edge_features, via_library)
    assert res.passed
    assert "delegated to course_lib.models.encoders._knn_idx" in hid.message, hid.verdict()
    res, hid = _hidden(monkeypatch, checks.check_orthogonality_loss, E.orthogonality_regularizer)
    assert res.passed
    assert "delegated to course_lib.models.encoders.orthogonality_regularizer" in hid.message, hid.verdict()


# --- ResNet's residual block ------------------------------------------------------------
class ResidualBlock(nn.Module):
    """A reference, and its plausible wrong variants (``variant``, ``skip``: "right" / "never" / "always")."""

    variant = "right"
    skip_rule = "right"

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        project = {"right": stride != 1 or cin != cout, "never": False, "always": True}[self.skip_rule]
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if project
                     else nn.Identity())

    def forward(self, x):
        v, relu = self.variant, torch.relu
        if v == "bn_after_relu":
            y = self.bn1(relu(self.conv1(x)))
        elif v == "no_inner_relu":
            y = self.bn1(self.conv1(x))
        else:
            y = relu(self.bn1(self.conv1(x)))
        y = self.conv2(y) if v == "no_bn2" else self.bn2(self.conv2(y))
        skip = x if v == "x_not_skip" else self.skip(x)
        if v == "no_skip":
            return relu(y)
        if v == "no_final_relu":
            return y + skip
        if v == "relu_before_sum":
            return relu(y) + skip
        if v == "double_relu":
            return relu(relu(y) + skip)
        if v == "detach":
            return relu(y + skip).detach()
        if v == "in_place":  # adds into x itself when the skip is the identity
            if isinstance(self.skip, nn.Identity):
                x += y
                return relu(x)
        return relu(y + skip)


def _block(variant="right", skip_rule="right"):
    return type(f"Block_{variant}_{skip_rule}", (ResidualBlock,), {"variant": variant, "skip_rule": skip_rule})


def test_residual_block_reference_passes_and_stub_is_flagged(monkeypatch):
    res, hid = _hidden(monkeypatch, checks.check_residual_block, ResidualBlock)
    assert res.passed and hid.passed, (res.verdict(), hid.verdict())

    class Stub(nn.Module):
        def __init__(self, cin, cout, stride=1):
            super().__init__()
            raise NotImplementedError()

    assert checks.check_residual_block(Stub, quiet=True).status == "not_implemented"


@pytest.mark.parametrize("variant, skip_rule, words", [
    ("no_skip", "right", ["left out the skip connection"]),
    ("no_final_relu", "right", ["no ReLU after the sum"]),
    ("relu_before_sum", "right", ["before adding the skip"]),
    ("double_relu", "right", ["before the sum as well as after"]),
    ("bn_after_relu", "right", ["BatchNorm comes before the ReLU"]),
    ("no_inner_relu", "right", ["ReLU between its two convolutions"]),
    ("no_bn2", "right", ["left out bn2"]),
    ("right", "never", ["1x1 convolution", "cannot be added"]),
    ("right", "always", ["the skip is the identity"]),
    ("x_not_skip", "right", ["add self.skip(x), not x itself"]),
    ("detach", "right", ["no gradient"]),
])
def test_residual_block_wrong_answers(variant, skip_rule, words):
    res = checks.check_residual_block(_block(variant, skip_rule), quiet=True)
    assert res.status in ("failed", "error"), res.verdict()
    for w in words:
        assert w in res.message, res.message


def test_residual_block_hidden_part(monkeypatch):
    from course_lib.models import encoders as E

    # adding into x in place passes the public part (it compares with a copy) and fails the hidden one
    res, hid = _hidden(monkeypatch, checks.check_residual_block, _block("in_place"))
    assert res.passed and hid.status == "failed" and "in place" in hid.message, hid.verdict()

    class Delegated(E.BasicBlock):  # course_lib's block itself
        pass

    res, hid = _hidden(monkeypatch, checks.check_residual_block, Delegated)
    assert res.passed and hid.status == "failed" and "delegated to course_lib.models.encoders.BasicBlock" in hid.message, \
        hid.verdict()
