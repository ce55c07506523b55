import math
import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_lib import train


def data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    w = torch.tensor([[1.0], [-2.0], [0.5]])
    y = x @ w + 0.3
    return TensorDataset(x, y)


def loss_fn(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def run(seed=0, epochs=5, **kw):
    torch.manual_seed(99)
    model = nn.Linear(3, 1)
    loader = DataLoader(data(), batch_size=16, shuffle=True)
    hist = train.fit(model, loader, loss_fn=loss_fn, epochs=epochs, lr=0.05, seed=seed,
                     progress=False, live_plot=False, **kw)
    return model, hist


def test_fit_learns_and_records_history():
    model, hist = run(epochs=30)
    assert len(hist.train_loss) == 30 and hist.epochs_run == 30
    assert hist.train_loss[-1] < 0.1 * hist.train_loss[0]
    # closed-form least squares as the independent reference
    x, y = data().tensors
    sol = torch.linalg.lstsq(torch.cat([x, torch.ones(len(x), 1)], 1), y).solution
    assert torch.allclose(model.weight.data.ravel(), sol[:3].ravel(), atol=0.1)


def test_fit_is_deterministic_under_a_seed():
    m1, h1 = run(seed=7)
    m2, h2 = run(seed=7)
    assert h1.train_loss == h2.train_loss
    assert torch.equal(m1.weight, m2.weight)
    _, h3 = run(seed=8)
    assert h3.train_loss != h1.train_loss


def test_validation_keeps_the_best_weights():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    loader = DataLoader(data(), batch_size=16)
    val = DataLoader(data(32, seed=1), batch_size=16)
    hist = train.fit(model, loader, loss_fn=loss_fn, epochs=6, lr=0.05, val_loader=val,
                     progress=False, live_plot=False)
    assert len(hist.val) == 6 and "val_loss" in hist.val[0]
    best = min(v["val_loss"] for v in hist.val)
    assert hist.best_metric == pytest.approx(best)
    now = train.evaluate(model, val, lambda m, b: loss_fn(m, b))["loss"]
    assert now == pytest.approx(best, rel=1e-5)


def test_keyboard_interrupt_stops_cleanly_with_best_weights():
    calls = {"n": 0}

    def interrupting(model, batch):
        calls["n"] += 1
        if calls["n"] == 9:  # during epoch 3 (4 batches per epoch)
            raise KeyboardInterrupt
        return loss_fn(model, batch)

    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    hist = train.fit(model, DataLoader(data(), batch_size=16), loss_fn=interrupting, epochs=10,
                     lr=0.05, progress=False, live_plot=False)
    assert hist.interrupted and hist.epochs_run == 2
    assert hist.best_epoch == 1


def test_checkpoint_roundtrip_and_train_or_load(tmp_path, capsys):
    path = tmp_path / "ck" / "m.pt"
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    kw = dict(train_loader=DataLoader(data(), batch_size=16), loss_fn=loss_fn, epochs=3,
              progress=False, live_plot=False)
    h1 = train.train_or_load(model, path, **kw)
    assert path.exists() and h1.epochs_run == 3
    fresh = nn.Linear(3, 1)
    h2 = train.train_or_load(fresh, path, **kw)
    assert "loaded" in capsys.readouterr().out
    assert torch.equal(fresh.weight, model.weight)
    assert h2.train_loss == h1.train_loss
    # a checkpoint that does not fit is reported and training happens again
    other = nn.Linear(4, 1)
    with pytest.raises(ValueError, match="does not fit"):
        train.load_checkpoint(path, other)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        train.load_checkpoint(path, fresh)
    h3 = train.train_or_load(fresh, path, **kw)
    assert h3.epochs_run == 3


def test_bad_losses_are_clear_errors():
    model = nn.Linear(3, 1)
    loader = DataLoader(data(), batch_size=16)
    with pytest.raises(ValueError, match="scalar"):
        train.fit(model, loader, loss_fn=lambda m, b: m(b[0]), epochs=1, progress=False, live_plot=False)
    with pytest.raises(FloatingPointError, match="nan"):
        train.fit(model, loader, loss_fn=lambda m, b: m(b[0]).sum() * math.nan, epochs=1,
                  progress=False, live_plot=False)
    with pytest.raises(ValueError, match="'loss'"):
        train.fit(model, loader, loss_fn=lambda m, b: {"l": m(b[0]).sum()}, epochs=1,
                  progress=False, live_plot=False)


def test_text_progress_without_a_notebook(capsys):
    torch.manual_seed(0)
    train.fit(nn.Linear(3, 1), DataLoader(data(), batch_size=16), loss_fn=loss_fn, epochs=2,
              progress=False, live_plot="auto")
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out


# --- checkpoints that cannot lie, evaluate weighted by samples ---------------------------------
def test_evaluate_weights_batches_by_their_size():
    x = torch.arange(10.0)[:, None]
    loader = DataLoader(TensorDataset(x), batch_size=4)  # batches of 4, 4, 2
    out = train.evaluate(nn.Linear(1, 1), loader, lambda m, b: b[0].mean())
    assert out["loss"] == pytest.approx(4.5)  # the mean over samples, not over batches (4.0)


@pytest.mark.usefixtures("base_family")
def test_a_variant_never_loads_another_variants_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    kw = dict(train_loader=DataLoader(data(), batch_size=16), loss_fn=loss_fn, epochs=2, progress=False,
              live_plot=False)
    path = train.checkpoint_path("lin", {"data": "a"}, profile="ci")
    assert path.parent == tmp_path / "checkpoints" and path.name.startswith("lin-ci-")
    assert path != train.checkpoint_path("lin", {"data": "b"}, profile="ci")
    train.train_or_load(nn.Linear(3, 1), path, **kw)
    capsys.readouterr()
    # other epochs, other loss, other architecture: each trains again and says why
    for change, word in ((dict(epochs=3), "epochs"), (dict(loss_fn=lambda m, b: loss_fn(m, b) * 2), "loss_fn")):
        train.train_or_load(nn.Linear(3, 1), path, **{**kw, **change})
        out = capsys.readouterr().out
        assert "training:" in out and word in out, out
    train.train_or_load(nn.Sequential(nn.Linear(3, 1)), path, **kw)
    assert "model" in capsys.readouterr().out
    # the same settings load
    train.train_or_load(nn.Sequential(nn.Linear(3, 1)), path, **kw)
    assert "loaded" in capsys.readouterr().out


def test_an_interrupted_run_is_partial_and_resumed(tmp_path, capsys):
    path = tmp_path / "m.pt"
    calls = {"n": 0}

    def interrupting(model, batch):
        calls["n"] += 1
        if calls["n"] == 9:  # during the third epoch (4 batches per epoch)
            raise KeyboardInterrupt
        return loss_fn(model, batch)

    kw = dict(train_loader=DataLoader(data(), batch_size=16), epochs=5, progress=False, live_plot=False)
    torch.manual_seed(0)
    h = train.train_or_load(nn.Linear(3, 1), path, loss_fn=interrupting, **kw)
    assert h.interrupted and h.epochs_run == 2
    assert not path.exists() and train.partial_path(path).exists()
    capsys.readouterr()
    # the next call (same settings: the same loss function object) resumes at epoch 3, not from scratch
    h2 = train.train_or_load(nn.Linear(3, 1), path, loss_fn=interrupting, **kw)
    out = capsys.readouterr().out
    assert "resuming" in out and "epoch 3" in out
    assert h2.epochs_run == 5 and len(h2.train_loss) == 5 and not h2.interrupted
    assert path.exists() and not train.partial_path(path).exists()
    assert train.train_or_load(nn.Linear(3, 1), path, loss_fn=interrupting, **kw).epochs_run == 5
    assert "loaded" in capsys.readouterr().out


def test_describe_callable_tells_closures_apart():
    def make(kind):
        def fn(m, b):
            return kind
        return fn

    assert train.describe_callable(make("chamfer")) == train.describe_callable(make("chamfer"))
    assert train.describe_callable(make("chamfer")) != train.describe_callable(make("emd"))


def test_adam_schedules_follow_the_cosine_formula():
    T = train
    model = torch.nn.Linear(2, 1)
    opt, sched = T.adam(model, 1e-3, 10, "cosine")
    rates = []
    for _ in range(10):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    end = 1e-5
    expect = [end + (1e-3 - end) * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(10)]
    assert rates == pytest.approx(expect, rel=1e-9)
    assert opt.param_groups[0]["lr"] == pytest.approx(end)
    opt_c, sched_c = T.adam(model, 2e-3, 10, "constant", weight_decay=1e-4)
    assert sched_c is None and opt_c.param_groups[0]["lr"] == 2e-3 and opt_c.param_groups[0]["weight_decay"] == 1e-4
    with pytest.raises(ValueError, match="schedule"):
        T.adam(model, 1e-3, 10, "linear")


def test_class_checkpoint_folder_is_read_first_and_never_written(tmp_path, capsys, monkeypatch):
    """COURSE_CHECKPOINT_DIR: a matching checkpoint of the same name there is loaded; a different or missing one
    trains locally (into the student's own path), the folder untouched; a folder that does not exist is an error."""
    kw = dict(train_loader=DataLoader(data(), batch_size=16), loss_fn=loss_fn, epochs=3, progress=False,
              live_plot=False)
    class_dir = tmp_path / "class"
    torch.manual_seed(0)
    teacher = nn.Linear(3, 1)
    train.train_or_load(teacher, class_dir / "m.pt", **kw)  # the instructor's run
    before = {p.name: p.stat().st_mtime_ns for p in class_dir.iterdir()}
    monkeypatch.setenv(train.CLASS_CHECKPOINT_ENV, str(class_dir))
    student = tmp_path / "student" / "m.pt"
    capsys.readouterr()
    torch.manual_seed(1)
    got = nn.Linear(3, 1)
    train.train_or_load(got, student, **kw)
    assert "from the class folder" in capsys.readouterr().out
    assert torch.equal(got.weight, teacher.weight) and not student.exists()
    # other settings: trains locally, says why the class folder's file was not used, writes nothing there
    train.train_or_load(nn.Linear(3, 1), student, **{**kw, "epochs": 2})
    out = capsys.readouterr().out
    assert "training:" in out and "class folder" in out and "other settings" in out and student.exists()
    assert {p.name: p.stat().st_mtime_ns for p in class_dir.iterdir()} == before
    monkeypatch.setenv(train.CLASS_CHECKPOINT_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(NotADirectoryError, match="COURSE_CHECKPOINT_DIR"):
        train.train_or_load(nn.Linear(3, 1), student, **kw)


def test_interrupt_in_the_first_epoch_says_no_best_weights_exist(capsys):
    calls = {"n": 0}

    def interrupting(model, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # during epoch 1
            raise KeyboardInterrupt
        return loss_fn(model, batch)

    hist = train.fit(nn.Linear(3, 1), DataLoader(data(), batch_size=16), loss_fn=interrupting, epochs=5, lr=0.05,
                     progress=False, live_plot=False)
    out = capsys.readouterr().out
    assert hist.interrupted and hist.best_epoch == -1 and "before the first epoch finished" in out
    assert "no best weights yet" in hist.summary() and "best weights kept" not in hist.summary()


def test_checkpoints_saved_at_once_by_several_writers_stay_whole(tmp_path, monkeypatch):
    """Two notebooks of a parallel test run may train and save the same checkpoint at the same time: each
    writer gets its own temporary file, so the file left behind is one writer's whole checkpoint."""
    import threading

    path = tmp_path / "same.pt"
    names: list[str] = []
    real_replace = os.replace

    def recording_replace(src, dst):
        names.append(str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    models = [nn.Linear(64, 64 * (i + 1)) for i in range(4)]
    errors: list[BaseException] = []

    def writer(m):
        try:
            for _ in range(10):
                train.save_checkpoint(path, m, who=m.out_features)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(names) == 40 and len(set(names)) == 40  # every save went to a temporary file of its own
    state = torch.load(path, weights_only=False)
    who = state["extra"]["who"]
    assert state["model"]["weight"].shape == (who, 64)  # one writer's checkpoint, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.pt"]  # no temporary file left


# --- stored results (issue #36: a lecture's live fits computed once, then read back) ----------------------
def test_stored_result_computes_once_then_reads_back(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COURSE_RECOMPUTE", raising=False)
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3.0)}

    spec = {"target": torch.ones(2, 2), "steps": 3}
    first, loaded1 = train.stored_result("demo", spec, compute)
    again, loaded2 = train.stored_result("demo", {"steps": 3, "target": torch.ones(2, 2)}, compute)  # key order is free
    assert (loaded1, loaded2, len(calls)) == (False, True, 1)
    assert torch.equal(again["x"], first["x"])
    _, loaded3 = train.stored_result("demo", {"target": torch.ones(2, 2) * 2, "steps": 3}, compute)  # other bytes
    _, loaded4 = train.stored_result("demo", {"target": torch.ones(2, 2), "steps": 4}, compute)  # another setting
    assert (loaded3, loaded4, len(calls)) == (False, False, 3)
    monkeypatch.setenv("COURSE_RECOMPUTE", "1")
    _, loaded5 = train.stored_result("demo", spec, compute)
    assert (loaded5, len(calls)) == (False, 4)


def test_stored_result_recomputes_a_torn_file_and_refuses_unhashable_specs(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COURSE_RECOMPUTE", raising=False)
    path = train.stored_result_path("demo", {"a": 1})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a torch file")
    value, loaded = train.stored_result("demo", {"a": 1}, lambda: 7)
    assert (value, loaded) == (7, False)
    assert train.stored_result("demo", {"a": 1}, lambda: 8) == (7, True)
    with pytest.raises(TypeError, match="cannot fingerprint a object"):
        train.stored_result("demo", {"a": object()}, lambda: 0)
    with pytest.raises(ValueError, match="name"):
        train.stored_result_path("a/b", {})


def test_code_version_changes_with_the_source():
    def f():
        return 1

    def g():
        return 2

    assert train.code_version(f) == train.code_version(f) != train.code_version(g)
