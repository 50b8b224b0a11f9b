"""One test body over the three CBE variants: exact Plummer gradients in, truth out."""

from __future__ import annotations

import _cbe_oracle as oracle
import dp_cbe
import numpy as np
import pytest

# Per-variant budgets, measured on the 2-core CPU (see benchmarks/results/cbe.md). Vanilla is a
# pointwise regression of ∇Φ; the selection and conditional variants must also separate ∇Φ from
# ∇ln S / ∇ln n through the |v|-dependence of ∇_v ln f (the 4th-moment information of the
# paper's Appendix C), so they get more samples and steps.
# These budgets are fixed-step recipes (absolute residual, cosine decay, no stopping rule):
# they stop at n_steps by design, so their ConvergenceWarning is expected.
FAST = dict(phi_width=64, batch_size=512, learning_rate=5e-3, eval_every=100,
            weighting="none", radial_balance=0.0, log_r=False, schedule="cosine",
            early_stop=False, residual_loss="asinh")  # fmt: skip
CASES = {
    "vanilla": (2**15, dict(FAST, n_steps=300)),
    "selection": (2**15, dict(FAST, n_steps=1200)),
    "conditional": (2**15, dict(FAST, n_steps=600)),
}
# The conditional method's automatic residual term for a flow's gradients is least squares
# (`FitConfig.resolved`); it must recover the truth from exact gradients too, to the same levels.
# Its gradient is r/s where asinh's is ~1, so near the solution it learns more slowly: at 600
# steps it reached |Δa|/|a| 1.14 %, at 1,200 0.31 % (ln ρ 0.0055; asinh at 600: 0.57 %, 0.0097).
CASES_L2 = {"conditional": (2**15, dict(FAST, n_steps=1200, residual_loss="l2"))}


def _errors(sol: dp_cbe.PotentialSolution, method: str) -> dict[str, float]:
    x, _ = oracle.sample(12345, 4096)  # fresh points inside r_max, distributed like the tracers
    a_true = -oracle.grad_potential(x)
    acc = np.linalg.norm(sol.acceleration(x) - a_true, axis=1) / np.linalg.norm(a_true, axis=1)
    out = {
        "acc": float(np.median(acc)),
        "ln_rho": float(np.median(np.abs(np.log(sol.density(x)) - np.log(oracle.density(x))))),
    }
    if method == "selection":
        d = sol.ln_selection(x) - oracle.ln_selection(x)
        out["ln_aux"] = float(np.median(np.abs(d - np.median(d))))  # best constant (L1)
    if method == "conditional":
        d = sol.ln_n(x) - oracle.ln_n(x)
        out["ln_aux"] = float(np.median(np.abs(d - np.median(d))))
    return out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::dp_cbe.ConvergenceWarning")
@pytest.mark.parametrize(("method", "loss"), [(m, "asinh") for m in CASES] + [
    (m, "l2") for m in CASES_L2])  # fmt: skip
def test_recovers_plummer(method: str, loss: str) -> None:
    n, overrides = (CASES if loss == "asinh" else CASES_L2)[method]
    gs = dp_cbe.GradientSet(**oracle.gradients(method, 1, n))
    config = dp_cbe.FitConfig(checkpoint_every=overrides["eval_every"], **overrides)
    sol = dp_cbe.fit(gs, method, config=config, seed=0, progress=False)
    assert sol.method == method
    err = _errors(sol, method)
    # Thresholds: 1 % median acceleration error, 3 % median |Δln ρ|, and 3 % on
    # ln S / ln n after removing the best constant. Gradients are exact, so the only error is
    # the solver's; these are the project's acceptance levels, not loosened.
    assert err["acc"] < 0.01, err
    assert err["ln_rho"] < 0.03, err
    if method != "vanilla":
        assert err["ln_aux"] < 0.03, err


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::dp_cbe.ConvergenceWarning")
def test_flow_set_recipe_recovers_cuspy_hernquist_outskirts() -> None:
    """A flow set's automatic settings (with the robust residual term) on a cuspy sphere (ρ
    falls ~10³ across the volume), every radial bin.

    Measured (2^16 samples, seed 0, 2-core CPU, 134 s CPU; 328 s before the density term
    was evaluated on every 8th sample only, `FitConfig.density_every`): |median Δln ρ|
    ≤ 0.009 inside 0.8 r_max and +0.044 in 0.8–1.0 r_max (+0.053 before); median |Δa|/|a|
    ≤ 1.3 % (1.1 % before). The fit reaches the 6,000-step ceiling, hence the ignored
    ConvergenceWarning. Thresholds: about 2× the measured errors (0.02 inside, 0.1 in the
    outer bin, 2 % in |Δa|/|a|). The set is not marked exact, so the automatic residual term
    would be a flow set's least squares; the robust term is pinned, as the figures were
    measured with it (least squares on these exact gradients: −0.021 at 0.6–0.8 r_max).
    """
    import _cbe_hernquist as hernquist

    gs = dp_cbe.GradientSet(**hernquist.gradients(1, 2**16))
    config = dp_cbe.FitConfig(residual_loss="asinh")
    sol = dp_cbe.fit(gs, "conditional", config=config, seed=0, progress=False)
    x = hernquist.sample_positions(12345, 2**14)
    r = np.linalg.norm(x, axis=1) / hernquist.R_MAX
    d_rho = np.log(sol.density(x)) - np.log(hernquist.density(x))
    a_true = -hernquist.grad_potential(x)
    d_acc = np.linalg.norm(sol.acceleration(x) - a_true, axis=1) / np.linalg.norm(a_true, axis=1)
    for lo in (0.0, 0.2, 0.4, 0.6, 0.8):
        m = (r >= lo) & (r < lo + 0.2)
        assert abs(np.median(d_rho[m])) < (0.1 if lo == 0.8 else 0.02), (lo, np.median(d_rho[m]))
        assert np.median(d_acc[m]) < 0.02, (lo, np.median(d_acc[m]))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::dp_cbe.ConvergenceWarning")
def test_exact_set_recipe_recovers_cuspy_hernquist() -> None:
    """`FitConfig()` on an *exact* gradient set in groups of 8 velocities per position: the
    automatic exact-set recipe (`FitConfig.resolved(exact=True, group_size=8)`: ∇ln n
    profiled per position, a 16-component Plummer mixture in Φ, radial balance 1, a
    12,000-step ceiling). This is the path of `[gradients] oracle = true` runs, the
    measurement that separates the solver's error from the flows'.

    Thresholds: 0.01 in |median Δln ρ| and 0.5 % in median |Δa|/|a| in every fifth of r_max
    (measured far below both; see the assertion messages for the figures of a run).
    """
    import _cbe_hernquist as hernquist

    gs = dp_cbe.GradientSet(**hernquist.gradients(1, 2**16, group=8), exact=True)
    config = dp_cbe.FitConfig()
    resolved = config.resolved(exact=True, group_size=8)
    assert (resolved.ln_n_gradient, resolved.phi_mixture, resolved.radial_balance) == (
        "profile", 16, 1.0)  # fmt: skip
    sol = dp_cbe.fit(gs, "conditional", config=config, seed=0, progress=False)
    assert sol.hyperparameters["config"]["ln_n_gradient"] == "profile"  # what was used
    x = hernquist.sample_positions(12345, 2**14, uniform=True)  # the whole volume, edge included
    r = np.linalg.norm(x, axis=1) / hernquist.R_MAX
    d_rho = np.log(sol.density(x)) - np.log(hernquist.density(x))
    a_true = -hernquist.grad_potential(x)
    d_acc = np.linalg.norm(sol.acceleration(x) - a_true, axis=1) / np.linalg.norm(a_true, axis=1)
    for lo in (0.0, 0.2, 0.4, 0.6, 0.8):
        m = (r >= lo) & (r < lo + 0.2)
        assert abs(np.median(d_rho[m])) < 0.01, (lo, np.median(d_rho[m]))
        assert np.median(d_acc[m]) < 0.005, (lo, np.median(d_acc[m]))
