"""Chapter 06 (surfaces): AtlasNet vs PointSetGen, mesh quality, 3D-CODED label transfer, Poisson.

Run from the repository root (each part can run in its own process; ``--report`` then
assembles the result file from the parts' JSON fragments):

    COURSE_PROFILE=laptop python benchmarks/surfaces.py --part ae
    COURSE_PROFILE=laptop python benchmarks/surfaces.py --part svr
    COURSE_PROFILE=laptop python benchmarks/surfaces.py --part coded
    COURSE_PROFILE=laptop python benchmarks/surfaces.py --part poisson   # needs the ae part's models
    COURSE_PROFILE=laptop python benchmarks/surfaces.py --report

Writes ``benchmarks/results/surfaces-<profile>-<machine>.md`` and the JSON twin
``benchmarks/results/surfaces-<profile>.json`` (every part's numbers) that
``lectures/06_surfaces.ipynb`` reads.  Models are checkpointed under ``config.cache_dir()/checkpoints``
with :func:`course_lib.experiments.surfaces.checkpoint_path` (keyed by the data and the input
size; the lecture loads the same files).  Evaluation: the encoder sees ``n_input`` points of one
sampling of each held-out surface (or a view), every Chamfer distance is against an independent
sampling (``target_points``), the oracle is a third sampling (a reference, not a floor).

Cost (laptop profile, 2 cores, estimated from earlier runs): ae ~25 min (five models), svr ~15 min,
coded ~10 min (four categories), poisson ~3 min.  ``COURSE_PROFILE=ci`` runs every part in ~1-2 min.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import surfaces as S  # noqa: E402
from course_lib.experiments.common import predict  # noqa: E402


def _frag(profile: str, part: str) -> Path:
    # v2: the data layer (one split scheme, independent input / target / oracle samplings); fragments of
    # earlier runs measured something else and are never mixed in
    return config.cache_dir() / "ch06" / f"bench-v2-{profile}-{part}.json"


def _ckpt(name: str, train: dict, profile: str, n_input: int | None) -> Path:
    """The checkpoint the lecture uses too (keyed by the training data and the encoder's input size)."""
    return S.checkpoint_path(name, train, profile, n_input=n_input)


AE_VARIANTS = (("AtlasNet sphere", "sphere", 1), ("AtlasNet 1 patch", "square", 1),
               ("AtlasNet 5 patches", "square", 5), ("AtlasNet 25 patches", "square", 25))


def _data(sz, image_size=None):
    cats = sz["categories"]
    train = S.surface_dataset(cats, "train", sz["train_per_category"], sz["n_points"], image_size)
    test = S.surface_dataset(cats, "test", sz["test_per_category"], sz["n_points"], image_size,
                             n_input=sz["n_input"], oracle=True)
    return train, test


def _per_category(pred, test):
    cd = S.chamfer_per_shape(pred, test["target_points"])
    names = list(test["category"])
    return {c: float(cd[[i for i, x in enumerate(names) if x == c]].mean()) for c in test["categories"]}


def _predict(model, x, n):
    return predict(model, x, **S.output_size(model, n))


def part_ae(profile: str, sz, retrain: bool) -> dict:
    train, test = _data(sz)
    n, n_in = sz["n_points"], sz["n_input"]
    x_test = test["points"]
    out = {"oracle": S.oracle_chamfer(test), "oracle_per_category": _per_category(test["oracle_points"], test),
           "rows": []}
    for name, template, k in AE_VARIANTS:
        model = S.build_atlasnet(template, k, sz["latent_dim"], "pointnet", sz["hidden"], n)
        ckpt = _ckpt(f"ae-{template}{k}", train, profile, n_in)
        c0, existed = time.process_time(), ckpt.exists()
        hist = S.train_atlasnet(model, train, epochs=sz["epochs"], batch_size=sz["batch_size"], n_points=n,
                                n_input=n_in, checkpoint=ckpt, retrain=retrain, progress=False, live_plot=False)
        train_s, train_cpu = hist.wall_time, _cpu(c0, existed, retrain)
        pred = _predict(model, x_test, n)
        model.eval()
        with torch.no_grad():
            z = model.encode(x_test)
        res = sz["sphere_subdivisions"] if template == "sphere" else sz["mesh_resolution"]
        meshes = model.decode_mesh(z, res)
        t1 = time.perf_counter()
        q = S.mesh_quality_summary(meshes)
        torch.manual_seed(0)
        pred_random = predict(model, x_test, n_points=n, mode="random")  # i.i.d. template samples, like the oracle
        row = {"name": name, "cd": S.evaluate_chamfer(pred, test["target_points"]),
               "cd_random_template": S.evaluate_chamfer(pred_random, test["target_points"]),
               "per_category": _per_category(pred, test),
               "train_s": train_s, "train_cpu_s": train_cpu, "epochs": hist.epochs_run,
               "params": sum(p.numel() for p in model.parameters()), "mesh_res": res, "quality": q, "quality_s": time.perf_counter() - t1,
               "mesh_cd": float(np.mean([S.mesh_chamfer(m, test["target_points"][i]) for i, m in enumerate(meshes)]))}
        out["rows"].append(row)
        print(name, {k: v for k, v in row.items() if k != "quality"}, flush=True)
    from course_lib.models import psg  # noqa: F401 - fails clearly if chapter 05 has not landed

    model = S.build_psg(n, sz["latent_dim"], "pointnet")
    ckpt = _ckpt("ae-psg", train, profile, n_in)
    c0, existed = time.process_time(), ckpt.exists()
    hist = S.train_atlasnet(model, train, epochs=sz["epochs"], batch_size=sz["batch_size"], n_points=n,
                            n_input=n_in, checkpoint=ckpt, retrain=retrain, progress=False, live_plot=False)
    pred = _predict(model, x_test, n)
    row = {"name": "PointSetGen", "cd": S.evaluate_chamfer(pred, test["target_points"]),
           "per_category": _per_category(pred, test), "train_s": hist.wall_time,
           "train_cpu_s": _cpu(c0, existed, retrain), "epochs": hist.epochs_run,
           "params": sum(p.numel() for p in model.parameters())}
    out["rows"].append(row)
    print(row, flush=True)
    return out


def part_svr(profile: str, sz, retrain: bool) -> dict:
    size = sz["image_size"]
    train, test = _data(sz, size)
    n = sz["n_points"]
    out = {"rows": [], "image_size": size, "oracle": S.oracle_chamfer(test)}
    builders = (("AtlasNet 25 patches (ResNet)", lambda: S.build_atlasnet("square", 25, sz["latent_dim"], "resnet",
                                                                          sz["hidden"], n), "svr-square25"),
                ("AtlasNet sphere (ResNet)", lambda: S.build_atlasnet("sphere", 1, sz["latent_dim"], "resnet",
                                                                      sz["hidden"], n), "svr-sphere1"),
                ("PointSetGen (ResNet)", lambda: S.build_psg(n, sz["latent_dim"], "resnet"), "svr-psg"))
    for name, build, key in builders:
        model = build()
        ckpt = _ckpt(key, train, profile, None)
        c0, existed = time.process_time(), ckpt.exists()
        hist = S.train_atlasnet(model, train, epochs=sz["epochs"], batch_size=sz["batch_size"], n_points=n,
                                input_key="rgb", checkpoint=ckpt, retrain=retrain, progress=False, live_plot=False)
        pred = _predict(model, test["rgb"], n)
        row = {"name": name, "cd": S.evaluate_chamfer(pred, test["target_points"]),
               "per_category": _per_category(pred, test), "train_s": hist.wall_time,
               "train_cpu_s": _cpu(c0, existed, retrain), "epochs": hist.epochs_run}
        out["rows"].append(row)
        print(row, flush=True)
    return out


def part_coded(profile: str, sz, retrain: bool) -> dict:
    out = {"rows": []}
    for cat in sz["coded_categories"]:
        train = S.surface_dataset([cat], "train", sz["train_per_category"], sz["n_points"])
        test = S.surface_dataset([cat], "test", sz["test_per_category"], sz["n_points"], n_input=sz["n_input"])
        ckpt = _ckpt(f"coded-{cat}", train, profile, sz["n_input"])
        c0, existed = time.process_time(), ckpt.exists()
        model, hist = S.train_coded(cat, train, epochs=sz["coded_epochs"], batch_size=sz["batch_size"],
                                    checkpoint=ckpt, latent_dim=sz["latent_dim"],
                                    hidden=sz["hidden"], template_resolution=sz["template_resolution"],
                                    n_input=sz["n_input"], retrain=retrain, progress=False, live_plot=False)
        r0 = S.label_transfer(model, test, refine_steps=0, n_input=sz["n_input"])
        t0 = time.perf_counter()
        r1 = S.label_transfer(model, test, refine_steps=sz["refine_steps"], n_input=sz["n_input"])
        from course_lib.ops import chamfer_distance

        cd = float(1000 * chamfer_distance(r1["deformed"], test["target_points"]))
        row = {"category": cat, "baseline": r0["baseline"], "accuracy": r0["accuracy"],
               "accuracy_refined": r1["accuracy"], "refine_steps": sz["refine_steps"],
               "refine_s": time.perf_counter() - t0, "cd": cd, "train_s": hist.wall_time,
               "train_cpu_s": _cpu(c0, existed, retrain),
               "epochs": hist.epochs_run, "template_vertices": int(model.template_vertices.shape[0])}
        out["rows"].append(row)
        print(row, flush=True)
    return out


def part_poisson(profile: str, sz) -> dict:
    from course_lib.geometry import poisson_reconstruct

    train, test = _data(sz)
    n, n_in = sz["n_points"], sz["n_input"]
    x_test = test["points"]
    psg_model = S.build_psg(n, sz["latent_dim"], "pointnet")
    atlas = S.build_atlasnet("square", 25, sz["latent_dim"], "pointnet", sz["hidden"], n)
    sphere = S.build_atlasnet("sphere", 1, sz["latent_dim"], "pointnet", sz["hidden"], n)
    from course_lib.train import load_checkpoint

    load_checkpoint(_ckpt("ae-psg", train, profile, n_in), psg_model)
    load_checkpoint(_ckpt("ae-square25", train, profile, n_in), atlas)
    load_checkpoint(_ckpt("ae-sphere1", train, profile, n_in), sphere)
    pred = _predict(psg_model, x_test, n)
    res = sz["poisson_resolution"]
    rows = {k: {"cd": [], "watertight": [], "seconds": [], "faces": []} for k in
            ("Poisson(PointSetGen), centroid-oriented PCA normals", "Poisson(PointSetGen), oracle-oriented normals",
             "Poisson(the input's true points and normals)", "AtlasNet 25 patches, direct mesh",
             "AtlasNet sphere, direct mesh")}

    def add(key, mesh, seconds, i):
        rows[key]["cd"].append(S.mesh_chamfer(mesh, test["target_points"][i]))
        rows[key]["watertight"].append(float(mesh.is_watertight))
        rows[key]["seconds"].append(seconds)
        rows[key]["faces"].append(len(mesh.faces))

    atlas.eval()
    sphere.eval()
    for i in range(len(pred)):
        gt = (test["points"][i], test["normals"][i])  # the encoder's input: true points with their normals
        for key, normals in (("Poisson(PointSetGen), centroid-oriented PCA normals", None),
                             ("Poisson(PointSetGen), oracle-oriented normals", gt)):
            t0 = time.perf_counter()
            nrm = S.estimate_normals(pred[i], 16, normals)
            mesh = poisson_reconstruct(pred[i], nrm, res)
            add(key, mesh, time.perf_counter() - t0, i)
        t0 = time.perf_counter()
        mesh = poisson_reconstruct(gt[0], gt[1], res)
        add("Poisson(the input's true points and normals)", mesh, time.perf_counter() - t0, i)
        with torch.no_grad():
            t0 = time.perf_counter()
            mesh = atlas.mesh(x_test[i:i + 1], sz["mesh_resolution"])[0]
            add("AtlasNet 25 patches, direct mesh", mesh, time.perf_counter() - t0, i)
            t0 = time.perf_counter()
            mesh = sphere.mesh(x_test[i:i + 1], sz["sphere_subdivisions"])[0]
            add("AtlasNet sphere, direct mesh", mesh, time.perf_counter() - t0, i)
    return {"resolution": res, "rows": [{"name": k, **{m: float(np.mean(v)) for m, v in d.items()}}
                                        for k, d in rows.items()]}


def _cpu(c0: float, existed: bool, retrain: bool) -> float | None:
    """CPU seconds since ``c0``, or None when the model was loaded from a checkpoint (not trained here)."""
    return None if existed and not retrain else time.process_time() - c0


def _secs(r: dict) -> str:
    cpu = r.get("train_cpu_s")
    return f"{r['train_s']:.0f}" + (f" ({cpu:.0f} cpu)" if cpu is not None else "")


def report(profile: str, sz, extra_note: str = "") -> Path:
    parts = {p: json.loads(_frag(profile, p).read_text()) for p in ("ae", "svr", "coded", "poisson")
             if _frag(profile, p).exists()}
    cats = list(sz["categories"])
    body = [f"Convention: {S.CD_CONVENTION}.", "",
            f"Data: ShapeNet-lite categories {', '.join(cats)}; {sz['train_per_category']} training shapes and "
            f"{sz['test_per_category']} held-out test shapes per category (the course's split scheme, "
            "`course_lib.data.split_seeds`); every model outputs "
            f"{sz['n_points']} points; the encoder sees {sz['n_input']} points of one sampling of the surface "
            "(auto-encoding) or "
            f"one {sz['image_size']}x{sz['image_size']} rendered RGB view from a seeded random camera (single view); "
            "every Chamfer distance is against an independent sampling of the surface (target_points). Small CPU models "
            f"(latent {sz['latent_dim']}, patch MLP {sz['hidden']}), {sz['epochs']} epochs each, Adam 1e-3.", ""]
    if "ae" in parts:
        ae = parts["ae"]
        body += ["## Auto-encoding (PointNet encoder), held-out shapes", ""]
        rows = [["oracle (an independent sampling of the true surface: a reference, not a floor)", ae["oracle"],
                 *[ae.get("oracle_per_category", {}).get(c, "") for c in cats], "", ""]]
        rows[0].insert(2, "")
        for r in ae["rows"]:
            rows.append([r["name"], r["cd"], r.get("cd_random_template", ""), *[r["per_category"][c] for c in cats],
                         _secs(r), r["params"]])
        body += ["CD x1e3: AtlasNet decodes an evenly spread (Fibonacci) lattice of its template; 'random template' "
                 "decodes i.i.d. template samples instead (the sampling the oracle has).", "",
                 md_table(["model", "CD x1e3", "CD, random template", *cats, "train s", "params"], rows), ""]
        body += ["## Mesh quality of AtlasNet's direct meshes (held-out shapes, mean per mesh)", "",
                 "degenerate: area < 1e-10; sliver: smallest angle < 5 deg; intersecting: faces crossing a face that "
                 "shares no vertex with them (segment-triangle tests); pairs within / between: intersecting face pairs "
                 "of the same patch / of two patches; overlap: face centres within 0.02 of a face centre of another "
                 "patch; mesh CD: CD of area-weighted samples of the mesh.", ""]
        qrows = []
        for r in ae["rows"]:
            if "quality" not in r:
                continue
            q = r["quality"]
            qrows.append([r["name"], r["mesh_res"], int(q["faces"]), q["degenerate_frac"], q["sliver_frac"],
                          q["intersecting_frac"], q.get("intersecting_pairs_within", float("nan")),
                          q.get("intersecting_pairs_between", float("nan")), q.get("overlap_frac", 0.0),
                          q["watertight"], q["euler"], r["mesh_cd"]])
        body += [md_table(["model", "grid / subdiv.", "faces", "degenerate", "sliver", "intersecting",
                           "pairs within", "pairs between", "overlap", "watertight", "Euler", "mesh CD x1e3"],
                          qrows), ""]
    if "svr" in parts:
        body += [f"## Single-view reconstruction (ResNet encoder, {parts['svr']['image_size']} px RGB), held-out "
                 "shapes", ""]
        rows = [[r["name"], r["cd"], *[r["per_category"][c] for c in cats], _secs(r)]
                for r in parts["svr"]["rows"]]
        if "oracle" in parts["svr"]:
            rows.insert(0, ["oracle", parts["svr"]["oracle"], *["" for _ in cats], ""])
        body += [md_table(["model", "CD x1e3", *cats, "train s"], rows), ""]
    if "coded" in parts:
        body += ["## 3D-CODED: part labels carried from the template (reserved seed, outside every split) to "
                 "held-out shapes", "",
                 "accuracy = fraction of a shape's surface points whose transferred part name equals the "
                 "generator's (Shape.part_labels), averaged over the held-out shapes; baseline = nearest vertex "
                 "of the *undeformed* template (no learning); refined = after the test-time latent optimisation.",
                 ""]
        rows = [[r["category"], r["template_vertices"], r["baseline"], r["accuracy"], r["accuracy_refined"],
                 r["refine_steps"], r["cd"], _secs(r)] for r in parts["coded"]["rows"]]
        body += [md_table(["category", "template verts", "baseline acc", "3D-CODED acc", "refined acc",
                           "refine steps", "CD x1e3 (refined)", "train s"], rows), ""]
    if "poisson" in parts:
        p = parts["poisson"]
        body += [f"## Poisson reconstruction of PointSetGen's points vs AtlasNet's direct mesh (grid {p['resolution']})",
                 "", "mesh CD: CD between area-weighted samples of the mesh and the true points; seconds per shape "
                 "include normal estimation.", ""]
        rows = [[r["name"], r["cd"], r["watertight"], int(r["faces"]), r["seconds"]] for r in p["rows"]]
        body += [md_table(["surface", "mesh CD x1e3", "watertight", "faces", "s / shape"], rows), ""]
    note = ("torch ran with the --threads of each part's process; parts may run as separate processes. "
            "'train s' is the wall time of the training loop, with the process's CPU seconds in brackets "
            "where recorded (a loaded checkpoint has none).")
    if extra_note:
        note += "\n\n" + extra_note
    data = {"convention": S.CD_CONVENTION, "categories": cats,
            "sizes": {k: sz[k] for k in ("train_per_category", "test_per_category", "n_points", "n_input", "epochs",
                                         "latent_dim", "image_size")},
            **parts}
    return write_result("surfaces", profile, "\n".join(body), notes=note, data=data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("ae", "svr", "coded", "poisson"))
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", default="", help="a free-text note added to the result file (with --report)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    profile = config.get_profile()
    sz = config.sizes(prefix="ch06.")
    if args.part:
        config.seed_everything(0)
        fn = {"ae": part_ae, "svr": part_svr, "coded": part_coded}.get(args.part)
        out = fn(profile, sz, args.retrain) if fn else part_poisson(profile, sz)
        _frag(profile, args.part).parent.mkdir(parents=True, exist_ok=True)
        _frag(profile, args.part).write_text(json.dumps(out, indent=1))
    if args.report or not args.part:
        print(report(profile, sz, args.note))


if __name__ == "__main__":
    main()
