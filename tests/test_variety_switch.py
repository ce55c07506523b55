"""COURSE_VARIETY: ShapeNet-lite's wide family (the default when it is unset) through the whole pipeline, kept apart
from the base family (its shapes, dataset files, checkpoints and results files), and the base family untouched."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from course_lib import config, results
from course_lib.data import ShapeNetLite, make_shape
from course_lib.train import checkpoint_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_VARIETY", "base")  # each test starts on the base family and switches
    return tmp_path / "cache"


def test_the_default_family_is_default_variety(cache, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("COURSE_VARIETY")
    default = config.DEFAULT_VARIETY
    other = "wide" if default == "base" else "base"
    assert default in ("base", "wide") and config.variety() == default and make_shape("chair", 5).variety == default
    # the wide family's folder whichever family is the default: its caches stay valid when the default changes
    assert config.cache_dir() == (cache if default == "base" else cache / "variety-wide")
    assert f"the {default} family" in config.describe() and "COURSE_VARIETY" not in config.describe()
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "res"))
    results.show("demo")  # not measured: the command needs no switch for the default family
    out = capsys.readouterr().out
    assert "`COURSE_PROFILE=laptop python benchmarks/demo.py`" in out and "COURSE_VARIETY" not in out
    monkeypatch.setenv("COURSE_VARIETY", other)
    results.show("demo")
    assert f"`COURSE_VARIETY={other} COURSE_PROFILE=laptop python benchmarks/demo.py`" in capsys.readouterr().out
    assert f"the {other} family (COURSE_VARIETY)" in config.describe()
    results.show("demo", variety=default)  # an explicit family: its file and its command
    out = capsys.readouterr().out
    assert "`COURSE_PROFILE=laptop python benchmarks/demo.py`" in out


def test_variety_reads_the_environment_and_names_the_valid_families(cache, monkeypatch):
    assert config.variety() == "base"
    monkeypatch.setenv("COURSE_VARIETY", " Wide ")
    assert config.variety() == "wide"
    assert "wide family" in config.describe()
    monkeypatch.setenv("COURSE_VARIETY", "narrow")
    with pytest.raises(ValueError, match="base, wide"):
        config.variety()
    with pytest.raises(ValueError, match="narrow"):
        make_shape("chair", 3)


def test_cache_and_checkpoints_of_the_wide_family_live_apart(cache, monkeypatch):
    base_dir, base_ckpt = config.cache_dir(), checkpoint_path("ch05_psg", {"a": 1}, "ci")
    monkeypatch.setenv("COURSE_VARIETY", "wide")
    assert base_dir == cache and config.cache_dir() == cache / "variety-wide"
    wide_ckpt = checkpoint_path("ch05_psg", {"a": 1}, "ci")
    assert wide_ckpt != base_ckpt and wide_ckpt.parent == cache / "variety-wide" / "checkpoints"


def test_make_shape_follows_the_active_family(cache, monkeypatch):
    q = torch.rand(200, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    base = make_shape("chair", 5)
    assert base.variety == "base" and make_shape("chair", 5, variety="base") is base
    monkeypatch.setenv("COURSE_VARIETY", "wide")
    wide = make_shape("chair", 5)
    assert wide.variety == "wide" and wide is make_shape("chair", 5, variety="wide")
    assert not torch.allclose(wide.sdf(q), base.sdf(q))
    assert make_shape("chair", 5, variety="base") is base  # an explicit family wins over the environment
    # cache keys (chapter 09's renders): the base key as before the switch existed, the wide one its own
    assert base.key() == "chair-5-1" and wide.key() == "chair-5-1-wide-r2"


def test_dataset_items_and_files_follow_the_family_fixed_at_construction(cache, monkeypatch):
    kw = dict(split="train", representations=("points",), n_points=64, categories=("table",), profile="ci",
              shapes_per_category=1)
    base = ShapeNetLite(**kw)
    b0 = base[0]["points"]
    monkeypatch.setenv("COURSE_VARIETY", "wide")
    wide = ShapeNetLite(**kw)
    w0 = wide[0]["points"]
    assert wide.variety == "wide" and "variety='wide'" in repr(wide) and not torch.allclose(w0, b0)
    assert torch.equal(base[0]["points"], b0)  # made under base: still base, whatever the environment says
    assert base.shape(0).variety == "base" and wide.shape(0).variety == "wide"
    assert wide.cache_path("points", "table", wide.seeds[0]).is_file()
    assert "variety-wide" in str(wide.cache_path("points", "table", wide.seeds[0]))
    assert "v1-wide" in wide.cache_path("points", "table", wide.seeds[0]).parts[-4]
    # one explicit cache folder for both families: their files still never meet
    shared = cache / "shared"
    monkeypatch.setenv("COURSE_VARIETY", "base")
    b = ShapeNetLite(**kw, cache_dir=shared)
    monkeypatch.setenv("COURSE_VARIETY", "wide")
    w = ShapeNetLite(**kw, cache_dir=shared)
    assert b.cache_path("points", "table", b.seeds[0]) != w.cache_path("points", "table", w.seeds[0])
    assert torch.equal(b[0]["points"], b0) and torch.equal(w[0]["points"], w0)


def test_results_of_the_wide_family_have_their_own_files(cache, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "res"))
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "demo-laptop.json").write_text(json.dumps({"provenance": {}, "data": {"x": 1}}))
    assert results.variety_name("demo") == "demo" and results.load("demo")["data"] == {"x": 1}
    monkeypatch.setenv("COURSE_VARIETY", "wide")
    assert results.variety_name("demo") == "demo-wide" and results.variety_name("splits-wide") == "splits-wide"
    assert results.path_of("demo", "laptop").name == "demo-wide-laptop.json"
    assert results.load("demo") is None  # the base family's numbers never stand for the wide family's
    # ... unless a family is named: a lecture can print the other family's file (lecture 01's first measurement)
    from course_lib.experiments.protocol import claim, goal

    rec = claim("x", "A closer than B", a="A", b="B", metric="CD", values_a=[1, 1.1, 0.9], values_b=[2, 2.1, 1.9],
                higher_is_better=False, unit="seeds")
    (tmp_path / "res" / "named-laptop.json").write_text(json.dumps(
        {"provenance": {"protocol": 2}, "data": {"claims": [rec], "goals": [goal("g", "CD under 2", 1.0, 2.0,
                                                                                 comparison="<=")]}}))
    assert results.show("named") is None and results.show("named", variety="base") is not None
    assert "not measured" in results.say("named", "x") and "yes (A ahead of B)" in results.say("named", "x",
                                                                                                 variety="base")
    assert results.show_goals("named") == [] and results.show_goals("named", variety="base")[0]["met"] is True
    capsys.readouterr()
    results.show("demo")
    assert "COURSE_VARIETY=wide COURSE_PROFILE=laptop python benchmarks/demo.py" in capsys.readouterr().out
    # chapter 11's stored predictions too: the base family's file is not the wide family's
    import numpy as np

    from course_lib.experiments.evaluation import load_predictions

    np.savez_compressed(tmp_path / "res" / "evaluation-laptop-predictions.npz", shapes=np.array(["chair/1"]),
                        models=np.array([]), target=np.zeros((1, 4, 3), dtype=np.float16))
    assert load_predictions("laptop") is None
    monkeypatch.setenv("COURSE_VARIETY", "base")
    assert load_predictions("laptop")["shapes"] == ["chair/1"]


def test_family_status_reads_each_familys_files_whatever_the_active_family(cache, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "res"))
    (tmp_path / "res").mkdir()

    def write(name: str, met: bool, protocol: int = 2) -> None:
        (tmp_path / "res" / f"{name}-laptop.json").write_text(json.dumps(
            {"provenance": {"protocol": protocol}, "data": {"goals": [
                {"id": "g", "text": "goal g", "met": met, "value": 1, "target": 1, "comparison": ">="}]}}))

    write("point_sets", True)
    write("point_sets-wide", False)
    write("primitives", True)
    write("primitives-wide", True, protocol=1)       # measured before the protocol: still missing
    write("splits-wide", True)
    for name, parts in (("octrees", ("ae", "octnet")), ("octrees-wide", ("ae",))):  # measured by parts
        (tmp_path / "res" / f"{name}-laptop.json").write_text(json.dumps(
            {"provenance": {"protocol": 2}, "data": {"goals": [], **{p: {"provenance": {}} for p in parts}}}))
    for active in ("base", "wide", None):            # the active family does not change what is read
        if active:
            monkeypatch.setenv("COURSE_VARIETY", active)
        else:
            monkeypatch.delenv("COURSE_VARIETY")
        rows = {r["chapter"]: r for r in results.family_status("laptop")}
        # chapter 05's lecture reads the retrieval benchmark too: measured on the base family only here
        assert (rows["05"]["base"], rows["05"]["wide"], rows["05"]["wide_missing"]) == ("✅", "🟡", ["retrieval"])
        assert (rows["08"]["base"], rows["08"]["wide"]) == ("✅", "🔶")
        assert rows["08"]["wide_missing"] == ["primitives", "primitives_estimators", "primitives_consistency",
                                              "primitives_coherence", "modular"]  # every file lecture 08 reads
        assert (rows["01"]["base"], rows["01"]["wide"], rows["01"]["wide_missing"]) == ("🔶", "✅", [])
        assert rows["00"]["wide_missing"] == [] and rows["11"]["wide_missing"][0] == "evaluation"
        assert rows["04"]["wide_missing"] == ["octrees --part octnet", "modular"]  # the part the wide file lacks
        assert (rows["05"]["claims_same"], rows["08"]["claims_same"]) == ("0 of 0", "-")  # no claim records here
    assert results.load("point_sets", variety="base")["data"]["goals"][0]["met"] is True
    with pytest.raises(ValueError, match="base, wide"):
        results.load("point_sets", variety="narrow")    # the data package's check names the families
    assert results._main(["--profile", "laptop"]) == 0
    out = capsys.readouterr().out
    assert "COURSE_VARIETY=wide COURSE_PROFILE=laptop python benchmarks/primitives.py" in out
    assert "benchmarks/point_sets.py" not in out and "point_sets on the wide family" not in out
    assert out.count("benchmarks/retrieval.py") == 1  # read by three lectures, listed once
    assert "COURSE_VARIETY=wide COURSE_PROFILE=laptop python benchmarks/octrees.py --part octnet" in out
    assert "--part ae" not in out
    assert results._main(["--profile", "laptop", "--claims"]) == 0
    out = capsys.readouterr().out
    assert "point_sets on the wide family" in out
    point_sets = out.split("point_sets on the wide family")[1].split("\n\n")[0]  # its block only
    assert "every claim and goal measured in both" not in point_sets


def test_compare_families_lists_changed_verdicts_and_goals(cache, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "res"))
    (tmp_path / "res").mkdir()

    def rec(cid: str, verdict: str, diff: float) -> dict:
        return {"id": cid, "text": f"claim {cid}", "a": "A", "b": "B", "metric": "CD", "difference": diff, "se": 0.1,
                "n": 3, "unit": "seeds", "verdict": verdict, "budget": {}}

    def write(name: str, claims: list, goals: list, protocol: int = 2) -> None:
        (tmp_path / "res" / f"{name}-laptop.json").write_text(json.dumps(
            {"provenance": {"protocol": protocol, "command": f"run {name}"}, "data": {"claims": claims, "goals": goals}}))

    def goal(gid: str, met: bool, value: float) -> dict:
        return {"id": gid, "text": f"goal {gid}", "value": value, "target": 1.0, "comparison": "<=", "met": met}

    write("demo", [rec("same", "ahead", -1.0), rec("flip", "not separated", 0.05), rec("gone", "behind", 1.0)],
          [goal("g1", True, 0.5), goal("g2", True, 0.5)])
    write("demo-wide", [rec("same", "ahead", -2.0), rec("flip", "behind", 0.9), rec("new", "ahead", -1.0)],
          [goal("g1", False, 1.5), goal("g2", True, 0.7), goal("g3", False, 2.0)])
    for active in ("base", "wide", None):               # the active family does not change what is compared
        if active:
            monkeypatch.setenv("COURSE_VARIETY", active)
        else:
            monkeypatch.delenv("COURSE_VARIETY")
        cmp = results.compare_families("demo")
        assert cmp["same"] == ["same"] and cmp["only_base"] == ["gone"] and cmp["only_wide"] == ["new"]
        assert [(b["verdict"], w["verdict"]) for b, w in cmp["changed"]] == [("not separated", "behind")]
        assert [(b["met"], w["met"]) for b, w in cmp["goals_changed"]] == [(True, False)]
        assert [g["id"] for g in cmp["goals_only_wide"]] == ["g3"]
    results.show_families("demo")
    out = capsys.readouterr().out
    assert "1 of 2 claims" in out and "claim flip: not shown" in out and "claim flip: no, the opposite" in out
    assert "🟡 goal g1: measured 1.5" in out and "goal g3" in out and "claim same" not in out
    # a family measured before the protocol, or not at all, is named with its command
    write("demo-wide", [rec("same", "ahead", -2.0)], [], protocol=1)
    assert results.compare_families("demo") is None and results.show_families("demo") is None
    assert "COURSE_VARIETY=wide COURSE_PROFILE=laptop python benchmarks/demo.py" in capsys.readouterr().out
    assert results.show_families("absent") is None
    out = capsys.readouterr().out
    assert "base and wide families are" in out and "COURSE_PROFILE=laptop python benchmarks/absent.py" in out
    # every claim and goal alike: said so
    write("twin", [rec("same", "ahead", -1.0)], [goal("g1", True, 0.5)])
    write("twin-wide", [rec("same", "ahead", -1.5)], [goal("g1", True, 0.6)])
    results.show_families("twin")
    assert "reads the same in both" in capsys.readouterr().out


def test_a_benchmark_run_on_the_wide_family_writes_tagged_files(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "res"))
    monkeypatch.setenv("COURSE_VARIETY", "wide")
    spec = importlib.util.spec_from_file_location("_bench_common_variety", ROOT / "benchmarks" / "_common.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RESULTS", tmp_path / "res")
    monkeypatch.setattr(sys, "argv", ["benchmarks/demo.py"])
    md = mod.write_result("demo", "ci", "body", data={"x": 1})
    assert md.name.startswith("demo-wide-ci-") and "ShapeNet-lite family: wide" in md.read_text()
    content = json.loads((tmp_path / "res" / "demo-wide-ci.json").read_text())
    assert content["provenance"]["variety"] == "wide"
    assert content["provenance"]["command"].startswith("COURSE_VARIETY=wide ")
    assert not (tmp_path / "res" / "demo-ci.json").exists()


def _benchmarks_read_by(source: str) -> set[str]:
    """The benchmarks whose results a lecture's source reads: ``results.<fn>("<name>"`` calls, names looped into
    ``results.<fn>(name)``, and the course_lib helpers that read one file themselves."""
    import re

    helpers = {"show_chapter(": "retrieval", "load_predictions(": "evaluation", "print_decoder_cells(": "modular"}
    code = "\n".join(line for line in source.split("\n") if not line.lstrip().startswith("#"))
    names = set(re.findall(r'results\.\w+\(\s*"(\w+)"', code))
    for group in re.findall(r'for \w+ in \(([^)]*)\):\s*\n\s+results\.', code):
        names |= set(re.findall(r'"(\w+)"', group))
    names |= {bench for call, bench in helpers.items() if call in code}
    return names & {p.stem for p in (ROOT / "benchmarks").glob("*.py")}


@pytest.mark.parametrize("chapter", sorted(results.LECTURE_BENCHMARKS))
def test_lecture_benchmarks_list_every_results_file_a_lecture_reads(chapter):
    (src,) = (ROOT / "nbsrc" / "lectures").glob(f"{chapter}_*.py")
    read = _benchmarks_read_by(src.read_text())
    listed = set(results.LECTURE_BENCHMARKS[chapter])
    assert read <= listed, f"lecture {chapter} reads {sorted(read - listed)}: add them to results.LECTURE_BENCHMARKS"
    assert set(results.CHAPTER_BENCHMARKS[chapter]) <= listed
    # the scan finds what it should: a loop of names and a helper count, a claim id does not
    assert _benchmarks_read_by('for n in ("voxels", "x_vs_y"):\n    results.show_families(n)\nRET.show_chapter("05")') \
        == {"voxels", "retrieval"}
