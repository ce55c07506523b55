"""The chapter-03 self-checks pass the reference, fail plausible wrong answers by name, and flag stubs."""

from __future__ import annotations

import pytest
import torch
from check_helpers import failed as _failed
from check_helpers import hidden_results_on, stub
from torch import nn

from course_lib import checks

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- reference solutions, written independently of course_lib.models.voxels ---
def voxel_iou(probs, target, threshold):
    a = (probs >= threshold).flatten(1)
    b = (target > 0.5).flatten(1)
    inter = (a & b).sum(1).double()
    union = (a | b).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


class Conv3dBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm3d(cout)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class UpsamplingPath(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose3d(a, b, 4, 2, 1), nn.BatchNorm3d(b), nn.ReLU())
            for a, b in zip(channels[:-1], channels[1:]))
        self.out = nn.Conv3d(channels[-1], 1, 3, padding=1)

    def forward(self, x):
        for s in self.stages:
            x = s(x)
        return self.out(x)[:, 0]






def test_references_pass():
    assert checks.check_voxel_iou(voxel_iou, quiet=True).passed
    assert checks.check_conv3d_block(Conv3dBlock, quiet=True).passed
    assert checks.check_upsampling_path(UpsamplingPath, quiet=True).passed


def test_library_passes():
    from course_lib.experiments.voxels import iou_sweep
    from course_lib.metrics import volumetric_iou

    def lib_iou(probs, target, t):
        return volumetric_iou(probs >= t, target > 0.5, batched=True, reduction="none")

    assert checks.check_voxel_iou(lib_iou, quiet=True).passed

    def sweep_iou(probs, target, t):  # the sweep averages; per shape, one at a time
        return torch.tensor([iou_sweep(p[None], q[None].float(), (t,))[t] for p, q in zip(probs, target)])

    assert checks.check_voxel_iou(sweep_iou, quiet=True).passed


def test_stubs_are_not_implemented():
    for check in (checks.check_voxel_iou, checks.check_conv3d_block, checks.check_upsampling_path):
        res = check(stub, quiet=True)
        assert res.status == "not_implemented", res.verdict()
    assert checks.check_voxel_iou(lambda p, t, th: ..., quiet=True).status == "not_implemented"


# --- voxel IoU -------------------------------------------------------------------
def test_iou_strict_threshold():
    _failed(checks.check_voxel_iou(_strict, quiet=True), ">=")


def _strict(probs, target, threshold):
    a, b = (probs > threshold).flatten(1), (target > 0.5).flatten(1)
    inter, union = (a & b).sum(1).double(), (a | b).sum(1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def test_iou_pooled_over_the_batch():
    def pooled(probs, target, threshold):
        a, b = probs >= threshold, target > 0.5
        return ((a & b).sum() / (a | b).sum()).double().expand(probs.shape[0]).clone()

    _failed(checks.check_voxel_iou(pooled, quiet=True), "pooled")


def test_iou_scalar_mean():
    _failed(checks.check_voxel_iou(lambda p, t, th: voxel_iou(p, t, th).mean(), quiet=True), "per shape")


def test_iou_union_as_sum():
    def sums(probs, target, threshold):
        a, b = (probs >= threshold).flatten(1), (target > 0.5).flatten(1)
        return (a & b).sum(1).double() / (a.sum(1) + b.sum(1)).double().clamp_min(1)

    _failed(checks.check_voxel_iou(sums, quiet=True), "twice")


def test_iou_dice():
    def dice(probs, target, threshold):
        a, b = (probs >= threshold).flatten(1), (target > 0.5).flatten(1)
        return 2 * (a & b).sum(1).double() / (a.sum(1) + b.sum(1)).double().clamp_min(1)

    _failed(checks.check_voxel_iou(dice, quiet=True), "Dice")


def test_iou_soft():
    def soft(probs, target, threshold):
        p, t = probs.flatten(1), target.float().flatten(1)
        return ((p * t).sum(1) / (p + t - p * t).sum(1)).double()

    _failed(checks.check_voxel_iou(soft, quiet=True), "soft")


def test_iou_fixed_half_threshold():
    _failed(checks.check_voxel_iou(lambda p, t, th: voxel_iou(p, t, 0.5), quiet=True), "threshold")


def test_iou_nan_for_empty():
    def nan_empty(probs, target, threshold):
        a, b = (probs >= threshold).flatten(1), (target > 0.5).flatten(1)
        return (a & b).sum(1).double() / (a | b).sum(1).double()

    _failed(checks.check_voxel_iou(nan_empty, quiet=True), "NaN", "IoU 1")


def test_iou_zero_for_empty():
    def zero_empty(probs, target, threshold):
        a, b = (probs >= threshold).flatten(1), (target > 0.5).flatten(1)
        return (a & b).sum(1).double() / (a | b).sum(1).double().clamp_min(1)

    _failed(checks.check_voxel_iou(zero_empty, quiet=True), "empty")


# --- conv block ------------------------------------------------------------------
def _block(conv, bn=True, relu=True):
    class B(nn.Module):
        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.conv = conv(cin, cout, stride)
            self.bn = nn.BatchNorm3d(cout) if bn else nn.Identity()
            self.relu = relu

        def forward(self, x):
            y = self.bn(self.conv(x))
            return torch.relu(y) if self.relu else y

    return B


def test_block_no_padding():
    res = checks.check_conv3d_block(_block(lambda a, b, s: nn.Conv3d(a, b, 3, s)), quiet=True)
    _failed(res, "padding=1")


def test_block_conv2d():
    class B(nn.Module):
        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, stride, 1)
            self.bn = nn.BatchNorm2d(cout)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    _failed(checks.check_conv3d_block(B, quiet=True), "Conv3d")


def test_block_without_relu():
    _failed(checks.check_conv3d_block(_block(lambda a, b, s: nn.Conv3d(a, b, 3, s, 1), relu=False), quiet=True),
            "ReLU")


def test_block_without_batchnorm():
    _failed(checks.check_conv3d_block(_block(lambda a, b, s: nn.Conv3d(a, b, 3, s, 1), bn=False), quiet=True),
            "BatchNorm3d")


def test_block_kernel_five():
    _failed(checks.check_conv3d_block(_block(lambda a, b, s: nn.Conv3d(a, b, 5, s, 2)), quiet=True),
            "(3, 3, 3)")


def test_block_ignores_stride():
    _failed(checks.check_conv3d_block(_block(lambda a, b, s: nn.Conv3d(a, b, 3, 1, 1)), quiet=True), "stride")


def test_block_flat_kernel():
    # a (1, 3, 3) kernel: 2D convolutions slice by slice
    _failed(checks.check_conv3d_block(_block(lambda a, b, s: nn.Conv3d(a, b, (1, 3, 3), s, (0, 1, 1))),
                                      quiet=True), "three axes")


# --- upsampling path -----------------------------------------------------------------
def _path(up, final_act=None, squeeze=True, bn=True):
    class P(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.stages = nn.ModuleList(
                nn.Sequential(up(a, b), nn.BatchNorm3d(b) if bn else nn.Identity(), nn.ReLU())
                for a, b in zip(channels[:-1], channels[1:]))
            self.out = nn.Conv3d(channels[-1], 1, 3, padding=1)

        def forward(self, x):
            for s in self.stages:
                x = s(x)
            y = self.out(x)
            if final_act is not None:
                y = final_act(y)
            return y[:, 0] if squeeze else y

    return P


def test_path_kernel_three():
    _failed(checks.check_upsampling_path(_path(lambda a, b: nn.ConvTranspose3d(a, b, 3, 2, 1, output_padding=1)),
                                         quiet=True), "kernel 4")


def test_path_sigmoid_at_the_end():
    _failed(checks.check_upsampling_path(_path(lambda a, b: nn.ConvTranspose3d(a, b, 4, 2, 1), torch.sigmoid),
                                         quiet=True), "logits", "sigmoid")


def test_path_relu_at_the_end():
    _failed(checks.check_upsampling_path(_path(lambda a, b: nn.ConvTranspose3d(a, b, 4, 2, 1), torch.relu),
                                         quiet=True), "logits", "ReLU")


def test_path_keeps_channel_dimension():
    _failed(checks.check_upsampling_path(_path(lambda a, b: nn.ConvTranspose3d(a, b, 4, 2, 1), squeeze=False),
                                         quiet=True), "(B, R, R, R)")


def test_path_nearest_upsampling():
    class P(nn.Module):
        def __init__(self, channels):
            super().__init__()
            layers = []
            for a, b in zip(channels[:-1], channels[1:]):
                layers += [nn.Upsample(scale_factor=2), nn.Conv3d(a, b, 3, padding=1), nn.BatchNorm3d(b), nn.ReLU()]
            self.net = nn.Sequential(*layers, nn.Conv3d(channels[-1], 1, 3, padding=1))

        def forward(self, x):
            return self.net(x)[:, 0]

    _failed(checks.check_upsampling_path(P, quiet=True), "ConvTranspose3d")


def test_path_wrong_channel_order():
    class P(UpsamplingPath):
        def __init__(self, channels):
            super().__init__(list(reversed(channels)))

    _failed(checks.check_upsampling_path(P, quiet=True), "channels")


def test_path_missing_stage():
    class P(UpsamplingPath):
        def __init__(self, channels):
            super().__init__(channels[:-1] if len(channels) > 1 else channels)

    _failed(checks.check_upsampling_path(P, quiet=True), "stages")


def test_path_without_batchnorm():
    _failed(checks.check_upsampling_path(_path(lambda a, b: nn.ConvTranspose3d(a, b, 4, 2, 1), bn=False),
                                         quiet=True), "BatchNorm3d")


# --- wrong answers found by the chapter 03-04 review (probes/ch03_ch04/wrong_answers.py) ---------------
def test_iou_guarded_on_the_intersection():
    def inter_guard(probs, target, threshold):  # an empty prediction against a full target scores 1
        a, b = (probs >= threshold).flatten(1), (target > 0.5).flatten(1)
        inter, union = (a & b).sum(1).double(), (a | b).sum(1).double()
        return torch.where(inter > 0, inter / union.clamp_min(1), torch.ones_like(union))

    _failed(checks.check_voxel_iou(inter_guard, quiet=True), "empty prediction", "union")


def test_iou_with_epsilons_is_accepted():
    def eps(probs, target, threshold):  # (inter + eps) / (union + eps): within 1e-6 everywhere, 1 for two empties
        a, b = (probs >= threshold).flatten(1).double(), (target > 0.5).flatten(1).double()
        return ((a * b).sum(1) + 1e-9) / ((a + b - a * b).sum(1) + 1e-9)

    assert checks.check_voxel_iou(eps, quiet=True).passed


class _BNFirst(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.bn, self.conv = nn.BatchNorm3d(cin), nn.Conv3d(cin, cout, 3, stride, 1)

    def forward(self, x):
        return torch.relu(self.conv(self.bn(x)))


class _PoolDown(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv, self.bn = nn.Conv3d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm3d(cout)
        self.pool = nn.MaxPool3d(stride) if stride > 1 else nn.Identity()

    def forward(self, x):
        return self.pool(torch.relu(self.bn(self.conv(x))))


class _ReluBeforeBN(Conv3dBlock):
    def forward(self, x):
        return self.bn(torch.relu(self.conv(x)))


class _ReluBNRelu(Conv3dBlock):
    def forward(self, x):
        return torch.relu(self.bn(torch.relu(self.conv(x))))


def test_block_batchnorm_before_the_conv():
    _failed(checks.check_conv3d_block(_BNFirst, quiet=True), "input channels", "after the convolution")


def test_block_pooling_instead_of_a_strided_conv():
    _failed(checks.check_conv3d_block(_PoolDown, quiet=True), "pooling")


def test_block_circular_padding():
    conv = lambda a, b, s: nn.Conv3d(a, b, 3, s, 1, padding_mode="circular")  # noqa: E731
    _failed(checks.check_conv3d_block(_block(conv), quiet=True), "circular")


def test_block_relu_before_batchnorm():
    _failed(checks.check_conv3d_block(_ReluBeforeBN, quiet=True), "Conv3d -> BatchNorm3d -> ReLU")
    _failed(checks.check_conv3d_block(_ReluBNRelu, quiet=True), "ReLU comes before the BatchNorm3d")


class _NoReLUPath(UpsamplingPath):
    def __init__(self, channels):
        super().__init__(channels)
        self.stages = nn.ModuleList(nn.Sequential(nn.ConvTranspose3d(a, b, 4, 2, 1), nn.BatchNorm3d(b))
                                    for a, b in zip(channels[:-1], channels[1:]))


class _PermutedPath(UpsamplingPath):
    def forward(self, x):
        return super().forward(x).permute(0, 3, 2, 1)


class _SqueezePath(UpsamplingPath):
    def forward(self, x):
        for s in self.stages:
            x = s(x)
        return self.out(x).squeeze()


class _ReluFirstPath(UpsamplingPath):
    def __init__(self, channels):
        super().__init__(channels)
        self.stages = nn.ModuleList(nn.Sequential(nn.ConvTranspose3d(a, b, 4, 2, 1), nn.ReLU(), nn.BatchNorm3d(b))
                                    for a, b in zip(channels[:-1], channels[1:]))


class _BNBeforeUpPath(UpsamplingPath):
    def __init__(self, channels):
        super().__init__(channels)
        self.stages = nn.ModuleList(nn.Sequential(nn.BatchNorm3d(a), nn.ConvTranspose3d(a, b, 4, 2, 1), nn.ReLU())
                                    for a, b in zip(channels[:-1], channels[1:]))


def test_path_without_relu():
    _failed(checks.check_upsampling_path(_NoReLUPath, quiet=True), "no ReLU")


def test_path_permuted_axes():
    _failed(checks.check_upsampling_path(_PermutedPath, quiet=True), "permuted")


def test_path_squeeze_drops_the_batch_of_one():
    _failed(checks.check_upsampling_path(_SqueezePath, quiet=True), "batch of one")


def test_path_relu_before_batchnorm():
    _failed(checks.check_upsampling_path(_ReluFirstPath, quiet=True), "before the BatchNorm3d")


def test_path_batchnorm_before_the_transposed_conv():
    _failed(checks.check_upsampling_path(_BNBeforeUpPath, quiet=True), "input channels")


# --- hidden parts (the grader's) ----------------------------------------------------
_hidden = hidden_results_on  # (public result, hidden result)


def test_hidden_parts_pass_the_references(monkeypatch):
    for check, answer in ((checks.check_voxel_iou, voxel_iou), (checks.check_conv3d_block, Conv3dBlock),
                          (checks.check_upsampling_path, UpsamplingPath)):
        res, hid = _hidden(monkeypatch, check, answer)
        assert res.passed and hid.passed, hid.verdict()


def test_hidden_iou_catches_a_squeeze(monkeypatch):
    res, hid = _hidden(monkeypatch, checks.check_voxel_iou, lambda p, t, th: voxel_iou(p, t, th).squeeze())
    assert res.passed
    _failed(hid, "batch of one", ".squeeze()")



def test_hidden_iou_catches_an_in_place_threshold(monkeypatch):
    def in_place(probs, target, threshold):
        probs.masked_fill_(probs < threshold, 0.0)
        return voxel_iou(probs, target, threshold)

    res, hid = _hidden(monkeypatch, checks.check_voxel_iou, in_place)
    assert res.passed  # the public part passes copies
    _failed(hid, "changed its inputs")


def test_hidden_iou_flags_the_library(monkeypatch):
    from course_lib.metrics import volumetric_iou

    res, hid = _hidden(monkeypatch, checks.check_voxel_iou,
                       lambda p, t, th: volumetric_iou(p >= th, t > 0.5, batched=True, reduction="none"))
    assert res.passed
    _failed(hid, "delegated to course_lib.metrics.volumetric_iou")


def test_hidden_block_catches_a_fixed_float32(monkeypatch):
    class Float32(Conv3dBlock):  # a hard-coded dtype at the end of forward
        def forward(self, x):
            return super().forward(x).to(torch.float32)

    res, hid = _hidden(monkeypatch, checks.check_conv3d_block, Float32)
    assert res.passed
    _failed(hid, "float64", "float32")


def test_hidden_path_catches_a_fixed_number_of_stages_and_float32(monkeypatch):
    class TwoStages(nn.Module):  # right for the public [16, 8, 4] and [8]: at most two stages
        def __init__(self, channels):
            super().__init__()
            pairs = list(zip(channels[:-1], channels[1:]))[:2]
            self.stages = nn.Sequential(*(layer for a, b in pairs for layer in
                                          (nn.ConvTranspose3d(a, b, 4, 2, 1), nn.BatchNorm3d(b), nn.ReLU())))
            self.out = nn.Conv3d(pairs[-1][1] if pairs else channels[0], 1, 1)

        def forward(self, x):
            return self.out(self.stages(x))[:, 0]

    res, hid = _hidden(monkeypatch, checks.check_upsampling_path, TwoStages)
    assert res.passed
    _failed(hid, "no fixed number of stages")

    class Float32(UpsamplingPath):
        def forward(self, x):
            return super().forward(x).float()

    res, hid = _hidden(monkeypatch, checks.check_upsampling_path, Float32)
    assert res.passed
    _failed(hid, "float32")


def test_hidden_path_flags_the_library_decoder(monkeypatch):
    from course_lib.models.voxels import VoxelDecoder

    class Wrapped(nn.Module):  # the library decoder's upsampling path, for any seed size
        def __init__(self, channels):
            super().__init__()
            self.dec = VoxelDecoder(8, 2 ** len(channels), channels[-1], 2, max_channels=channels[0])
            del self.dec.seed

        def forward(self, x):
            self.dec.min_resolution = x.shape[-1]
            return self.dec.decode_grid(x)

    res, hid = _hidden(monkeypatch, checks.check_upsampling_path, Wrapped)
    assert res.passed, res.verdict()
    _failed(hid, "delegated to course_lib.models.voxels.VoxelDecoder")
