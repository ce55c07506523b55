# %% [markdown]
# # 04 · Lab: cell states, mixed cells, and an octree decoder
#
# Three exercises, each followed by a self-check:
#
# 1. the state (empty / full / mixed) of every cell of a coarser grid over an occupancy grid;
# 2. expanding the mixed cells of a level into their 8 children;
# 3. counting the leaves of a grid-octree without building it.
#
# With the first two you grow a shape's octree level by level, exactly as the OGN decoder of
# the lecture does; at the end you train a small OGN decoder on a shape and decode it with the
# structure it predicts. Write batched tensor code (no Python loops over cells).

# %%
import torch

from course_lib import checks, config, results, viz
from course_lib.data import make_shape, voxelize
from course_lib.geometry.octree import build_octree
from course_lib.models.ogn import PROP_KNOWN, PROP_PRED, OGNDecoder, ogn_loss

checks.stop_on_failure()  # a wrong answer stops "Run all" at its check, before the cells that use it

print(config.describe())
SZ = config.sizes(prefix="ch04.")
torch.set_num_threads(min(2, torch.get_num_threads()))
EMPTY, FULL, MIXED = 0, 1, 2
try:
    from course_lib.data import reserved_seed

    DEMO = reserved_seed("demo")
except ImportError:  # older data layer
    DEMO = 1

# %% [markdown]
# ## Exercise 1: the state of every cell
#
# `occupancy` is a `(B, R, R, R)` bool tensor. For a resolution `r` that divides `R`, cell
# `[b, i, j, k]` of the $r^3$ grid covers the block of $s^3$ voxels
# `occupancy[b, i*s:(i+1)*s, j*s:(j+1)*s, k*s:(k+1)*s]` with $s = R / r$. Return a `LongTensor`
# `(B, r, r, r)`: `EMPTY` (0) when no voxel of the block is full, `FULL` (1) when all are,
# `MIXED` (2) otherwise.
#
# *Hint:* `occupancy.reshape(B, r, s, r, s, r, s)` puts the voxels of one cell on the axes 2, 4 and 6;
# reduce over them with `.any` and `.all`.

# %%
def cell_states(occupancy: torch.Tensor, r: int) -> torch.Tensor:
    """The state of every cell of the ``r^3`` grid over ``occupancy``.

    Args:
        occupancy: bool tensor ``(B, R, R, R)`` (possibly a non-contiguous view).
        r: a Python int that divides ``R`` (``s = R / r`` need not be a power of two).

    Returns:
        long tensor ``(B, r, r, r)``: ``EMPTY`` (0), ``FULL`` (1) or ``MIXED`` (2). ``B = 1`` keeps its axis.
    """
    ### BEGIN SOLUTION
    B, R = occupancy.shape[0], occupancy.shape[1]
    s = R // r
    v = occupancy.reshape(B, r, s, r, s, r, s)
    anyv = v.any(6).any(4).any(2)
    allv = v.all(6).all(4).all(2)
    return torch.where(allv, FULL, torch.where(anyv, MIXED, EMPTY)).long()
    ### END SOLUTION


# %%
checks.check_cell_states(cell_states)

# %% [markdown]
# ### Use it: the states of a chair, level by level
#
# With trees of depth $D$ over an $R^3$ grid, level $l$ has resolution $G\,2^l$ with $G = R/2^D$.
#
# **Predict first.** Going one level finer doubles the resolution. By what factor will the number of
# *mixed* cells grow per level: about 8 (like the volume), about 4 (like the surface), or 2?

# %% tags=["uses-exercise"]
R, D = SZ["lab_resolution"], SZ["tree_depth"]
G = R // 2 ** D
chair = voxelize(make_shape("chair", DEMO), R)[None]
tree = build_octree(chair, D)
mixed_per_level = []
for lev in range(D + 1):
    st = cell_states(chair, G * 2 ** lev)
    counts = [int((st == c).sum()) for c in (EMPTY, FULL, MIXED)]
    same = torch.equal(st, tree.states(lev))
    before = mixed_per_level[-1] if mixed_per_level else 0
    growth = f"  (x{counts[2] / before:.1f} the level above)" if 0 < lev < D and before else ""
    print(f"level {lev} ({G * 2 ** lev}^3): empty {counts[0]:5d}  full {counts[1]:5d}  mixed {counts[2]:5d}"
          f"{growth}  | same as the library's octree: {same}")
    mixed_per_level.append(counts[2])

# %% [markdown]
# **Observe.** Each finer level multiplies the mixed cells by about 2 to 4, never by anything near 8:
# the mixed cells are the ones the surface passes through, so their count follows the surface's area
# in cells (x4 per level), not the volume (x8). The factor comes close to 4 once the cells are much
# smaller than the shape's details: above 3 at every level on the laptop profile's $32^3$ grid; the
# `ci` run's $16^3$ grid is too small to show that (its coarsest levels grow by only x2). At the finest
# level every cell is one voxel, empty or full: none is mixed. Chapter 04's benchmark measured what
# that growth buys: the octree's bytes against a dense float32 grid, per resolution, printed in the
# "leaves, bytes" section below.

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(mixed_per_level) <= D)
mixed_growth = [b / a for a, b in zip(mixed_per_level[:D - 1], mixed_per_level[1:D])]  # levels 0 -> 1 ... D-2 -> D-1
factors = ", ".join(f"x{f:.1f}" for f in mixed_growth)
checks.observe("each finer level multiplies the mixed cells by about 2 to 4 (between 1.5 and 5), far below the "
               "volume's 8", all(1.5 <= f <= 5 for f in mixed_growth),
               measured=f"mixed cells per level {mixed_per_level}: {factors}")
checks.observe("once the cells are small, the factor comes close to the surface's 4: above 3 at every level",
               min(mixed_growth) > 3, shown_in=("laptop", "gpu"), measured=factors)

# %% [markdown]
# ## Exercise 2: expand the mixed cells
#
# A level of the decoder holds a list of cells `cells` `(N, 4)` = `(b, x, y, z)` (long) and their
# states `(N,)`. Return the children of the **mixed** cells only, one level finer: the children of
# `(b, x, y, z)` are `(b, 2x + dx, 2y + dy, 2z + dz)` for $dx, dy, dz \in \{0, 1\}$, listed parent
# after parent (in the order of `cells`) and, within a parent, in the order `4*dx + 2*dy + dz`
# (the order of the octree's bit strings). Return a `(8M, 4)` `LongTensor` for `M` mixed cells.
#
# *Hint:* `torch.repeat_interleave(parents, 8, dim=0)` repeats each parent 8 times in a row.

# %%
def expand_mixed(cells: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """The children of the mixed cells, one level finer.

    Args:
        cells: long tensor ``(N, 4)``, rows ``(b, x, y, z)`` (``N`` may be 0 or 1).
        states: long tensor ``(N,)`` of ``EMPTY`` / ``FULL`` / ``MIXED``.

    Returns:
        long tensor ``(8 M, 4)`` for the ``M`` mixed cells (``(0, 4)`` when there is none). Leave the inputs unchanged.
    """
    ### BEGIN SOLUTION
    parents = cells[states == MIXED]
    off = torch.tensor([[0, dx, dy, dz] for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)], device=cells.device)
    scale = torch.tensor([1, 2, 2, 2], device=cells.device)
    return (torch.repeat_interleave(parents, 8, dim=0) * scale + off.repeat(parents.shape[0], 1)).long()
    ### END SOLUTION


# %%
checks.check_expand_mixed(expand_mixed)

# %% [markdown]
# ### Use it: grow the octree of the chair
#
# Start from the $G^3$ roots, look up each cell's state in your `cell_states` grid of its level,
# expand the mixed ones, and repeat. The cells you hold at each level are exactly the cells of
# the octree (the library's `tree.cells(level)`).
#
# **Predict first.** At the finest level, what share of the dense grid's cells will you hold: about
# half, a tenth, or a hundredth?

# %% tags=["uses-exercise"]
ar = torch.arange(G)
cells = torch.stack(torch.meshgrid(torch.arange(1), ar, ar, ar, indexing="ij"), -1).reshape(-1, 4)
held = []  # share of the dense grid's cells held, per level
for lev in range(D + 1):
    st_grid = cell_states(chair, G * 2 ** lev)
    states = st_grid[cells[:, 0], cells[:, 1], cells[:, 2], cells[:, 3]]
    ref = {tuple(c) for c in tree.cells(lev).tolist()}
    print(f"level {lev}: {len(cells):6d} cells held (dense: {(G * 2 ** lev) ** 3:7d}); "
          f"same cells as the octree: {ref == {tuple(c) for c in cells.tolist()}}")
    held.append(len(cells) / (G * 2 ** lev) ** 3)
    if lev < D:
        cells = expand_mixed(cells, states)
print(f"finest level: {len(cells)} cells held, {held[-1]:.1%} of the dense grid's")

# %% [markdown]
# **Observe.** At the finest level you hold less than a tenth of the dense grid's cells, and the
# share falls at every level: eight children per mixed cell, and only mixed cells expand, so the
# held cells track the surface. The larger the grid, the smaller the share: a few hundredths (under
# 5%) on the laptop profile's $32^3$ grid, while the `ci` run's $16^3$ grid is too small to go below
# 5%. Why does expanding every mixed cell, and no other, give exactly the octree's cells?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(held) <= D)
shares = ", ".join(f"{h:.1%}" for h in held)
checks.observe("the share of the dense grid's cells you hold falls at every level, to under a tenth at the finest",
               all(b < a for a, b in zip(held, held[1:])) and held[-1] < 0.1,
               measured=f"per level: {shares}")
checks.observe("on a larger grid the share at the finest level is a few hundredths: under 5%",
               held[-1] < 0.05, shown_in=("laptop", "gpu"), measured=f"{held[-1]:.1%} at {G * 2 ** D}^3")

# %% [markdown]
# ## Exercise 3: count the leaves
#
# Return the number of leaves of the grid-octree of `occupancy` `(B, R, R, R)` with trees of depth
# `tree_depth`, without building it: the $B\,G^3$ roots are leaves until split, and each mixed
# cell of the levels $0 \dots D-1$ is split into 8 children. Return an `int`.

# %%
def count_leaves(occupancy: torch.Tensor, tree_depth: int) -> int:
    """The number of leaves of the grid-octree of ``occupancy``.

    Args:
        occupancy: bool tensor ``(B, R, R, R)``.
        tree_depth: a Python int ``D >= 1`` with ``2^D`` dividing ``R`` (``G = R / 2^D`` need not be a power of two).

    Returns:
        a Python ``int`` (a 0-d tensor is accepted too).
    """
    ### BEGIN SOLUTION
    B, R = occupancy.shape[0], occupancy.shape[1]
    G = R // 2 ** tree_depth
    n = B * G ** 3
    for lev in range(tree_depth):
        n += 7 * int((cell_states(occupancy, G * 2 ** lev) == MIXED).sum())
    return n
    ### END SOLUTION


# %%
checks.check_count_leaves(count_leaves)

# %% [markdown]
# ### Use it: leaves, bytes and the dense grid
#
# Each leaf holds one float32; the structure costs a few bytes per tree (`Octree.nbytes`).
#
# **Predict first.** At this resolution, how many times smaller than the dense float32 grid will the
# chair's octree be: about 2, about 20, or about 200? And when the resolution doubles, does the ratio
# double, stay, or grow by less than that? Write your guesses down, then run.

# %% tags=["uses-exercise"]
ratios = {}  # resolution -> dense float32 bytes / octree bytes
for res in (R, 2 * R):
    grid = chair if res == R else voxelize(make_shape("chair", DEMO), res)[None]
    t = build_octree(grid, D)
    n = count_leaves(grid, D)
    ratios[res] = 4 * res ** 3 / t.nbytes
    print(f"{res}^3: {n} leaves (library: {t.num_cells}); octree {t.nbytes} bytes vs dense float32 {4 * res ** 3} "
          f"bytes: {ratios[res]:.1f} x smaller")

# %% [markdown]
# **Observe.** The chair's octree is some ten to thirty times smaller than the dense grid (about 10x
# at the `ci` profile's $16^3$, about 18x at the laptop profile's $32^3$): not 2, and not yet 200.
# When the resolution doubles, the ratio grows, but by less than a factor of 2 (about x1.8, then
# x1.7). The surface of a shape has about $R^2$ cells and the grid $R^3$, so the ratio "should" grow
# like $R$; why does it grow less (hint: the leaves of an octree are not only surface cells)? The
# chapter's benchmark measured the same ratio for one shape of each category, up to $256^3$ (laptop
# profile, from `benchmarks/results/`, printed below): does the growth per doubling keep falling?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(ratios) < 2)
checks.observe("the octree is some ten to thirty times smaller than the dense float32 grid (between 5x and 50x)",
               5 < ratios[R] < 50, measured=f"{ratios[R]:.1f}x at {R}^3")
ratio_growth = ratios[2 * R] / ratios[R]
checks.observe("doubling the resolution makes the ratio grow, by less than a factor of 2", 1 < ratio_growth < 2,
               measured=f"{ratios[R]:.1f}x at {R}^3 -> {ratios[2 * R]:.1f}x at {2 * R}^3: x{ratio_growth:.2f}")

# %%
per_res = results.get("octrees", "compression", "per_resolution")
if per_res:
    for r, v in per_res.items():
        print(f"R = {r:>4}: dense float32 / octree = {v['mean_ratio']:6.1f} on average "
              f"(from {v['min_ratio']:.1f} to {v['max_ratio']:.1f} over the shapes)")
else:
    print("the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/octrees.py")

# %% [markdown]
# ## Decode a shape
#
# Now the decoder of the lecture (`course_lib.models.ogn.OGNDecoder`, which uses the same two
# operations): from a fixed latent code, learn to decode the chair. Training propagates the
# ground-truth structure (`PROP_KNOWN`); then we decode with the structure the network predicts
# (`PROP_PRED`) and compare the cells it chose with your `cell_states`.
#
# **Predict first.** The decoder learns one shape from one code, with the true structure given in
# training. Decoding with its *own* predicted structure, will the IoU come out near 1, near 0.5, or
# low? Where will the mistakes be: at the coarse levels or the fine ones?

# %%
torch.manual_seed(0)
dec = OGNDecoder(8, R, tree_depth=D, channels=(32, 16, 16, 8)[: D + 1])
z = torch.randn(1, 8)
opt = torch.optim.Adam(dec.parameters(), lr=5e-3)
for step in range(SZ["lab_steps"]):
    loss = ogn_loss(dec(z, tree, PROP_KNOWN))["loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"loss after {SZ['lab_steps']} steps: {loss.item():.4f}")
dec.eval()
with torch.no_grad():
    out = dec(z, tree, PROP_PRED)
decoded = out.occupancy()
iou = (decoded & chair).sum() / (decoded | chair).sum()
print(f"IoU with the predicted structure: {iou:.3f}; cells held per level {out.num_cells}")

# %% tags=["uses-exercise"]
level_acc = []  # share of the cells whose predicted state is right, per level
for lev in range(D + 1):
    c = out.cells[lev]
    truth = cell_states(chair, G * 2 ** lev)[c[:, 0], c[:, 1], c[:, 2], c[:, 3]]
    acc = float((out.predicted_states(lev) == truth).float().mean()) if len(c) else 1.0  # no cell, no mistake
    level_acc.append(acc)
    print(f"level {lev}: {len(c)} cells, predicted state = your cell_states in {acc:.1%} of them")
viz.subplots([viz.plot_voxels(chair[0], title="target"), viz.plot_voxels(decoded[0], title="decoded")],
             titles=["target", "decoded (predicted structure)"])

# %% [markdown]
# **Observe.** One shape from one code is memorisation, and it works: decoded with its own predicted
# structure, the chair comes back with an IoU well above 0.5 (about 0.8 after the `ci` profile's 20
# steps; near 1 after the laptop profile's 150, which the `ci` run is too short to show). The
# coarse levels' states are (almost) all right; the mistakes are at the finest level. The chapter's
# benchmark trained the OGN auto-encoder on many shapes (laptop profile) and scored it on held-out
# ones with the structure it predicts: its IoU, printed below, is much lower. Why is a wrong state
# at a coarse level worse than one at the finest level?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(level_acc) <= D, what="cell")
accs = ", ".join(f"{a:.0%}" for a in level_acc)
checks.observe("decoded with its own structure, the memorised chair has an IoU well above 0.5 (over 0.6)",
               float(iou) > 0.6, measured=f"IoU {float(iou):.3f}")
checks.observe("with enough steps the memorised chair comes back almost exactly: IoU over 0.95", float(iou) > 0.95,
               shown_in=("laptop", "gpu"), measured=f"IoU {float(iou):.3f} after {SZ['lab_steps']} steps")
checks.observe("the coarse levels' predicted states are (almost) all right (95% or more); the mistakes are at the "
               "finest level", min(level_acc[:D]) >= 0.95 and level_acc[D] <= min(level_acc[:D]),
               measured=f"right per level: {accs}")

# %%
ae = results.get("octrees", "ae")
if ae:
    print(f"benchmark (laptop, {ae['resolution']}^3, {ae['n_test']} held-out shapes, seeds {ae['seeds']}): "
          f"OGN IoU {ae['iou_ogn']:.3f} ± {ae['iou_ogn_se']:.3f}, dense decoder {ae['iou_dense']:.3f} ± "
          f"{ae['iou_dense_se']:.3f}")
else:
    print("the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/octrees.py")

# %% [markdown]
# ## Questions
#
# Answer in a few sentences or a short derivation, in the cell below (your instructor reads
# them; `python -m course_lib.grade` collects them for marking by hand).
#
# 1. Why does the number of octree leaves grow roughly with the surface of a shape rather than its volume?
# 2. Count the leaves of an octree of depth 2 over a 4^3 grid whose only full cells fill one octant exactly.
# 3. What does an OGN decoder save compared with a dense decoder, and what does it still have to compute at every level?

# %% [markdown] tags=["answer"]
# *Your answers: 1. ... 2. ... 3. ...*

# %% [markdown]
# ## Going further
#
# - Decode with `PROP_PRED` from the first training step instead of `PROP_KNOWN`: how many cells
#   does the untrained decoder expand, and what does that do to the first levels' loss?
# - Write `cell_states` for a float occupancy (probabilities) with a tolerance: which cells should
#   count as full?
# - Lecture `lectures/04_octrees.ipynb` measures the memory of this decoder against chapter 03's.
