"""3D-CODED: deform one template to every shape, and read correspondences off the template.

Introduced in ``lectures/06_surfaces.ipynb``.

3D-CODED [Groueix2018b] keeps AtlasNet's decoder but replaces the unit square by a
*template shape* of the category (the SMPL body in the paper; here a canonical
ShapeNet-lite shape, :func:`make_template`).  The decoder maps ``(template vertex p,
latent z)`` to the position of that vertex on the target shape, so every target is
the template, deformed; its mesh has the template's connectivity, and vertex ``i`` of
every reconstruction is "the same" point: a **correspondence** between any two shapes.
Anything attached to the template's vertices (here: part labels) moves to the target
with the deformation (:func:`transfer_labels`).

What we keep from the paper: the decoder is an MLP on ``[p, z]`` applied to every
template vertex; the unsupervised loss is the Chamfer distance between the deformed
template and the target plus a regulariser that keeps the deformation smooth (we
use edge-length preservation on the template mesh, in the spirit of the paper's
edge and Laplacian terms); at test time the latent code is refined by gradient
descent on the Chamfer distance before reading correspondences (the paper's
"regression step", :func:`refine_latent`).  What we change for the CPU: the
decoder predicts a *displacement* ``p + f(p, z)`` (the paper predicts positions; the
residual form starts at the template and trains faster), the MLP is small, the template
has ~1-2 thousand vertices, and there is no supervised (SURREAL-like) stage.

[Groueix2018b] T. Groueix, M. Fisher, V. G. Kim, B. C. Russell, M. Aubry.  3D-CODED:
3D Correspondences by Deep Deformation.  ECCV 2018.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from torch import Tensor, nn

from course_lib import ops as _ops

from .atlasnet import PatchDecoder
from .encoders import _check_latent

__all__ = [
    "Template",
    "make_template",
    "remap_labels",
    "TemplateDeformer",
    "edge_length_loss",
    "coded_loss",
    "refine_latent",
    "transfer_labels",
    "label_accuracy",
]


@dataclass
class Template:
    """A category's canonical shape, as a mesh with part labels on its vertices.

    vertices ``(V, 3)`` float32, faces ``(F, 3)`` long, labels ``(V,)`` long (index into
    ``parts``), ``parts`` the part names, ``category`` and ``seed`` of the source shape.
    """

    vertices: Tensor
    faces: Tensor
    labels: Tensor
    parts: tuple[str, ...]
    category: str = ""
    seed: int = -1

    def mesh(self) -> trimesh.Trimesh:
        """The template as a ``trimesh.Trimesh`` (not processed)."""
        return trimesh.Trimesh(self.vertices.cpu().numpy(), self.faces.cpu().numpy(), process=False)

    def edges(self) -> Tensor:
        """The unique undirected edges ``(E, 2)`` of the template mesh."""
        f = self.faces
        e = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], dim=0).sort(dim=1).values
        return torch.unique(e, dim=0)


def make_template(category: str, seed: int = 0, resolution: int = 24) -> Template:
    """The template of ``category``: ShapeNet-lite shape ``seed``, meshed at ``resolution``.

    Introduced in ``lectures/06_surfaces.ipynb``.  The mesh is the shape's watertight
    marching-cubes mesh (``Shape.mesh``); each vertex gets the label of the shape's
    part nearest to it (``Shape.part_labels``).  ``resolution`` 24 gives about 500-1500
    vertices, enough for label transfer and cheap to deform on a CPU.
    """
    from course_lib.data import make_shape

    shape = make_shape(category, seed)
    mesh = shape.mesh(resolution)
    verts = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32)
    faces = torch.as_tensor(np.asarray(mesh.faces), dtype=torch.long)
    labels = shape.part_labels(verts)
    return Template(verts, faces, labels, tuple(shape.parts), shape.category, int(shape.seed))


def remap_labels(labels: Tensor, from_parts: Sequence[str], to_parts: Sequence[str]) -> Tensor:
    """Re-index part labels from one part list to another by name; names missing from ``to_parts`` -> -1.

    Introduced in ``lectures/06_surfaces.ipynb``.  Two shapes of a category may list
    their parts in a different order, or one may have a part the other lacks (a table
    with a shelf): labels are compared by name, never by index.
    """
    lut = torch.tensor([list(to_parts).index(p) if p in to_parts else -1 for p in from_parts],
                       dtype=torch.long, device=labels.device)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(from_parts)):
        raise ValueError(f"labels must lie in [0, {len(from_parts)}) to index from_parts")
    return lut[labels]


class TemplateDeformer(nn.Module):
    """3D-CODED's model: an encoder and a decoder that moves every template vertex.

    Introduced in ``lectures/06_surfaces.ipynb``.

    Parameters
    ----------
    encoder: a module whose output has ``.global_feature`` ``(B, latent_dim)`` (PointNet);
        ``None`` for a decoder only.
    template: the :class:`Template` (its vertices and faces become buffers).
    latent_dim: size of the latent code.
    hidden, batch_norm: the layout of the decoder MLP (a :class:`PatchDecoder` on 3D input).
    residual: predict a displacement added to the template vertex (default), or the
        position itself (``tanh`` output, as AtlasNet).
    """

    def __init__(self, encoder: nn.Module | None, template: Template, latent_dim: int = 128,
                 hidden: Sequence[int] = (256, 128, 64), batch_norm: bool = False, residual: bool = True) -> None:
        super().__init__()
        if not isinstance(template, Template):
            raise TypeError(f"template must be a Template (see make_template), got {type(template).__name__}")
        self.encoder = encoder
        self.latent_dim = int(latent_dim)
        self.residual = bool(residual)
        self.parts = tuple(template.parts)
        self.register_buffer("template_vertices", template.vertices.float().clone())
        self.register_buffer("template_faces", template.faces.long().clone())
        self.register_buffer("template_labels", template.labels.long().clone())
        self.register_buffer("template_edges", template.edges())
        self.decoder = PatchDecoder(self.latent_dim, 3, hidden, batch_norm,
                                    out_activation="none" if residual else "tanh")
        if residual:  # start exactly at the template: a zero last layer
            nn.init.zeros_(self.decoder.last.weight)
            nn.init.zeros_(self.decoder.last.bias)

    def encode(self, x: Tensor) -> Tensor:
        """Latent codes ``(B, latent_dim)`` of an input batch."""
        if self.encoder is None:
            raise ValueError("this TemplateDeformer has no encoder: call decode(latent)")
        z = self.encoder(x)
        z = z.global_feature if hasattr(z, "global_feature") else z
        return _check_latent(z, self.latent_dim, "TemplateDeformer (encoder output)")

    def decode(self, latent: Tensor, points: Tensor | None = None) -> Tensor:
        """Deform the template vertices (or any ``points (M, 3)`` of the template's space): ``(B, M, 3)``."""
        latent = _check_latent(latent, self.latent_dim, "TemplateDeformer.decode")
        p = self.template_vertices if points is None else points.to(latent.device, latent.dtype)
        out = self.decoder(p, latent)
        return p[None] + out if self.residual else out

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``x`` and return the deformed template vertices ``(B, V, 3)``."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def deformed_mesh(self, latent: Tensor) -> list[trimesh.Trimesh]:
        """One mesh per latent code: the deformed template with the template's faces."""
        v = self.decode(latent).detach().cpu().numpy()
        f = self.template_faces.cpu().numpy()
        return [trimesh.Trimesh(vb, f, process=False) for vb in v]


def edge_length_loss(deformed: Tensor, template_vertices: Tensor, edges: Tensor) -> Tensor:
    """Mean squared change of edge length, relative to the template's mean squared edge length.

    Introduced in ``lectures/06_surfaces.ipynb``.  0 for a rigid motion of the template;
    grows when the deformation stretches or squashes the mesh.  ``deformed (B, V, 3)``.
    """
    e0 = template_vertices[edges[:, 0]] - template_vertices[edges[:, 1]]
    e1 = deformed[:, edges[:, 0]] - deformed[:, edges[:, 1]]
    l0 = torch.linalg.vector_norm(e0, dim=-1)
    l1 = torch.linalg.vector_norm(e1, dim=-1)
    return ((l1 - l0[None]) ** 2).mean() / (l0**2).mean()


def coded_loss(model: TemplateDeformer, inputs: Tensor, targets: Tensor, edge_weight: float = 0.1
               ) -> dict[str, Tensor]:
    """The unsupervised 3D-CODED loss: Chamfer(deformed template, target) + ``edge_weight`` * edge term.

    Introduced in ``lectures/06_surfaces.ipynb``.  Returns ``{"loss", "chamfer", "edge"}``.
    """
    deformed = model(inputs)
    cd = _ops.chamfer_distance(deformed, targets)
    edge = edge_length_loss(deformed, model.template_vertices, model.template_edges)
    return {"loss": cd + edge_weight * edge, "chamfer": cd.detach(), "edge": edge.detach()}


def refine_latent(model: TemplateDeformer, latent: Tensor, targets: Tensor, steps: int = 50,
                  lr: float = 5e-3, edge_weight: float = 0.1) -> Tensor:
    """Improve latent codes by gradient descent on the Chamfer loss (the decoder frozen).

    Introduced in ``lectures/06_surfaces.ipynb``.  This is 3D-CODED's test-time
    "regression step": the encoder's guess is a starting point, and a few Adam steps on
    ``z`` alone fit the target better.  Returns the refined codes ``(B, L)`` (detached).
    """
    z = _check_latent(latent, model.latent_dim, "refine_latent").detach().clone().requires_grad_(True)
    was_training = model.training
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam([z], lr=lr)
    try:
        with torch.enable_grad():
            for _ in range(int(steps)):
                d = model.decode(z)
                loss = _ops.chamfer_distance(d, targets) + edge_weight * edge_length_loss(
                    d, model.template_vertices, model.template_edges)
                opt.zero_grad()
                loss.backward()
                opt.step()
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)
    return z.detach()


def transfer_labels(deformed: Tensor, template_labels: Tensor, targets: Tensor) -> Tensor:
    """Labels of target points, read off the deformed template: ``(B, M)`` (or ``(M,)``).

    Introduced in ``lectures/06_surfaces.ipynb``.  Each target point takes the label
    of its nearest deformed template vertex: the deformation carries the template's
    labels onto the target.  ``deformed (B, V, 3)`` or ``(V, 3)``; ``targets`` likewise.
    """
    if deformed.dim() != targets.dim() or deformed.shape[-1] != 3 or targets.shape[-1] != 3:
        raise ValueError(f"deformed and targets must both be (B, *, 3) or (*, 3), got "
                         f"{tuple(deformed.shape)} and {tuple(targets.shape)}")
    if template_labels.shape != deformed.shape[-2:-1]:
        raise ValueError(f"template_labels must have one label per template vertex ({deformed.shape[-2]}), "
                         f"got {tuple(template_labels.shape)}")
    _, idx = _ops.knn(targets, deformed, 1)
    return template_labels.to(idx.device)[idx[..., 0]]


def label_accuracy(pred: Tensor, true: Tensor) -> Tensor:
    """Fraction of points whose label is right, per shape: ``(B,)`` (or a scalar for ``(M,)``).

    Introduced in ``lectures/06_surfaces.ipynb``.  A true label -1 (a part the template
    lacks) always counts as wrong.
    """
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same shape, got {tuple(pred.shape)} and {tuple(true.shape)}")
    return (pred == true).float().mean(dim=-1)
