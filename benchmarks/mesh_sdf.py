"""Chapter 07: mesh -> SDF on open (non-watertight) meshes, against the installable peers.

Run from the repository root:

    COURSE_PROFILE=laptop python benchmarks/mesh_sdf.py      # 100,000 queries, ~10,000-face meshes
    COURSE_PROFILE=ci python benchmarks/mesh_sdf.py          # seconds: the pipeline only

Writes ``benchmarks/results/mesh_sdf-<profile>-<machine>.md`` and ``mesh_sdf-<profile>.json``.

Meshes: an icosphere with a cap cut off (open) and a ShapeNet-lite chair mesh with 5 % of its
faces removed at random (holes everywhere), both ~10,000 faces.  Queries: uniform in the padded
bounding box and near the surface (half each).  Methods:

* ``course_lib`` (``mesh_sdf``, default ``method="auto"``: libigl's AABB distance + fast winding
  number), ``course_lib torch`` (exact brute force in chunks; timed on a subset and scaled);
* ``igl.signed_distance`` with the fast winding number (the same wheel called in one go);
* ``open3d`` ``RaycastingScene.compute_signed_distance`` (ray-parity sign) when installed;
* ``trimesh`` (``proximity.signed_distance``, timed on a subset and scaled).

Accuracy: distance error against ``trimesh.proximity.closest_point`` (an independent exact
implementation) on a subset, relative to the bounding-box diagonal; sign agreement with the
*exact* generalised winding number (``igl.winding_number``, and our own solid-angle sum on a
subset).  Cost (laptop profile): about a minute, dominated by the trimesh subset.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.data import make_shape  # noqa: E402

ms = importlib.import_module("course_lib.geometry.mesh_sdf")

SIZES = {"ci": {"queries": 4000, "subset": 300, "faces": 2000},
         "laptop": {"queries": 100_000, "subset": 2000, "faces": 10_000},
         "gpu": {"queries": 100_000, "subset": 2000, "faces": 10_000}}


SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2 (course_lib.experiments.protocol): this benchmark measures mesh-to-SDF accuracy and time against exact distances; it chooses nothing."""


def meshes(n_faces: int) -> dict[str, trimesh.Trimesh]:
    sub = 5 if n_faces > 5000 else 4
    sphere = trimesh.creation.icosphere(sub)
    keep = sphere.triangles_center[:, 2] < 0.8
    open_sphere = trimesh.Trimesh(sphere.vertices, sphere.faces[keep][:n_faces], process=False)
    chair = make_shape("chair", 1000).mesh(64)
    if len(chair.faces) > n_faces:
        chair = chair.simplify_quadric_decimation(face_count=n_faces) if hasattr(
            chair, "simplify_quadric_decimation") and _has_decimation() else chair
    rng = np.random.default_rng(0)
    keep = rng.random(len(chair.faces)) > 0.05
    holey = trimesh.Trimesh(chair.vertices, chair.faces[keep], process=False)
    return {"open sphere": open_sphere, "chair with 5% of faces removed": holey}


def _has_decimation() -> bool:
    try:
        import fast_simplification  # noqa: F401
    except ImportError:
        return False
    return True


def queries(mesh: trimesh.Trimesh, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = ms.mesh_box(mesh, 0.1)
    uni = rng.uniform(lo, hi, size=(n - n // 2, 3))
    surf, _ = trimesh.sample.sample_surface(mesh, n // 2, seed=seed)
    near = np.asarray(surf) + rng.standard_normal((n // 2, 3)) * 0.02
    return np.concatenate([uni, near])


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def measure(name: str, mesh: trimesh.Trimesh, sz: dict[str, int], rows: list, data: dict) -> None:
    import igl

    q = queries(mesh, sz["queries"])
    qt = torch.as_tensor(q)
    sub = q[: sz["subset"]]
    v, f = np.ascontiguousarray(mesh.vertices, dtype=np.float64), np.ascontiguousarray(mesh.faces, dtype=np.int64)
    diag = float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0]))
    res: dict[str, dict[str, float]] = {}
    ms.mesh_sdf(mesh, qt[:100])  # warm-up (tree building code paths, imports)
    t, ours = timed(lambda: ms.mesh_sdf(mesh, qt), repeat=3)
    res["course_lib (igl back end)"] = {"seconds": t}
    t, raw = timed(lambda: igl.signed_distance(q, v, f, sign_type=igl.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER)[0],
                   repeat=3)
    res["igl.signed_distance (fast winding number)"] = {"seconds": t}
    t, ours_torch = timed(lambda: ms.mesh_sdf(mesh, torch.as_tensor(sub), method="torch"))
    res["course_lib torch (exact brute force)"] = {"seconds": t * len(q) / len(sub), "scaled_from": len(sub)}
    try:
        import open3d as o3d

        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh.as_open3d))
        qo = o3d.core.Tensor(q.astype(np.float32))
        t, o3 = timed(lambda: scene.compute_signed_distance(qo).numpy(), repeat=3)
        res["open3d RaycastingScene"] = {"seconds": t}
    except Exception:  # noqa: BLE001 - open3d is optional
        o3 = None
    t, tm = timed(lambda: trimesh.proximity.signed_distance(mesh, sub))
    res["trimesh proximity.signed_distance"] = {"seconds": t * len(q) / len(sub), "scaled_from": len(sub)}
    # accuracy
    _, ref_d, _ = trimesh.proximity.closest_point(mesh, sub)
    w_exact = igl.winding_number(v, f, q)
    inside_ref = w_exact >= 0.5
    ours_np = ours.numpy()
    res["course_lib (igl back end)"].update(
        dist_err_rel=float(np.abs(np.abs(ours_np[: len(sub)]) - ref_d).max() / diag),
        sign_agree=float(((ours_np < 0) == inside_ref).mean()))
    res["igl.signed_distance (fast winding number)"].update(
        dist_err_rel=float(np.abs(np.abs(raw[: len(sub)]) - ref_d).max() / diag),
        sign_agree=float(((raw < 0) == inside_ref).mean()))
    res["course_lib torch (exact brute force)"].update(
        dist_err_rel=float(np.abs(np.abs(ours_torch.numpy()) - ref_d).max() / diag),
        sign_agree=float(((ours_torch.numpy() < 0) == inside_ref[: len(sub)]).mean()))
    if o3 is not None:
        res["open3d RaycastingScene"].update(
            dist_err_rel=float(np.abs(np.abs(o3[: len(sub)]) - ref_d).max() / diag),
            sign_agree=float(((o3 < 0) == inside_ref).mean()))
    # trimesh's sign is positive INSIDE
    res["trimesh proximity.signed_distance"].update(
        dist_err_rel=float(np.abs(np.abs(tm) - ref_d).max() / diag),
        sign_agree=float(((tm > 0) == inside_ref[: len(sub)]).mean()))
    # our exact solid-angle winding number against igl's exact one, on the subset
    w_ours = ms.winding_number(mesh, torch.as_tensor(sub), method="torch").numpy()
    wn_gap = float(np.abs(w_ours - w_exact[: len(sub)]).max())
    fastest_peer = min(r["seconds"] for k, r in res.items() if not k.startswith("course_lib"))
    data[name] = {"faces": int(len(mesh.faces)), "queries": int(len(q)), "watertight": bool(mesh.is_watertight),
                  "methods": res, "fastest_peer_seconds": fastest_peer,
                  "ratio_to_fastest_peer": res["course_lib (igl back end)"]["seconds"] / fastest_peer,
                  "winding_number_torch_vs_igl_exact_max_gap": wn_gap}
    for k, r in res.items():
        rows.append([name, k, r["seconds"], r.get("dist_err_rel", float("nan")), r.get("sign_agree", float("nan")),
                     f"scaled from {r['scaled_from']}" if "scaled_from" in r else ""])


def main() -> None:
    profile = config.get_profile()
    sz = SIZES[profile]
    rows: list = []
    data: dict = {}
    for name, mesh in meshes(sz["faces"]).items():
        measure(name, mesh, sz, rows, data)
    body = ["## Signed distance of open meshes", "",
            md_table(["mesh", "method", "seconds", "max distance error / bbox diagonal",
                      "sign agreement with the exact winding number", "note"], rows), ""]
    for name, d in data.items():
        body.append(f"- {name}: {d['faces']} faces, {d['queries']} queries, watertight: {d['watertight']}; "
                    f"course_lib / fastest peer = {d['ratio_to_fastest_peer']:.2f}; our exact winding number vs "
                    f"igl's exact one: max gap {d['winding_number_torch_vs_igl_exact_max_gap']:.2g}")
    notes = ("Distance errors on a subset of the queries (trimesh's closest point as reference); sign agreement on "
             "all queries (the subset for the scaled methods). Times are the best of 3 (1 for the scaled ones). "
             "With libigl 2.6.3's Python binding, the one-call igl.signed_distance returned magnitudes that differ "
             "from the closest-point distance on these open meshes (seen in the ci runs; cause not investigated), "
             "which is why course_lib calls igl.point_mesh_squared_distance and igl.fast_winding_number "
             "separately.")
    print("\n".join(body))
    print(write_result("mesh_sdf", profile, "\n".join(body), notes=notes, data=data))


if __name__ == "__main__":
    main()
