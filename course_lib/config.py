"""Profiles, sizes, device choice and seeding: the one size knob of the course.

Introduced in ``lectures/00_welcome.ipynb``.

Every notebook reads its sizes (points, epochs, resolutions, dataset sizes) from
:data:`SIZES` through :func:`size` or :func:`sizes`, so that the same notebook runs
in seconds in CI (``ci``), in minutes on a laptop CPU (``laptop``) and at full
scale on a GPU (``gpu``).  The active profile comes from the ``COURSE_PROFILE``
environment variable; when it is unset the default is ``gpu`` if CUDA is available,
else ``laptop``.

A second switch, ``COURSE_VARIETY`` (:func:`variety`), picks ShapeNet-lite's shape family: ``base`` (the default,
:data:`DEFAULT_VARIETY`, the narrow family the course started with) or ``wide`` (more part types, proportions and
topology per category, so that test shapes are not near-duplicates of training shapes; issue #32 item 6).  The
wide family becomes the default once every benchmark the lectures read is measured on it
(:func:`course_lib.results.family_status`).  The two families live apart: the wide family in its own cache
folder (:func:`cache_dir`), so data and checkpoints never mix, and in its own results files
(``<name>-wide-<profile>.json`` against the base family's ``<name>-<profile>.json``,
:func:`course_lib.results.path_of`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

PROFILES: tuple[str, ...] = ("ci", "laptop", "gpu")
"""The valid profile names, smallest first."""

ENV_PROFILE = "COURSE_PROFILE"
ENV_DEVICE = "COURSE_DEVICE"
ENV_CACHE = "COURSE_DATA_DIR"
ENV_VARIETY = "COURSE_VARIETY"

DEFAULT_VARIETY = "base"
"""ShapeNet-lite's family when ``COURSE_VARIETY`` is unset: ``base`` until every benchmark the lectures read is
measured on the wide family (:func:`course_lib.results.family_status` lists what is missing), then ``wide``."""


class ProfileError(ValueError):
    """Raised for an unknown profile name."""


# ---------------------------------------------------------------------------
# Every per-profile size of the course, in one table.
# key -> {"ci": value, "laptop": value, "gpu": value}
# Keys are "<area>.<name>"; each chapter or library area keeps its own block.
# ---------------------------------------------------------------------------
_SIZES: dict[str, dict[str, Any]] = {
    # --- 00 welcome ---------------------------------------------------------
    "welcome.n_points": {"ci": 256, "laptop": 1024, "gpu": 4096},
    "welcome.epochs": {"ci": 3, "laptop": 20, "gpu": 50},
    # --- data: ShapeNet-lite -----------------------------------------------
    "data.shapes_per_category_train": {"ci": 4, "laptop": 40, "gpu": 200},
    "data.shapes_per_category_val": {"ci": 2, "laptop": 8, "gpu": 20},
    "data.shapes_per_category_test": {"ci": 2, "laptop": 10, "gpu": 40},
    "data.n_surface_points": {"ci": 512, "laptop": 2048, "gpu": 2048},
    "data.n_sdf_samples": {"ci": 2000, "laptop": 10000, "gpu": 50000},
    "data.mesh_resolution": {"ci": 48, "laptop": 96, "gpu": 128},
    "data.voxel_resolution": {"ci": 16, "laptop": 32, "gpu": 64},
    "data.image_size": {"ci": 32, "laptop": 64, "gpu": 128},
    # --- 01 data & representations -----------------------------------------
    "ch01.memory_resolutions": {
        "ci": (16, 24, 32),
        "laptop": (16, 32, 64, 128),
        "gpu": (16, 32, 64, 128, 256),
    },
    "ch01.n_points": {"ci": 2048, "laptop": 10000, "gpu": 20000},
    "ch01.mesh_resolution": {"ci": 32, "laptop": 64, "gpu": 96},
    # ch01's own figure sizes, not the dataset's: lecture 01 draws one shape at a time, with a larger picture
    # than data.image_size and a plotted grid that stays at 32^3 in the gpu profile (data.voxel_resolution: 64).
    "ch01.voxel_resolution": {"ci": 16, "laptop": 32, "gpu": 32},
    "ch01.image_size": {"ci": 48, "laptop": 128, "gpu": 128},
    "ch01.poisson_resolution": {"ci": 32, "laptop": 64, "gpu": 96},
    "ch01.gallery_seeds": {"ci": 3, "laptop": 10, "gpu": 20},
    # SDF gradient-norm table: categories (first k of data.CATEGORIES) and uniform points per shape
    "ch01.gradient_categories": {"ci": 10, "laptop": 10, "gpu": 10},
    "ch01.gradient_points": {"ci": 2000, "laptop": 20000, "gpu": 50000},
    "ch01.lab_n_points": {"ci": 2000, "laptop": 10000, "gpu": 10000},
    "ch01.lab_voxel_resolution": {"ci": 16, "laptop": 32, "gpu": 32},
    # --- 02 encoders --------------------------------------------------------
    # training points per cloud, batch size; test point counts and jitter levels
    "ch02.n_points": {"ci": 256, "laptop": 1024, "gpu": 1024},
    "ch02.batch_size": {"ci": 16, "laptop": 32, "gpu": 32},
    "ch02.test_points": {
        "ci": (32, 64, 128, 256, 512),
        "laptop": (64, 128, 256, 512, 1024, 2048),
        "gpu": (64, 128, 256, 512, 1024, 2048),
    },
    "ch02.jitter_sigmas": {
        "ci": (0.0, 0.02, 0.05),
        "laptop": (0.0, 0.01, 0.02, 0.05, 0.1),
        "gpu": (0.0, 0.01, 0.02, 0.05, 0.1),
    },
    # architectures (keyword arguments of the encoders, plus "head" widths and "dropout")
    "ch02.pointnet": {
        "ci": {"feat_dim": 64, "hidden": (16, 32), "head": (32,)},
        "laptop": {"feat_dim": 512, "hidden": (64, 128), "head": (256, 128), "bn_momentum": 0.3},
        "gpu": {"feat_dim": 1024, "hidden": (64, 128), "input_transform": True,
                "feature_transform": True, "head": (512, 256)},
    },
    "ch02.pointnet2": {
        "ci": {"levels": ((32, 0.3, 16, (16, 32)), (8, 0.6, 16, (32, 32))), "global_mlp": (32, 64),
               "head": (32,)},
        "laptop": {"levels": ((128, 0.2, 16, (32, 32, 64)), (32, 0.4, 16, (64, 64, 128))),
                   "global_mlp": (128, 256, 512), "head": (256, 128), "bn_momentum": 0.3},
        "gpu": {"levels": ((512, 0.2, 32, (64, 64, 128)), (128, 0.4, 64, (128, 128, 256))),
                "global_mlp": (256, 512, 1024), "head": (512, 256)},
    },
    "ch02.dgcnn": {
        "ci": {"k": 10, "channels": (16, 16, 32), "emb_dim": 64, "norm_after_max": True, "head": (32,)},
        "laptop": {"k": 20, "channels": (32, 32, 64), "emb_dim": 256, "norm_after_max": True,
                   "head": (256, 128), "bn_momentum": 0.3},
        "gpu": {"k": 20, "channels": (64, 64, 128, 256), "emb_dim": 1024, "head": (512, 256)},
    },
    # training: epochs, learning rate (Adam, cosine schedule), optional cap on batches per epoch and
    # batch size (default ch02.batch_size); "bn_momentum" above: BatchNorm running-average momentum
    # (higher than torch's 0.1 so that eval-mode statistics keep up in short CPU runs)
    "ch02.train_pointnet": {
        "ci": {"epochs": 1, "lr": 1e-3, "max_batches": 2},
        "laptop": {"epochs": 6, "lr": 2e-3},
        "gpu": {"epochs": 100, "lr": 1e-3},
    },
    "ch02.train_pointnet2": {
        "ci": {"epochs": 1, "lr": 1e-3, "max_batches": 2},
        "laptop": {"epochs": 40, "lr": 2e-3, "batch_size": 16},
        "gpu": {"epochs": 100, "lr": 1e-3},
    },
    "ch02.train_dgcnn": {
        "ci": {"epochs": 1, "lr": 1e-3, "max_batches": 2},
        "laptop": {"epochs": 16, "lr": 2e-3, "batch_size": 16},
        "gpu": {"epochs": 100, "lr": 1e-3},
    },
    # protocol 2: the epoch budgets benchmarks/encoders.py tries per model on val (best validation loss wins);
    # the ch02.train_* epochs above are what the lecture trains (the benchmark says when its choice differs)
    "ch02.epoch_candidates": {
        "ci": {"pointnet": (1, 2), "pointnet2": (1, 2), "dgcnn": (1, 2)},
        "laptop": {"pointnet": (6, 12), "pointnet2": (20, 40), "dgcnn": (8, 16)},
        "gpu": {"pointnet": (50, 100), "pointnet2": (50, 100), "dgcnn": (50, 100)},
    },
    # image encoders on the rendered views (train 0 = show and encode only, no training)
    "ch02.partial_image_size": {"ci": 48, "laptop": 96, "gpu": 128},  # single-view partial clouds: render size
    "ch02.partial_points": {"ci": 256, "laptop": 1024, "gpu": 1024},   # ... and points drawn from the view
    "ch02.resnet_width": {"ci": 8, "laptop": 16, "gpu": 64},
    "ch02.views_per_category": {
        "ci": {"train": 0, "val": 1},
        "laptop": {"train": 12, "val": 4},
        "gpu": {"train": 40, "val": 10},
    },
    "ch02.image_epochs": {"ci": 1, "laptop": 15, "gpu": 30},
    # lecture: shapes shown in the critical-point / receptive-field widget
    "ch02.widget_shapes": {"ci": 3, "laptop": 10, "gpu": 10},
    # --- 03 voxels: VoxNet, voxel auto-encoder, image -> voxels, cost curve ----
    "ch03.seed": {"ci": 0, "laptop": 0, "gpu": 0},
    # ch03.resolution is not data.voxel_resolution: 3D-R2N2's 32^3 grid in the laptop and gpu profiles (the
    # paper's resolution); chapter 03 asks the dataset for its grids at this resolution
    "ch03.resolution": {"ci": 16, "laptop": 32, "gpu": 32},
    "ch03.categories": {"ci": ("chair", "airplane"), "laptop": None, "gpu": None},  # None: all
    "ch03.train_per_category": {"ci": 3, "laptop": 40, "gpu": 200},
    "ch03.val_per_category": {"ci": 1, "laptop": 4, "gpu": 20},
    "ch03.test_per_category": {"ci": 2, "laptop": 10, "gpu": 40},
    # ch03.image_size: the same knob as data.image_size (an alias, set below)
    "ch03.train_views": {"ci": 0, "laptop": 4, "gpu": 8},  # extra rendered views per training shape (single view)
    "ch03.n_target": {"ci": 512, "laptop": 2048, "gpu": 2048},  # surface points for the Chamfer comparison
    "ch03.latent_dim": {"ci": 32, "laptop": 128, "gpu": 256},
    "ch03.encoder_channels": {"ci": 4, "laptop": 8, "gpu": 16},
    "ch03.decoder_channels": {"ci": 4, "laptop": 8, "gpu": 16},
    "ch03.resnet_width": {"ci": 8, "laptop": 16, "gpu": 32},
    "ch03.batch_size": {"ci": 4, "laptop": 32, "gpu": 64},
    "ch03.lr": {"ci": 5e-3, "laptop": 2e-3, "gpu": 1e-3},
    "ch03.ae_epochs": {"ci": 4, "laptop": 30, "gpu": 100},
    "ch03.svr_epochs": {"ci": 4, "laptop": 30, "gpu": 100},
    "ch03.voxnet_epochs": {"ci": 3, "laptop": 15, "gpu": 40},
    # VoxNet's harder task (issue #33): partial single-view scans (experiments.voxels.scan_grids) at a random
    # heading about the up axis, a camera raised by up to scan_max_elevation degrees, depth noise in voxels and
    # a fraction of the returns lost (scan_dropout); set in development on the validation scans only (noise 1.0 with
    # half the returns lost left the 15-epoch recipe at chance; noise 0.5 without losses scored near 1)
    "ch03.scan_noise": {"ci": 0.75, "laptop": 0.75, "gpu": 0.75},
    "ch03.scan_max_elevation": {"ci": 40.0, "laptop": 40.0, "gpu": 40.0},
    "ch03.scan_dropout": {"ci": 0.3, "laptop": 0.3, "gpu": 0.3},
    "ch03.bn_momentum": {"ci": 0.3, "laptop": 0.3, "gpu": 0.1},  # BatchNorm running averages (short runs: 0.3)
    "ch03.pos_weight_power": {"ci": 0.5, "laptop": 0.5, "gpu": 0.5},  # pos weight ((1-f)/f)**power
    "ch03.thresholds": {"ci": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8), "laptop": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                        "gpu": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)},
    "ch03.curve_resolutions": {"ci": (8, 16), "laptop": (16, 32, 64, 128, 256),
                                "gpu": (16, 32, 64, 128, 256)},  # stops where 8x the last peak > max_bytes
    "ch03.curve_batch": {"ci": 2, "laptop": 2, "gpu": 2},
    "ch03.curve_channels": {"ci": 4, "laptop": 8, "gpu": 8},
    "ch03.curve_max_bytes": {"ci": 2**30, "laptop": 8 * 2**30, "gpu": 100 * 2**30},
    "ch03.lab_epochs": {"ci": 3, "laptop": 10, "gpu": 30},
    # 3D-R2N2's recurrence (benchmarks/voxels_multiview.py): up to this many views per shape, in random number
    # and order during training (the paper: 5), scored after 1..mv_max_views views; ci: 2 (every extra view is
    # one more sphere-traced render per shape, which dominates a cold ci run of lecture 03)
    "ch03.mv_max_views": {"ci": 2, "laptop": 5, "gpu": 5},
    # validation and test shapes per category of the multi-view comparison (each renders mv_max_views - 1 more
    # views, about 0.3-1 s each on 2 cores at 64^2): val picks the epoch and the thresholds; the test keeps
    # >= 20 paired shapes (benchmarks/voxels_multiview.py raises it to 20 in all where needed)
    "ch03.mv_val_per_category": {"ci": 1, "laptop": 2, "gpu": 10},
    "ch03.mv_test_per_category": {"ci": 2, "laptop": 3, "gpu": 20},
    # --- 08 primitives: cuboids, superquadrics, REINFORCE vs the reordering trick ----
    "ch08.categories": {"ci": ("chair", "table"), "laptop": ("chair", "airplane", "lamp"),  # boxy, long, round
                        "gpu": ("chair", "table", "airplane", "lamp", "sofa")},
    "ch08.train_per_category": {"ci": 3, "laptop": 24, "gpu": 200},
    "ch08.val_per_category": {"ci": 1, "laptop": 4, "gpu": 20},
    "ch08.test_per_category": {"ci": 2, "laptop": 8, "gpu": 40},
    "ch08.n_points": {"ci": 256, "laptop": 384, "gpu": 1000},        # encoder input and target points
    "ch08.n_primitives": {"ci": 6, "laptop": 8, "gpu": 20},
    "ch08.n_samples": {"ci": 24, "laptop": 32, "gpu": 180},          # surface samples per primitive
    "ch08.latent_dim": {"ci": 32, "laptop": 64, "gpu": 256},
    "ch08.encoder": {"ci": {"feat_dim": 64, "hidden": (32,)}, "laptop": {"feat_dim": 128, "hidden": (64,)},
                     "gpu": {"feat_dim": 512, "hidden": (64, 128)}},
    "ch08.batch_size": {"ci": 8, "laptop": 16, "gpu": 32},
    "ch08.epochs": {"ci": 2, "laptop": 300, "gpu": 300},
    "ch08.lr": {"ci": 1e-3, "laptop": 1e-3, "gpu": 1e-3},
    "ch08.parsimony": {"ci": 1e-3, "laptop": 1e-3, "gpu": 1e-3},     # weight of E[number of primitives]
    "ch08.empty": {"ci": 4.0, "laptop": 4.0, "gpu": 4.0},            # coverage when no primitive exists
    "ch08.reinforce_samples": {"ci": 1, "laptop": 1, "gpu": 1},      # configurations drawn per shape and step
    "ch08.seeds": {"ci": (0, 1, 2), "laptop": (0, 1, 2), "gpu": (0, 1, 2)},  # claims need >= 3 seeds
    "ch08.iou_points": {"ci": 4096, "laptop": 32768, "gpu": 100000},
    "ch08.variance_ks": {"ci": (1, 4, 16), "laptop": (1, 2, 4, 8, 16, 32, 64, 128),
                         "gpu": (1, 2, 4, 8, 16, 32, 64, 128, 256)},
    "ch08.variance_reps": {"ci": 40, "laptop": 2000, "gpu": 4000},
    "ch08.enumeration_ms": {"ci": (2, 4, 6, 8), "laptop": (2, 4, 6, 8, 10, 12, 14),
                            "gpu": (2, 4, 6, 8, 10, 12, 14, 16, 18)},
    "ch08.enumeration_points": {"ci": 64, "laptop": 64, "gpu": 256},
    "ch08.lab_steps": {"ci": 20, "laptop": 300, "gpu": 500},
    # --- 10 gradient fields: ShapeGF ---------------------------------------
    "ch10.seed": {"ci": 0, "laptop": 0, "gpu": 0},
    "ch10.categories": {"ci": ("airplane", "chair"), "laptop": ("airplane", "chair", "car"),
                        "gpu": ("airplane", "chair", "car")},
    "ch10.train_per_category": {"ci": 3, "laptop": 40, "gpu": 200},
    # val and test shapes per category (ci 2 x 10 = 20: the fewest a paired claim over shapes needs)
    "ch10.test_per_category": {"ci": 10, "laptop": 10, "gpu": 40},
    "ch10.n_points": {"ci": 256, "laptop": 2048, "gpu": 2048},  # encoder input (stream 0)
    "ch10.n_target": {"ci": 256, "laptop": 1024, "gpu": 2048},  # evaluation target and samples (stream 1)
    "ch10.n_dsm": {"ci": 128, "laptop": 512, "gpu": 2048},  # target points per shape and DSM step
    "ch10.latent_dim": {"ci": 16, "laptop": 128, "gpu": 128},
    "ch10.hidden": {"ci": 32, "laptop": 128, "gpu": 256},  # the benchmark's width part checks it on val
    "ch10.n_blocks": {"ci": 1, "laptop": 8, "gpu": 12},
    # the course's parametrisation (see lectures/10): log-sigma input, sigma-scaled output, NCSN weight;
    # the official one is sigma_input "sigma", output "displacement", weighting "shapegf"
    "ch10.sigma_input": {"ci": "log", "laptop": "log", "gpu": "log"},
    "ch10.output": {"ci": "scaled", "laptop": "scaled", "gpu": "scaled"},
    "ch10.weighting": {"ci": "ncsn", "laptop": "ncsn", "gpu": "ncsn"},
    "ch10.batch_size": {"ci": 4, "laptop": 16, "gpu": 32},
    "ch10.epochs": {"ci": 2, "laptop": 240, "gpu": 1000},  # laptop: 1920 steps of 16 shapes, 269-573 s measured on two 2-core machines (10-minute budget)
    "ch10.lr": {"ci": 1e-3, "laptop": 1e-3, "gpu": 1e-3},
    # ShapeGF and the baselines; the benchmark's schedule part checks it on val (the main model uses its choice)
    "ch10.lr_schedule": {"ci": "cosine", "laptop": "cosine", "gpu": "cosine"},
    "ch10.norm": {"ci": "batch", "laptop": "batch", "gpu": "batch"},  # the score network's normalisation
    # noise levels per batch: "stratified" (every level in every batch of >= 10 shapes) or the official "uniform";
    # the benchmark's levels part checks it on val
    "ch10.level_sampling": {"ci": "stratified", "laptop": "stratified", "gpu": "stratified"},
    "ch10.schedule_epochs": {"ci": 1, "laptop": 100, "gpu": 300},  # the benchmark's selection trials (on val)
    # the score networks (hidden, n_blocks) the benchmark's width part chooses from on val; the first is ch10's
    "ch10.width_candidates": {"ci": ((32, 1), (16, 1)), "laptop": ((128, 8), (64, 4)), "gpu": ((256, 12), (128, 8))},
    "ch10.steps_per_level": {"ci": 2, "laptop": 10, "gpu": 10},
    # = ch10.epochs: same data and batch size, so every baseline gets as many optimiser steps as ShapeGF
    "ch10.baseline_epochs": {"ci": 2, "laptop": 240, "gpu": 1000},
    # lecture 10's first run on a laptop without the chapter's trained models (cache or class folder): ShapeGF and
    # the baselines get this many epochs instead (the full ones train for about 16 minutes on 2 cores), so that the
    # lecture's first run stays within 10 minutes; pretrain (python -m course_lib.pretrain --chapters 10) or the
    # class folder gives the full models
    "ch10.first_run_epochs": {"ci": 2, "laptop": 80, "gpu": 1000},
    "ch10.atlas_patches": {"ci": 4, "laptop": 25, "gpu": 25},
    # the single-shape field of the lecture (an unconditional ScoreNet on one cloud)
    "ch10.single_points": {"ci": 256, "laptop": 2048, "gpu": 2048},
    "ch10.single_steps": {"ci": 30, "laptop": 600, "gpu": 3000},
    "ch10.single_hidden": {"ci": 32, "laptop": 64, "gpu": 256},
    # upsampling: training points per shape (rows) and runtime input points (columns)
    "ch10.upsample_train": {"ci": (256, 128), "laptop": (2048, 512), "gpu": (2048, 1024, 512)},
    "ch10.upsample_runtime": {"ci": (256, 64), "laptop": (2048, 1024, 512, 256, 128),
                              "gpu": (2048, 1024, 512, 256, 128)},
    "ch10.upsample_shapes": {"ci": 2, "laptop": 120, "gpu": 120},  # test shapes per table cell (at most the split)
    # the upsampling benchmark's own, larger test split (per category; the chapter's test shapes are its prefix),
    # so that the paired steps between runtime sizes have the shapes to resolve them
    "ch10.upsample_test_per_category": {"ci": 2, "laptop": 40, "gpu": 40},
    # latent GAN
    "ch10.gan_epochs": {"ci": 5, "laptop": 2000, "gpu": 10000},
    "ch10.gan_batch": {"ci": 8, "laptop": 64, "gpu": 256},
    "ch10.gen_sigma_num": {"ci": 3, "laptop": 5, "gpu": 5},  # the generation configs sample with 5 levels
    # benchmarks/generation.py: why generation is behind (latent distributions on val), EMD metrics, per category
    "ch10.gen_gan_long_epochs": {"ci": 15, "laptop": 6000, "gpu": 30000},  # the "more GAN steps" candidate (3x)
    "ch10.gen_code_noise": {"ci": 0.25, "laptop": 0.25, "gpu": 0.25},  # codes + noise: x the codes' per-dim std
    "ch10.gen_seeds": {"ci": 3, "laptop": 3, "gpu": 3},  # sampling / GAN seeds per candidate
    "ch10.gen_emd_points": {"ci": 64, "laptop": 512, "gpu": 2048},  # points per cloud of the exact-EMD metrics
    # lecture widgets
    "ch10.toy_points": {"ci": 200, "laptop": 1000, "gpu": 1000},
    "ch10.lab_points": {"ci": 256, "laptop": 1024, "gpu": 2048},
    "ch10.toy_steps": {"ci": 25, "laptop": 1500, "gpu": 3000},  # the score network on the 2D toy (section 4)
    "ch10.noise_levels": {"ci": (0.02,), "laptop": (0.01, 0.02, 0.05), "gpu": (0.01, 0.02, 0.05)},  # input noise std
    "ch10.rotation_angles": {"ci": (90,), "laptop": (15, 45, 90, 180), "gpu": (15, 45, 90, 180)},  # degrees about y
    # --- 11 evaluation: every model on the same held-out shapes -----------------
    # the categories every chapter's laptop models were trained on (chapter 07's DeepSDF: chairs only)
    "ch11.categories": {"ci": ("chair", "airplane"), "laptop": ("chair", "airplane"), "gpu": ("chair", "airplane")},
    # held-out test shapes per category: 2 x 10 = the 20 paired shapes a claim needs (protocol 2), ci included
    "ch11.per_category": {"ci": 10, "laptop": 10, "gpu": 20},
    # chapter 09's per-shape fit (~40 s each on a laptop): laptop 10 = every test shape, so that the fit's row has the
    # 20 shapes of a claim (ci keeps 1: a row with too few shapes is left out of the claims)
    "ch11.fit_per_category": {"ci": 1, "laptop": 10, "gpu": 20},
    "ch11.n_points": {"ci": 512, "laptop": 2048, "gpu": 2048},  # target and mesh samples per shape
    "ch11.emd_points": {"ci": 128, "laptop": 1024, "gpu": 2048},  # EMD on this many (or the model's own count)
    "ch11.n_iou": {"ci": 4096, "laptop": 32768, "gpu": 100000},  # uniform points of [-1, 1]^3 for IoU
    "ch11.tau": {"ci": 0.02, "laptop": 0.02, "gpu": 0.02},  # F-score threshold (1% of the box diagonal is 0.035)
    # ShapeGF is resampled (annealed Langevin again) at other point counts up to this many points per shape;
    # above it the protocol study keeps its table points (about 0.4 ms per point on 2 laptop cores, so the
    # laptop profile's 100,000 points of OccNet's preset cost about 40 s per shape)
    "ch11.shapegf_resample_limit": {"ci": 1024, "laptop": 100_000, "gpu": 100_000},
    "ch11.widget_points": {"ci": 256, "laptop": 512, "gpu": 512},  # points kept per prediction for the widget
    # encoders x decoders (course_lib/experiments/modular.py): one recipe and one budget for every pair
    "ch11.mod_categories": {"ci": ("chair", "airplane"), "laptop": ("chair", "airplane", "car"),
                            "gpu": ("chair", "airplane", "car", "table", "lamp")},
    "ch11.mod_train_per_category": {"ci": 4, "laptop": 40, "gpu": 200},
    "ch11.mod_val_per_category": {"ci": 2, "laptop": 5, "gpu": 20},
    "ch11.mod_test_per_category": {"ci": 2, "laptop": 10, "gpu": 20},  # >= 20 paired shapes from laptop
    "ch11.mod_latent": {"ci": 32, "laptop": 128, "gpu": 256},
    "ch11.mod_points": {"ci": 512, "laptop": 2048, "gpu": 2048},  # = data.n_surface_points: the same count
    "ch11.mod_patches": {"ci": 4, "laptop": 8, "gpu": 25},
    "ch11.mod_width": {"ci": 4, "laptop": 16, "gpu": 32},
    "ch11.mod_hidden": {"ci": 32, "laptop": 128, "gpu": 256},
    "ch11.mod_batch": {"ci": 4, "laptop": 8, "gpu": 32},
    "ch11.mod_epochs": {"ci": 2, "laptop": 40, "gpu": 150},  # the same steps for every pair
    "ch11.mod_lr": {"ci": 1e-3, "laptop": 1e-3, "gpu": 1e-3},  # the Adam rate of chapters 05-07, not tuned per pair
    "ch11.mod_seed": {"ci": 0, "laptop": 0, "gpu": 0},
    "ch11.mod_mc_resolution": {"ci": 24, "laptop": 48, "gpu": 96},  # the implicit field's extraction grid
    "ch11.mod_occ_points": {"ci": 512, "laptop": 2048, "gpu": 2048},  # occupancy samples per shape and batch
    # --- 07 implicit fields: OccNet, DeepSDF, IM-NET, extraction, sampling ----
    "ch07.categories": {"ci": ("chair", "mug"), "laptop": ("chair", "table", "airplane", "lamp", "mug"),
                        "gpu": ("chair", "table", "airplane", "car", "lamp", "mug", "sofa", "bench", "bottle",
                                "bookshelf")},
    "ch07.train_per_category": {"ci": 3, "laptop": 40, "gpu": 200},  # DeepSDF's training set
    # OccNet's own training set (occnet_train_data), the default of the benchmark's val selection among
    # ch07.shape_candidates (benchmarks/implicit.py records the choice and whether it equals this default)
    "ch07.occnet_train_per_category": {"ci": 3, "laptop": 160, "gpu": 200},  # gpu: unmeasured
    # shapes per category the benchmark's selection tries on val, each for as many steps as
    # ch07.epochs x ch07.occnet_train_per_category (occnet_epochs); procedural shapes are free
    "ch07.shape_candidates": {"ci": (1, 3), "laptop": (40, 160, 320), "gpu": (50, 200)},
    # OccNet's training samples (SAMPLINGS; OccNet's ablation preferred uniform): the default of the benchmark's
    # val selection among near / mix / uniform
    "ch07.occnet_sampling": {"ci": "near", "laptop": "near", "gpu": "near"},
    # validation shapes per category: every choice of the benchmark is scored on them (test is read once, after)
    "ch07.val_per_category": {"ci": 2, "laptop": 10, "gpu": 20},
    # ci: 10 per category, so that the benchmark's paired claims (>= 20 shapes) run in the pipeline check
    "ch07.test_per_category": {"ci": 10, "laptop": 10, "gpu": 40},
    "ch07.n_input": {"ci": 300, "laptop": 300, "gpu": 300},  # OccNet's point-cloud completion: 300 points
    "ch07.input_noise": {"ci": 0.005, "laptop": 0.005, "gpu": 0.005},  # ... with noise std 0.005
    "ch07.n_pool": {"ci": 3000, "laptop": 20000, "gpu": 50000},  # pre-drawn samples per shape
    # samples per shape per step (OccNet 2048): the default of the benchmark's val selection among ch07.query_epochs
    "ch07.n_query": {"ci": 256, "laptop": 256, "gpu": 2048},  # OccNet samples per shape and step (OccNet: 2,048)
    # the queries-per-step candidates of that selection, each with its epochs at ch07.occnet_train_per_category
    # shapes per category (about the same training time on the laptop; the entry of ch07.n_query is ch07.epochs)
    "ch07.query_epochs": {"ci": ((256, 2), (2048, 1)), "laptop": ((256, 90), (2048, 17)), "gpu": ((2048, 300),)},
    "ch07.c_dim": {"ci": 32, "laptop": 128, "gpu": 256},
    "ch07.hidden": {"ci": 32, "laptop": 128, "gpu": 256},
    "ch07.n_blocks": {"ci": 1, "laptop": 3, "gpu": 5},
    "ch07.batch_size": {"ci": 4, "laptop": 16, "gpu": 64},
    "ch07.epochs": {"ci": 2, "laptop": 90, "gpu": 300},  # laptop: 90 x 256 queries x 800 shapes, the 5-minute budget
    "ch07.lr": {"ci": 1e-3, "laptop": 1e-3, "gpu": 5e-4},
    # OccNet: constant (see train_occnet); the default of the benchmark's val selection between cosine and constant
    "ch07.lr_schedule": {"ci": "cosine", "laptop": "cosine", "gpu": "cosine"},
    "ch07.eval_resolution": {"ci": 33, "laptop": 65, "gpu": 129},  # nodes; (R - 1) = (coarse - 1) * 2^k
    # ci: 17 as the laptop (a coarse grid of 9 misses whole thin chairs and tables: no surface at all)
    "ch07.mise_coarse": {"ci": 17, "laptop": 17, "gpu": 33},
    "ch07.n_iou": {"ci": 4000, "laptop": 50000, "gpu": 100000},
    "ch07.n_eval_points": {"ci": 2000, "laptop": 20000, "gpu": 30000},  # surface samples scored (DeepSDF 30k)
    "ch07.fscore_tau": {"ci": 0.02, "laptop": 0.02, "gpu": 0.02},  # 1 % of the unit sphere's diameter
    # DeepSDF auto-decoder
    "ch07.sdf_categories": {"ci": ("chair",), "laptop": ("chair",), "gpu": ("chair", "airplane")},
    "ch07.sdf_c_dim": {"ci": 16, "laptop": 64, "gpu": 256},
    "ch07.sdf_hidden": {"ci": 32, "laptop": 128, "gpu": 512},
    "ch07.sdf_layers": {"ci": 4, "laptop": 6, "gpu": 8},
    "ch07.sdf_batch_size": {"ci": 4, "laptop": 8, "gpu": 64},
    "ch07.sdf_n_query": {"ci": 512, "laptop": 2048, "gpu": 2048},  # DeepSDF samples per shape and step
    "ch07.sdf_epochs": {"ci": 2, "laptop": 500, "gpu": 1000},
    "ch07.recon_iters": {"ci": 10, "laptop": 300, "gpu": 800},
    "ch07.recon_samples": {"ci": 1000, "laptop": 4000, "gpu": 8000},
    # the lecture's live count of samples near thin parts (the measured sampling study is the benchmark's
    # sampling selection, on ch07.categories)
    "ch07.sampling_categories": {"ci": ("chair",), "laptop": ("chair", "lamp", "mug"),
                                 "gpu": ("chair", "table", "lamp", "mug")},
    # lecture and lab
    "ch07.lecture_resolution": {"ci": 33, "laptop": 65, "gpu": 129},
    "ch07.slice_resolution": {"ci": 48, "laptop": 96, "gpu": 128},
    "ch07.lab_iters": {"ci": 30, "laptop": 200, "gpu": 400},
    # --- 09 differentiable rendering ----------------------------------------
    "ch09.image_size": {"ci": 32, "laptop": 64, "gpu": 64},
    "ch09.template_level": {"ci": 2, "laptop": 3, "gpu": 3},  # icosphere: 162 / 642 vertices
    "ch09.sigma": {"ci": 1e-4, "laptop": 1e-4, "gpu": 1e-4},  # SoftRas' value
    "ch09.sigma_start": {"ci": 1e-3, "laptop": 1e-3, "gpu": 1e-3},  # annealed down to ch09.sigma
    "ch09.lr": {"ci": 0.02, "laptop": 0.02, "gpu": 0.02},  # SoftRas' demo: 0.01; 0.02 converges sooner here
    "ch09.lambda_lap": {"ci": 0.03, "laptop": 0.03, "gpu": 0.03},
    "ch09.lambda_flat": {"ci": 3e-4, "laptop": 3e-4, "gpu": 3e-4},
    "ch09.n_views": {"ci": 4, "laptop": 8, "gpu": 12},
    "ch09.n_heldout_views": {"ci": 2, "laptop": 4, "gpu": 8},
    "ch09.fit_steps": {"ci": 20, "laptop": 300, "gpu": 1000},
    "ch09.single_view_steps": {"ci": 20, "laptop": 300, "gpu": 500},
    "ch09.categories": {"ci": ("mug",), "laptop": ("mug", "car", "chair", "airplane"),
                        "gpu": ("mug", "car", "chair", "airplane", "table", "lamp", "sofa", "bottle")},
    "ch09.shapes_per_category": {"ci": 1, "laptop": 1, "gpu": 3},
    # shapes of the paired comparisons (protocol 2: >= 20), dealt evenly over ch09.categories: the sigma sweep
    # on val shapes, the one-view regulariser comparison on test shapes
    "ch09.paired_shapes": {"ci": 20, "laptop": 20, "gpu": 24},
    "ch09.sigmas": {"ci": (1e-3, 1e-4), "laptop": (1e-3, 1e-4, 1e-5), "gpu": (1e-3, 1e-4, 1e-5, 1e-6)},
    "ch09.sigma_steps": {"ci": 10, "laptop": 150, "gpu": 500},  # steps of each fit of the sigma sweep
    "ch09.n_eval_points": {"ci": 1000, "laptop": 5000, "gpu": 10000},
    "ch09.speed_level": {"ci": 2, "laptop": 3, "gpu": 3},
    "ch09.speed_size": {"ci": 32, "laptop": 64, "gpu": 64},
    "ch09.speed_batch": {"ci": 2, "laptop": 8, "gpu": 8},
    "ch09.lab_steps": {"ci": 10, "laptop": 150, "gpu": 300},
    "ch09.agreement_mesh_resolution": {"ci": 48, "laptop": 128, "gpu": 128},
    "ch09.pose_mesh_resolution": {"ci": 16, "laptop": 16, "gpu": 24},  # the mesh whose camera is sought
    "ch09.pose_steps": {"ci": 25, "laptop": 80, "gpu": 150},  # Adam steps of each camera-pose fit
    "ch09.pose_starts": {"ci": 4, "laptop": 8, "gpu": 12},  # starting azimuths, evenly around the object
    # learning across the dataset from silhouettes vs from 3D (course_lib/experiments/silhouette_learning.py)
    "ch09.learn_categories": {"ci": ("chair", "airplane"), "laptop": ("chair", "airplane", "car"),
                              "gpu": ("chair", "airplane", "car", "table", "lamp")},
    "ch09.learn_train_per_category": {"ci": 4, "laptop": 40, "gpu": 200},
    "ch09.learn_val_per_category": {"ci": 2, "laptop": 5, "gpu": 20},
    "ch09.learn_test_per_category": {"ci": 2, "laptop": 10, "gpu": 20},  # >= 20 paired test shapes from laptop
    "ch09.learn_views": {"ci": 2, "laptop": 4, "gpu": 8},  # silhouettes per training shape (the supervision)
    "ch09.learn_image_size": {"ci": 32, "laptop": 48, "gpu": 64},
    "ch09.learn_level": {"ci": 2, "laptop": 2, "gpu": 3},  # the deformed icosphere: 162 / 642 vertices
    "ch09.learn_latent": {"ci": 32, "laptop": 128, "gpu": 256},
    "ch09.learn_hidden": {"ci": 64, "laptop": 256, "gpu": 512},
    "ch09.learn_width": {"ci": 8, "laptop": 16, "gpu": 32},
    "ch09.learn_points": {"ci": 256, "laptop": 1024, "gpu": 2048},  # mesh samples of the 3D loss
    "ch09.learn_batch": {"ci": 4, "laptop": 8, "gpu": 16},
    "ch09.learn_epochs": {"ci": 2, "laptop": 60, "gpu": 150},  # the same for both supervisions
    "ch09.learn_lr": {"ci": 1e-3, "laptop": 1e-3, "gpu": 1e-3},  # chapter 06's Adam rate, not tuned here
    "ch09.learn_seed": {"ci": 0, "laptop": 0, "gpu": 0},
    # the regulariser weights come from the per-shape silhouette fit; each supervision's loss has its own scale,
    # so each picks a multiplier of both weights on val by its own loss (silhouette_learning.select_reg_scale)
    "ch09.learn_reg_scales": {"ci": (0.1, 1.0), "laptop": (0.1, 1.0, 10.0), "gpu": (0.1, 1.0, 10.0)},
    # the colour fit (lecture 09 section 12: rendering.fit_shaded, the soft z-buffer): a demonstration, not tuned
    "ch09.rgb_views": {"ci": 2, "laptop": 8, "gpu": 8},
    "ch09.rgb_steps": {"ci": 10, "laptop": 150, "gpu": 300},
    "ch09.lambda_rgb": {"ci": 1.0, "laptop": 1.0, "gpu": 1.0},
    # --- 04 octrees: grid-octrees (OctNet), OGN decoder --------------------------
    "ch04.seed": {"ci": 0, "laptop": 0, "gpu": 0},
    "ch04.tree_depth": {"ci": 3, "laptop": 3, "gpu": 3},
    "ch04.resolution": {"ci": 16, "laptop": 64, "gpu": 128},  # auto-encoding resolution
    "ch04.categories": {"ci": ("chair", "mug"), "laptop": ("chair", "airplane", "car", "mug", "table"),
                        "gpu": None},  # None: all
    "ch04.train_per_category": {"ci": 2, "laptop": 16, "gpu": 200},
    "ch04.val_per_category": {"ci": 1, "laptop": 2, "gpu": 10},
    "ch04.test_per_category": {"ci": 2, "laptop": 6, "gpu": 40},
    "ch04.latent_dim": {"ci": 16, "laptop": 64, "gpu": 128},
    "ch04.encoder_channels": {"ci": 4, "laptop": 8, "gpu": 16},
    "ch04.ogn_channels": {"ci": (16, 8, 8, 4), "laptop": (64, 32, 16, 8), "gpu": (128, 64, 32, 16)},
    "ch04.dense_channels": {"ci": 4, "laptop": 8, "gpu": 16},  # the dense VoxelDecoder's base_channels
    "ch04.batch_size": {"ci": 4, "laptop": 16, "gpu": 32},
    "ch04.lr": {"ci": 2e-3, "laptop": 2e-3, "gpu": 1e-3},
    "ch04.bn_momentum": {"ci": 0.3, "laptop": 0.3, "gpu": 0.1},  # BatchNorm running averages (as ch03)
    "ch04.epochs": {"ci": 1, "laptop": 15, "gpu": 100},
    # training seeds of the benchmark's OGN-vs-dense claim (protocol 2: >= 3; seeds ch04.seed + i)
    "ch04.ae_seeds": {"ci": 3, "laptop": 3, "gpu": 3},
    # OGN from a single image at several resolutions, all scored at the largest (the seed's OGN figure)
    "ch04.svr_resolutions": {"ci": (16, 32), "laptop": (32, 64, 128), "gpu": (32, 64, 128)},
    "ch04.svr_train_per_category": {"ci": 2, "laptop": 24, "gpu": 200},
    "ch04.svr_test_per_category": {"ci": 2, "laptop": 6, "gpu": 40},
    "ch04.svr_epochs": {"ci": 1, "laptop": 30, "gpu": 60},
    "ch04.resnet_width": {"ci": 8, "laptop": 16, "gpu": 32},  # the image encoder of the single-view OGN
    # an OctNet-style octree encoder against its dense twin: classification accuracy and step cost
    "ch04.octnet_channels": {"ci": (4, 8), "laptop": (8, 16, 32), "gpu": (16, 32, 64)},
    "ch04.octnet_epochs": {"ci": 1, "laptop": 20, "gpu": 40},
    "ch04.octnet_resolution": {"ci": 16, "laptop": 32, "gpu": 64},  # the lecture's live classifiers
    # the benchmark's training resolutions (the octree network keeps each shape's structure in a cache, so that
    # after the first epoch a 128^3 step costs about what the dense twin's does; benchmarks/results/octrees-laptop-*)
    "ch04.octnet_resolutions": {"ci": (16,), "laptop": (32, 64, 128), "gpu": (64, 128)},
    "ch04.octnet_cost_resolutions": {"ci": (16, 32), "laptop": (32, 64, 128), "gpu": (32, 64, 128)},
    "ch04.compression_resolutions": {"ci": (16, 32), "laptop": (32, 64, 128, 256), "gpu": (32, 64, 128, 256)},
    "ch04.cost_resolutions": {"ci": (16, 32), "laptop": (32, 64, 128), "gpu": (32, 64, 128, 256)},
    "ch04.cost_batch": {"ci": 2, "laptop": 2, "gpu": 4},
    "ch04.widget_resolution": {"ci": 32, "laptop": 64, "gpu": 128},
    "ch04.lab_resolution": {"ci": 16, "laptop": 32, "gpu": 64},
    "ch04.lab_steps": {"ci": 20, "laptop": 150, "gpu": 300},
    # --- ops ----------------------------------------------------------------
    # largest block of pairwise distances held at once by the brute-force paths (entries)
    "ops.block_elements": {"ci": 2**22, "laptop": 2**24, "gpu": 2**27},
    # --- 06 surfaces: AtlasNet, 3D-CODED, Poisson ----------------------------
    "ch06.categories": {"ci": ("chair", "mug"), "laptop": ("chair", "airplane", "car", "mug"),
                        "gpu": ("chair", "airplane", "car", "mug", "table", "lamp")},
    "ch06.train_per_category": {"ci": 2, "laptop": 40, "gpu": 200},
    # ci: 10 per category, so that the 2 ci categories give the 20 paired shapes a claim needs (protocol 2)
    "ch06.test_per_category": {"ci": 10, "laptop": 10, "gpu": 40},
    "ch06.val_per_category": {"ci": 2, "laptop": 5, "gpu": 10},  # the best epoch and Poisson's grid are chosen on val
    "ch06.n_points": {"ci": 256, "laptop": 1024, "gpu": 2500},
    "ch06.n_input": {"ci": 256, "laptop": 512, "gpu": 1024},
    "ch06.latent_dim": {"ci": 32, "laptop": 128, "gpu": 256},
    "ch06.hidden": {"ci": (32, 32), "laptop": (128, 128, 64), "gpu": (256, 128, 64)},
    "ch06.batch_size": {"ci": 8, "laptop": 16, "gpu": 32},
    "ch06.epochs": {"ci": 2, "laptop": 60, "gpu": 300},
    "ch06.lecture_patches": {"ci": 5, "laptop": 25, "gpu": 25},
    "ch06.image_size": {"ci": 24, "laptop": 64, "gpu": 64},
    "ch06.mesh_resolution": {"ci": 5, "laptop": 10, "gpu": 16},
    "ch06.sphere_subdivisions": {"ci": 2, "laptop": 3, "gpu": 4},
    "ch06.coded_categories": {"ci": ("mug",), "laptop": ("chair", "airplane", "car", "mug"),
                              "gpu": ("chair", "airplane", "car", "mug", "lamp", "bottle")},
    "ch06.coded_epochs": {"ci": 2, "laptop": 60, "gpu": 200},
    # held-out shapes per 3D-CODED category: >= 20 for a per-category claim (protocol 2)
    "ch06.coded_test_per_category": {"ci": 20, "laptop": 20, "gpu": 40},
    "ch06.template_resolution": {"ci": 16, "laptop": 24, "gpu": 32},
    "ch06.refine_steps": {"ci": 0, "laptop": 30, "gpu": 100},
    # Poisson grids the benchmark chooses from on val (one choice per input: PointSetGen's points, true points)
    "ch06.poisson_resolutions": {"ci": (16, 32), "laptop": (32, 48, 64, 96), "gpu": (64, 96, 128)},
    "ch06.lab_epochs": {"ci": 1, "laptop": 60, "gpu": 150},
    # --- 05 point sets: PointSetGen, Chamfer vs EMD, mean shape ----------------
    "ch05.seed": {"ci": 0, "laptop": 0, "gpu": 0},
    "ch05.n_points": {"ci": 128, "laptop": 256, "gpu": 1024},  # = n_fc + H * W
    "ch05.n_fc": {"ci": 32, "laptop": 64, "gpu": 256},
    "ch05.map_size": {"ci": (8, 12), "laptop": (12, 16), "gpu": (24, 32)},
    "ch05.n_upsample": {"ci": 2, "laptop": 2, "gpu": 3},
    "ch05.map_channels": {"ci": 32, "laptop": 64, "gpu": 128},
    "ch05.fc_hidden": {"ci": (64,), "laptop": (256, 256), "gpu": (512, 512)},
    "ch05.latent_dim": {"ci": 64, "laptop": 128, "gpu": 256},
    "ch05.encoder_feat_dim": {"ci": 64, "laptop": 256, "gpu": 512},
    "ch05.batch_size": {"ci": 8, "laptop": 16, "gpu": 32},
    "ch05.epochs": {"ci": 2, "laptop": 20, "gpu": 200},  # the best epoch is chosen on val
    "ch05.lr": {"ci": 1e-3, "laptop": 1e-3, "gpu": 5e-4},
    "ch05.emd_method": {"ci": "exact", "laptop": "exact", "gpu": "auction"},
    "ch05.categories": {"ci": ("chair", "airplane"), "laptop": None, "gpu": None},  # None: all
    "ch05.train_per_category": {"ci": 2, "laptop": 40, "gpu": 200},
    "ch05.val_per_category": {"ci": 2, "laptop": 5, "gpu": 20},  # choices (the best epoch) are made here
    "ch05.test_per_category": {"ci": 10, "laptop": 10, "gpu": 40},  # >= 20 test shapes: paired claims
    "ch05.mean_points": {"ci": 32, "laptop": 128, "gpu": 256},
    "ch05.mean_steps": {"ci": 40, "laptop": 400, "gpu": 1000},
    "ch05.mean_batch": {"ci": 4, "laptop": 16, "gpu": 32},
    "ch05.mean_seeds": {"ci": 3, "laptop": 3, "gpu": 5},  # seeds of the mean-shape claims
    "ch05.widget_steps": {"ci": 20, "laptop": 150, "gpu": 300},
    "ch05.complexity_ns": {"ci": (32, 64, 128), "laptop": (64, 128, 256, 512, 1024, 2048),
                           "gpu": (128, 256, 512, 1024, 2048, 4096)},
    "ch05.lab_epochs": {"ci": 1, "laptop": 10, "gpu": 50},
    "ch05.svr_categories": {"ci": ("chair", "airplane"), "laptop": ("chair", "airplane", "car", "mug"),
                           "gpu": None},
    "ch05.svr_train_per_category": {"ci": 2, "laptop": 40, "gpu": 200},
    "ch05.svr_epochs": {"ci": 1, "laptop": 15, "gpu": 100},
    "ch05.svr_width": {"ci": 8, "laptop": 16, "gpu": 32},
}

_SAME_AS: dict[str, str] = {
    "ch03.image_size": "data.image_size",  # chapter 03 renders its input views at the dataset's size
}
"""Keys that are another key under a chapter's name: one row, so the two can never drift apart."""
for _key, _ref in _SAME_AS.items():
    _SIZES[_key] = _SIZES[_ref]


def _check_profile(name: str) -> str:
    if name not in PROFILES:
        raise ProfileError(
            f"Unknown course profile {name!r}. Valid profiles are: "
            f"{', '.join(PROFILES)} (set them with the {ENV_PROFILE} environment variable)."
        )
    return name


def default_profile() -> str:
    """``gpu`` when CUDA is available, else ``laptop``."""
    return "gpu" if torch.cuda.is_available() else "laptop"


def get_profile() -> str:
    """Return the active profile: ``COURSE_PROFILE`` if set, else :func:`default_profile`.

    Raises :class:`ProfileError` (a ``ValueError``) naming the valid profiles when
    ``COURSE_PROFILE`` holds anything else.
    """
    value = os.environ.get(ENV_PROFILE, "").strip().lower()
    if not value:
        return default_profile()
    return _check_profile(value)


def size(key: str, profile: str | None = None) -> Any:
    """The value of one size for ``profile`` (default: the active profile).

    >>> size("data.voxel_resolution", "ci")
    16
    """
    profile = _check_profile(profile) if profile is not None else get_profile()
    try:
        row = _SIZES[key]
    except KeyError:
        close = [k for k in _SIZES if k.split(".")[0] == key.split(".")[0]]
        hint = f" Known keys in this area: {', '.join(sorted(close))}." if close else ""
        raise KeyError(f"No size named {key!r} in course_lib.config.{hint}") from None
    return row[profile]


def sizes(profile: str | None = None, prefix: str = "") -> Mapping[str, Any]:
    """All sizes for ``profile`` (default: the active one) as a read-only mapping.

    With ``prefix="ch02."`` only that block is returned, with the prefix removed.
    """
    profile = _check_profile(profile) if profile is not None else get_profile()
    out = {
        k[len(prefix):]: row[profile] for k, row in _SIZES.items() if k.startswith(prefix)
    }
    return MappingProxyType(out)


def size_table() -> Mapping[str, Mapping[str, Any]]:
    """The whole table (key -> profile -> value), read-only; for reports and tests."""
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in _SIZES.items()})


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Choose a device, falling back to the CPU.

    ``prefer`` (or the ``COURSE_DEVICE`` environment variable) may name a device
    such as ``"cuda"``, ``"cuda:1"``, ``"mps"`` or ``"cpu"``; when the named
    accelerator is absent the CPU is returned with no error, so a notebook written
    on a GPU still runs on a laptop.
    """
    want = prefer if prefer is not None else os.environ.get(ENV_DEVICE) or None
    if want is not None:
        dev = torch.device(want)
        if dev.type == "cuda" and torch.cuda.is_available():
            if dev.index is None or dev.index < torch.cuda.device_count():
                return dev
        elif dev.type == "mps" and torch.backends.mps.is_available():
            return dev
        elif dev.type == "cpu":
            return dev
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy and torch (CPU and CUDA); return a torch Generator.

    Raises ``ValueError`` for a negative or non-integer seed.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def variety() -> str:
    """ShapeNet-lite's active shape family: ``COURSE_VARIETY`` (``base`` or ``wide``), :data:`DEFAULT_VARIETY`
    when unset.

    :func:`course_lib.data.make_shape` makes this family unless told otherwise, and :func:`cache_dir` keeps a
    family other than ``base`` in its own folder.  Raises ``ValueError`` naming the valid families for anything
    else.

    >>> variety() in ("base", "wide")
    True
    """
    from course_lib.data.shapes import VARIETIES

    value = os.environ.get(ENV_VARIETY, "").strip().lower()
    if not value:
        return DEFAULT_VARIETY
    if value not in VARIETIES:
        raise ValueError(f"Unknown {ENV_VARIETY}={value!r}: ShapeNet-lite's families are {', '.join(VARIETIES)} "
                         f"(unset it for the course's default family, {DEFAULT_VARIETY})")
    return value


def cache_dir() -> Path:
    """Where generated data and checkpoints are cached: ``COURSE_DATA_DIR`` or ``~/.cache/course_lib``, and
    below it ``variety-<name>/`` for a shape family other than the base one (:func:`variety`)."""
    env = os.environ.get(ENV_CACHE)
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "course_lib"
    fam = variety()
    return path if fam == "base" else path / f"variety-{fam}"


def describe() -> str:
    """One line naming the profile and the device, printed by every notebook's first cell."""
    dev = get_device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    fam = variety()
    shapes = f" | ShapeNet-lite: the {fam} family" + ("" if fam == DEFAULT_VARIETY else f" ({ENV_VARIETY})")
    return f"course profile: {get_profile()} | device: {dev} ({name}) | torch {torch.__version__}{shapes}"
