"""Self-checks of chapter 03 (``labs/03_voxels_lab.ipynb``): voxel IoU, a 3D conv block, the upsampling path.

Introduced in ``lectures/03_voxels.ipynb``.  The references are computed here independently:
the IoU by NumPy set counts, the conv block by its receptive field (one changed voxel changes a
``3^3`` block of the output) and output sizes, the upsampling path by its output sizes and layers.
"""

from __future__ import annotations

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
    down = call_student(cls, 3, 4, 2)
    expect(isinstance(down, nn.Module), "Conv3dBlock(3, 4, stride=2) should be an nn.Module")
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
    # each output voxel depends on the input: gradients reach every parameter
    out.square().mean().backward()
    expect(all(p.grad is not None for p in path.parameters() if p.requires_grad),
           "some parameters get no gradient: is every layer used in forward?")
    one = call_student(cls, [8])
    with torch.no_grad():
        y = call_student(one.eval(), torch.randn(2, 8, 4, 4, 4))
    expect_tensor(y, "UpsamplingPath([8])(x (2, 8, 4, 4, 4)) (no stage: only the last convolution)", shape=(2, 4, 4, 4))
    return "ConvTranspose3d k4 s2 p1 + BatchNorm3d + ReLU per stage (2^3 -> 8^3), logits from a last Conv3d"
