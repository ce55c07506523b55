# %% [markdown]
# # 10 · Lab: score, denoising score matching and annealed Langevin dynamics
#
# Three exercises, each followed by a self-check:
#
# 1. the analytic score of a Gaussian-blurred point cloud (the "ground-truth" field);
# 2. the denoising score matching loss of ShapeGF's code (one noise level per shape);
# 3. annealed Langevin dynamics, the sampler.
#
# Then you use them together: sample a shape from the analytic field of a held-out cloud
# with as many points as you like, and train a small score network with your loss and sample
# it with your sampler. Write batched code (no Python loops over points or shapes).

# %%
import torch

from course_lib import checks, config, viz
from course_lib.data import make_shape, reserved_seed
from course_lib.experiments import gradient_fields as ex
from course_lib.models import shapegf as gf

checks.stop_on_failure()  # a wrong answer stops "Run all" at its check, before the cells that use it

print(config.describe())
SZ = config.sizes(prefix="ch10.")

# %% [markdown]
# ## Exercise 1: the score of a blurred cloud
#
# A cloud $\{p_n\}_{n=1}^N$ blurred by $\mathcal N(0, \sigma^2 I)$ is the mixture
# $Q_\sigma(x) = \frac1N\sum_n \mathcal N(x; p_n, \sigma^2 I)$. Show on paper that
#
# $$\nabla_x\log Q_\sigma(x) = \frac{\sum_n w_n(x)\,p_n - x}{\sigma^2},\qquad
#   w_n(x) = \operatorname{softmax}_n\Big(-\frac{\|x - p_n\|^2}{2\sigma^2}\Big),$$
#
# then implement it for a batch: `x` of shape `(B, M, 3)` (the query points), `points` of shape
# `(B, N, 3)` (one cloud per batch element), `sigma` a float. Return `(B, M, 3)`.
#
# *Hints:* `torch.cdist(x, points) ** 2` gives the `(B, M, N)` squared distances; use
# `torch.softmax` rather than `exp` / sum (at $\sigma = 0.01$ the exponentials underflow to 0 far
# from the cloud); a batched weighted mean is a matrix product `w @ points`.

# %%
def analytic_score(x: torch.Tensor, points: torch.Tensor, sigma: float) -> torch.Tensor:
    ### BEGIN SOLUTION
    d2 = torch.cdist(x, points).square()
    w = torch.softmax(-d2 / (2 * sigma ** 2), dim=-1)
    return (w @ points - x) / sigma ** 2
    ### END SOLUTION


# %%
checks.check_analytic_score(analytic_score)

# %% [markdown]
# ## Exercise 2: denoising score matching
#
# ShapeGF's network predicts the **displacement** $y = \sigma^2 s$ rather than the score $s$.
# Implement its training loss for a batch of clean clouds `points` `(B, N, 3)`, a schedule
# `sigmas` `(L,)` and a predictor `predict(noisy (B, N, 3), sigma (B,)) -> (B, N, 3)`:
#
# 1. draw **one** level per shape: `idx = torch.randint(len(sigmas), (B,))`, `s = sigmas[idx]`;
# 2. perturb every point: $\tilde x = x + s\,\epsilon$ with $\epsilon\sim\mathcal N(0, I)$;
# 3. the target is $-s\,\epsilon$ (it points back to the clean point);
# 4. the loss is $\frac{1}{2s}\|y_{pred} - \text{target}\|^2$, the squared norm **summed over xyz**,
#    then **averaged** over points and shapes (the official code's weight, $1/(2\sigma)$, not
#    NCSN's $1/(2\sigma^2)$).
#
# Return a scalar tensor (with its gradient: do not detach). Draw from the global random state
# (`torch.randint`, `torch.randn_like`), not from a generator you seed inside the function: the loss
# is called at every training step and must see new noise each time (the check calls it twice).

# %%
def dsm_loss(predict, points: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    b = points.shape[0]
    s = sigmas[torch.randint(len(sigmas), (b,))]
    eps = torch.randn_like(points)
    noisy = points + s[:, None, None] * eps
    target = -s[:, None, None] * eps
    pred = predict(noisy, s)
    return (0.5 * (pred - target).square().sum(-1) / s[:, None]).mean()
    ### END SOLUTION


# %%
checks.check_dsm_loss(dsm_loss)

# %% [markdown]
# ## Exercise 3: annealed Langevin dynamics
#
# Move the points `x0` `(B, M, 3)` along `score_fn(x, sigma) -> (B, M, 3)` (the *score*, not the
# displacement; pass `sigma` as a tensor of shape `(B,)`). For each level `sigma` of `sigmas`,
# in the given order (large to small), repeat `steps_per_level` times, with
# $\alpha = 2\sigma^2\cdot$`step_ratio`:
#
# $$x \leftarrow x + \sqrt{\alpha}\,\xi,\ \ \xi\sim\mathcal N(0, I);\qquad
#   x \leftarrow x + \tfrac{\alpha}{2}\,\text{score\_fn}(x, \sigma).$$
#
# Noise **first**, then the gradient step (ShapeGF's order): every level ends on a denoising
# step. Return the final points, and leave `x0` as it was (work on a copy). No gradients are needed
# (`torch.no_grad()`). **Argument types**: `sigmas` is either a Python list of floats or a 1-D tensor
# (the check passes a list, the cells below `gf.sigma_schedule()`, a tensor): iterate over it and turn
# each level into a float; every cloud of the batch gets its own noise (`torch.randn_like(x)`).

# %%
@torch.no_grad()
def annealed_langevin(score_fn, x0: torch.Tensor, sigmas, steps_per_level: int, step_ratio: float) -> torch.Tensor:
    ### BEGIN SOLUTION
    x = x0.clone()
    for sigma in sigmas:
        sigma = float(sigma)
        alpha = 2 * sigma ** 2 * step_ratio
        s = torch.full((x.shape[0],), sigma)
        for _ in range(steps_per_level):
            x = x + alpha ** 0.5 * torch.randn_like(x)
            x = x + 0.5 * alpha * score_fn(x, s)
    return x
    ### END SOLUTION


# %%
checks.check_annealed_langevin(annealed_langevin)

# %% [markdown]
# ## Use it: sample a shape with any number of points
#
# The analytic field of a held-out cloud of a chair (your exercise 1, wrapped as a
# `score_fn`), sampled by your exercise 3 from the uniform prior in $[-1.5, 1.5]^3$. Nothing
# fixes the number of points: ask for 300 or 3,000. The Chamfer distance (ShapeGF's convention,
# x1e4) is against an *independent* sampling of the same chair; the oracle is a third sampling.

# %%
chair = make_shape("chair", reserved_seed("demo2"))
n_lab = int(SZ["lab_points"])
cloud = chair.sample_surface(n_lab, stream=0)[0]
target = chair.sample_surface(n_lab, stream=1)[0]
oracle = chair.sample_surface(n_lab, stream=2)[0]
print(f"oracle CD x1e4: {float(ex.ae_metrics(oracle[None], target[None], emd=False)['CD x1e4']):.3g}")

# %% tags=["uses-exercise"]
def my_field(x, sigma):
    s = float(torch.as_tensor(sigma).reshape(-1)[0])
    return analytic_score(x, cloud[None].expand(x.shape[0], -1, -1), s)


for n_samples in (n_lab // 4, n_lab):
    x0 = gf.uniform_prior(1, n_samples, generator=torch.Generator().manual_seed(0))
    out = annealed_langevin(my_field, x0, gf.sigma_schedule(), 10, 1.0)
    cd = float(ex.ae_metrics(out, target[None], emd=False)["CD x1e4"])
    print(f"{n_samples} samples: CD x1e4 to the chair {cd:.3g}")
viz.plot_points(out[0], color="y", title=f"{n_lab} samples of the analytic field")

# %% [markdown]
# ## Use it: learn the field with your loss, sample it with your sampler
#
# A small unconditional `gf.ScoreNet` (no latent code) trained on the chair's cloud with your
# `dsm_loss`, then sampled with your `annealed_langevin` (`net.score` divides the displacement
# by $\sigma^2$). **Predict first**: after `SZ["single_steps"]` training steps, how many of the samples
# end inside the box $[-1.5, 1.5]^3$ around the chair? In the `ci` profile the network is trained
# for a few dozen steps only: far from the chair its field is still what the random initial weights
# say, and many points are pushed out of the box (a correct sampler on an untrained field does
# that). The cell counts them; the plot pins them to the faces of the box. Then run it in the
# `laptop` profile (more steps, a wider network) and count again.

# %% tags=["uses-exercise"]
torch.manual_seed(0)
net = gf.ScoreNet(latent_dim=0, hidden=int(SZ["single_hidden"]), n_blocks=2)
opt = torch.optim.Adam(net.parameters(), lr=2e-3)
batch = cloud[None].expand(4, -1, -1)
sigmas = gf.sigma_schedule()
for _step in range(int(SZ["single_steps"])):
    loss = dsm_loss(lambda x, s: net(x, None, s), batch, sigmas)
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"last DSM loss {float(loss.detach()):.3f} after {SZ['single_steps']} steps")
net.eval()
learned = annealed_langevin(lambda x, s: net.score(x, None, s), gf.uniform_prior(1, n_lab), sigmas, 10, 1.0)
outside = float((learned.abs() > 1.5).any(-1).double().mean())
print(f"learned field: {outside:.0%} of the {n_lab} samples left the box [-1.5, 1.5]^3 "
      f"(largest |coordinate| {float(learned.abs().max()):.3g}); CD x1e4 of the clamped samples "
      f"{float(ex.ae_metrics(learned.clamp(-1.5, 1.5), target[None], emd=False)['CD x1e4']):.3g}")
viz.plot_points(learned[0].clamp(-1.5, 1.5), color="y", title="samples of your learned field")

# %% [markdown]
# ## Questions
#
# Answer in a few sentences or a short derivation, in the cell below (your instructor reads
# them; `python -m course_lib.grade` collects them for marking by hand).
#
# 1. Using x <- (1 - r)(x + sqrt(alpha) xi) for the exact score of N(0, sigma^2) with alpha = 2 sigma^2 r, show that one step with r = 1 lands exactly on the mode.
# 2. Why is the denoising target -sigma * eps, and what does the weight 1 / (2 sigma) do to the levels' share of the loss?
# 3. Why do the samples start uniform in a box at the largest sigma, and what happens to points far from the data if only a small sigma is used?

# %% [markdown] tags=["answer"]
# *Your answers: 1. ... 2. ... 3. ...*

# %% [markdown]
# ## Going further
#
# - Run your sampler with `sigmas=[0.01]` only on the learned field: what happens to points
#   that start far from the chair?
# - Replace the factor $1/(2\sigma)$ by NCSN's $1/(2\sigma^2)$ and compare the samples at equal
#   training steps.
# - Lecture `lectures/10_gradient_fields.ipynb` trains the auto-encoder and the latent GAN.
