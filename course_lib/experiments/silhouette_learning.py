"""Chapter 09, learning across a dataset: one network, image in, mesh out, trained from silhouettes or from 3D.

Introduced in ``lectures/09_differentiable_rendering.ipynb`` (section "Learning 3D from 2D supervision").

The seed's training setup for reconstruction from images without 3D data (Kato et al. 2018, the Neural
Mesh Renderer; Liu et al. 2019, SoftRas): an image encoder predicts the offsets of an icosphere's vertices,
and the only supervision is the silhouettes of the training shape from a few known cameras, compared with
the soft silhouettes of the predicted mesh (:func:`course_lib.render.rasterize_silhouette`, loss ``1 - IoU``
averaged over the views, plus the Laplacian and flatten regularisers of the per-shape fit).  Its rival is the
*same* network trained with 3D supervision: the Chamfer distance between points sampled on the predicted
mesh and the target's surface points (chapter 06's loss), with the same regularisers, the same data, the
same optimiser steps and the same recipe.  Each keeps the epoch its *own* validation loss prefers (the
silhouette model never sees a 3D validation number).  Both are scored in 3D on held-out shapes, and by
hard-silhouette IoU from views that neither was trained with.

Sizes: ``ch09.learn_*`` in :mod:`course_lib.config`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from course_lib import config
from course_lib.geometry.mesh_reg import (
    edge_face_pairs,
    flatten_loss,
    icosphere,
    laplacian_loss,
    uniform_laplacian,
)
from course_lib.models.encoders import ResNetEncoder
from course_lib.ops import chamfer_distance
from course_lib.render import Cameras, rasterize_silhouette, silhouette_iou, silhouette_iou_loss

from .rendering import heldout_rig, target_views, view_rig

__all__ = ["SUPERVISIONS", "SphereDeformer", "sample_mesh_points", "learning_data", "supervision_loss",
           "train_deformer", "score_deformer", "own_val_loss", "select_reg_scale", "train_both", "report_supervision", "compare_supervision",
           "back_view", "camera_view", "monitor_images"]

SUPERVISIONS = ("silhouettes", "3d")
"""``"silhouettes"``: 1 - soft IoU over the training views; ``"3d"``: Chamfer to the target's surface points."""


def _sizes(profile: str | None) -> dict[str, Any]:
    return dict(config.sizes(profile, prefix="ch09."))


class SphereDeformer(nn.Module):
    """An image ``(B, 3, H, W)`` to the vertices ``(B, V, 3)`` of a deformed icosphere (faces: :attr:`faces`).

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  A small ResNet (:class:`ResNetEncoder`,
    ``width`` channels in its first stage) gives a ``latent`` code; two hidden layers map it to one offset per
    vertex.  The last layer starts at zero, so every prediction starts as the sphere of ``radius`` (the
    template of Kato et al. and SoftRas' reconstruction networks; theirs are larger).
    """

    def __init__(self, level: int = 2, latent: int = 128, hidden: int = 256, width: int = 16,
                 radius: float = 0.5) -> None:
        super().__init__()
        v, f = icosphere(int(level), radius=float(radius))
        self.register_buffer("template", v)
        self.register_buffer("faces", f)
        self.encoder = ResNetEncoder(3, layers=(1, 1, 1), width=int(width), out_dim=int(latent))
        self.decoder = nn.Sequential(nn.Linear(int(latent), int(hidden)), nn.ReLU(),
                                     nn.Linear(int(hidden), int(hidden)), nn.ReLU(),
                                     nn.Linear(int(hidden), v.shape[0] * 3))
        nn.init.zeros_(self.decoder[-1].weight)
        nn.init.zeros_(self.decoder[-1].bias)

    def forward(self, images: Tensor) -> Tensor:  # noqa: D102
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"SphereDeformer expects RGB images (B, 3, H, W), got {getattr(images, 'shape', images)}")
        z = self.encoder(images).global_feature
        return self.template + self.decoder(z).view(images.shape[0], -1, 3)


def sample_mesh_points(verts: Tensor, faces: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` points per mesh, uniform on the surface of ``verts (B, V, 3)`` / ``faces (F, 3)``, differentiable in
    the vertices: faces drawn by area (the areas detached), uniform barycentric coordinates.  ``(B, n, 3)``."""
    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must be (B, V, 3), got {tuple(verts.shape)}")
    a, b, c = verts[:, faces[:, 0]], verts[:, faces[:, 1]], verts[:, faces[:, 2]]
    area = torch.cross(b - a, c - a, dim=-1).norm(dim=-1).detach()  # (B, F)
    area = area + 1e-12 * (area.sum(-1, keepdim=True) == 0)  # a degenerate mesh: uniform over faces
    dev = verts.device
    idx = torch.multinomial(area, int(n), replacement=True, generator=generator)  # (B, n)
    u = torch.rand(verts.shape[0], int(n), 2, device=dev, generator=generator)
    flip = u.sum(-1, keepdim=True) > 1
    u = torch.where(flip, 1 - u, u)
    g = lambda t: torch.gather(t, 1, idx[..., None].expand(-1, -1, 3))  # noqa: E731
    return g(a) + u[..., :1] * (g(b) - g(a)) + u[..., 1:] * (g(c) - g(a))


def learning_data(split: str, profile: str | None = None, *, categories: Sequence[str] | None = None,
                  per_category: int | None = None, views: Sequence[tuple[float, float]] | None = None,
                  progress: bool = False, dataset: str | None = None, root: str | None = None) -> dict[str, Any]:
    """One split for :func:`train_deformer`: ``rgb`` (the input image, one random view per shape, as chapter 03),
    ``views`` ``(S, K, H, W)`` (the shape's silhouettes from the ``K`` training cameras, the only supervision of
    the silhouette model), ``target_points`` (the 3D model's supervision and the test reference), ``seed``,
    ``category``, and ``cameras`` (the ``K`` cameras).  Sizes: ``ch09.learn_*``.

    ``dataset`` / ``root`` (or ``COURSE_DATASET`` and ``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``): a real
    dataset's meshes instead (:func:`course_lib.experiments.common.load_split`'s ``image`` and ``target_points``;
    the silhouettes by exact ray casting of each repaired mesh,
    :class:`~course_lib.experiments.mesh_shape.MeshShape`); the rows then also carry ``path`` and ``dataset``, and
    :func:`train_deformer` names its checkpoints after the dataset."""
    from .common import load_split, tag_dataset
    from .mesh_shape import row_shape

    s = _sizes(profile)
    cats = tuple(categories or s["learn_categories"])
    k = int(per_category or s[f"learn_{split}_per_category"])
    d = tag_dataset(load_split(split, ("image", "target_points"), categories=cats, shapes_per_category=k,
                               profile=profile, dataset=dataset, root=root), dataset, cats, split)
    rig = list(views) if views is not None else view_rig(int(s["learn_views"]))
    size = int(s["learn_image_size"])
    sil, cams = [], None
    it = range(len(d["seed"]))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"silhouettes ({split})")
    for i in it:
        t, cams = target_views(row_shape(d, i), rig, size)
        sil.append(t)
    out = {"rgb": d["rgb"], "views": torch.stack(sil), "target_points": d["target_points"], "seed": d["seed"],
           "category": list(d["category"]), "cameras": cams, "rig": rig, "image_size": size,
           "input_views": [camera_view(rt) for rt in d["Rt"]]}
    out.update({k: d[k] for k in ("path", "dataset") if k in d})
    return out


def camera_view(rt: Tensor) -> tuple[float, float]:
    """``(azimuth, elevation)`` in degrees of a camera ``Rt (3, 4)`` looking at the origin (the inverse of
    :func:`course_lib.data.look_at`: its centre is ``-R^T t``)."""
    c = -(rt[:, :3].double().T @ rt[:, 3].double())
    az = math.degrees(math.atan2(float(c[0]), float(c[2]))) % 360.0
    el = math.degrees(math.asin(float(c[1]) / float(c.norm())))
    return az, el


def supervision_loss(kind: str, cameras: Cameras, image_size: int, faces: Tensor, *, sigma: float,
                     lambda_lap: float, lambda_flat: float, n_points: int = 1024,
                     cull_eps: float = 1e-4) -> Any:
    """``loss_fn(model, batch)`` of :func:`course_lib.train.fit` for ``kind`` (:data:`SUPERVISIONS`).

    ``"silhouettes"``: ``1 - IoU`` between the soft silhouettes of the predicted mesh from the ``K`` cameras and
    ``batch["views"]``, averaged over views and shapes; ``"3d"``: the Chamfer distance (squared, both directions
    summed, chapter 06's) between ``n_points`` points sampled on the predicted mesh and ``batch["target_points"]``.
    Both add ``lambda_lap * laplacian + lambda_flat * flatten``.  Returns the loss and each term."""
    if kind not in SUPERVISIONS:
        raise ValueError(f"kind must be one of {SUPERVISIONS}, got {kind!r}")
    L = uniform_laplacian(faces, int(faces.max()) + 1)
    pairs = edge_face_pairs(faces)
    n_views = len(cameras)

    def loss_fn(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        verts = model(batch["rgb"])
        b = verts.shape[0]
        if kind == "silhouettes":
            cams = Cameras(cameras.K.to(verts.device).repeat(b, 1, 1), cameras.Rt.to(verts.device).repeat(b, 1, 1))
            soft = rasterize_silhouette(verts.repeat_interleave(n_views, 0), faces, cams, image_size,
                                        sigma=sigma, cull_eps=cull_eps)
            data = silhouette_iou_loss(soft, batch["views"].reshape(b * n_views, image_size, image_size))
        else:
            pts = sample_mesh_points(verts, faces, n_points)
            data = chamfer_distance(pts, batch["target_points"]).mean()
        lap = laplacian_loss(verts, faces, L.to(verts.device))
        flat = flatten_loss(verts, faces, pairs.to(verts.device))
        return {"loss": data + lambda_lap * lap + lambda_flat * flat, "data": data.detach(),
                "laplacian": lap.detach(), "flatten": flat.detach()}

    return loss_fn


def train_deformer(kind: str, train: dict[str, Any], val: dict[str, Any], profile: str | None = None, *,
                   progress: bool = True, retrain: bool = False, seed: int | None = None,
                   reg_scale: float = 1.0) -> tuple[SphereDeformer, Any]:
    """Train (or load) the :class:`SphereDeformer` with ``kind`` of supervision (:data:`SUPERVISIONS`).

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  Adam (``ch09.learn_lr``), ``ch09.learn_epochs``
    epochs of ``ch09.learn_batch`` shapes, the same for both kinds (the same steps); after each epoch the *own*
    loss of ``kind`` on ``val`` is measured and the best epoch's weights are kept.  Checkpointed
    (:func:`course_lib.train.train_or_load`).  ``reg_scale`` multiplies both regulariser weights (``ch09.lambda_lap``,
    ``ch09.lambda_flat``, which come from the per-shape silhouette fit): the two losses have different scales, so
    each supervision gets its own (:func:`select_reg_scale`).  Returns ``(model, history)``.
    """
    from course_lib import train as T

    from .common import Batches, dataset_checkpoint_name

    s = _sizes(profile)
    seed = int(s["learn_seed"] if seed is None else seed)
    config.seed_everything(seed)
    model = SphereDeformer(level=int(s["learn_level"]), latent=int(s["learn_latent"]), hidden=int(s["learn_hidden"]),
                           width=int(s["learn_width"]))
    lap, flat = float(reg_scale) * float(s["lambda_lap"]), float(reg_scale) * float(s["lambda_flat"])
    loss = supervision_loss(kind, train["cameras"], int(train["image_size"]), model.faces, sigma=float(s["sigma"]),
                            lambda_lap=lap, lambda_flat=flat, n_points=int(s["learn_points"]))
    keys = ["rgb", "views", "target_points"]
    spec = {"kind": kind, "train_seeds": train["seed"], "val_seeds": val["seed"], "rig": train["rig"],
            "image_size": int(train["image_size"]), "sigma": float(s["sigma"]), "lambda_lap": lap,
            "lambda_flat": flat, "points": int(s["learn_points"]), "seed": seed}
    name = dataset_checkpoint_name(f"ch09_learn_{'sil' if kind == 'silhouettes' else '3d'}", train)
    path = T.checkpoint_path(name, spec, profile)
    hist = T.train_or_load(model, path, retrain=retrain, spec=spec,
                           train_loader=Batches(train, int(s["learn_batch"]), keys=keys, seed=seed),
                           val_loader=Batches(val, int(s["learn_batch"]), keys=keys, shuffle=False),
                           loss_fn=loss, epochs=int(s["learn_epochs"]), lr=float(s["learn_lr"]), seed=seed,
                           progress=progress, live_plot=False)
    model.eval()
    return model, hist


@torch.no_grad()
def monitor_images(models: dict[str, nn.Module], test: dict[str, Any], index: int) -> dict[str, Tensor]:
    """The seed's monitor for test shape ``index``: what each network predicts from the one input image, seen
    from the input's view and from behind (:func:`back_view`), beside the true silhouettes.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  Returns ``{"input": (3, H, W), "true":
    (2, S, S), kind: (2, S, S) for each model}`` (hard silhouettes; row 0 the input's view, row 1 the back)."""
    from .mesh_shape import row_shape

    size = int(test["image_size"])
    view = test["input_views"][index]
    rig = [view, back_view(view)]
    true, cams = target_views(row_shape(test, index), rig, size)
    out = {"input": test["rgb"][index], "true": true}
    for kind, model in models.items():
        verts = model(test["rgb"][index:index + 1])
        out[kind] = rasterize_silhouette(verts.expand(2, -1, -1), model.faces, cams, size)
    return out


def back_view(view: tuple[float, float]) -> tuple[float, float]:
    """The view from the other side of the object: azimuth + 180 degrees, the same elevation."""
    return ((float(view[0]) + 180.0) % 360.0, float(view[1]))


@torch.no_grad()
def score_deformer(model: SphereDeformer, test: dict[str, Any], profile: str | None = None, *,
                   n_points: int | None = None) -> dict[str, list[float]]:
    """Per test shape: ``cd`` (x1e3, AtlasNet's convention: ``n_points`` samples of the predicted mesh against
    ``target_points``) and ``iou_heldout`` (hard-silhouette IoU, mean over ``ch09.n_heldout_views`` views that no
    training loss used)."""
    from .mesh_shape import row_shape

    s = _sizes(profile)
    n = int(n_points or test["target_points"].shape[1])
    size = int(test["image_size"])
    rig = heldout_rig(int(s["n_heldout_views"]), len(test["rig"]))
    g = torch.Generator().manual_seed(0)
    cd, iou = [], []
    for i in range(len(test["seed"])):
        verts = model(test["rgb"][i:i + 1])
        pts = sample_mesh_points(verts, model.faces, n, generator=g)
        cd.append(1e3 * float(chamfer_distance(pts, test["target_points"][i:i + 1]).mean()))
        tv, cams = target_views(row_shape(test, i), rig, size)
        hard = rasterize_silhouette(verts.expand(len(cams), -1, -1), model.faces, cams, size)
        iou.append(float(silhouette_iou(hard, tv).mean()))
    return {"cd": cd, "iou_heldout": iou}


@torch.no_grad()
def own_val_loss(kind: str, model: SphereDeformer, val: dict[str, Any], profile: str | None = None) -> float:
    """The data term of ``kind``'s own loss on ``val``, without the regularisers: ``1 - soft IoU`` over the
    training cameras for ``"silhouettes"``, the Chamfer distance to ``target_points`` for ``"3d"`` (the measure
    each supervision has; the silhouette network never sees a 3D number)."""
    s = _sizes(profile)
    fn = supervision_loss(kind, val["cameras"], int(val["image_size"]), model.faces, sigma=float(s["sigma"]),
                          lambda_lap=0.0, lambda_flat=0.0, n_points=int(s["learn_points"]))
    torch.manual_seed(0)
    vals = [float(fn(model, {k: val[k][i:i + 8] for k in ("rgb", "views", "target_points")})["data"]) * len(
        val["seed"][i:i + 8]) for i in range(0, len(val["seed"]), 8)]
    return sum(vals) / len(val["seed"])


def select_reg_scale(kind: str, train: dict[str, Any], val: dict[str, Any], profile: str | None = None, *,
                     progress: bool = True, retrain: bool = False) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """The regulariser scale of ``kind`` chosen on val among ``ch09.learn_reg_scales``: each candidate trained
    (:func:`train_deformer`) and scored by :func:`own_val_loss`; returns ``(scale, record, {scale: (model,
    history)})`` (record: :func:`course_lib.experiments.protocol.selection_record`)."""
    from .protocol import selection_record

    s = _sizes(profile)
    runs, scores = {}, {}
    for scale in [float(x) for x in s["learn_reg_scales"]]:
        runs[scale] = train_deformer(kind, train, val, profile, progress=progress, retrain=retrain, reg_scale=scale)
        scores[f"{scale:g}"] = own_val_loss(kind, runs[scale][0], val, profile)
    chosen, rec = selection_record(f"learn_reg_scale_{'sil' if kind == 'silhouettes' else '3d'}", scores,
                                   metric=f"val {'1 - soft IoU' if kind == 'silhouettes' else 'Chamfer'} (own loss, "
                                          "no regularisers)", higher_is_better=False)
    return float(chosen), rec, runs


def train_both(profile: str | None = None, *, progress: bool = True, retrain: bool = False,
               dataset: str | None = None, root: str | None = None) -> dict[str, Any]:
    """Both networks of :func:`compare_supervision` trained (or loaded) on the train split, each with the
    regulariser scale its own validation loss prefers (:func:`select_reg_scale`) and the epoch it prefers:
    ``{"models": {kind: model}, "histories": {kind: History}, "train": data, "selections": [records],
    "reg_scale": {kind: scale}}``.  Reads no test shape (inside :func:`course_lib.data.no_test_reads`)."""
    from .protocol import no_test_reads

    with no_test_reads("training the two networks and choosing each one's regulariser scale and epoch on val"):
        train = learning_data("train", profile, progress=progress, dataset=dataset, root=root)
        val = learning_data("val", profile, progress=progress, dataset=dataset, root=root)
        models, hists, recs, scales = {}, {}, [], {}
        for kind in SUPERVISIONS:
            scales[kind], rec, runs = select_reg_scale(kind, train, val, profile, progress=progress, retrain=retrain)
            models[kind], hists[kind] = runs[scales[kind]]
            recs.append(rec)
    return {"models": models, "histories": hists, "train": train, "selections": recs, "reg_scale": scales}


def report_supervision(trained: dict[str, Any], test: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    """Score the two networks of :func:`train_both` on ``test``: ``{"rows": {kind: {"cd", "iou_heldout"
    (per-shape lists), "budget": {steps, examples, seconds, params}, "best_epoch", "train", "val"}}, "shapes":
    names, "claims": [...]}``; the claims pair the rows over the test shapes (3D supervision against
    silhouettes, on CD and on held-out IoU; none with fewer than 20 shapes)."""
    from .protocol import MIN_SHAPES, claim

    rows: dict[str, Any] = {}
    for kind, model in trained["models"].items():
        hist = trained["histories"][kind]
        sc = score_deformer(model, test, profile)
        rows[kind] = {**sc, "best_epoch": int(hist.best_epoch) + 1, "epochs": len(hist.train_loss),
                      "val": [float(v.get("val_loss", math.nan)) for v in hist.val],
                      "train": [float(x) for x in hist.train_loss],
                      "budget": {"steps": _steps(hist, trained["train"], profile),
                                 "examples": _steps(hist, trained["train"], profile, examples=True),
                                 "seconds": float(hist.wall_time),
                                 "params": int(sum(p.numel() for p in model.parameters()))}}
    names = [f"{c}/{int(sd)}" for c, sd in zip(test["category"], test["seed"])]
    claims: list[dict[str, Any]] = []
    out = {"rows": rows, "shapes": names, "claims": claims, "selections": list(trained.get("selections", [])),
           "reg_scale": dict(trained.get("reg_scale", {}))}
    if len(names) < MIN_SHAPES:  # the ci profile's few test shapes: no comparative statement
        return out
    budget = {k: rows[k]["budget"] for k in rows}
    claims.append(claim("learn-3d-vs-sil-cd", "The network trained with 3D supervision ends closer to the true "
                        "surface than the same network trained from silhouettes (Chamfer, test shapes)",
                        a="3d", b="silhouettes", metric="CD x1e3", values_a=rows["3d"]["cd"],
                        values_b=rows["silhouettes"]["cd"], higher_is_better=False, unit="shapes", budget=budget))
    claims.append(claim("learn-3d-vs-sil-iou", "The network trained with 3D supervision matches held-out views "
                        "better than the same network trained from silhouettes (hard IoU, test shapes)",
                        a="3d", b="silhouettes", metric="hard IoU, held-out views", values_a=rows["3d"]["iou_heldout"],
                        values_b=rows["silhouettes"]["iou_heldout"], higher_is_better=True, unit="shapes",
                        budget=budget))
    return out


def compare_supervision(profile: str | None = None, *, progress: bool = True, retrain: bool = False,
                        test: dict[str, Any] | None = None, dataset: str | None = None,
                        root: str | None = None) -> dict[str, Any]:
    """:func:`train_both`, then :func:`report_supervision` on the test split (or ``test``); the result also holds
    ``"models"`` and ``"test"``.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``dataset`` / ``root`` (or ``COURSE_DATASET``):
    a real dataset's meshes (:func:`learning_data`).
    """
    trained = train_both(profile, progress=progress, retrain=retrain, dataset=dataset, root=root)
    if test is None:
        test = learning_data("test", profile, progress=progress, dataset=dataset, root=root)
    return {**report_supervision(trained, test, profile), "models": trained["models"], "test": test}


def _steps(hist: Any, train: dict[str, Any], profile: str | None, examples: bool = False) -> int:
    s = _sizes(profile)
    n = len(train["seed"])
    per_epoch = math.ceil(n / int(s["learn_batch"]))
    epochs = len(hist.train_loss)
    return int(epochs * n) if examples else int(epochs * per_epoch)
