"""The chapter-06 self-checks pass the reference, fail wrong answers, and flag stubs."""

from __future__ import annotations

import functools

import pytest
import torch
from check_helpers import failed as _failed
from check_helpers import hidden_results, stub
from torch import nn

from course_lib import checks

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- reference solutions, written independently of course_lib.models.atlasnet ---
def grid_faces(n):
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, (i + 1) * n + j, i * n + j + 1, (i + 1) * n + j + 1
            faces += [[a, b, c], [b, d, c]]  # the other diagonal than the library's
    return torch.tensor(faces, dtype=torch.long).reshape(-1, 3)


class PatchDecoder(nn.Module):
    def __init__(self, latent_dim, hidden=32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 + latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 3), nn.Tanh())

    def forward(self, uv, z):
        b, m = z.shape[0], uv.shape[0]
        return self.net(torch.cat([uv[None].expand(b, m, 2), z[:, None].expand(b, m, z.shape[1])], -1))


def atlas_mesh(decoders, z, n):
    t = torch.linspace(0, 1, n)
    uv = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    verts = torch.cat([d(uv, z)[0] for d in decoders])
    faces = torch.cat([grid_faces(n) + k * n * n for k in range(len(decoders))])
    return verts, faces


def transfer_labels(deformed, labels, targets):
    return labels[torch.cdist(targets, deformed).argmin(-1)]




def test_references_pass():
    assert checks.check_grid_faces(grid_faces, quiet=True).passed
    assert checks.check_patch_decoder(PatchDecoder, quiet=True).passed
    assert checks.check_atlas_mesh(atlas_mesh, quiet=True).passed
    assert checks.check_transfer_labels(transfer_labels, quiet=True).passed


def test_library_functions_pass():
    from course_lib.models import atlasnet, coded

    assert checks.check_grid_faces(atlasnet.grid_faces, quiet=True).passed
    assert checks.check_patch_decoder(lambda L: atlasnet.PatchDecoder(L, 2, (32,), batch_norm=False),
                                      quiet=True).passed
    assert checks.check_transfer_labels(coded.transfer_labels, quiet=True).passed


def test_stubs_are_not_implemented():
    for check in (checks.check_grid_faces, checks.check_patch_decoder, checks.check_atlas_mesh,
                  checks.check_transfer_labels):
        res = check(stub, quiet=True)
        assert res.status == "not_implemented", res.verdict()




def test_grid_faces_wrong_answers():
    # one triangle per cell only
    _failed(checks.check_grid_faces(lambda n: grid_faces(n)[::2], quiet=True), "shape")
    # inconsistent orientation
    def flipped(n):
        f = grid_faces(n).clone()
        f[0] = f[0].flip(0)
        return f
    _failed(checks.check_grid_faces(flipped, quiet=True), "oriented")
    # every triangle clockwise: consistent, but the exercise asks for counter-clockwise
    _failed(checks.check_grid_faces(lambda n: grid_faces(n).flip(1), quiet=True), "CLOCKWISE")
    _failed(checks.check_grid_faces(lambda n: grid_faces(n)[:, [0, 2, 1]], quiet=True), "CLOCKWISE")
    res = checks.check_grid_faces(lambda n: torch.cat([grid_faces(n)[:-1], grid_faces(n)[:1]]), quiet=True)
    _failed(res, "twice")
    # float dtype
    _failed(checks.check_grid_faces(lambda n: grid_faces(n).float(), quiet=True), "LongTensor")
    # triangles across two cells
    def skip(n):
        f = grid_faces(n).clone()
        if n > 2:
            f[0] = torch.tensor([0, 2 * n, 2])
        return f
    _failed(checks.check_grid_faces(skip, quiet=True), "cell")


class _Flat(nn.Module):
    """Applies ``net`` to [u, v, z] of every point (a helper for the wrong decoders below)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, uv, z):
        b, m = z.shape[0], uv.shape[0]
        return self.net(torch.cat([uv[None].expand(b, m, 2), z[:, None].expand(b, m, z.shape[1])], -1))


class _BNLast(nn.BatchNorm1d):  # a real BatchNorm over the channels of (B, M, C)
    def forward(self, x):
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


@pytest.mark.parametrize("make, words", [
    # a single linear layer: no hidden layer at all
    (lambda L: _Flat(nn.Sequential(nn.Linear(2 + L, 3), nn.Tanh())), ["affine", "hidden layer"]),
    (lambda L: _Flat(nn.Linear(2 + L, 3)), ["tanh"]),
    # two Linears with no ReLU between them: still one affine map
    (lambda L: _Flat(nn.Sequential(nn.Linear(2 + L, 32), nn.Linear(32, 3), nn.Tanh())), ["affine"]),
    # no tanh at the end
    (lambda L: _Flat(nn.Sequential(nn.Linear(2 + L, 32), nn.ReLU(), nn.Linear(32, 3))), ["tanh"]),
    # sigmoid instead of tanh
    (lambda L: _Flat(nn.Sequential(nn.Linear(2 + L, 32), nn.ReLU(), nn.Linear(32, 3), nn.Sigmoid())),
     ["sigmoid"]),
    # a real BatchNorm (torch's), as AtlasNet's released code has: caught in training mode
    (lambda L: _Flat(nn.Sequential(nn.Linear(2 + L, 32), _BNLast(32), nn.ReLU(), nn.Linear(32, 3), nn.Tanh())),
     ["BatchNorm"]),
    # Dropout: random in training mode
    (lambda L: _Flat(nn.Sequential(nn.Linear(2 + L, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3), nn.Tanh())),
     ["Dropout"]),
])
def test_patch_decoder_wrong_answers(make, words):
    _failed(checks.check_patch_decoder(make, quiet=True), *words)


def test_patch_decoder_more_wrong_answers():
    class IgnoresZ(PatchDecoder):
        def forward(self, uv, z):
            return super().forward(uv, torch.zeros_like(z))

    _failed(checks.check_patch_decoder(IgnoresZ, quiet=True), "use z")

    class Mixes(PatchDecoder):  # normalisation across points with no BatchNorm module
        def forward(self, uv, z):
            y = super().forward(uv, z)
            return torch.tanh(y - y.mean(dim=1, keepdim=True))

    _failed(checks.check_patch_decoder(Mixes, quiet=True), "other points")

    class Flat(PatchDecoder):
        def forward(self, uv, z):
            return super().forward(uv, z).reshape(z.shape[0], -1)

    _failed(checks.check_patch_decoder(Flat, quiet=True), "shape")

    class IgnoresUV(PatchDecoder):
        def forward(self, uv, z):
            return super().forward(torch.zeros_like(uv), z)

    _failed(checks.check_patch_decoder(IgnoresUV, quiet=True), "use uv")


def test_library_atlasnet_with_batch_norm_is_rejected():
    """The library's own decoder with BatchNorm (as in the paper) is not what the lab asks for."""
    from course_lib.models import atlasnet

    res = checks.check_patch_decoder(lambda L: atlasnet.PatchDecoder(L, 2, (32,), batch_norm=True), quiet=True)
    _failed(res, "BatchNorm")


def test_atlas_mesh_wrong_answers():
    def no_offset(decoders, z, n):
        v, _ = atlas_mesh(decoders, z, n)
        return v, torch.cat([grid_faces(n)] * len(decoders))

    _failed(checks.check_atlas_mesh(no_offset, quiet=True), "offset patch k's faces")

    def offset_by_n(decoders, z, n):  # off by a factor: k * n instead of k * n * n
        v, _ = atlas_mesh(decoders, z, n)
        return v, torch.cat([grid_faces(n) + k * n for k in range(len(decoders))])

    _failed(checks.check_atlas_mesh(offset_by_n, quiet=True), "offset")

    def xy_grid(decoders, z, n):
        t = torch.linspace(0, 1, n)
        uv = torch.stack(torch.meshgrid(t, t, indexing="xy"), -1).reshape(-1, 2)
        verts = torch.cat([d(uv, z)[0] for d in decoders])
        return verts, torch.cat([grid_faces(n) + k * n * n for k in range(len(decoders))])

    _failed(checks.check_atlas_mesh(xy_grid, quiet=True), "transposed grid order")

    def reversed_patches(decoders, z, n):
        return atlas_mesh(decoders[::-1], z, n)

    _failed(checks.check_atlas_mesh(reversed_patches, quiet=True), "patch order")

    def one_patch(decoders, z, n):
        return atlas_mesh(decoders[:1], z, n)

    _failed(checks.check_atlas_mesh(one_patch, quiet=True), "shape")


def test_transfer_labels_wrong_answers():
    def farthest(deformed, labels, targets):
        return labels[torch.cdist(targets, deformed).argmax(-1)]

    _failed(checks.check_transfer_labels(farthest, quiet=True), "FARTHEST")

    def one_shape(deformed, labels, targets):  # every shape uses shape 0's deformation
        return labels[torch.cdist(targets, deformed[:1]).argmin(-1)]

    _failed(checks.check_transfer_labels(one_shape, quiet=True), "labels are wrong")

    def as_float(deformed, labels, targets):
        return transfer_labels(deformed, labels, targets).float()

    _failed(checks.check_transfer_labels(as_float, quiet=True), "LongTensor")

    def crashes(deformed, labels, targets):
        return labels[torch.cdist(deformed, targets).argmin(-1)]  # (B, V): wrong direction

    _failed(checks.check_transfer_labels(crashes, quiet=True), "IndexError")

    def per_vertex(deformed, labels, targets):  # the template's labels, not the targets'
        return labels[None].expand(deformed.shape[0], -1)

    _failed(checks.check_transfer_labels(per_vertex, quiet=True), "one label per template vertex")


# --- hidden parts (the grader's COURSE_HIDDEN_CHECKS=1) -----------------------------------------
_hidden = hidden_results  # (public result, hidden result)


def test_hidden_parts_pass_the_references(monkeypatch):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    for check, fn in ((checks.check_grid_faces, grid_faces), (checks.check_patch_decoder, PatchDecoder),
                      (checks.check_atlas_mesh, atlas_mesh), (checks.check_transfer_labels, transfer_labels)):
        res, hid = _hidden(check, fn)
        assert res.passed and hid.passed, hid.verdict()


@functools.cache
def _cached_faces(n):  # one tensor shared by every call: an in-place offset by a caller leaks into the next one
    return grid_faces(n)


class _FixedWidth(PatchDecoder):
    def __init__(self, latent_dim, hidden=64):
        super().__init__(latent_dim, 64)  # the width argument is ignored


class _DetachedCode(PatchDecoder):
    def forward(self, uv, z):
        return super().forward(uv, z.detach())


def _topk_squeezed(deformed, labels, targets):
    nearest = torch.cdist(targets, deformed).topk(1, dim=-1, largest=False).indices.squeeze()
    return labels[nearest]


@pytest.mark.parametrize("check, wrong, words", [
    (checks.check_grid_faces, _cached_faces, ["same tensor on every call", "new tensor"]),
    (checks.check_patch_decoder, _FixedWidth, ["same number of parameters", "hidden argument"]),
    (checks.check_patch_decoder, _DetachedCode, ["latent code"]),
    (checks.check_transfer_labels, _topk_squeezed, ["B = 1", "has shape"]),
])
def test_hidden_parts_catch_what_the_public_part_lets_through(monkeypatch, check, wrong, words):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    res, hid = _hidden(check, wrong)
    assert res.passed, res.verdict()  # the public part lets it through...
    _failed(hid, *words)              # ...the hidden part names it


def test_hidden_parts_flag_a_wrapper_of_the_library(monkeypatch):
    from course_lib.checks import _core
    from course_lib.models import atlasnet, coded

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    res, hid = _hidden(checks.check_grid_faces, lambda n: atlasnet.grid_faces(n))
    assert res.passed
    _failed(hid, "delegated to course_lib.models.atlasnet.grid_faces")
    res, hid = _hidden(checks.check_transfer_labels, lambda d, lab, t: coded.transfer_labels(d, lab, t))
    assert res.passed
    _failed(hid, "delegated to course_lib.models.coded.transfer_labels")
    res, hid = _hidden(checks.check_patch_decoder,
                       lambda L, hidden=64: atlasnet.PatchDecoder(L, 2, (hidden,), batch_norm=False))
    assert res.passed
    _failed(hid, "delegated to course_lib.models.atlasnet.PatchDecoder")
