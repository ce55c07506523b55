"""Self-checks of chapter 03 (``labs/03_voxels_lab.ipynb``): voxel IoU, a 3D conv block, the upsampling path.

Introduced in ``lectures/03_voxels.ipynb``.  The references are computed here independently:
the IoU by NumPy set counts, the conv block by its receptive field (one changed voxel changes a
``3^3`` block of the output) and output sizes, the upsampling path by its output sizes and layers.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ._core import CheckFailed, call_student, expect, expect_close, expect_tensor, self_check

__all__ = ["check_voxel_iou", "check_conv3d_block", "check_upsampling_path"]


def _iou_reference(probs: torch.Tensor, target: torch.Tensor, t: float, strict: bool = False) -> np.ndarray:
    p = probs.numpy() > t if strict else probs.numpy() >= t
    q = target.numpy() > 0.5
    out = []
    for a, b in zip(p, q):
        union = (a | b).sum()
        out.append(1.0 if union == 0 else (a & b).sum() / union)
    return np.asarray(out, dtype=np.float64)


@self_check
def check_voxel_iou(fn) -> str:
    """``fn(probs (B, R, R, R), target (B, R, R, R), threshold) -> (B,)``: per-shape IoU of ``probs >= threshold``.

    As in 3D-R2N2: a voxel is predicted full when its probability is at least the threshold;
    two empty grids agree perfectly (IoU 1).
    """
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(3, 5, 5, 5, generator=g)
    target = (torch.rand(3, 5, 5, 5, generator=g) > 0.6).float()
    # some probabilities exactly at the threshold, on full voxels: >= and > then differ
    probs[0, 0, :, 0] = 0.5
    target[0, 0, :, 0] = 1.0
    for t in (0.5, 0.75):
        out = call_student(fn, probs.clone(), target.clone(), t)
        if isinstance(out, (float, int)) or (isinstance(out, torch.Tensor) and out.dim() == 0):
            raise CheckFailed("return one IoU per shape, a tensor (B,), not a single number averaged over the batch")
        expect_tensor(out, f"voxel_iou(probs, target, {t})", shape=(3,))
        ref = _iou_reference(probs, target, t)
        got = out.detach().double()
        if t == 0.5:
            gt_strict = _iou_reference(probs, target, t, strict=True)
            if torch.allclose(got, torch.as_tensor(gt_strict), atol=1e-6) and not np.allclose(gt_strict, ref):
                raise CheckFailed("voxels with probability exactly equal to the threshold must count as full: "
                                  "use probs >= threshold (3D-R2N2's rule), not >")
        pooled = (probs.numpy() >= t) & (target.numpy() > 0.5)
        pooled_iou = pooled.sum() / ((probs.numpy() >= t) | (target.numpy() > 0.5)).sum()
        if torch.allclose(got, torch.full((3,), float(pooled_iou), dtype=torch.float64), atol=1e-6):
            raise CheckFailed("the IoU is pooled over the whole batch (one intersection and one union for every "
                              "shape together): reduce over the voxels of each shape only (dims 1, 2, 3)")
        p, q = probs.numpy() >= t, target.numpy() > 0.5
        inter = (p & q).reshape(3, -1).sum(1)
        sums = p.reshape(3, -1).sum(1) + q.reshape(3, -1).sum(1)
        if np.allclose(got.numpy(), inter / sums, atol=1e-6):
            raise CheckFailed("the union is |A| + |B|, which counts the intersection twice: use |A or B| "
                              "(= |A| + |B| - |A and B|)")
        if np.allclose(got.numpy(), 2 * inter / sums, atol=1e-6):
            raise CheckFailed("that is the Dice coefficient 2|A and B| / (|A| + |B|), not the IoU "
                              "|A and B| / |A or B|")
        soft = (probs * target).reshape(3, -1).sum(1) / (probs + target - probs * target).reshape(3, -1).sum(1)
        if torch.allclose(got, soft.double(), atol=1e-6):
            raise CheckFailed("that is a 'soft' IoU of the probabilities: threshold them first (probs >= threshold)")
        if t == 0.75 and np.allclose(got.numpy(), _iou_reference(probs, target, 0.5), atol=1e-6):
            raise CheckFailed("the result does not change with the threshold: use the `threshold` argument, "
                              "not a fixed 0.5")
        expect_close(got, ref, f"voxel_iou(probs, target, {t})", atol=1e-6)
    # empty against empty: perfect agreement, not 0/0
    empty = call_student(fn, torch.zeros(2, 4, 4, 4), torch.zeros(2, 4, 4, 4), 0.5)
    expect_tensor(empty, "voxel_iou of two empty grids", shape=(2,), finite=False)
    if bool(torch.isnan(empty.double()).any()):
        raise CheckFailed("two empty grids give NaN (0 / 0): they agree perfectly, return IoU 1 there")
    expect_close(empty, torch.ones(2), "voxel_iou of two empty grids (they agree: IoU 1)")
    # one side empty: nothing is shared, so the IoU is 0 (a guard on the intersection instead of the union
    # would score an empty prediction as perfect, and a threshold sweep would then favour predicting nothing)
    full = torch.ones(2, 4, 4, 4)
    for name, pr, tg in (("an empty prediction against a full target", torch.zeros(2, 4, 4, 4), full),
                         ("a full prediction against an empty target", full, torch.zeros(2, 4, 4, 4))):
        one = call_student(fn, pr, tg, 0.5)
        expect_tensor(one, f"voxel_iou of {name}", shape=(2,), finite=False)
        if bool(torch.isclose(one.double(), torch.ones(2, dtype=torch.float64)).any()):
            raise CheckFailed(f"{name} scores IoU 1: only two empty grids agree perfectly. Guard the 0/0 case on the "
                              "union (union == 0), not on the intersection: an empty prediction shares nothing "
                              "with a full target, IoU 0")
        expect_close(one, torch.zeros(2), f"voxel_iou of {name} (nothing shared: IoU 0)")
    # a bool target works too
    out = call_student(fn, probs.clone(), target.bool(), 0.4)
    expect_tensor(out, "voxel_iou(probs, bool target, 0.4)", shape=(3,))
    expect_close(out.detach(), _iou_reference(probs, target, 0.4), "voxel_iou with a bool target", atol=1e-6)
    return "per-shape IoU with probs >= threshold, 1 for two empty grids (B = 3, thresholds 0.4, 0.5, 0.75)"


def _changed_region(block: nn.Module, cin: int, R: int) -> tuple[int, ...]:
    """Size of the box of output voxels that change when one input voxel at the centre changes."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, cin, R, R, R, generator=g)
    y = x.clone()
    c = R // 2
    y[0, :, c, c, c] += 5.0
    with torch.no_grad():
        a, b = block(x), block(y)
    diff = (a - b).abs().sum(1)[0] > 1e-6
    idx = diff.nonzero()
    if len(idx) == 0:
        return (0, 0, 0)
    return tuple(int(v) for v in (idx.max(0).values - idx.min(0).values + 1))


@self_check
def check_conv3d_block(cls) -> str:
    """``cls(in_channels, out_channels, stride=1)``: Conv3d (kernel 3, padding 1) -> BatchNorm3d -> ReLU.

    ``(B, in, R, R, R) -> (B, out, R / stride, R / stride, R / stride)`` (``R`` even).
    """
    torch.manual_seed(0)
    block = call_student(cls, 2, 5)
    expect(isinstance(block, nn.Module), f"Conv3dBlock(2, 5) should be an nn.Module, got {type(block).__name__}")
    mods = list(block.modules())
    if any(isinstance(m, nn.Conv2d) for m in mods) and not any(isinstance(m, nn.Conv3d) for m in mods):
        raise CheckFailed("the block uses nn.Conv2d: voxel grids need nn.Conv3d (a 3D kernel)")
    expect(any(isinstance(m, nn.Conv3d) for m in mods), "the block has no nn.Conv3d")
    if any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in mods):
        raise CheckFailed("use nn.BatchNorm3d for (B, C, R, R, R) features, not BatchNorm1d/2d")
    expect(any(isinstance(m, nn.BatchNorm3d) for m in mods),
           "the block has no nn.BatchNorm3d after the convolution")
    convs = [m for m in mods if isinstance(m, nn.Conv3d)]
    bns = [m for m in mods if isinstance(m, nn.BatchNorm3d)]
    expect(len(convs) == 1 and len(bns) == 1, f"the block should hold one Conv3d and one BatchNorm3d, found "
                                              f"{len(convs)} and {len(bns)}")
    conv, bn = convs[0], bns[0]
    if bn.num_features == 2 and conv.out_channels == 5:
        raise CheckFailed("the BatchNorm3d normalises the block's 2 input channels: it belongs after the "
                          "convolution (Conv3d -> BatchNorm3d -> ReLU), on its 5 output channels")
    expect((conv.in_channels, conv.out_channels) == (2, 5) and bn.num_features == 5,
           f"Conv3dBlock(2, 5): the Conv3d maps {conv.in_channels} -> {conv.out_channels} channels and the "
           f"BatchNorm3d normalises {bn.num_features}; expected 2 -> 5 and 5")
    expect(conv.kernel_size == (3, 3, 3) and conv.padding == (1, 1, 1),
           f"the Conv3d has kernel {conv.kernel_size} and padding {conv.padding}; use kernel_size (3, 3, 3) "
           "(size 3 in all three axes) with padding=1")
    if conv.padding_mode != "zeros":
        raise CheckFailed(f"the Conv3d pads with padding_mode={conv.padding_mode!r}: pad with zeros (the default). "
                          "'circular' glues opposite faces of the grid together, so a voxel on one face sees the "
                          "other face as its neighbour")
    x = torch.randn(4, 2, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    block.train()
    out = call_student(block, x)
    if isinstance(out, torch.Tensor) and out.dim() == 5 and out.shape[2] == 6:
        raise CheckFailed("the output is 6^3 for an 8^3 input: pad the kernel-3 convolution with padding=1 "
                          "to keep the resolution")
    expect_tensor(out, "Conv3dBlock(2, 5)(x (4, 2, 8, 8, 8))", shape=(4, 5, 8, 8, 8))
    if bool((out < 0).any()):
        raise CheckFailed("the block outputs negative values: end it with a ReLU (Conv3d -> BatchNorm3d -> ReLU)")
    expect(bool((out == 0).any()) and bool((out > 0).any()),
           "after BatchNorm and ReLU about half of the outputs should be zero and half positive")
    block.eval()
    region = _changed_region(block, 2, 9)
    expect(region == (3, 3, 3), f"changing one input voxel changes a {region} block of outputs; a kernel of size "
                                f"3 (in all three axes) changes a (3, 3, 3) block")
    # the layers in the right order: the output equals ReLU(BN(conv(x))) computed with the block's own layers
    with torch.no_grad():
        ref_block = copy.deepcopy(block).eval()
        rconv = [m for m in ref_block.modules() if isinstance(m, nn.Conv3d)][0]
        rbn = [m for m in ref_block.modules() if isinstance(m, nn.BatchNorm3d)][0]
        _scramble_batchnorm(rbn, 4)
        x_eval = torch.randn(2, 2, 6, 6, 6, generator=torch.Generator().manual_seed(3))
        got = call_student(ref_block, x_eval.clone())
        ref = torch.relu(rbn(rconv(x_eval)))
        if isinstance(got, torch.Tensor) and got.shape == ref.shape and not torch.allclose(got, ref, atol=1e-5):
            relu_first = rbn(torch.relu(rconv(x_eval)))
            if torch.allclose(got, relu_first, atol=1e-5) or torch.allclose(got, torch.relu(relu_first), atol=1e-5):
                raise CheckFailed("the ReLU comes before the BatchNorm3d: the order is Conv3d -> BatchNorm3d -> ReLU")
            raise CheckFailed("the output differs from ReLU(BatchNorm3d(Conv3d(x))) computed with your block's own "
                              "layers: apply them in that order, once each, and nothing else")
    down = call_student(cls, 3, 4, 2)
    expect(isinstance(down, nn.Module), "Conv3dBlock(3, 4, stride=2) should be an nn.Module")
    dconv = [m for m in down.modules() if isinstance(m, nn.Conv3d)]
    if any(isinstance(m, (nn.MaxPool3d, nn.AvgPool3d)) for m in down.modules()) or \
            (dconv and dconv[0].stride != (2, 2, 2)):
        raise CheckFailed("Conv3dBlock(3, 4, stride=2) must downsample with the convolution itself "
                          "(nn.Conv3d(..., stride=stride)), not with a pooling layer after a stride-1 convolution")
    with torch.no_grad():
        out2 = call_student(down.train(), torch.randn(2, 3, 8, 8, 8))
    if isinstance(out2, torch.Tensor) and out2.dim() == 5 and out2.shape[2] == 8:
        raise CheckFailed("Conv3dBlock(3, 4, stride=2) keeps the resolution: pass stride to the Conv3d")
    expect_tensor(out2, "Conv3dBlock(3, 4, stride=2)(x (2, 3, 8, 8, 8))", shape=(2, 4, 4, 4, 4))
    out = call_student(block.train(), x)
    out.sum().backward()
    expect(all(p.grad is not None for p in block.parameters() if p.requires_grad),
           "some parameters get no gradient: is every layer used in forward?")
    return "Conv3d k3 p1 -> BatchNorm3d -> ReLU; 3x3x3 receptive field; stride 2 halves 8^3 to 4^3"


def _scramble_batchnorm(bn: nn.BatchNorm3d, seed: int) -> None:
    """Give a BatchNorm3d (of a copy, in eval mode) random statistics and an affine map with negative scales, so
    that layers in the wrong order no longer give the same output (a BN with scale 1 and shift ~0 commutes with
    ReLU)."""
    g = torch.Generator().manual_seed(seed)
    n = bn.num_features
    with torch.no_grad():
        if bn.running_mean is not None:
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
        if bn.affine:
            bn.weight.copy_(torch.randn(n, generator=g) + 0.2)
            bn.bias.copy_(torch.randn(n, generator=g))


def _check_upsampling_reference(path: nn.Module, channels: list[int], x: torch.Tensor) -> None:
    """The path's output equals the stages computed with its own layers (eval mode): ConvTranspose3d ->
    BatchNorm3d -> ReLU per stage, then the last Conv3d, channel 0; named messages for the usual slips."""
    ref_path = copy.deepcopy(path).eval()
    mods = list(ref_path.modules())
    for k, m in enumerate(mods):
        if isinstance(m, nn.BatchNorm3d):
            _scramble_batchnorm(m, 10 + k)
    ups = [m for m in mods if isinstance(m, nn.ConvTranspose3d)]
    bns = [m for m in mods if isinstance(m, nn.BatchNorm3d)]
    lasts = [m for m in mods if isinstance(m, nn.Conv3d)]
    expect(len(lasts) >= 1, "the path has no final nn.Conv3d to one channel of logits")
    last = lasts[-1]
    expect(last.out_channels == 1 and last.in_channels == channels[-1],
           f"the last Conv3d maps {last.in_channels} -> {last.out_channels} channels; expected {channels[-1]} -> 1")
    stage_bns = []
    for i, up in enumerate(ups):
        own = [b for b in bns if b.num_features == up.out_channels and b not in stage_bns]
        if not own:
            before = [b for b in bns if b.num_features == up.in_channels]
            if before:
                raise CheckFailed(f"stage {i}'s BatchNorm3d normalises its {up.in_channels} input channels: it belongs "
                                  "after the ConvTranspose3d, on its output channels")
            raise CheckFailed(f"stage {i} has no BatchNorm3d over its {up.out_channels} output channels")
        stage_bns.append(own[0])
    with torch.no_grad():
        got = call_student(ref_path, x.clone())

        def forward(relu: bool = True, relu_first: bool = False) -> torch.Tensor:
            h = x
            for up, bn in zip(ups, stage_bns):
                h = up(h)
                h = bn(torch.relu(h)) if relu_first else bn(h)
                if relu and not relu_first:
                    h = torch.relu(h)
            return last(h)[:, 0]

        ref = forward()
        if not isinstance(got, torch.Tensor) or got.shape != ref.shape or torch.allclose(got, ref, atol=1e-5):
            return
        if torch.allclose(got, forward(relu=False), atol=1e-5):
            raise CheckFailed("there is no ReLU between the stages: without it the whole path is one linear map. "
                              "Each stage is ConvTranspose3d -> BatchNorm3d -> ReLU")
        if torch.allclose(got, forward(relu_first=True), atol=1e-5):
            raise CheckFailed("the ReLU comes before the BatchNorm3d: each stage is ConvTranspose3d -> BatchNorm3d "
                              "-> ReLU")
        for perm in ((0, 3, 2, 1), (0, 2, 1, 3), (0, 1, 3, 2), (0, 2, 3, 1), (0, 3, 1, 2)):
            if torch.allclose(got, ref.permute(*perm), atol=1e-5):
                raise CheckFailed(f"the output axes are permuted ({perm}): keep the voxel axes in the input's order, "
                                  "(B, x, y, z)")
        raise CheckFailed("the output differs from the stages computed with your own layers (ConvTranspose3d -> "
                          "BatchNorm3d -> ReLU each, then the last Conv3d, channel 0): check the order of the "
                          "layers and that each is applied once")


@self_check
def check_upsampling_path(cls) -> str:
    """``cls(channels)``: the decoder's upsampling path, ``(B, channels[0], m, m, m) -> logits (B, R, R, R)``.

    One ConvTranspose3d(kernel 4, stride 2, padding 1) -> BatchNorm3d -> ReLU stage per pair
    ``channels[i] -> channels[i + 1]`` (each doubles the resolution, ``R = m 2^(len - 1)``),
    then a Conv3d (kernel 1, or 3 with padding 1) to one channel of **logits** (no activation after it).
    """
    torch.manual_seed(0)
    channels = [16, 8, 4]
    path = call_student(cls, channels)
    expect(isinstance(path, nn.Module), f"UpsamplingPath({channels}) should be an nn.Module, "
                                        f"got {type(path).__name__}")
    ups = [m for m in path.modules() if isinstance(m, nn.ConvTranspose3d)]
    if not ups and any(isinstance(m, nn.Upsample) for m in path.modules()):
        raise CheckFailed("this exercise asks for transposed convolutions (nn.ConvTranspose3d), not nn.Upsample")
    expect(len(ups) == len(channels) - 1,
           f"{len(channels)} channel counts make {len(channels) - 1} upsampling stages, found {len(ups)} "
           "ConvTranspose3d layers")
    pairs = [(m.in_channels, m.out_channels) for m in ups]
    expect(pairs == list(zip(channels[:-1], channels[1:])),
           f"the transposed convolutions map channels {pairs}, expected {list(zip(channels[:-1], channels[1:]))} "
           "(stage i goes from channels[i] to channels[i + 1])")
    for m in ups:
        expect(m.kernel_size == (4, 4, 4) and m.stride == (2, 2, 2) and m.padding == (1, 1, 1),
               f"a ConvTranspose3d has kernel {m.kernel_size}, stride {m.stride}, padding {m.padding}; use "
               "kernel 4, stride 2, padding 1, which exactly doubles the size: (m - 1) * 2 - 2 + 4 = 2m")
    expect(sum(isinstance(m, nn.BatchNorm3d) for m in path.modules()) >= len(ups),
           "every upsampling stage needs a BatchNorm3d after its transposed convolution")
    x = torch.randn(3, 16, 2, 2, 2, generator=torch.Generator().manual_seed(1))
    path.train()
    out = call_student(path, x)
    if isinstance(out, torch.Tensor) and out.dim() == 5 and out.shape[1] == 1:
        raise CheckFailed("the output is (B, 1, R, R, R): drop the channel dimension (out[:, 0]) to return "
                          "(B, R, R, R) logits")
    expect_tensor(out, f"UpsamplingPath({channels})(x (3, 16, 2, 2, 2))", shape=(3, 8, 8, 8))
    if bool((out >= 0).all()):
        if bool((out <= 1).all()) and not bool((out == 0).any()):
            raise CheckFailed("every output lies in [0, 1]: return logits (no sigmoid at the end); "
                              "the BCE-with-logits loss applies the sigmoid itself")
        raise CheckFailed("no output is negative: the last layer must output logits, with no ReLU after it")
    expect(float(out.detach().std()) > 1e-6, "every voxel gets the same logit")
    _check_upsampling_reference(path, channels, x)
    # each output voxel depends on the input: gradients reach every parameter
    out.square().mean().backward()
    expect(all(p.grad is not None for p in path.parameters() if p.requires_grad),
           "some parameters get no gradient: is every layer used in forward?")
    one = call_student(cls, [8])
    with torch.no_grad():
        y = call_student(one.eval(), torch.randn(2, 8, 4, 4, 4))
    expect_tensor(y, "UpsamplingPath([8])(x (2, 8, 4, 4, 4)) (no stage: only the last convolution)", shape=(2, 4, 4, 4))
    with torch.no_grad():
        single = call_student(copy.deepcopy(path).eval(), x[:1].clone())
    if isinstance(single, torch.Tensor) and single.dim() == 3:
        raise CheckFailed("a batch of one returns (R, R, R): .squeeze() also drops the batch axis. Take the "
                          "channel with out[:, 0] (or squeeze(1)) so that the output is (B, R, R, R) for every B")
    expect_tensor(single, f"UpsamplingPath({channels})(x (1, 16, 2, 2, 2)) (a batch of one)", shape=(1, 8, 8, 8))
    return "ConvTranspose3d k4 s2 p1 + BatchNorm3d + ReLU per stage (2^3 -> 8^3), logits from a last Conv3d"


# ---------------------------------------------------------------------------
# hidden parts (run by the grader only): other sizes, a batch of one, float64, one occupied voxel, ties at the
# threshold, batch independence, inputs left unchanged
# ---------------------------------------------------------------------------
def _hidden_voxel_iou(fn) -> str:
    g = torch.Generator().manual_seed(30)
    for b, r, dtype, t in ((1, 4, torch.float32, 0.5), (5, 3, torch.float64, 0.25), (2, 6, torch.float32, 0.625)):
        probs = torch.rand(b, r, r, r, generator=g, dtype=dtype)
        target = (torch.rand(b, r, r, r, generator=g) > 0.5).float()
        probs.view(-1)[::7] = t  # ties at the threshold (exactly representable): they count as full
        before = (probs.clone(), target.clone())
        out = call_student(fn, probs, target, t)
        if b == 1 and isinstance(out, torch.Tensor) and out.dim() == 0:
            raise CheckFailed("a batch of one gives a single number of shape (): a .squeeze() (or .item()) drops the "
                              "batch axis; return a tensor (B,) for every B, here (1,)")
        expect_tensor(out, f"voxel_iou for B={b}, R={r} ({dtype})", shape=(b,))
        expect(out.is_floating_point(), f"voxel_iou returns dtype {out.dtype}: an IoU is a fraction, return floats "
                                        "(integer division rounds it to 0 or 1)")
        expect(torch.equal(probs, before[0]) and torch.equal(target, before[1]),
               "your function changed its inputs (an in-place operation on probs or target): compute on new tensors")
        expect_close(out.detach(), _iou_reference(probs, target, t),
                     f"voxel_iou for B={b}, R={r} ({dtype} probabilities, threshold {t}, some exactly at it)",
                     atol=1e-6)
    # one occupied voxel: the same one (IoU 1), a neighbour (IoU 0), one predicted among two true ones (IoU 1/2)
    probs, target = torch.zeros(3, 4, 4, 4), torch.zeros(3, 4, 4, 4)
    probs[:, 1, 2, 3] = 0.9
    target[0, 1, 2, 3] = 1
    target[1, 1, 2, 2] = 1
    target[2, 1, 2, 3] = target[2, 0, 0, 0] = 1
    out = call_student(fn, probs, target.bool(), 0.5)
    expect_tensor(out, "voxel_iou of grids with one or two occupied voxels", shape=(3,))
    expect_close(out.detach(), torch.tensor([1.0, 0.0, 0.5]), "voxel_iou of one occupied voxel against the same "
                 "voxel, a neighbour, and two voxels one of which is it", atol=1e-6)
    # shapes are independent: changing shape 1 leaves shape 0's IoU unchanged
    probs = torch.rand(4, 5, 5, 5, generator=g)
    target = (torch.rand(4, 5, 5, 5, generator=g) > 0.5).float()
    a = call_student(fn, probs.clone(), target.clone(), 0.5)
    probs2 = probs.clone()
    probs2[1:] = 1.0
    b_ = call_student(fn, probs2, target.clone(), 0.5)
    expect_tensor(b_, "voxel_iou for B=4", shape=(4,))
    expect_close(b_[0], a[0], "shape 0's IoU after changing only shapes 1-3 (each shape is scored on its own: a "
                 "fixed-size loop or a pooled count mixes them)", atol=1e-6)
    expect_close(b_, _iou_reference(probs2, target, 0.5), "voxel_iou for B=4", atol=1e-6)
    return "B = 1 and 5, float64, ties at the threshold, one occupied voxel, shapes independent, inputs unchanged"


def _hidden_conv3d_block(cls) -> str:
    import torch.nn.functional as F

    torch.manual_seed(31)
    for cin, cout, stride, r in ((1, 3, 1, 5), (4, 2, 2, 6), (3, 6, 1, 1)):
        block = call_student(cls, cin, cout, stride)
        expect(isinstance(block, nn.Module), f"Conv3dBlock({cin}, {cout}, {stride}) should be an nn.Module")
        convs = [m for m in block.modules() if isinstance(m, nn.Conv3d)]
        bns = [m for m in block.modules() if isinstance(m, nn.BatchNorm3d)]
        expect(len(convs) == 1 and len(bns) == 1, f"Conv3dBlock({cin}, {cout}, {stride}) should hold one Conv3d "
                                                  f"and one BatchNorm3d, found {len(convs)} and {len(bns)}")
        conv, bn = convs[0], bns[0]
        expect((conv.in_channels, conv.out_channels, bn.num_features) == (cin, cout, cout),
               f"Conv3dBlock({cin}, {cout}, {stride}) maps {conv.in_channels} -> {conv.out_channels} channels with a "
               f"BatchNorm3d over {bn.num_features}: use the in_channels / out_channels arguments, not fixed numbers")
        _scramble_batchnorm(bn, 32)
        block = block.double().eval()
        x = torch.randn(3, cin, r, r, r, generator=torch.Generator().manual_seed(33), dtype=torch.float64)
        x0 = x.clone()
        with torch.no_grad():
            out = call_student(block, x)
        size = (r + 2 - 3) // stride + 1
        expect_tensor(out, f"Conv3dBlock({cin}, {cout}, {stride})(x (3, {cin}, {r}, {r}, {r}))",
                      shape=(3, cout, size, size, size))
        expect(out.dtype == torch.float64, f"in float64 (block.double()) the output is {out.dtype}: a hard-coded "
                                           ".float() or dtype=torch.float32 in forward; keep the input's dtype")
        expect(torch.equal(x, x0), "the block changed its input x in place: use out-of-place operations on x")
        with torch.no_grad():
            ref = F.relu(F.batch_norm(F.conv3d(x, conv.weight, conv.bias, stride, 1), bn.running_mean,
                                      bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps))
        expect_close(out, ref, f"Conv3dBlock({cin}, {cout}, {stride}) in eval mode on a {r}^3 grid (float64), "
                     "against ReLU(BatchNorm3d(Conv3d(x))) with your own layers' weights", atol=1e-9, rtol=1e-7)
        # a batch of one, in eval mode: element 0 alone gives what it gives inside the batch
        with torch.no_grad():
            one = call_student(block, x[:1].clone())
        if isinstance(one, torch.Tensor) and one.dim() == 4:
            raise CheckFailed("a batch of one loses its batch axis: a .squeeze() in forward; keep (B, C, R, R, R)")
        expect_tensor(one, f"the block on a batch of one (1, {cin}, {r}, {r}, {r})", shape=(1, cout, size, size, size))
        expect_close(one, out[:1], "the output for a batch of one vs the same grid inside a batch of 3 (eval mode: "
                     "each grid on its own)", atol=1e-9, rtol=1e-7)
        with torch.no_grad():
            again = call_student(block, x)
        expect_close(again, out, "a second call on the same input (eval mode)", atol=0, rtol=0)
    return "other channels and strides, a 1^3 grid, float64, a batch of one, eval mode against F.conv3d/batch_norm"


def _hidden_upsampling_path(cls) -> str:
    torch.manual_seed(34)
    for channels, m, b in (([6, 3], 3, 1), ([5, 4, 3, 2], 1, 2), ([4, 4], 2, 3)):
        path = call_student(cls, list(channels))
        expect(isinstance(path, nn.Module), f"UpsamplingPath({channels}) should be an nn.Module")
        ups = [mm for mm in path.modules() if isinstance(mm, nn.ConvTranspose3d)]
        pairs = [(u.in_channels, u.out_channels) for u in ups]
        expect(pairs == list(zip(channels[:-1], channels[1:])),
               f"UpsamplingPath({channels}) has transposed convolutions {pairs}, expected "
               f"{list(zip(channels[:-1], channels[1:]))}: build one stage per consecutive pair of the list, "
               "whatever its length (no fixed number of stages)")
        path = path.double()
        x = torch.randn(b, channels[0], m, m, m, generator=torch.Generator().manual_seed(35), dtype=torch.float64)
        x0 = x.clone()
        path.train()
        with torch.no_grad():
            out = call_student(path, x)
        r = m * 2 ** (len(channels) - 1)
        if b == 1 and isinstance(out, torch.Tensor) and out.dim() == 3:
            raise CheckFailed("a batch of one returns (R, R, R): .squeeze() drops the batch axis too; take out[:, 0]")
        expect_tensor(out, f"UpsamplingPath({channels})(x ({b}, {channels[0]}, {m}, {m}, {m}))", shape=(b, r, r, r))
        expect(out.dtype == torch.float64, f"in float64 (path.double()) the output is {out.dtype}: a hard-coded "
                                           ".float() or dtype=torch.float32; keep the input's dtype")
        expect(torch.equal(x, x0), "the path changed its input in place: use out-of-place operations on x")
        path.eval()
        _check_upsampling_reference(path, list(channels), x)
        # eval mode: the grids of a batch are independent
        if b > 1:
            with torch.no_grad():
                a = call_student(path, x)
                x2 = x.clone()
                x2[1:] += 3.0
                c = call_student(path, x2)
            expect_close(c[0], a[0], "grid 0's logits after changing only the other grids (eval mode)", atol=1e-9)
    return "1, 2 and 3 stages, seeds 1^3 to 3^3, a batch of one, float64, grids independent in eval mode"


def _register_hidden() -> None:
    from course_lib import metrics
    from course_lib.experiments import voxels as experiments_voxels
    from course_lib.models import voxels as models_voxels

    check_voxel_iou.hidden(_hidden_voxel_iou, references=(metrics.volumetric_iou, experiments_voxels.iou_sweep))
    check_conv3d_block.hidden(_hidden_conv3d_block, references=(models_voxels.VoxelEncoder.__init__,
                                                                models_voxels.VoxelEncoder.forward))
    check_upsampling_path.hidden(_hidden_upsampling_path, references=(models_voxels.VoxelDecoder.__init__,
                                                                      models_voxels.VoxelDecoder.decode_grid,
                                                                      models_voxels.decoder_channels))


_register_hidden()
