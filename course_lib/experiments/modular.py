"""The seed's "very modular framework": every encoder with every decoder, one recipe, one budget, one score.

Introduced in ``lectures/11_evaluation.ipynb`` (section "Encoders x decoders").

The tutorial presents 3D reconstruction as an encoder of the input (an image, a point cloud, a voxel grid)
feeding a decoder of a representation (voxels, points, patches, an implicit field), and the papers it cites
each fix one pair (Choy 2016: image -> voxels; Fan 2017: image -> points; Groueix 2018: points or image ->
patches; Mescheder 2019: any -> occupancy).  Here every pair is built from the course's own modules
(:class:`course_lib.models.encoders.ResNetEncoder`, :class:`~course_lib.models.encoders.PointNet`,
:class:`course_lib.models.voxels.VoxelEncoder`; :class:`~course_lib.models.voxels.VoxelDecoder`, a
fully connected point decoder (:class:`course_lib.models.psg.PointSetGenDecoder` with its map branch off),
:class:`course_lib.models.atlasnet.AtlasNet`'s patches, :class:`course_lib.models.implicit.OccNetDecoder`,
:class:`course_lib.models.primitives.PrimitiveNet`'s cuboid heads, trained as in chapter 08 by the expected loss
of the reordering trick, and chapter 04's :class:`course_lib.models.ogn.OGNDecoder`, trained as in chapter 04 with
the known structure and decoded with its own predicted structure),
trained on the same shapes with the same optimiser, steps and batch, each with its decoder's usual loss, and
scored under one convention: Chamfer (x1e3, AtlasNet's) between samples of the output surface and the test
target points, and IoU at the test occupancy samples where the output encloses a volume.  Each pair keeps the
epoch its own validation loss prefers.  Sizes: ``ch11.mod_*`` in :mod:`course_lib.config`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor, nn
from torch.nn import functional as F

from course_lib import config
from course_lib.ops import chamfer_distance

__all__ = ["ENCODERS", "DECODERS", "ModularNet", "modular_data", "modular_loss", "train_pair", "predict_surface",
           "score_pair", "score_cells", "cross_table", "cross_table_text", "print_decoder_cells"]

ENCODERS = ("image", "points", "voxels")
"""Inputs: one rendered view (``rgb``), a surface point cloud (``points``), an occupancy grid (``voxels``)."""
DECODERS = ("voxels", "octree", "points", "patches", "implicit", "primitives")
"""Outputs: occupancy logits on a grid, an octree of the same resolution (OGN), a fixed set of points, square
patches, an occupancy field, cuboids."""
_INPUT = {"image": "rgb", "points": "points", "voxels": "voxels"}


def _sizes(profile: str | None) -> dict[str, Any]:
    return dict(config.sizes(profile, prefix="ch11."))


class _CodeIn(nn.Module):
    """Hands the latent code to :class:`~course_lib.models.primitives.PrimitiveNet`'s heads as its "encoder"."""

    def forward(self, z: Tensor) -> Any:  # noqa: D102
        from types import SimpleNamespace

        return SimpleNamespace(global_feature=z)


class ModularNet(nn.Module):
    """One encoder (:data:`ENCODERS`) and one decoder (:data:`DECODERS`) sharing a latent code of ``latent``.

    Introduced in ``lectures/11_evaluation.ipynb``.  ``forward(inputs, query=None)`` returns the decoder's raw
    output: logits ``(B, R, R, R)``, points ``(B, N, 3)``, occupancy logits ``(B, Q)`` at ``query (B, Q, 3)``, or
    :class:`~course_lib.models.primitives.Primitives` (``n_primitives`` cuboids with existence probabilities), or
    for the octree decoder an :class:`~course_lib.models.ogn.OGNOutput` (``forward(inputs, target=octree)``
    propagates the target's structure, as chapter 04 trains; without it, the decoder's own predicted structure).
    The octree decoder has ``decoder.tree_depth`` levels below its root grid (3, or fewer when ``resolution`` is
    smaller than 8) and chapter 04's halving widths from ``4 * width``.
    """

    def __init__(self, encoder: str, decoder: str, *, latent: int = 128, resolution: int = 32, n_points: int = 1024,
                 n_patches: int = 8, width: int = 16, hidden: int = 128, n_primitives: int = 8) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        from course_lib.models.atlasnet import AtlasNet
        from course_lib.models.encoders import PointNet, ResNetEncoder
        from course_lib.models.implicit import OccNetDecoder
        from course_lib.models.psg import PointSetGenDecoder
        from course_lib.models.voxels import VoxelDecoder, VoxelEncoder

        self.encoder_kind, self.decoder_kind = encoder, decoder
        self.resolution, self.n_points = int(resolution), int(n_points)
        if encoder == "image":
            self.encoder = ResNetEncoder(3, layers=(1, 1, 1), width=int(width), out_dim=int(latent))
        elif encoder == "points":
            self.encoder = PointNet(feat_dim=int(hidden) * 2, hidden=(64, int(hidden)), out_dim=int(latent))
        else:
            self.encoder = VoxelEncoder(int(resolution), int(latent), base_channels=int(width))
        if decoder == "voxels":
            self.decoder = VoxelDecoder(int(latent), int(resolution), base_channels=int(width))
        elif decoder == "points":
            self.decoder = PointSetGenDecoder(int(latent), n_fc=int(n_points), map_size=(0, 0),
                                              fc_hidden=(int(hidden) * 2, int(hidden) * 2))
        elif decoder == "patches":
            self.decoder = AtlasNet(None, int(latent), n_patches=int(n_patches), template="square",
                                    hidden=(int(hidden), int(hidden) // 2), n_points=int(n_points))
        elif decoder == "implicit":
            self.decoder = OccNetDecoder(c_dim=int(latent), hidden=int(hidden), n_blocks=3)
        elif decoder == "octree":
            from course_lib.models.ogn import OGNDecoder

            depth = min(3, int(resolution).bit_length() - 1)
            self.decoder = OGNDecoder(int(latent), int(resolution), tree_depth=depth,
                                      channels=tuple(max(4, 4 * int(width) // 2 ** i) for i in range(depth + 1)))
        else:
            from course_lib.models.primitives import PrimitiveNet

            self.decoder = PrimitiveNet(_CodeIn(), int(latent), int(n_primitives), kind="cuboid", hidden=int(hidden))

    def encode(self, inputs: Tensor) -> Tensor:
        """The latent code ``(B, latent)`` of ``inputs`` (images, clouds or grids, as :attr:`encoder_kind`)."""
        z = self.encoder(inputs)
        return z.global_feature if hasattr(z, "global_feature") else z

    def forward(self, inputs: Tensor, query: Tensor | None = None, *, target: Any = None) -> Any:  # noqa: D102
        if target is not None and self.decoder_kind != "octree":
            raise ValueError(f"target= is for the octree decoder, not {self.decoder_kind!r}")
        z = self.encode(inputs)
        if self.decoder_kind == "octree":
            from course_lib.models.ogn import PROP_KNOWN, PROP_PRED

            return self.decoder(z, target, PROP_KNOWN if target is not None else PROP_PRED)
        if self.decoder_kind == "implicit":
            if query is None:
                raise ValueError("the implicit decoder needs query points (B, Q, 3)")
            return self.decoder(query, z)
        if self.decoder_kind == "patches":
            return self.decoder.decode(z, self.n_points).points
        return self.decoder(z)


def modular_data(split: str, profile: str | None = None) -> dict[str, Any]:
    """A split with every input and target the table needs: ``rgb``, ``points``, ``voxels``, ``target_points``,
    ``occ_points`` / ``occupancy``, ``category``, ``seed`` (``ch11.mod_categories``, ``ch11.mod_<split>_per_category``)."""
    from .common import load_split

    s = _sizes(profile)
    d = load_split(split, ("image", "points", "voxels", "occupancy", "target_points"),
                   categories=tuple(s["mod_categories"]), shapes_per_category=int(s[f"mod_{split}_per_category"]),
                   profile=profile)
    return {k: d[k] for k in ("rgb", "points", "voxels", "target_points", "occ_points", "occupancy", "seed",
                              "category")}


def modular_loss(model: ModularNet, occ_points: int | None = None, *, primitives: dict[str, Any] | None = None) -> Any:
    """``loss_fn(model, batch)`` of :func:`course_lib.train.fit` for ``model``'s decoder: binary cross-entropy on the
    grid (voxels) or at the occupancy samples (implicit; a random ``occ_points`` of them per batch, as OccNet
    draws 2,048 per shape), OGN's per-level cross-entropy with the target grid's octree structure (octree, as
    chapter 04's :func:`~course_lib.experiments.octrees.ogn_loss_fn`), the squared Chamfer distance to
    ``target_points`` (points, patches), chapter 08's expected loss (coverage by the reordering trick, consistency,
    parsimony; primitives) with the settings ``primitives`` (``n_samples``, ``empty``, ``parsimony``; chapter 08's
    ``ch08.*`` by default)."""
    kind, key = model.decoder_kind, _INPUT[model.encoder_kind]
    if kind == "primitives":
        return _primitive_loss(key, **(primitives or {}))

    def loss_fn(m: ModularNet, batch: dict[str, Tensor]) -> Tensor:
        x = batch[key]
        if kind == "voxels":
            return F.binary_cross_entropy_with_logits(m(x), batch["voxels"])
        if kind == "octree":
            from course_lib.geometry.octree import build_octree
            from course_lib.models.ogn import ogn_loss

            return ogn_loss(m(x, target=build_octree(batch["voxels"] > 0.5, m.decoder.tree_depth)))["loss"]
        if kind == "implicit":
            q, o = batch["occ_points"], batch["occupancy"]
            if occ_points is not None and q.shape[1] > occ_points:
                idx = torch.randperm(q.shape[1], device=q.device)[:occ_points]
                q, o = q[:, idx], o[:, idx]
            return F.binary_cross_entropy_with_logits(m(x, q), o)
        return chamfer_distance(m(x), batch["target_points"]).mean()

    return loss_fn


def _primitive_loss(key: str, *, n_samples: int = 32, empty: float = 4.0, parsimony: float = 1e-3) -> Any:
    from course_lib.models.primitives import expected_loss, primitive_terms

    def prim_loss_fn(m: ModularNet, batch: dict[str, Tensor]) -> Tensor:
        terms = primitive_terms(m(batch[key]), batch["target_points"], int(n_samples))
        return expected_loss(terms, empty=float(empty), parsimony=float(parsimony))["loss"].mean()

    return prim_loss_fn


def _primitive_settings(profile: str | None) -> dict[str, Any]:
    c = config.sizes(profile, prefix="ch08.")
    return {"n_primitives": int(c["n_primitives"]), "n_samples": int(c["n_samples"]), "empty": float(c["empty"]),
            "parsimony": float(c["parsimony"])}


def train_pair(encoder: str, decoder: str, train: dict[str, Any], val: dict[str, Any], profile: str | None = None, *,
               progress: bool = False, retrain: bool = False) -> tuple[ModularNet, Any]:
    """Train (or load) one pair: Adam (``ch11.mod_lr``), ``ch11.mod_epochs`` epochs of ``ch11.mod_batch`` shapes, the
    same for every pair; the epoch with the lowest own validation loss is kept.  Returns ``(model, history)``."""
    from course_lib import train as T

    from .common import Batches

    s = _sizes(profile)
    seed = int(s["mod_seed"])
    config.seed_everything(seed)
    res = int(train["voxels"].shape[-1])
    prim = _primitive_settings(profile)
    model = ModularNet(encoder, decoder, latent=int(s["mod_latent"]), resolution=res, n_points=int(s["mod_points"]),
                       n_patches=int(s["mod_patches"]), width=int(s["mod_width"]), hidden=int(s["mod_hidden"]),
                       n_primitives=prim["n_primitives"])
    keys = [_INPUT[encoder], "voxels", "target_points", "occ_points", "occupancy"]
    keys = list(dict.fromkeys(keys))
    spec = {"pair": (encoder, decoder), "train_seeds": train["seed"], "val_seeds": val["seed"],
            "categories": sorted(set(train["category"])), "seed": seed, "occ_points": int(s["mod_occ_points"])}
    if decoder == "primitives":  # chapter 08's settings (the other pairs' specs, and checkpoints, stay as they were)
        spec["primitives"] = prim
    path = T.checkpoint_path(f"ch11_mod_{encoder}_{decoder}", spec, profile)
    hist = T.train_or_load(model, path, retrain=retrain, spec=spec,
                           train_loader=Batches(train, int(s["mod_batch"]), keys=keys, seed=seed),
                           val_loader=Batches(val, int(s["mod_batch"]), keys=keys, shuffle=False),
                           loss_fn=modular_loss(model, int(s["mod_occ_points"]),
                                                primitives={k: v for k, v in prim.items() if k != "n_primitives"}),
                           epochs=int(s["mod_epochs"]), lr=float(s["mod_lr"]),
                           seed=seed, progress=progress, live_plot=False)
    model.eval()
    return model, hist


@torch.no_grad()
def predict_surface(model: ModularNet, inputs: Tensor, n: int, *, resolution: int | None = None,
                    seed: int = 0) -> tuple[Tensor, Any]:
    """``n`` points of the output surface of one input ``(1, ...)`` and its occupancy function (or None).

    Points and patches give their own points (``n`` of them; patches on their lattice); voxels, the octree (its
    leaves at the finest level, decoded with its own predicted structure) and the implicit
    field are meshed by marching cubes (the grid padded with empty cells so that the surface closes; the field
    on a ``resolution``-node grid over ``[-1, 1]^3``, padded likewise) and sampled by area; primitives give ``n``
    samples of the surface of the union of the cuboids that exist (probability above 1/2; samples inside another
    existing cuboid dropped, as chapter 08 scores it) and the union's occupancy.  An empty output gives one point
    at the origin.
    """
    from course_lib.geometry import marching_cubes, sample_mesh_surface
    from course_lib.geometry.mc import grid_points

    kind = model.decoder_kind

    def sample(mesh: trimesh.Trimesh | None) -> Tensor:
        if mesh is None or len(mesh.faces) == 0:
            return torch.zeros(1, 3)
        return sample_mesh_surface(mesh, int(n), seed=seed)[0]

    if kind in ("points", "patches"):
        return model(inputs)[0].float(), None
    if kind == "primitives":
        from course_lib.models.primitives import union_occupancy, union_surface_points

        prims = model(inputs)[:1]
        g = torch.Generator(device=inputs.device).manual_seed(int(seed))
        n_exist = max(int((prims.prob > 0.5).sum()), 1)
        pts = union_surface_points(prims, 2 * math.ceil(int(n) / n_exist), generator=g)[0].float()
        if len(pts) == 0:
            return torch.zeros(1, 3), (lambda q: torch.zeros(q.shape[:-1], dtype=torch.bool, device=q.device))
        pick = torch.randperm(len(pts), generator=g, device=pts.device)[:int(n)] if len(pts) >= n else \
            torch.randint(len(pts), (int(n),), generator=g, device=pts.device)
        return pts[pick], (lambda q: union_occupancy(prims, q[None])[0])
    if kind in ("voxels", "octree"):
        prob = torch.sigmoid(model(inputs)[0]).float() if kind == "voxels" else model(inputs).occupancy()[0].float()
        r = prob.shape[0]
        padded = F.pad(prob, (1, 1, 1, 1, 1, 1))
        mesh = marching_cubes(-padded, -0.5, bound=1.0 + 1.0 / r) if float(prob.max()) > 0.5 else None

        def occ(q: Tensor) -> Tensor:
            idx = torch.floor((q + 1.0) / 2.0 * r).long()
            inside = ((idx >= 0) & (idx < r)).all(-1)
            idx = idx.clamp(0, r - 1)
            return (prob[idx[..., 0], idx[..., 1], idx[..., 2]] > 0.5) & inside
        return sample(mesh), occ
    r = int(resolution or model.resolution)
    z = model.encode(inputs)
    nodes = grid_points(r).reshape(1, -1, 3)
    logit = torch.cat([model.decoder(c, z) for c in nodes.split(8192, dim=1)], dim=1).reshape(r, r, r)
    padded = F.pad(logit, (1, 1, 1, 1, 1, 1), value=-1e3)
    step = 2.0 / (r - 1)
    mesh = marching_cubes(-padded, 0.0, bound=1.0 + step) if float(logit.max()) > 0 else None
    return sample(mesh), (lambda q: model.decoder(q[None], z)[0] > 0)


def score_pair(model: ModularNet, test: dict[str, Any], *, n_points: int | None = None,
               resolution: int | None = None) -> dict[str, list[float]]:
    """Per test shape: ``cd`` (x1e3: squared nearest-neighbour distances, mean each way, summed, between
    :func:`predict_surface`'s points and ``target_points``) and ``iou`` at the occupancy samples (NaN for points
    and patches, which enclose no volume)."""
    n = int(n_points or test["target_points"].shape[1])
    key = _INPUT[model.encoder_kind]
    cd, iou = [], []
    for i in range(len(test["seed"])):
        pts, occ = predict_surface(model, test[key][i:i + 1], n, resolution=resolution, seed=i)
        cd.append(1e3 * float(chamfer_distance(pts[None], test["target_points"][i:i + 1]).mean()))
        if occ is None:
            iou.append(math.nan)
        else:
            with torch.no_grad():
                pred = occ(test["occ_points"][i]).reshape(-1).bool()
            gt = test["occupancy"][i] > 0.5
            union = int((pred | gt).sum())
            iou.append(float(int((pred & gt).sum()) / union) if union else 1.0)
    return {"cd": cd, "iou": iou}


def score_cells(trained: dict[tuple[str, str], tuple[ModularNet, Any]], train: dict[str, Any], test: dict[str, Any],
                profile: str | None = None) -> dict[str, dict[str, Any]]:
    """Each trained pair (:func:`train_pair`'s ``(model, history)`` by ``(encoder, decoder)``) scored on ``test``
    (:func:`score_pair`), with its budget: ``{"<encoder>/<decoder>": {"cd", "iou", "best_epoch", "epochs",
    "budget": {"steps", "examples", "seconds", "params"}}}``."""
    s = _sizes(profile)
    per_epoch = math.ceil(len(train["seed"]) / int(s["mod_batch"]))
    cells = {}
    for (e, d), (model, hist) in trained.items():
        sc = score_pair(model, test, resolution=int(s["mod_mc_resolution"]))
        epochs = len(hist.train_loss)
        cells[f"{e}/{d}"] = {**sc, "best_epoch": int(hist.best_epoch) + 1, "epochs": epochs,
                             "budget": {"steps": epochs * per_epoch, "examples": epochs * len(train["seed"]),
                                        "seconds": float(hist.wall_time),
                                        "params": int(sum(p.numel() for p in model.parameters()))}}
    return cells


def cross_table(profile: str | None = None, *, progress: bool = False, retrain: bool = False,
                encoders: tuple[str, ...] = ENCODERS, decoders: tuple[str, ...] = DECODERS) -> dict[str, Any]:
    """Every pair trained (inside :func:`course_lib.data.no_test_reads`) and scored on the test split.

    Introduced in ``lectures/11_evaluation.ipynb``.  Returns ``{"cells": {"<encoder>/<decoder>": {"cd", "iou"
    (per-shape lists), "budget": {"steps", "examples", "seconds", "params"}, "best_epoch", "epochs"}}, "shapes":
    names, "encoders", "decoders"}``.
    """
    from .protocol import no_test_reads

    with no_test_reads("training the encoder x decoder pairs and choosing each one's epoch on val"):
        train = modular_data("train", profile)
        val = modular_data("val", profile)
        trained = {}
        for e in encoders:
            for d in decoders:
                trained[(e, d)] = train_pair(e, d, train, val, profile, progress=progress, retrain=retrain)
    test = modular_data("test", profile)
    cells = score_cells(trained, train, test, profile)
    names = [f"{c}/{int(sd)}" for c, sd in zip(test["category"], test["seed"])]
    return {"cells": cells, "shapes": names, "encoders": list(encoders), "decoders": list(decoders),
            "means": {k: {"cd": float(np.mean(v["cd"])), "iou": float(np.nanmean(v["iou"]))
                          if not all(math.isnan(x) for x in v["iou"]) else math.nan} for k, v in cells.items()}}


def print_decoder_cells(decoder: str, encoders: tuple[str, ...] = ("image", "points"), profile: str = "laptop") -> None:
    """Print one decoder's cells of the measured cross table (Chamfer, IoU where measured, budget) and the claim
    comparing the first two encoders with it.

    Introduced in ``lectures/11_evaluation.ipynb``; lectures 07 and 08 use it for their decoder from an image.
    """
    from course_lib import results

    mod = results.load("modular", profile)
    if mod is None:
        print(f"not measured yet: COURSE_PROFILE={profile} python benchmarks/modular.py")
        return
    for enc in encoders:
        c = mod.data["cells"].get(f"{enc}/{decoder}")
        if c:
            print(f"{enc:6s} -> {decoder}: Chamfer {results.mean(c['cd']):.4g}"
                  + (f", IoU {results.mean(c['iou']):.3f}" if "iou" in c else "")
                  + f" on {len(c['cd'])} test shapes; {c['budget']['steps']} steps, "
                  f"{c['budget']['params']} parameters, {c['budget']['seconds']:.0f} s")
    if len(encoders) >= 2:
        results.say("modular", f"mod-enc-{decoder}-{encoders[0]}-vs-{encoders[1]}", profile)


def cross_table_text(data: dict[str, Any], metric: str = "cd") -> str:
    """The measured table as text: the mean of ``metric`` (``"cd"`` or ``"iou"``) over the test shapes, one row
    per encoder and one column per decoder, from a results file's ``data`` (``benchmarks/modular.py``).

    Introduced in ``lectures/11_evaluation.ipynb``.  A cell without values (IoU of points) prints ``-``.
    """
    def cell(v: list[float]) -> str:
        a = np.asarray(v, dtype=float)
        return f"{np.nanmean(a):11.3g}" if np.isfinite(a).any() else f"{'-':>11s}"

    lines = [f"{'':8s}" + "".join(f"{d:>11s}" for d in data["decoders"])]
    lines += [f"{e:8s}" + "".join(cell(data["cells"][f"{e}/{d}"][metric]) for d in data["decoders"])
              for e in data["encoders"]]
    return "\n".join(lines)
