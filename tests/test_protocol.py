"""The measuring protocol (issue #32): choices on val, claims and goals from results, the fresh test split."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from course_lib import results
from course_lib.data import TestSplitReadError, make_shape, no_test_reads, split_of, split_seeds
from course_lib.experiments import protocol as P

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


# --- the fresh test split and the guard -------------------------------------------------------

def test_test_split_is_fresh_and_the_old_range_retired():
    assert split_seeds("test", 2) == [3_000_000, 3_000_001]
    assert split_of(2_000_000) == "retired" and split_of(2_998_999) == "retired"
    assert split_of(3_000_000) == "test" and split_of(1_000_000) == "val" and split_of(1_000) == "train"
    for s in ("train", "val", "test"):
        assert not {x for x in split_seeds(s, 500)} & set(range(2_000_000, 2_000_500))


def test_no_test_reads_blocks_seeds_and_shapes_and_nests():
    with no_test_reads("choosing epochs"):
        assert split_seeds("val", 1) == [1_000_000]
        make_shape("chair", 1_000_000)
        with pytest.raises(TestSplitReadError, match="choosing epochs"):
            split_seeds("test", 1)
        with pytest.raises(TestSplitReadError, match="seed 3000000"):
            make_shape("chair", 3_000_000)
        with no_test_reads("inner"):
            with pytest.raises(TestSplitReadError, match="inner"):
                split_seeds("test", 1)
        with pytest.raises(TestSplitReadError, match="choosing epochs"):
            split_seeds("test", 1)
    assert split_seeds("test", 1) == [3_000_000]  # outside the block the test split reads again
    with pytest.raises(ValueError, match="reason"):
        with no_test_reads(""):
            pass


# --- statistics ------------------------------------------------------------------------------

def test_paired_difference_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=25), rng.normal(size=25) + 0.3
    d, se, n = P.paired_difference(a, b)
    assert n == 25
    assert d == pytest.approx(float(np.mean(a - b)))
    assert se == pytest.approx(float(stats.sem(a - b)))
    # the paired t statistic of scipy is d / se
    assert d / se == pytest.approx(float(stats.ttest_rel(a, b).statistic))


def test_paired_difference_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        P.paired_difference([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        P.paired_difference([1.0], [2.0])
    with pytest.raises(ValueError, match="non-finite"):
        P.paired_difference([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        P.paired_difference([], [])


@pytest.mark.parametrize("d,se,hib,expected", [
    (0.5, 0.1, True, "ahead"), (0.5, 0.1, False, "behind"), (-0.5, 0.1, False, "ahead"),
    (-0.5, 0.1, True, "behind"), (0.2, 0.1, True, "not separated"), (-0.2, 0.1, False, "not separated"),
    (0.2001, 0.1, True, "ahead"), (0.0, 0.0, True, "not separated"),
])
def test_verdict_two_standard_errors(d, se, hib, expected):
    assert P.verdict(d, se, higher_is_better=hib) == expected


def test_verdict_rejects_nan_and_non_bool():
    with pytest.raises(ValueError):
        P.verdict(float("nan"), 0.1, higher_is_better=True)
    with pytest.raises(TypeError):
        P.verdict(0.1, 0.1, higher_is_better=1)


# --- records ---------------------------------------------------------------------------------

def _bud(steps):
    return P.budget(steps=steps, examples=steps * 16, seconds=1.5, params=1000)


def test_claim_record_and_minimum_n():
    rec = P.claim("c", "A is closer than B", a="A", b="B", metric="CD", values_a=[1.0, 1.1, 0.9],
                  values_b=[2.0, 2.2, 1.9], higher_is_better=False, unit="seeds",
                  budget={"A": _bud(100), "B": _bud(100)})
    assert rec["verdict"] == "ahead" and rec["n"] == 3 and rec["selected_on"] == "val"
    assert set(P.CLAIM_KEYS) <= set(rec)
    json.dumps(rec)  # a record is plain JSON
    with pytest.raises(ValueError, match="too few"):
        P.claim("c", "t", a="A", b="B", metric="CD", values_a=[1, 2], values_b=[2, 3], higher_is_better=False,
                unit="seeds")
    with pytest.raises(ValueError, match="too few"):
        P.claim("c", "t", a="A", b="B", metric="CD", values_a=list(range(19)), values_b=list(range(19)),
                higher_is_better=False, unit="shapes")
    with pytest.raises(ValueError, match="unit"):
        P.claim("c", "t", a="A", b="B", metric="CD", values_a=[1, 2, 3], values_b=[1, 2, 3],
                higher_is_better=False, unit="runs")


def test_claim_rejects_test_selection_and_missing_budgets():
    with pytest.raises(ValueError, match="never 'test'"):
        P.claim("c", "t", a="A", b="B", metric="CD", values_a=[1, 2, 3], values_b=[1, 2, 4],
                higher_is_better=False, unit="seeds", selected_on="test")
    with pytest.raises(ValueError, match="no budget"):
        P.claim("c", "t", a="A", b="B", metric="CD", values_a=[1, 2, 3], values_b=[1, 2, 4],
                higher_is_better=False, unit="seeds", budget={"A": _bud(10)})


def test_validate_claim_catches_a_verdict_its_numbers_do_not_give():
    rec = P.claim("c", "t", a="A", b="B", metric="IoU", values_a=[0.80, 0.81, 0.79], values_b=[0.80, 0.80, 0.80],
                  higher_is_better=True, unit="seeds")
    assert rec["verdict"] == "not separated"
    forged = dict(rec, verdict="ahead")
    with pytest.raises(ValueError, match="numbers give"):
        P.validate_claim(forged)
    with pytest.raises(ValueError, match="lacks"):
        P.validate_claim({k: v for k, v in rec.items() if k != "se"})


def test_goal_records():
    g = P.goal("iou", "IoU at least 0.85", 0.84, 0.85, comparison=">=")
    assert g["met"] is False
    assert P.goal("t", "under 300 s", 250.0, 300, comparison="<=")["met"] is True
    assert P.goal("flag", "exact", True, True, comparison="==")["met"] is True
    assert P.goal("nan", "diverged", float("nan"), 1.0, comparison="<=")["met"] is False
    with pytest.raises(ValueError, match="met"):
        P.validate_goal(dict(g, met=True))
    with pytest.raises(ValueError, match="comparison"):
        P.goal("x", "x", 1, 1, comparison=">")


def test_validate_records_rejects_duplicate_ids():
    g = P.goal("a", "a", 1, 1, comparison="==")
    with pytest.raises(ValueError, match="duplicate"):
        P.validate_records({"goals": [g, g]})
    P.validate_records({"goals": [g], "claims": []})


def test_budget_and_ratio():
    b = P.budget(steps=10, examples=160, seconds=None, params=5, epochs=2)
    assert b == {"steps": 10, "examples": 160, "seconds": None, "params": 5, "epochs": 2}
    with pytest.raises(ValueError):
        P.budget(steps=-1, examples=0, seconds=0, params=0)
    assert P.budget_ratio({"a": _bud(100), "b": _bud(100)}) == 1.0
    assert P.budget_ratio({"a": _bud(600), "b": _bud(100)}) == 6.0
    assert P.budget_ratio({"a": _bud(100)}) is None


def test_seed_budget_averages_seconds_and_refuses_unequal_steps():
    runs = [P.budget(steps=10, examples=80, seconds=s, params=5, epochs=2) for s in (2.0, 4.0, 9.0)]
    row = P.seed_budget(runs)
    assert row["seconds"] == 5.0 and row["seeds"] == 3 and row["epochs"] == 2
    assert (row["steps"], row["examples"], row["params"]) == (10, 80, 5)
    assert "mean wall seconds" in row["seconds_are"]
    # times kept outside the budgets, and another name for the count (chapter 04 calls them runs)
    outside = P.seed_budget([P.budget(steps=3, examples=3, seconds=None, params=1)] * 2, seconds=[1.0, 2.0],
                            count_key="runs")
    assert outside["seconds"] == 1.5 and outside["runs"] == 2 and "seeds" not in outside
    # a row's own summary fed back in is not counted twice
    assert P.seed_budget([row])["seeds"] == 1
    with pytest.raises(ValueError, match="different numbers of steps"):
        P.seed_budget([runs[0], P.budget(steps=11, examples=88, seconds=1.0, params=5)])
    with pytest.raises(ValueError, match="at least one run"):
        P.seed_budget([])
    with pytest.raises(ValueError, match="2 wall times for 3 runs"):
        P.seed_budget(runs, seconds=[1.0, 2.0])


def test_claim_sentence_says_each_verdict_and_unequal_budgets():
    kw = dict(a="A", b="B", metric="CD", higher_is_better=False, unit="seeds")
    ahead = P.claim("c", "A closer", values_a=[1, 1.1, 0.9], values_b=[2, 2.1, 1.9], **kw)
    behind = P.claim("c", "A closer", values_a=[2, 2.1, 1.9], values_b=[1, 1.1, 0.9], **kw)
    tie = P.claim("c", "A closer", values_a=[1, 2, 3], values_b=[2, 1, 3], **kw,
                  budget={"A": _bud(600), "B": _bud(100)})
    assert "yes (A ahead of B)" in P.claim_sentence(ahead)
    assert "no, the opposite" in P.claim_sentence(behind)
    s = P.claim_sentence(tie)
    assert "not separated" in s and "over 3 seeds" in s and "6× as many steps" in s


# --- selection --------------------------------------------------------------------------------

def test_select_on_val_picks_the_best_and_records_candidates():
    name, cand, rec = P.select_on_val("lr", {"1e-3": 1e-3, "1e-2": 1e-2, "1e-4": 1e-4},
                                      lambda lr: abs(math.log10(lr) + 3), metric="val loss", higher_is_better=False)
    assert name == "1e-3" and cand == 1e-3
    assert rec["selected_on"] == "val" and rec["chosen"] == "1e-3" and set(rec["candidates"]) == {"1e-3", "1e-2", "1e-4"}
    name, _, _ = P.select_on_val("k", {"a": 1, "b": 3, "c": 2}, float, metric="IoU", higher_is_better=True)
    assert name == "b"


def test_select_on_val_fails_when_the_scorer_reads_test():
    def peeks(_):
        split_seeds("test", 4)
        return 0.0

    with pytest.raises(TestSplitReadError, match="selection epochs"):
        P.select_on_val("epochs", {"10": 10, "20": 20}, peeks, metric="IoU", higher_is_better=True)


def test_selection_record_refuses_test_and_nan_only():
    with pytest.raises(ValueError, match="never"):
        P.selection_record("x", {"a": 1.0}, metric="m", higher_is_better=True, split="test")
    with pytest.raises(ValueError, match="nan"):
        P.selection_record("x", {"a": float("nan")}, metric="m", higher_is_better=True)
    chosen, rec = P.selection_record("x", {"a": float("nan"), "b": 2.0, "c": 1.0}, metric="m", higher_is_better=False)
    assert chosen == "c" and rec["candidates"]["a"] != rec["candidates"]["a"]


def test_selection_part_guards_the_test_split():
    @P.selection_part
    def sweep():
        return split_seeds("test", 1)

    assert sweep.__selection_part__ and sweep.__name__ == "sweep"
    with pytest.raises(TestSplitReadError, match="benchmark part sweep"):
        sweep()


# --- every benchmark declares its selection parts, and they never name the test split ------------

def _load_benchmark(path: Path):
    from check_helpers import load_benchmark

    return load_benchmark(path)


def _string_literals(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_selection_parts_cannot_read_test(path):
    tree = ast.parse(path.read_text())
    assigned = [n for n in tree.body if (isinstance(n, ast.Assign)
                                        and any(isinstance(t, ast.Name) and t.id == "SELECTION_PARTS" for t in n.targets))
                or (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id == "SELECTION_PARTS")]
    assert assigned, (f"{path.name} must declare SELECTION_PARTS: the module-level functions (marked "
                      "@selection_part) in which it makes choices, or () when it makes none")
    names = ast.literal_eval(assigned[0].value)
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for name in names:
        assert name in funcs, f"{path.name}: SELECTION_PARTS names {name!r}, which is not a module-level function"
        fn = funcs[name]
        decorated = any((isinstance(d, ast.Name) and d.id == "selection_part")
                        or (isinstance(d, ast.Attribute) and d.attr == "selection_part") for d in fn.decorator_list)
        assert decorated, f"{path.name}: {name} makes choices but is not marked @selection_part"
        assert "test" not in _string_literals(fn), f"{path.name}: selection part {name} names the 'test' split"
    if names:  # the marks hold at run time too: reading the test split there raises
        mod = _load_benchmark(path)
        for name in names:
            assert getattr(getattr(mod, name), "__selection_part__", False), f"{path.name}: {name} is not guarded"


def test_the_benchmark_rule_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from course_lib.experiments.protocol import selection_part\nSELECTION_PARTS = ('sweep',)\n"
                   "def sweep():\n    return load('test')\n")
    with pytest.raises(AssertionError, match="not marked"):
        test_benchmark_selection_parts_cannot_read_test(bad)
    bad.write_text("from course_lib.experiments.protocol import selection_part\nSELECTION_PARTS = ('sweep',)\n"
                   "@selection_part\ndef sweep():\n    return load('test')\n")
    with pytest.raises(AssertionError, match="names the 'test' split"):
        test_benchmark_selection_parts_cannot_read_test(bad)
    bad.write_text("x = 1\n")
    with pytest.raises(AssertionError, match="must declare"):
        test_benchmark_selection_parts_cannot_read_test(bad)


# --- committed results -----------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "results").glob("*.json")), ids=lambda p: p.name)
def test_committed_records_are_valid(path):
    content = json.loads(path.read_text())
    data = content.get("data", {})
    if isinstance(data, dict) and ("claims" in data or isinstance(data.get("goals"), list)):
        P.validate_records(data)
        assert int(content["provenance"].get("protocol", 1)) >= 2, f"{path.name}: records without protocol 2"


@pytest.mark.usefixtures("base_family")
def test_results_say_prints_from_the_record(tmp_path, monkeypatch, capsys):
    rec = P.claim("x", "A closer than B", a="A", b="B", metric="CD", values_a=[1, 1.1, 0.9],
                  values_b=[2, 2.1, 1.9], higher_is_better=False, unit="seeds")
    g = P.goal("g", "CD under 2", 1.0, 2.0, comparison="<=")
    (tmp_path / "demo-laptop.json").write_text(json.dumps(
        {"provenance": {"protocol": 2}, "data": {"claims": [rec], "goals": [g]}}))
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    assert "yes (A ahead of B)" in results.say("demo", "x")
    assert "not measured under the protocol yet" in results.say("demo", "missing")
    assert results.show_goals("demo")[0]["met"] is True
    out = capsys.readouterr().out
    assert "✅ CD under 2" in out
    (tmp_path / "old-laptop.json").write_text(json.dumps({"provenance": {"commit": "abc"}, "data": {}}))
    results.show("old")
    assert "protocol 1" in capsys.readouterr().out


def test_results_mean_reads_lists_and_numbers():
    assert results.mean([1.0, 2.0, 6.0]) == 3.0
    assert results.mean(2.5) == 2.5
    assert math.isnan(results.mean([])) and math.isnan(results.mean(None))
