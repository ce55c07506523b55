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
