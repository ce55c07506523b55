"""Measured results, read from the files the benchmarks wrote: lectures print these, never type them.

Introduced in ``lectures/00_welcome.ipynb``.

Every benchmark (``benchmarks/*.py``) writes ``benchmarks/results/<name>-<profile>.json`` beside
its Markdown report, with its provenance: the command, the date, the git commit, the machine
and the load average while it ran.  A lecture reads it::

    from course_lib import results
    r = results.load("point_sets", "laptop")     # None when not measured yet
    results.show("point_sets", "laptop")          # prints provenance (or how to measure it)
    r["tables"]["autoencoding"]                   # the data the benchmark stored

The folder is ``COURSE_RESULTS_DIR`` or ``benchmarks/results`` of the repository that holds
this package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["Result", "results_dir", "path_of", "load", "show", "get", "claims", "goals", "claim", "say",
           "show_goals", "CURRENT_PROTOCOL", "CHAPTER_BENCHMARKS", "chapter_mark", "MARKS", "mean", "family_status",
           "compare_families", "show_families", "measured_parts"]

CURRENT_PROTOCOL = 2
"""The protocol of :mod:`course_lib.experiments.protocol` (choices on ``val``, the fresh test range).
A results file without ``provenance["protocol"] >= 2`` was measured before it: :func:`show` says so."""

ENV_RESULTS = "COURSE_RESULTS_DIR"


def results_dir() -> Path:
    """``COURSE_RESULTS_DIR`` or ``<repository>/benchmarks/results``."""
    env = os.environ.get(ENV_RESULTS)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def variety_name(name: str, variety: str | None = None) -> str:
    """``name`` tagged with ShapeNet-lite's family: ``name`` for the base family, ``name-wide`` for the wide one
    (``variety``, default the active family of :func:`course_lib.config.variety`, ``COURSE_VARIETY``; a name
    already tagged is returned as it is), so that results measured on one family never stand for the other's."""
    from course_lib import config
    from course_lib.data.shapes import check_variety

    fam = config.variety() if variety is None else check_variety(variety)
    return name if fam == "base" or name.endswith(f"-{fam}") else f"{name}-{fam}"


def family_prefix(variety: str | None = None) -> str:
    """What a command needs in front to run on ``variety`` (default the active family): ``""`` for the default
    family (:data:`course_lib.config.DEFAULT_VARIETY`), ``"COURSE_VARIETY=<family> "`` for the other one."""
    from course_lib import config

    fam = config.variety() if variety is None else variety
    return "" if fam == config.DEFAULT_VARIETY else f"{config.ENV_VARIETY}={fam} "


def path_of(name: str, profile: str, variety: str | None = None) -> Path:
    """Where the results of benchmark ``name`` in ``profile`` are kept (``name`` tagged by :func:`variety_name`)."""
    if not name or "/" in name:
        raise ValueError(f"benchmark name must be a plain name, got {name!r}")
    return results_dir() / f"{variety_name(name, variety)}-{profile}.json"


class Result(dict):
    """The content of one results file (a dict) with its provenance as attributes."""

    @property
    def provenance(self) -> Mapping[str, Any]:
        return self.get("provenance", {})

    def describe(self) -> str:
        """One line: the command, commit, date, machine and load that produced these numbers."""
        p = self.provenance
        load = p.get("loadavg")
        load_txt = f", load average {load}" if load is not None else ""
        return (f"measured by `{p.get('command', '?')}` at commit {p.get('commit', '?')} on "
                f"{p.get('date', '?')}, {p.get('cpu') or p.get('machine', '?')}{load_txt}")

    @property
    def data(self) -> Mapping[str, Any]:
        return self.get("data", {})

    @property
    def protocol(self) -> int:
        """The measuring protocol of this file (1 when the file predates the record)."""
        try:
            return int(self.provenance.get("protocol", 1))
        except (TypeError, ValueError):
            return 1


def load(name: str, profile: str = "laptop", variety: str | None = None) -> Result | None:
    """The results of benchmark ``name`` measured in ``profile`` on ShapeNet-lite's family ``variety`` (default the
    active one, ``COURSE_VARIETY``), or ``None`` if never measured.

    Raises ``ValueError`` for a file that exists but is not valid JSON (a broken file is never
    silently taken as "not measured").
    """
    path = path_of(name, profile, variety)
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(content, dict) or "data" not in content:
        raise ValueError(f"{path} is not a results file (no 'data' entry)")
    return Result(content)


def show(name: str, profile: str = "laptop", command: str | None = None, *, variety: str | None = None) -> Result | None:
    """Print where the results of ``name`` come from (or that they are not measured yet); return them.

    ``variety``: the ShapeNet-lite family whose file to read (default the active one, ``COURSE_VARIETY``)."""
    r = load(name, profile, variety)
    if r is None:
        cmd = command or f"{family_prefix(variety)}COURSE_PROFILE={profile} python benchmarks/{name}.py"
        print(f"{name} ({profile} profile): not measured yet; `{cmd}` measures it and writes "
              f"{path_of(name, profile, variety)}")
        return None
    print(f"{name} ({profile} profile): {r.describe()}")
    if r.protocol < CURRENT_PROTOCOL:
        print(f"  ⚠ measured under protocol {r.protocol}, before the course's protocol {CURRENT_PROTOCOL} (choices on "
              "the validation split only, a fresh test split, equal budgets, claims over seeds): some of its "
              f"choices were made on the retired test range. Re-measure with `{family_prefix(variety)}COURSE_PROFILE={profile} python "
              f"benchmarks/{name}.py`.")
    return r


def get(name: str, *keys: str | int, profile: str = "laptop", default: Any = None) -> Any:
    """One value of a results file: ``get("point_sets", "autoencoding", "chamfer", "CD")``; ``default``
    when the file or the key is missing."""
    r = load(name, profile)
    if r is None:
        return default
    cur: Any = r.data
    for k in keys:
        try:
            cur = cur[k]
        except (KeyError, IndexError, TypeError):
            return default
    return cur


def _records(name: str, key: str, profile: str, variety: str | None = None) -> list[dict[str, Any]]:
    r = load(name, profile, variety)
    if r is None:
        return []
    recs = r.data.get(key) or []
    return [dict(x) for x in recs] if isinstance(recs, list) else []


def claims(name: str, profile: str = "laptop", variety: str | None = None) -> list[dict[str, Any]]:
    """The claim records of benchmark ``name`` on ``variety`` (default the active family; ``[]`` when not
    measured or none recorded)."""
    return _records(name, "claims", profile, variety)


def goals(name: str, profile: str = "laptop", variety: str | None = None) -> list[dict[str, Any]]:
    """The goal records of benchmark ``name`` on ``variety`` (default the active family; ``[]`` when not
    measured or none recorded)."""
    return _records(name, "goals", profile, variety)


def claim(name: str, claim_id: str, profile: str = "laptop", variety: str | None = None) -> dict[str, Any] | None:
    """One claim record by its id, or ``None``."""
    return next((c for c in claims(name, profile, variety) if c.get("id") == claim_id), None)


def say(name: str, claim_id: str, profile: str = "laptop", *, variety: str | None = None) -> str:
    """Print (and return) the sentence of one comparative claim, written from its record.

    Lectures state a comparison this way, never in typed prose: the sentence carries the difference,
    its standard error, ``n`` and the verdict (``ahead``, ``behind`` or ``not separated``).
    """
    from course_lib.experiments.protocol import claim_sentence

    rec = claim(name, claim_id, profile, variety)
    if rec is None:
        text = (f"[{claim_id}] not measured under the protocol yet: "
                f"`{family_prefix(variety)}COURSE_PROFILE={profile} python benchmarks/{name}.py` "
                "measures it.")
    else:
        text = claim_sentence(rec)
    print(text)
    return text


def show_goals(name: str, profile: str = "laptop", *, variety: str | None = None) -> list[dict[str, Any]]:
    """Print every goal record of ``name`` on ``variety`` (default the active family; met ✅ or missed 🟡, with its
    measured value); return them."""
    from course_lib.experiments.protocol import goal_sentence

    recs = goals(name, profile, variety)
    if not recs:
        print(f"{name} ({profile} profile): no goal records yet (`{family_prefix(variety)}"
              f"COURSE_PROFILE={profile} python benchmarks/{name}.py` writes them)")
    for g in recs:
        print(goal_sentence(g))
    return recs


CHAPTER_BENCHMARKS: dict[str, tuple[str, ...]] = {
    "00": (),
    "01": ("splits",),
    "02": ("encoders", "encoders_partial", "image_encoders"),
    "03": ("voxels", "voxels_multiview"),
    "04": ("octrees",),
    "05": ("point_sets",),
    "06": ("surfaces",),
    "07": ("implicit", "mesh_sign"),
    "08": ("primitives",),
    "09": ("rendering",),
    "10": ("gradient_fields",),
    "11": ("evaluation",),
}
"""The benchmarks whose ``goals`` records decide a chapter's mark in README (chapter 00 measures nothing)."""

LECTURE_BENCHMARKS: dict[str, tuple[str, ...]] = {
    "00": (),
    "01": ("splits",),
    "02": ("encoders", "encoders_partial", "image_encoders"),
    "03": ("voxels", "voxels_multiview", "surfaces"),
    "04": ("octrees", "modular"),
    "05": ("point_sets", "retrieval"),
    "06": ("surfaces",),
    "07": ("implicit", "mesh_sign", "mesh_sdf", "sdf_exactness", "retrieval", "modular", "evaluation"),
    "08": ("primitives", "primitives_estimators", "primitives_consistency", "primitives_coherence", "modular"),
    "09": ("rendering", "silhouette_learning"),
    "10": ("gradient_fields", "generation", "retrieval"),
    "11": ("evaluation", "modular", "gradient_fields", "implicit", "octrees", "voxels"),
}
"""Every benchmark whose results file each chapter's lecture reads (its :data:`CHAPTER_BENCHMARKS` and the others):
what the wide family needs before it can be the default (:func:`family_status`).  ``tests/test_variety_switch.py``
scans the lectures' sources so that a benchmark a lecture starts reading is listed here."""

MARKS = {"met": "✅", "missed": "🟡", "not measured": "🔶"}
"""README's chapter marks: every goal met, some goal missed, or not measured under the current protocol."""


def chapter_mark(chapter: str, profile: str = "laptop", variety: str | None = None) -> tuple[str, list[str]]:
    """README's mark of ``chapter`` from its benchmarks' goal records, and the reasons behind it.

    ``🔶`` when a benchmark of the chapter has no results under protocol :data:`CURRENT_PROTOCOL` or
    no goal records; else ``🟡`` when any goal is missed (the reasons list each missed goal with its
    measured value); else ``✅``.  A chapter without benchmarks is ``✅`` (it measures nothing).  ``variety``
    reads the results of that ShapeNet-lite family (default the active one).
    """
    if chapter not in CHAPTER_BENCHMARKS:
        raise ValueError(f"unknown chapter {chapter!r}; known: {', '.join(CHAPTER_BENCHMARKS)}")
    reasons: list[str] = []
    state = "met"
    for name in CHAPTER_BENCHMARKS[chapter]:
        r = load(name, profile, variety)
        if r is None or r.protocol < CURRENT_PROTOCOL:
            reasons.append(f"{name}: not measured under protocol {CURRENT_PROTOCOL}")
            state = "not measured"
            continue
        recs = r.data.get("goals")
        if not isinstance(recs, list) or not recs:
            reasons.append(f"{name}: no goal records")
            state = "not measured"
            continue
        for g in recs:
            if not g.get("met"):
                reasons.append(f"{name}: {g.get('id')} missed ({g.get('value')!r} against {g.get('comparison')} "
                               f"{g.get('target')!r})")
                if state == "met":
                    state = "missed"
    return MARKS[state], reasons


def measured_parts(result: Result | None) -> list[str]:
    """The parts a results file holds when its benchmark runs by parts (``--part``; octrees, mesh_sign,
    first_run): the keys of its data whose value carries its own ``provenance``.  Empty for ``None`` or a
    benchmark measured in one run."""
    if result is None:
        return []
    return [k for k, v in result.data.items() if isinstance(v, Mapping) and "provenance" in v]


def family_status(profile: str = "laptop") -> list[dict[str, Any]]:
    """Per chapter, its README mark on each ShapeNet-lite family and the benchmarks the wide family still lacks.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  The course's default family is ``base``
    (:data:`course_lib.config.DEFAULT_VARIETY`); the wide family (fewer near-duplicates between the splits,
    ``benchmarks/splits.py``) becomes the default once every benchmark the lectures read
    (:data:`LECTURE_BENCHMARKS`) is measured on it, and this table says how far that is: rows ``{"chapter", "base", "wide",
    "claims_same", "wide_missing"}`` (marks as :func:`chapter_mark`; ``claims_same``: of the claims its
    :data:`CHAPTER_BENCHMARKS` measured on both families, how many have the same verdict in both, :func:`compare_families`, ``"-"`` when no
    benchmark of the chapter is measured on both; ``wide_missing`` the benchmarks without a protocol-2
    ``<name>-wide-<profile>.json`` among those its lecture reads, or ``"<name> --part <part>"`` for each part of a benchmark run by parts that
    the base family's file has and the wide one's lacks, :func:`measured_parts`).  ``python -m course_lib.results``
    prints it with the commands, and with ``--claims`` each benchmark's changed verdicts (:func:`show_families`).
    """
    rows = []
    for ch, names in LECTURE_BENCHMARKS.items():
        missing = []
        for n in names:
            w = load(n, profile, "wide")
            if w is None or w.protocol < CURRENT_PROTOCOL:
                missing.append(n)
            else:  # a benchmark measured by parts: each part the base family has, the wide one needs too
                missing += [f"{n} --part {part}" for part in measured_parts(load(n, profile, "base"))
                            if part not in measured_parts(w)]
        cmps = [c for n in CHAPTER_BENCHMARKS[ch] if (c := compare_families(n, profile)) is not None]
        same, both = sum(len(c["same"]) for c in cmps), sum(len(c["same"]) + len(c["changed"]) for c in cmps)
        rows.append({"chapter": ch, "base": chapter_mark(ch, profile, "base")[0],
                     "wide": chapter_mark(ch, profile, "wide")[0],
                     "claims_same": f"{same} of {both}" if cmps else "-", "wide_missing": missing})
    return rows


def compare_families(name: str, profile: str = "laptop") -> dict[str, Any] | None:
    """How benchmark ``name``'s claims and goals read on ShapeNet-lite's wide family against its base family.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  The two families have other test shapes, so
    nothing is paired across them: each family's claim carries its own difference, standard error and verdict,
    and this lists where the verdicts agree.  ``None`` unless both families have protocol-2 results.  Keys:
    ``same`` (claim ids with one verdict in both), ``changed`` (``(base record, wide record)`` pairs whose
    verdicts differ), ``only_base`` / ``only_wide`` (claim ids measured in one family only), ``goals_changed``
    (``(base goal, wide goal)`` pairs met in one family and missed in the other), ``goals_only_wide`` (wide goal
    records the base file lacks), and ``base`` / ``wide`` (the two :class:`Result`).
    """
    base, wide = load(name, profile, "base"), load(name, profile, "wide")
    if base is None or wide is None or min(base.protocol, wide.protocol) < CURRENT_PROTOCOL:
        return None

    def by_id(r: Result, key: str) -> dict[str, dict[str, Any]]:
        recs = r.data.get(key) or []
        return {str(x.get("id")): dict(x) for x in recs if isinstance(x, Mapping)} if isinstance(recs, list) else {}

    cb, cw = by_id(base, "claims"), by_id(wide, "claims")
    gb, gw = by_id(base, "goals"), by_id(wide, "goals")
    return {
        "base": base, "wide": wide,
        "same": [i for i in cw if i in cb and cb[i].get("verdict") == cw[i].get("verdict")],
        "changed": [(cb[i], cw[i]) for i in cw if i in cb and cb[i].get("verdict") != cw[i].get("verdict")],
        "only_base": [i for i in cb if i not in cw],
        "only_wide": [i for i in cw if i not in cb],
        "goals_changed": [(gb[i], gw[i]) for i in gw if i in gb and bool(gb[i].get("met")) != bool(gw[i].get("met"))],
        "goals_only_wide": [gw[i] for i in gw if i not in gb],
    }


def show_families(name: str, profile: str = "laptop") -> dict[str, Any] | None:
    """Print how ``name``'s claims and goals read on the wide family against the base family
    (:func:`compare_families`): how many claims keep their verdict, each claim that changes (both families'
    sentences, from their records) and each goal met in one family only; or the command that measures the
    missing family.  Return the comparison (``None`` when a family is not measured)."""
    from course_lib.experiments.protocol import claim_sentence, goal_sentence

    cmp = compare_families(name, profile)
    if cmp is None:
        missing = [f for f in ("base", "wide") if (r := load(name, profile, f)) is None or r.protocol < CURRENT_PROTOCOL]
        cmds = " and ".join(f"`COURSE_VARIETY={f} COURSE_PROFILE={profile} python "
                            f"benchmarks/{name}.py`" for f in missing)
        print(f"{name}: the {' and '.join(missing)} famil{'ies are' if len(missing) > 1 else 'y is'} not measured under "
              f"protocol {CURRENT_PROTOCOL} yet; {cmds} {'measure them' if len(missing) > 1 else 'measures it'}")
        return None
    n = len(cmp["same"]) + len(cmp["changed"])
    print(f"{name} on the wide family ({cmp['wide'].describe()}):")
    print(f"  {len(cmp['same'])} of {n} claims measured in both families have the same verdict in both"
          + (f"; {len(cmp['only_wide'])} measured on the wide family only" if cmp["only_wide"] else "")
          + (f"; {len(cmp['only_base'])} on the base family only" if cmp["only_base"] else ""))
    for b, w in cmp["changed"]:
        print(f"  changed: base family: {claim_sentence(b)}")
        print(f"           wide family: {claim_sentence(w)}")
    for b, w in cmp["goals_changed"]:
        print(f"  goal changed: base family: {goal_sentence(b)}")
        print(f"                wide family: {goal_sentence(w)}")
    for w in cmp["goals_only_wide"]:
        print(f"  goal of the wide family only: {goal_sentence(w)}")
    if not cmp["changed"] and not cmp["goals_changed"]:
        print("  every claim and goal measured in both families reads the same in both")
    return cmp


def _main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m course_lib.results",
                                 description="Each chapter's README mark on ShapeNet-lite's base and wide families, "
                                             "and the commands that measure what the wide family lacks.")
    ap.add_argument("--profile", default="laptop")
    ap.add_argument("--claims", action="store_true",
                    help="also print, per benchmark measured on both families, the claims whose verdict changes")
    args = ap.parse_args(argv)
    rows = family_status(args.profile)
    print(f"{'chapter':8s}{'base':>6s}{'wide':>6s}  {'same verdict':14s}wide family: benchmarks not measured yet")
    for r in rows:
        print(f"{r['chapter']:8s}{r['base']:>5s}{r['wide']:>5s}   {r['claims_same']:14s}"
              f"{', '.join(r['wide_missing']) or '-'}")
    if args.claims:
        names = sorted({p.name.split("-wide-")[0] for p in results_dir().glob(f"*-wide-{args.profile}.json")})
        for n in names:
            print()
            show_families(n, args.profile)
    todo = list(dict.fromkeys(n for r in rows for n in r["wide_missing"]))  # once each (retrieval: 3 chapters)
    if todo:
        print(f"\n{len(todo)} benchmark(s) to run on the wide family, each alone on the machine:")
        for n in todo:
            name, _, part = n.partition(" ")
            print(f"  COURSE_VARIETY=wide COURSE_PROFILE={args.profile} python benchmarks/{name}.py"
                  + (f" {part}" if part else ""))
    return 0


def mean(value: Any) -> float:
    """A stored value as one number: the mean of a per-shape (or per-seed) list, which protocol-2 files
    keep so that claims can be paired, or the number itself; ``nan`` for an empty list or ``None``."""
    if value is None:
        return float("nan")
    if isinstance(value, (list, tuple)):
        vals = [float(v) for v in value]
        return sum(vals) / len(vals) if vals else float("nan")
    return float(value)


if __name__ == "__main__":
    raise SystemExit(_main())
