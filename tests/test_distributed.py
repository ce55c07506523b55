"""Training in several processes (torch.distributed, gloo on the CPU) gives the single-process result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from course_lib import train as T

SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    from course_lib import train as T
    from course_lib.experiments.common import Batches

    rank, world = T.init_distributed()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(37, 5, generator=g)
    y = x @ torch.randn(5, 2, generator=g) + 0.1 * torch.randn(37, 2, generator=g)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    loader = Batches({"x": x, "y": y}, 8, seed=0)  # 37 shapes: a last batch of 5, cut 3 + 2 between two ranks
    saves = []
    original = T.save_checkpoint
    def counting(*a, **k):
        saves.append(1)
        return original(*a, **k)
    T.save_checkpoint = counting
    hist = T.train_or_load(model, sys.argv[1], train_loader=loader, epochs=4, lr=1e-2, seed=0, progress=False,
                           live_plot=False, loss_fn=lambda m, b: ((m(b["x"]) - b["y"]) ** 2).mean())
    torch.manual_seed(1)
    bn = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    T.fit(bn, loader, epochs=2, lr=1e-2, seed=0, progress=False, live_plot=False,
          loss_fn=lambda m, b: ((m(b["x"]) - b["y"]) ** 2).mean())
    json.dump({"rank": rank, "world": world, "saves": len(saves), "loss": hist.train_loss,
               "weights": [p.detach().flatten().tolist() for p in model.parameters()],
               "bn_buffers": [b.detach().double().flatten().tolist() for b in bn.buffers()]},
              open(f"{sys.argv[2]}-{rank}.json", "w"))
    if world > 1:  # leave the group before exit (gloo's threads abort the process otherwise)
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
""")

TOLERANCE = 1e-5
"""Largest absolute difference allowed between the weights of 1 and 2 processes after 20 Adam steps (float32
sums in another order; measured differences are about 1e-7)."""


def _run(cmd: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("WORLD_SIZE", None)
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]


def test_two_gloo_processes_match_one_process_and_write_the_checkpoint_once(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    _run([sys.executable, str(script), str(tmp_path / "one.pt"), str(tmp_path / "one")], tmp_path)
    import socket

    with socket.socket() as sock:  # a free port for a static rendezvous (no c10d store to race for)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _run([sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
          "--master_addr=127.0.0.1", f"--master_port={port}", str(script),
          str(tmp_path / "two.pt"), str(tmp_path / "two")], tmp_path)
    one = json.loads((tmp_path / "one-0.json").read_text())
    ranks = [json.loads((tmp_path / f"two-{r}.json").read_text()) for r in (0, 1)]
    assert one["world"] == 1 and [r["world"] for r in ranks] == [2, 2]
    assert [r["saves"] for r in ranks] == [1, 0], "only rank 0 writes the checkpoint"
    assert (tmp_path / "two.pt").exists() and not list(tmp_path.glob("two*.partial*"))
    for r in ranks:
        for a, b in zip(one["weights"], r["weights"]):
            assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=TOLERANCE, rtol=0)
        assert r["loss"] == pytest.approx(one["loss"], rel=1e-5)
    # batch-norm statistics (computed per rank on its share) follow rank 0: the ranks end with one model
    assert ranks[0]["bn_buffers"] == ranks[1]["bn_buffers"] and ranks[0]["bn_buffers"][-1] == [10.0]  # 2 x 5 steps
    # the weights actually moved (the comparison is not between two untrained models)
    first = torch.tensor(one["weights"][0])
    torch.manual_seed(0)
    init = torch.nn.Linear(5, 16).weight.detach().flatten()
    assert (first - init).abs().max() > 1e-2
    # the checkpoint written by the two processes loads into a fresh model with the same weights
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    T.load_checkpoint(tmp_path / "two.pt", model)
    assert torch.allclose(model[0].weight.flatten(), torch.tensor(ranks[0]["weights"][0]))


def test_shard_batch_cuts_every_per_sample_entry_and_the_shares_sum_to_one():
    batch = {"x": torch.arange(10.0).view(5, 2), "y": torch.arange(5), "names": list("abcde"), "k": torch.tensor(3.0)}
    parts = [T.shard_batch(batch, r, 2) for r in range(2)]
    assert [p[1] for p in parts] == [0.6, 0.4]
    assert torch.equal(torch.cat([p[0]["x"] for p in parts]), batch["x"])
    assert torch.equal(torch.cat([p[0]["y"] for p in parts]), batch["y"])
    assert parts[0][0]["names"] + parts[1][0]["names"] == list("abcde")
    assert all(p[0]["k"] is batch["k"] for p in parts)  # not per sample: kept whole
    small, w = T.shard_batch({"x": torch.zeros(1, 3)}, 1, 2)
    assert small["x"].shape == (1, 3) and w == 0.5  # fewer samples than ranks: all of it, half the weight
    tup, w = T.shard_batch((torch.zeros(4, 1), torch.ones(4)), 1, 3)
    assert tup[0].shape == (1, 1) and w == pytest.approx(0.25)
    assert T.shard_batch(batch, 0, 1) == (batch, 1.0)


def test_without_a_process_group_the_world_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert T.distributed_world() == (0, 1) and T.is_main_process()
    assert T.init_distributed() == (0, 1)
