import json
import shutil
from pathlib import Path

import nbformat
import pytest

from course_lib import labs

ROOT = Path(__file__).resolve().parents[1]


def nb_with(*cells):
    nb = nbformat.v4.new_notebook()
    for kind, src, *tags in cells:
        cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(src)
        if tags:
            cell.metadata["tags"] = list(tags[0])
        nb.cells.append(cell)
    return nb


def test_block_marker_becomes_stub_with_indentation():
    src = "def f(x):\n    y = 2\n    ### BEGIN SOLUTION\n    z = x * y\n    return z\n    ### END SOLUTION\n"
    out, changed = labs.strip_solutions(src, "nb: cell 0")
    assert changed
    assert out == "def f(x):\n    y = 2\n    raise NotImplementedError()"


def test_top_level_and_nested_function_indentation():
    src = "class A:\n    def g(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n"
    out, _ = labs.strip_solutions(src, "w")
    assert out.splitlines()[-1] == "        raise NotImplementedError()"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("x = 3 * y  # SOLUTION", "x = ..."),
        ("    n: int = len(a)  # SOLUTION", "    n: int = ..."),
        ("a[0] = f(k=1)  #SOLUTION", "a[0] = ..."),
    ],
)
def test_one_line_marker(line, expected):
    out, changed = labs.strip_solutions(line, "w")
    assert changed and out == expected


@pytest.mark.parametrize(
    "src, words",
    [
        ("### BEGIN SOLUTION\nx = 1\n", ["never closed", "line 1"]),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", ["nested", "line 2"]),
        ("x = 1\n### END SOLUTION\n", ["without a matching", "line 2"]),
        ("print(1)  # SOLUTION\n", ["one-line assignment"]),
        ("x += 1  # SOLUTION\n", ["one-line assignment"]),
        ("y = 1  ### BEGIN SOLUTION\n", ["stand alone"]),
    ],
)
def test_bad_markers_are_errors_naming_notebook_and_cell(src, words):
    nb = nb_with(("markdown", "# t"), ("code", "import math"), ("code", src))
    with pytest.raises(labs.LabError) as err:
        labs.make_lab(nb, "07_bad_lab.ipynb")
    msg = str(err.value)
    assert "07_bad_lab.ipynb" in msg and "cell 2" in msg
    for w in words:
        assert w in msg


def test_make_lab_tags_strips_outputs_and_drops_solution_only():
    nb = nb_with(
        ("code", "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
        ("code", "check(f)"),
        ("code", "train(f)", ["uses-exercise"]),
        ("code", "print('answer')", ["solution-only"]),
    )
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.cells[1].execution_count = 3
    lab = labs.make_lab(nb, "x_lab.ipynb")
    srcs = [c.source for c in lab.cells]
    assert "print('answer')" not in srcs
    assert lab.cells[0].cell_type == "markdown" and "generated" in lab.cells[0].source
    stub, chk, uses = lab.cells[1], lab.cells[2], lab.cells[3]
    assert "raise NotImplementedError()" in stub.source and "return 1" not in stub.source
    assert "raises-exception" in stub.metadata["tags"]
    assert "raises-exception" in uses.metadata["tags"]
    assert "tags" not in chk.metadata
    assert chk.outputs == [] and chk.execution_count is None
    # the solution is left untouched
    assert "return 1" in nb.cells[0].source


def test_a_lab_needs_an_exercise():
    with pytest.raises(labs.LabError, match="no '### BEGIN SOLUTION'"):
        labs.make_lab(nb_with(("code", "x = 1")), "e_lab.ipynb")


def make_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "nbsrc" / "solutions").mkdir(parents=True)
    (root / "nbsrc" / "lectures").mkdir(parents=True)
    (root / "nbsrc" / "solutions" / "09_demo_lab.py").write_text(
        "# %% [markdown]\n# # Demo\n\n# %%\ndef f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n"
        "    ### END SOLUTION\n\n# %%\nprint(f(2))\n"
    )
    (root / "nbsrc" / "lectures" / "09_demo.py").write_text("# %% [markdown]\n# # Lecture\n\n# %%\nx = 1\n")
    return root


def test_build_then_check_is_clean_and_deterministic(tmp_path):
    root = make_repo(tmp_path)
    assert labs.main(["--root", str(root), "--check"]) == 1  # nothing built yet
    assert labs.main(["--root", str(root)]) == 0
    for p in ("lectures/09_demo.ipynb", "solutions/09_demo_lab.ipynb", "labs/09_demo_lab.ipynb"):
        assert (root / p).exists(), p
    first = (root / "labs" / "09_demo_lab.ipynb").read_text()
    assert labs.main(["--root", str(root), "--check"]) == 0
    assert labs.build(root) == []  # a second build writes nothing
    assert (root / "labs" / "09_demo_lab.ipynb").read_text() == first
    lab = json.loads(first)
    assert any("raise NotImplementedError()" in "".join(c["source"]) for c in lab["cells"])


def test_changing_a_solution_without_regenerating_fails_the_check(tmp_path, capsys):
    root = make_repo(tmp_path)
    labs.main(["--root", str(root)])
    capsys.readouterr()
    src = root / "nbsrc" / "solutions" / "09_demo_lab.py"
    src.write_text(src.read_text().replace("return 2 * x", "return 3 * x"))
    assert labs.main(["--root", str(root), "--check"]) == 1
    out = capsys.readouterr().out
    assert "solutions/09_demo_lab.ipynb" in out
    # editing the solution notebook itself (no nbsrc) also makes its lab stale
    shutil.rmtree(root / "nbsrc" / "solutions")
    labs.main(["--root", str(root)])
    sol = root / "solutions" / "09_demo_lab.ipynb"
    nb = nbformat.read(sol, as_version=4)
    nb.cells[1].source = nb.cells[1].source.replace("3 * x", "4 * x") + "\n    # changed"
    nb.cells.append(nbformat.v4.new_code_cell("print('new exercise cell')"))
    nbformat.write(nb, sol)
    capsys.readouterr()
    assert labs.main(["--root", str(root), "--check"]) == 1
    assert "labs/09_demo_lab.ipynb" in capsys.readouterr().out


def test_a_hand_edited_lab_fails_the_check(tmp_path, capsys):
    root = make_repo(tmp_path)
    labs.main(["--root", str(root)])
    lab = root / "labs" / "09_demo_lab.ipynb"
    lab.write_text(lab.read_text().replace("raise NotImplementedError()", "return 2 * x"))
    assert labs.main(["--root", str(root), "--check"]) == 1
    assert "labs/09_demo_lab.ipynb" in capsys.readouterr().out


def test_orphan_lab_is_reported(tmp_path, capsys):
    root = make_repo(tmp_path)
    labs.main(["--root", str(root)])
    shutil.copy(root / "labs" / "09_demo_lab.ipynb", root / "labs" / "10_orphan_lab.ipynb")
    assert labs.main(["--root", str(root), "--check"]) == 1
    assert "10_orphan_lab.ipynb" in capsys.readouterr().out


def test_bad_marker_in_a_source_exits_2_naming_it(tmp_path, capsys):
    root = make_repo(tmp_path)
    (root / "nbsrc" / "solutions" / "11_bad_lab.py").write_text("# %%\n### BEGIN SOLUTION\nx = 1\n")
    assert labs.main(["--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "11_bad_lab.ipynb" in err and "cell 0" in err


def test_repository_labs_are_in_step():
    assert labs.check(ROOT) == [], "run `python -m course_lib.labs` and commit"


# --- misspelt markers are errors, never a leaked solution -------------------------------
@pytest.mark.parametrize("marker", [
    "### BEGIN SOLUTON", "#BEGIN SOLUTION", "## BEGIN SOLUTION", "### begin solution", "### Begin Solution",
    "###BEGIN SOLUTION", "### BEGIN_SOLUTION", "### BEGIN SOLUTION:", "### BEGIN SOLUTIONS",
])
def test_misspelt_begin_marker_is_an_error(marker):
    src = f"def f(x):\n    {marker}\n    return 2 * x\n    ### END SOLUTION\n"
    nb = nb_with(("markdown", "# t"), ("code", src))
    with pytest.raises(labs.LabError) as err:
        labs.make_lab(nb, "07_typo_lab.ipynb")
    msg = str(err.value)
    assert "07_typo_lab.ipynb" in msg and "cell 1" in msg and "line 2" in msg
    assert "misspelt" in msg and "'### BEGIN SOLUTION'" in msg


@pytest.mark.parametrize("marker", ["### END SOLUTON", "#END SOLUTION", "### end solution", "### ENDSOLUTION"])
def test_misspelt_end_marker_is_an_error(marker):
    src = f"def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    {marker}\n"
    with pytest.raises(labs.LabError) as err:
        labs.make_lab(nb_with(("code", src)), "07_typo_lab.ipynb")
    msg = str(err.value)
    assert "cell 0" in msg and "line 4" in msg and "misspelt" in msg and "'### END SOLUTION'" in msg


@pytest.mark.parametrize("line", ["x = 2 * y  # solution", "x = 2 * y  # SOLUTON", "x = 2 * y  # Solution"])
def test_misspelt_one_line_marker_is_an_error(line):
    nb = nb_with(("code", "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"),
                 ("code", line))
    with pytest.raises(labs.LabError) as err:
        labs.make_lab(nb, "07_typo_lab.ipynb")
    assert "cell 1" in str(err.value) and "'# SOLUTION'" in str(err.value)


@pytest.mark.parametrize("ok", ["# end of the loop", "# begin sampling here", "x = 1  # the solution is below",
                                "# Solution notes", "y = f(x)  # resolution"])
def test_ordinary_comments_are_not_markers(ok):
    src = f"{ok}\ndef f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    out, _ = labs.strip_solutions(src, "w")
    assert ok in out


def test_one_line_marker_unpacking_keeps_the_arity():
    out, _ = labs.strip_solutions("a, b = f(x)  # SOLUTION\n(c, d) = g()  # SOLUTION", "w")
    assert out.splitlines() == ["a, b = ..., ...", "(c, d) = ..., ..."]


# --- a lab the student has edited is not overwritten ---------------------------------------
def _build(root, *extra):
    return labs.main(["--root", str(root), *extra])


def test_build_refuses_to_overwrite_an_edited_lab(tmp_path, capsys):
    root = make_repo(tmp_path)
    assert _build(root) == 0
    lab = root / "labs" / "09_demo_lab.ipynb"
    nb = nbformat.read(lab, as_version=4)
    assert nb.metadata["course_lib"]["lab_sha256"] == labs.fingerprint(nb)
    # the student fills in the stub ...
    nb.cells[2].source = nb.cells[2].source.replace("raise NotImplementedError()", "return 2 * x  # mine")
    nbformat.write(nb, lab)
    mine = lab.read_text()
    assert labs.lab_status(root, lab) == "edited"
    # ... then the solution changes and the instructor (or the student) rebuilds
    src = root / "nbsrc" / "solutions" / "09_demo_lab.py"
    src.write_text(src.read_text().replace("print(f(2))", "print(f(3))"))
    capsys.readouterr()
    assert _build(root) == 3
    err = capsys.readouterr().err
    assert "NOT OVERWRITTEN: labs/09_demo_lab.ipynb" in err and "--force" in err
    assert lab.read_text() == mine  # the student's work is intact
    assert "print(f(3))" in (root / "solutions" / "09_demo_lab.ipynb").read_text()  # the rest was built
    # --check still reports it (and says it was edited)
    assert _build(root, "--check") == 1
    assert "labs/09_demo_lab.ipynb" in capsys.readouterr().out
    # outside CI (tools/test.py passes --allow-edited-labs) a student's edited lab is reported, not a failure ...
    assert _build(root, "--check", "--allow-edited-labs") == 0
    assert "your edited lab: labs/09_demo_lab.ipynb" in capsys.readouterr().out
    # ... but a drifted generated notebook still fails
    sol = root / "solutions" / "09_demo_lab.ipynb"
    kept_sol = sol.read_text()
    sol.write_text(kept_sol.replace("print(f(3))", "print(f(4))"))
    assert _build(root, "--check", "--allow-edited-labs") == 1
    sol.write_text(kept_sol)
    # --force replaces it
    assert _build(root, "--force") == 0
    assert "print(f(3))" in lab.read_text() and "# mine" not in lab.read_text()
    assert _build(root, "--check") == 0


def test_running_a_lab_is_not_editing_it(tmp_path):
    """Outputs, execution counts, cell ids and notebook metadata written by Jupyter do not count."""
    root = make_repo(tmp_path)
    _build(root)
    lab = root / "labs" / "09_demo_lab.ipynb"
    nb = nbformat.read(lab, as_version=4)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"jupyter-{i}"
        if cell.cell_type == "code":
            cell.execution_count = i
            cell.outputs = [nbformat.v4.new_output("stream", text="4\n")]
            cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01"}
    nb.metadata["widgets"] = {"state": {}}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    nbformat.write(nb, lab)
    assert labs.lab_status(root, lab) == "generated"
    src = root / "nbsrc" / "solutions" / "09_demo_lab.py"
    src.write_text(src.read_text().replace("print(f(2))", "print(f(3))"))
    assert _build(root) == 0
    assert "print(f(3))" in lab.read_text()


def test_a_lab_without_fingerprint_is_kept_unless_it_is_the_committed_one(tmp_path, capsys):
    root = make_repo(tmp_path)
    _build(root)
    lab = root / "labs" / "09_demo_lab.ipynb"
    nb = nbformat.read(lab, as_version=4)
    del nb.metadata["course_lib"]  # a lab generated before fingerprints
    nbformat.write(nb, lab)
    assert labs.lab_status(root, lab) == "edited"  # not a git checkout: cannot tell, keep it
    capsys.readouterr()
    src = root / "nbsrc" / "solutions" / "09_demo_lab.py"
    src.write_text(src.read_text().replace("print(f(2))", "print(f(3))"))
    assert _build(root) == 3
    # in a git checkout, the committed version of a lab counts as generated
    import subprocess

    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "labs/09_demo_lab.ipynb"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "lab"], check=True)
    assert labs.lab_status(root, lab) == "generated"
    assert _build(root) == 0
    assert "print(f(3))" in lab.read_text()


def test_an_unreadable_lab_is_kept(tmp_path):
    root = make_repo(tmp_path)
    _build(root)
    lab = root / "labs" / "09_demo_lab.ipynb"
    lab.write_text("{ not json")
    src = root / "nbsrc" / "solutions" / "09_demo_lab.py"
    src.write_text(src.read_text().replace("print(f(2))", "print(f(3))"))
    assert _build(root) == 3 and lab.read_text() == "{ not json"


_USE_IT = ("Use it", "Use them", "Train ", "Decode a shape", "Look at it")


def _sections(path: Path) -> list[tuple[str, str]]:
    """(heading, text) of each '## ' or '### ' section of a lab's source."""
    import re

    parts = re.split(r"\n# (#{2,3} [^\n]*)", "\n" + path.read_text())
    return [(parts[i].lstrip("# ").strip(), parts[i + 1]) for i in range(1, len(parts) - 1, 2)]


@pytest.mark.parametrize("source", sorted((ROOT / "nbsrc" / "solutions").glob("*_lab.py")), ids=lambda p: p.stem)
def test_every_experiment_of_a_lab_is_predicted_then_observed(source):
    """Issue #39: before each experiment a student runs, a prediction prompt; after it, an observation (what the
    run and the laptop benchmark show, and a question). Every 'Use it' / training section has both, in that
    order, and every section that asks for a prediction comes back to it."""
    secs = _sections(source)
    assert any("Predict" in text for _, text in secs), f"{source.name} asks for no prediction"
    for head, text in secs:
        if head.startswith("Questions") or head.startswith("To go further") or head.startswith("Going further"):
            continue
        experiment = head.startswith(_USE_IT) or "**Use it" in text
        if experiment or "**Predict" in text:
            p, o = text.find("**Predict"), text.find("**Observe")
            assert p >= 0, f"{source.name}, section {head!r}: an experiment without a prediction prompt"
            assert o > p, f"{source.name}, section {head!r}: a prediction that is never observed"
            assert "checks.observe(" in text[o:], (
                f"{source.name}, section {head!r}: the observation is not tested on the run (no checks.observe "
                "after the **Observe** paragraph)")
