"""dp-cbe benchmark: time to accuracy of the conditional fit on a family of mock systems.

For each system (the Plummer demo sphere, a cuspy Hernquist sphere, an anisotropic
Osipkov–Merritt model when dp-mock provides it) the conditional variant is fitted to EXACT
∇ln p(v|x) at 2^16–2^17 samples, with the old defaults and with the current `FitConfig()`.
Every evaluation (``eval_every`` steps) the model is checked on fresh tracer positions in 10
equal-width radial bins of the fitted volume (r < r_max, S_true > 0.01): the figure of merit is
the worst bin's |median Δln ρ| (and median |Δa|/|a|). Reported: wall and CPU time
(time.process_time, all threads) until every bin has |median Δln ρ| ≤ 0.02, excluding the
checks; the final per-bin errors; where the stopping rule stopped. Load (``uptime``) is
printed with every figure: the machine is shared.

The catalogue's own stars leave the outer bins of a cuspy, magnitude-limited system with a
handful of test points (demo-hernquist: 4 and 2 of 2^14 in the last two bins), so every figure is
also given on 1024 points uniform in each bin's volume with S_true > 0.01 ("volume", the report's
sampling, docs/design.md §8). The time to target is the first evaluation where both test sets
meet |median Δln ρ| ≤ 0.02 and median |Δa|/|a| ≤ 1 % in every bin. ``--diagnose`` adds, per
radial bin of the gradient positions, the final model's mean CBE loss on the fit's training and
validation samples (over-fitting of a sparse bin shows as train ≪ validation).

Usage:
    .venv/bin/python benchmarks/bench_cbe.py [--systems plummer hernquist om] [--n 131072]
        [--configs old new] [--set key=value ...] [--uniform | --uniform-fraction F] [--group K]
        [--diagnose] [--laplacian]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dp_cbe
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from dp_cbe import grad_and_laplacian

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages/dp-cbe/tests"))
import _cbe_hernquist as hernquist  # closed forms the dp-cbe tests use
import _cbe_oracle as plummer

# `dp-cbe fit`'s defaults before the stopping rule (64×2 nets, 2,000 steps, cosine decay,
# residual in absolute internal units).
OLD_DEFAULTS = dict(weighting="none", schedule="cosine", early_stop=False, n_steps=2000,
                    eval_every=250, checkpoint_every=500, phi_width=64, phi_depth=2,
                    learning_rate=5e-3, phi_mixture=0, radial_balance=0.0,
                    ln_n_gradient="network")  # fmt: skip
TARGET = 0.02  # |median Δln ρ| in every radial bin
TARGET_ACC = 0.01  # median |Δa|/|a| in every radial bin
N_BINS = 10


@dataclasses.dataclass
class System:
    """A mock system's exact conditional gradients and truth (kpc, km/s, M☉)."""

    name: str
    gradients: dict[str, Any]  # GradientSet keyword arguments
    x_test: np.ndarray  # fresh observed-star positions, r < r_max and S_true > 0.01
    r_max: float
    density: Callable[[np.ndarray], np.ndarray]
    acceleration: Callable[[np.ndarray], np.ndarray]
    x_vol: np.ndarray  # positions uniform in each radial bin's volume, S_true > 0.01 (§8)


def volume_positions(
    r_max: float, selection: Callable[[np.ndarray], np.ndarray] | None, per_bin: int = 1024
) -> np.ndarray:
    """``per_bin`` points uniform in the volume of each of the N_BINS equal-width shells of
    r < r_max, kept where the selection function exceeds 0.01 (docs/design.md §8; the
    catalogue's own stars leave the outer bins with a handful of test points)."""
    rng = np.random.default_rng(2024)
    out = []
    for b in range(N_BINS):
        lo, hi = b * r_max / N_BINS, (b + 1) * r_max / N_BINS
        d = rng.normal(size=(4 * per_bin, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        r = (lo**3 + (hi**3 - lo**3) * rng.uniform(size=4 * per_bin)) ** (1 / 3)
        x = d * r[:, None]
        if selection is not None:
            x = x[selection(x) > 0.01]
        out.append(x[:per_bin])
    return np.concatenate(out)


def _cut(x: np.ndarray, r_max: float, s: np.ndarray | None = None) -> np.ndarray:
    keep = np.linalg.norm(x, axis=1) < r_max
    if s is not None:
        keep &= s > 0.01
    return x[keep]


def own_system(name: str, n: int, uniform: bool = False, group: int = 1) -> System:
    """Plummer or isotropic Hernquist from the dp-cbe test oracles (no selection, S = 1)."""
    if name == "plummer":
        g = plummer.gradients("conditional", 1, n, group=group)
        x_test = plummer.sample(12345, 2**14)[0]
        return System(name, g, x_test, plummer.R_MAX, plummer.density,
                      lambda x: -plummer.grad_potential(x),
                      volume_positions(plummer.R_MAX, None))  # fmt: skip
    g = hernquist.gradients(1, n, uniform=uniform, group=group)
    x_test = hernquist.sample_positions(12345, 2**14)
    return System(name, g, x_test, hernquist.R_MAX, hernquist.density,
                  lambda x: -hernquist.grad_potential(x),
                  volume_positions(hernquist.R_MAX, None))  # fmt: skip


def mock_system(
    preset: str,
    n: int,
    workdir: Path,
    uniform: bool = False,
    group: int = 1,
    uniform_fraction: float = 0.0,
) -> System:
    """A dp-mock preset: observed positions from its generated catalogue (with ``uniform``
    all of them, with ``uniform_fraction`` that fraction, uniform in the ball r < r_max where
    S_true > 0.01), ``group`` exact v ~ p(v|x) per position, exact gradients from its truth."""
    import dp_mock

    cfg = dp_mock.preset(preset)
    paths = [workdir / f"{preset}-seed{seed}.h5" for seed in (0, 1)]
    for seed, path in zip((0, 1), paths, strict=True):
        if not path.exists():
            dp_mock.generate_catalog(cfg.replace(seed=seed), path)
    truth = dp_mock.load_truth(paths[0])
    n_pos = n // group  # positions; each gets `group` velocities
    x = np.asarray(dp_mock.read_catalog(paths[0])["x"], np.float64)[:n_pos]
    n_uni = n_pos if uniform else round(uniform_fraction * n_pos)
    if n_uni:
        rng = np.random.default_rng(9)
        u = rng.normal(size=(3 * n, 3))
        u *= (truth.r_max * rng.uniform(0, 1, 3 * n) ** (1 / 3) / np.linalg.norm(u, axis=1))[
            :, None
        ]
        x = np.concatenate([_cut(u, truth.r_max, truth.selection(u))[:n_uni], x[: n_pos - n_uni]])
    x = np.repeat(x, group, axis=0)
    v = truth.sample_velocities(8, x)
    dx, dv = truth.grad_log_p_v_given_x(x, v)
    g = {"x": x, "v": v, "dlnf_dx": dx, "dlnf_dv": dv, "density": "p_v_given_x",
         "group_size": group}  # fmt: skip
    x_test = np.asarray(dp_mock.read_catalog(paths[1])["x"], np.float64)[: 2**14]
    x_test = _cut(x_test, truth.r_max, truth.selection(x_test))
    return System(preset, g, x_test, truth.r_max, truth.density, truth.acceleration,
                  volume_positions(truth.r_max, truth.selection))  # fmt: skip


def bin_errors(
    sol: dp_cbe.PotentialSolution, sys_: System, volume: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Per radial bin: median Δln ρ and median |Δa|/|a| on the test positions (the
    catalogue's stars, or with ``volume`` the points uniform in each bin's volume)."""
    x = sys_.x_vol if volume else sys_.x_test
    r = np.linalg.norm(x, axis=1) / sys_.r_max
    which = np.minimum((r * N_BINS).astype(int), N_BINS - 1)
    rho = sol.density(x)
    d_rho = np.log(np.maximum(rho, 1e-30)) - np.log(sys_.density(x))
    a_true = sys_.acceleration(x)
    d_acc = np.linalg.norm(sol.acceleration(x) - a_true, axis=1) / np.linalg.norm(a_true, axis=1)
    nan = float("nan")
    med_rho = np.array([np.median(d_rho[which == b]) if np.any(which == b) else nan
                        for b in range(N_BINS)])  # fmt: skip
    med_acc = np.array([np.median(d_acc[which == b]) if np.any(which == b) else nan
                        for b in range(N_BINS)])  # fmt: skip
    return med_rho, med_acc


def shell_losses(
    sol: dp_cbe.PotentialSolution, sys_: System, cfg: dp_cbe.FitConfig, seed: int = 0
) -> dict[str, list[float]]:
    """Per radial bin of the gradient positions: sample counts and the mean CBE loss term of
    the fitted model on the fit's training and validation samples (the split `fit` makes from
    ``seed``). Train ≪ validation in a bin means the fit learned its few samples there
    rather than the field."""
    from dp_cbe._losses import sample_terms
    from dp_cbe._units import dlnf_dv_to_internal, velocity_to_internal

    g = sys_.gradients
    x = np.asarray(g["x"], np.float64)
    n = len(x)
    cols = [x, velocity_to_internal(g["v"]), g["dlnf_dx"], dlnf_dv_to_internal(g["dlnf_dv"])]
    scale = dp_cbe.residual_scales(*cols) if cfg.weighting == "scale" else np.ones(n)
    perm = np.random.default_rng([seed, 0]).permutation(n)
    n_val = round(cfg.val_fraction * n)
    is_val = np.zeros(n, bool)
    is_val[perm[:n_val]] = True
    m = sol.model
    settings = dp_cbe.FitConfig.from_dict(sol.hyperparameters["config"]).loss_settings()

    @jax.jit
    def per_sample(x: jax.Array, v: jax.Array, dx: jax.Array, dv: jax.Array,
                   s: jax.Array) -> jax.Array:  # fmt: skip
        def one(*a: jax.Array) -> jax.Array:
            return sample_terms(m.phi, m.aux, "conditional", settings, *a[:4], 0.0, a[4],
                                m.frame)[0]  # fmt: skip

        return jax.vmap(one)(x, v, dx, dv, s)

    loss = np.empty(n)
    for i in range(0, n, 8192):
        sl = slice(i, i + 8192)
        args = [jnp.asarray(np.asarray(c)[sl], jnp.float32) for c in (*cols, scale)]
        loss[sl] = np.asarray(per_sample(*args))
    which = np.minimum((np.linalg.norm(x, axis=1) / sys_.r_max * N_BINS).astype(int), N_BINS - 1)
    out: dict[str, list[float]] = {"n_train": [], "n_val": [], "train": [], "val": []}
    for b in range(N_BINS):
        tr, va = (which == b) & ~is_val, (which == b) & is_val
        out["n_train"].append(int(tr.sum()))
        out["n_val"].append(int(va.sum()))
        out["train"].append(float(loss[tr].mean()) if tr.any() else float("nan"))
        out["val"].append(float(loss[va].mean()) if va.any() else float("nan"))
    return out


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def time_to_accuracy(
    sys_: System, cfg: dp_cbe.FitConfig, seed: int = 0, diagnose: bool = False
) -> dict[str, Any]:
    """Fit, checking the per-bin errors at every evaluation; times exclude the checks."""
    gs = dp_cbe.GradientSet(**sys_.gradients, exact=True)  # the systems' closed forms
    rec: dict[str, Any] = {"evals": [], "load_start": load()}
    t0, c0 = time.perf_counter(), time.process_time()
    spent = {"wall": 0.0, "cpu": 0.0}

    def callback(step: int, model: dp_cbe._losses.CBEModel) -> None:
        tw, tc = time.perf_counter(), time.process_time()
        wall, cpu = tw - t0 - spent["wall"], tc - c0 - spent["cpu"]
        sol = dp_cbe.PotentialSolution(model, {})
        med_rho, med_acc = bin_errors(sol, sys_)
        vol_rho, vol_acc = bin_errors(sol, sys_, volume=True)
        worst = float(np.nanmax(np.abs(med_rho)))
        worst_v, worst_va = float(np.max(np.abs(vol_rho))), float(np.max(vol_acc))
        rec["evals"].append((step, wall, cpu, worst, float(np.nanmax(med_acc)), worst_v,
                             worst_va))  # fmt: skip
        print(f"   step {step:5d}  {wall:6.0f} s wall {cpu:6.0f} s CPU  max|med Δlnρ| {worst:.3f}"
              f" (bin {np.nanargmax(np.abs(med_rho))})  max med |Δa|/|a| "
              f"{np.nanmax(med_acc):.4f} (bin {np.nanargmax(med_acc)})  volume: {worst_v:.3f} "
              f"(bin {np.argmax(np.abs(vol_rho))}) {worst_va:.4f} (bin {np.argmax(vol_acc)})",
              flush=True)  # fmt: skip
        if (
            max(worst, worst_v) <= TARGET
            and max(np.nanmax(med_acc), worst_va) <= TARGET_ACC
            and "t_wall" not in rec
        ):
            rec.update(t_wall=wall, t_cpu=cpu, t_step=step)
        spent["wall"] += time.perf_counter() - tw
        spent["cpu"] += time.process_time() - tc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", dp_cbe.ConvergenceWarning)
        sol = dp_cbe.fit(gs, "conditional", config=cfg, seed=seed, progress=False,
                         callback=callback)  # fmt: skip
    rec["wall"] = time.perf_counter() - t0 - spent["wall"]
    rec["cpu"] = time.process_time() - c0 - spent["cpu"]
    rec["load_end"] = load()
    rec["warned"] = any(issubclass(w.category, dp_cbe.ConvergenceWarning) for w in caught)
    rec["final_rho"], rec["final_acc"] = (a.tolist() for a in bin_errors(sol, sys_))
    rec["final_vol_rho"], rec["final_vol_acc"] = (
        a.tolist() for a in bin_errors(sol, sys_, volume=True)
    )
    if diagnose:
        rec["shells"] = shell_losses(sol, sys_, cfg, seed)
    h = sol.history
    rec.update(steps=h["steps"], converged=h["converged"], stop_reason=h["stop_reason"],
               best_step=h["best_step"], learning_rate=h["learning_rate"],
               probe_change=h["probe_change"])  # fmt: skip
    return rec


def bench_laplacian(width: int, depth: int, n: int = 4096, reps: int = 5) -> dict[str, float]:
    """Forward-over-reverse Laplacian vs full-Hessian implementations (best of ``reps``)."""
    field = dp_cbe.ScalarField(width=width, depth=depth, in_scale=4.0, out_scale=17.0,
                               key=jax.random.PRNGKey(0))  # fmt: skip
    x = jax.random.normal(jax.random.PRNGKey(1), (n, 3)) * 4.0

    def ours(p: jax.Array) -> tuple[jax.Array, jax.Array]:
        _, g, lap = grad_and_laplacian(field, p)
        return g, lap

    def full_hessian(p: jax.Array) -> tuple[jax.Array, jax.Array]:  # jacfwd(jacrev) + grad
        return jax.grad(field)(p), jnp.trace(jax.hessian(field)(p))

    def rev_rev(p: jax.Array) -> tuple[jax.Array, jax.Array]:  # reverse-over-reverse Hessian
        return jax.grad(field)(p), jnp.trace(jax.jacrev(jax.jacrev(field))(p))

    out = {}
    for name, fn in (("ours", ours), ("hessian", full_hessian), ("rev_rev", rev_rev)):
        f = eqx.filter_jit(jax.vmap(fn))
        jax.block_until_ready(f(x))
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            jax.block_until_ready(f(x))
            ts.append(time.perf_counter() - t)
        out[name] = min(ts)
    return out


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--systems", nargs="+", default=["plummer", "hernquist", "om"])
    ap.add_argument("--configs", nargs="+", default=["old", "new"])
    ap.add_argument("--n", type=int, default=2**17, help="gradient samples per system")
    ap.add_argument("--set", nargs="*", default=[], help="FitConfig overrides key=value (new)")
    ap.add_argument("--uniform", action="store_true",
                    help="gradient positions uniform in the ball (S > 0.01)")  # fmt: skip
    ap.add_argument("--uniform-fraction", type=float, default=0.0,
                    help="that fraction of the positions uniform in the ball (dp-mock systems)")  # fmt: skip
    ap.add_argument("--group", type=int, default=1,
                    help="velocities drawn per gradient position (>= 4: ∇ln n profiled)")  # fmt: skip
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_cbe"))
    ap.add_argument("--json", type=Path, default=None, help="append records to this file")
    ap.add_argument("--laplacian", action="store_true", help="also time the Laplacian")
    ap.add_argument("--diagnose", action="store_true",
                    help="per radial bin: train vs validation CBE loss of the final model")  # fmt: skip
    args = ap.parse_args()
    if not 0.0 <= args.uniform_fraction <= 1.0:
        ap.error(f"--uniform-fraction must be in [0, 1], got {args.uniform_fraction}")
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"jax {jax.__version__}, devices {jax.devices()}, n = {args.n}, {load()}")
    try:
        import dp_mock

        has_mock = hasattr(dp_mock, "load_truth") and hasattr(dp_mock.Truth, "sample_velocities")
    except ImportError:
        has_mock = False
    for name in args.systems:
        if has_mock and name in ("hernquist", "om"):
            sys_ = mock_system({"hernquist": "demo-hernquist", "om": "demo-om"}[name], args.n,
                               args.workdir, uniform=args.uniform, group=args.group,
                               uniform_fraction=args.uniform_fraction)  # fmt: skip
        elif name in ("plummer", "hernquist"):
            sys_ = own_system(name, args.n, uniform=args.uniform, group=args.group)
        else:
            print(f"{name}: skipped (needs dp-mock's Osipkov–Merritt truth)")
            continue
        for which in args.configs:
            cfg = dp_cbe.FitConfig(**(OLD_DEFAULTS if which == "old" else overrides))
            rec = time_to_accuracy(sys_, cfg, diagnose=args.diagnose)
            rec.update(system=name, config=which, overrides=overrides if which != "old" else {})
            t = (f"{rec['t_wall']:.0f} s wall / {rec['t_cpu']:.0f} s CPU (step {rec['t_step']})"
                 if "t_wall" in rec else "never")  # fmt: skip
            fr = np.abs(rec["final_rho"])
            print(f"{name:10s} {which:4s} ≤{TARGET} & ≤{TARGET_ACC:.0%}: {t}; total {rec['wall']:.0f} s wall / "
                  f"{rec['cpu']:.0f} s CPU, {rec['steps']} steps ({rec['stop_reason']}, "
                  f"converged={rec['converged']}); final max|med Δlnρ| {np.nanmax(fr):.3f}, max "
                  f"med |Δa|/|a| {np.nanmax(rec['final_acc']):.4f}; volume "
                  f"{np.max(np.abs(rec['final_vol_rho'])):.3f}, {max(rec['final_vol_acc']):.4f}; "
                  f"{rec['load_start']} → {rec['load_end']}")  # fmt: skip
            print("   per-bin med Δlnρ " + " ".join(f"{d:+.3f}" for d in rec["final_rho"]))
            print("   per-bin med |Δa|/|a| " + " ".join(f"{d:.4f}" for d in rec["final_acc"]))
            print(
                "   volume: per-bin med Δlnρ " + " ".join(f"{d:+.3f}" for d in rec["final_vol_rho"])
            )
            print(
                "   volume: per-bin med |Δa|/|a| "
                + " ".join(f"{d:.4f}" for d in rec["final_vol_acc"])
            )
            if "shells" in rec:
                sh = rec["shells"]
                print(
                    "   per-bin train/val samples "
                    + " ".join(f"{a}/{b}" for a, b in zip(sh["n_train"], sh["n_val"], strict=True))
                )
                print("   per-bin train CBE loss " + " ".join(f"{d:.4f}" for d in sh["train"]))
                print("   per-bin val   CBE loss " + " ".join(f"{d:.4f}" for d in sh["val"]))
            if args.json is not None:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
    if args.laplacian:
        for width, depth in ((64, 2), (128, 2)):
            t = bench_laplacian(width, depth)
            print(f"laplacian (4096 pts, width {width}, depth {depth}): ours "
                  f"{t['ours'] * 1e3:.1f} ms, jax.hessian {t['hessian'] * 1e3:.1f} ms, "
                  f"jacrev∘jacrev {t['rev_rev'] * 1e3:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
