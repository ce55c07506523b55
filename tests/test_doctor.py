import course_lib
from course_lib import _doctor as doctor


def test_doctor_reports_every_item(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "cache"))
    items = course_lib.doctor()
    out = capsys.readouterr().out
    names = {i.name for i in items}
    for want in ("python", "torch", "device", "profile", "widgets", "k3d", "data cache", "plotly", "pykdtree", "numba"):
        assert want in names, want
        assert want in out
    assert str(tmp_path / "cache") in out
    prof = next(i for i in items if i.name == "profile")
    assert prof.ok and prof.value.startswith("ci")


def test_doctor_flags_a_bad_profile_and_unwritable_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_PROFILE", "bogus")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("COURSE_DATA_DIR", str(blocker / "sub"))  # under a file: cannot be created
    items = {i.name: i for i in doctor.doctor(print_report=False)}
    assert not items["profile"].ok and "bogus" in items["profile"].value
    assert not items["data cache"].ok


def test_missing_module_is_reported(monkeypatch):
    ok, msg = doctor._version("surely_not_a_module_xyz")
    assert not ok and "not importable" in msg


def test_doctor_stays_callable_after_repeated_calls(capsys):
    course_lib.doctor(print_report=False)
    course_lib.doctor(print_report=False)  # the function must not be shadowed by its module
    assert callable(course_lib.doctor)
