"""Gradient sets from flows: (x, v) drawn from dp-flows flows, the gradients of a CBE method's
log-density there, written as dp-cbe's ``gradients.h5`` (``deep-potential gradients``).

This is the glue between the two packages, and the only place that knows both sides: dp-flows
samples flows and differentiates their log-densities without knowing of CBE methods; dp-cbe
owns the methods, the log-density each needs (`dp_cbe.DENSITY_OF_METHOD`) and the file
(`dp_cbe.GradientSet`, `dp_cbe.write_gradients`).

- ``conditional``: x from the observed positions (optionally a fraction uniform in r < r_max),
  v ~ p(v|x); gradients of ln p(v|x).                                density ``p_v_given_x``
- ``selection``: (x, v) ~ f_obs = n_obs(x) p(v|x); ∇ₓ ln f_obs = ∇ ln n_obs + ∇ₓ ln p,
  ∇ᵥ ln f_obs = ∇ᵥ ln p.                                              density ``f_obs``
- ``vanilla``: the same with the spatial flow trained on weighted stars.  density ``f``
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from jaxtyping import Float

from ._metrics import uniform_ball

if TYPE_CHECKING:  # at run time imported where needed: `import deep_potential` stays free of JAX
    import dp_cbe
    import dp_flows
    from jaxtyping import ArrayLike


@dataclasses.dataclass(frozen=True)
class FlowGradients:
    """Points drawn from flows and the gradients of one method's log-density there.

    Plain float64 arrays, not yet validated: `gradient_set` (and `member_set`) build dp-cbe's
    validated `dp_cbe.GradientSet`, which `dp_cbe.write_gradients` writes.

    Attributes:
        x: (n, 3) positions, kpc.
        v: (n, 3) velocities, km/s.
        dlnf_dx: (n, 3) ∇ₓ ln density, kpc⁻¹.
        dlnf_dv: (n, 3) ∇ᵥ ln density, (km/s)⁻¹.
        density: the log-density, ``dp_cbe.DENSITY_OF_METHOD[method]``.
        dlnf_dx_std: (n, 3) an ensemble's standard errors of ``dlnf_dx`` (None: one flow).
        dlnf_dv_std: (n, 3) the same for ``dlnf_dv``.
        members_dlnf_dx: (K, n, 3) each ensemble member's own ``dlnf_dx`` (None: one flow).
        members_dlnf_dv: (K, n, 3) each member's own ``dlnf_dv``.
        group_size: velocities drawn per position (consecutive rows share x; 1: one each).

    Example:
        >>> import numpy as np
        >>> from deep_potential import FlowGradients
        >>> x = np.random.default_rng(0).normal(size=(4, 3))
        >>> g = FlowGradients(x, 10 * x, -x, -x / 100, "p_v_given_x")
        >>> gs = g.gradient_set()  # dp_cbe.GradientSet: what dp_cbe.write_gradients writes
        >>> g.n_members, len(gs), gs.density
        (1, 4, 'p_v_given_x')
    """

    x: Float[np.ndarray, "n 3"]
    v: Float[np.ndarray, "n 3"]
    dlnf_dx: Float[np.ndarray, "n 3"]
    dlnf_dv: Float[np.ndarray, "n 3"]
    density: str
    dlnf_dx_std: Float[np.ndarray, "n 3"] | None = None
    dlnf_dv_std: Float[np.ndarray, "n 3"] | None = None
    members_dlnf_dx: Float[np.ndarray, "k n 3"] | None = None
    members_dlnf_dv: Float[np.ndarray, "k n 3"] | None = None
    group_size: int = 1

    @property
    def n_members(self) -> int:
        """Number of ensemble members the gradients average (1: one flow)."""
        return 1 if self.members_dlnf_dx is None else len(self.members_dlnf_dx)

    def gradient_set(self) -> dp_cbe.GradientSet:
        """The gradients (an ensemble's: their mean, with its standard errors) as dp-cbe's
        validated `dp_cbe.GradientSet`."""
        import dp_cbe

        return dp_cbe.GradientSet(
            self.x, self.v, self.dlnf_dx, self.dlnf_dv, self.density,
            dlnf_dx_std=self.dlnf_dx_std, dlnf_dv_std=self.dlnf_dv_std,
            group_size=self.group_size,
        )  # fmt: skip

    def member_set(self, k: int) -> dp_cbe.GradientSet:
        """Ensemble member ``k``'s own gradients at the same points, as a `dp_cbe.GradientSet`."""
        import dp_cbe

        if self.members_dlnf_dx is None or self.members_dlnf_dv is None:
            raise ValueError("not an ensemble's gradient set (one flow: no members)")
        if not 0 <= k < self.n_members:
            raise IndexError(f"member {k} of an ensemble of {self.n_members}")
        return dp_cbe.GradientSet(
            self.x, self.v, self.members_dlnf_dx[k], self.members_dlnf_dv[k], self.density,
            group_size=self.group_size,
        )  # fmt: skip


_K_NEIGHBOURS = 8  # uniform_in_stars' default reach: a star's 8th neighbour


def uniform_in_stars(
    rng: np.random.Generator,
    stars: Float[ArrayLike, "m 3"],
    n: int,
    r_max: float | None = None,
    k: int = _K_NEIGHBOURS,
) -> Float[np.ndarray, "n 3"]:
    """``n`` points uniform in the volume that the observed ``stars`` fill (kpc).

    Candidates are uniform in the stars' bounding box (and inside r < ``r_max`` when given);
    one is kept when its nearest star is no farther from it than that star is from its
    ``k``-th nearest other star. The reach adapts to the local density: the sparse outskirts
    of a catalogue are covered, space the catalogue does not reach (beyond a survey's
    footprint, behind dense dust) is not, and the points reach about one such distance past
    the outermost stars. On demo-hernquist's and demo-om's catalogues (2^17 stars, k = 8) it
    keeps 81–85 % of the ball r < r_max and covers 98.7–99.2 % of the region where the true
    selection exceeds 0.01. (A stricter rule, the candidate's own k-th star within that
    distance, kept only half of that region, and least of it where the stars thin out.)
    Cost: a k-d tree of the stars (O(m log m)) and two queries per candidate. Deterministic
    given ``rng``.

    Raises:
        ValueError: stars not of shape (m, 3) with m > k, or not finite; k < 1.
    """
    from scipy.spatial import KDTree

    stars = np.asarray(stars, dtype=np.float64)
    if stars.ndim != 2 or stars.shape[1] != 3:
        raise ValueError(f"stars must have shape (m, 3), got {stars.shape}")
    if k < 1 or len(stars) <= k:
        raise ValueError(f"need more than k = {k} >= 1 stars, got {len(stars)}")
    if not np.isfinite(stars).all():
        raise ValueError("stars contain NaN/inf positions")
    tree = KDTree(stars)
    lo, hi = stars.min(axis=0), stars.max(axis=0)
    if r_max is not None:
        lo, hi = np.maximum(lo, -r_max), np.minimum(hi, r_max)
    out: list[np.ndarray] = []
    have, tries = 0, 0
    while have < n:
        c = rng.uniform(lo, hi, size=(max(4 * (n - have), 4096), 3))
        if r_max is not None:
            c = c[np.einsum("ij,ij->i", c, c) < r_max * r_max]
        dist, idx = tree.query(c)
        reach = tree.query(stars[idx], k=k + 1)[0][:, -1]  # its k-th neighbour (self first)
        c = c[dist <= reach]
        out.append(c)
        have += len(c)
        tries += 1
        if tries > 100 and have < n:
            raise ValueError(
                f"uniform_in_stars: {have} of {n} points after {tries} rounds; the stars fill "
                "too little of their bounding box (or of r < r_max)"
            )
    return np.concatenate(out)[:n]


@overload
def _as_flow(flow: dp_flows.Flow | str | Path) -> dp_flows.Flow: ...
@overload
def _as_flow(flow: None) -> None: ...
def _as_flow(flow: dp_flows.Flow | str | Path | None) -> dp_flows.Flow | None:
    import dp_flows

    return flow if flow is None or isinstance(flow, dp_flows.Flow) else dp_flows.load_flow(flow)


def default_uniform_fraction(method: str, has_positions: bool = True) -> float:
    """The fraction of a gradient set's positions drawn uniform in the observed volume when
    none is asked for: 0.25 for the conditional method given the observed positions, else 0.

    The conditional method's positions are otherwise the stars' own, few where the stars thin
    out; there the potential fit's Φ is unconstrained between them and moves with the fit's
    seed, and follows the flow's errors at the edge the more such points it gets. Measured
    on five mock systems (the demo's cored sphere behind three seeds' dust, a cusp, an
    anisotropic model; three fit seeds each), the worst radial bin of the density, averaged
    over the systems, was 0.39 with no uniform points, 0.25 with a tenth, 0.23 with a quarter
    and 0.22 with a half; a quarter is the smallest fraction within the fits' spread of the
    best, and a half made the anisotropic model worse (0.22 to 0.36). Table:
    benchmarks/results/cbe.md. Vanilla and selection draw their positions from a spatial
    flow, which already fills the volume.

    >>> default_uniform_fraction("conditional"), default_uniform_fraction("selection")
    (0.25, 0.0)
    """
    return 0.25 if method == "conditional" and has_positions else 0.0


def make_gradients(
    method: str,
    *,
    conditional: dp_flows.Flow | str | Path | Sequence[dp_flows.Flow | str | Path],
    spatial: dp_flows.Flow | str | Path | None = None,
    n: int,
    seed: int = 0,
    positions: Float[ArrayLike, "m 3"] | None = None,
    uniform_fraction: float | None = None,
    r_max: float | None = None,
    uniform_support: str | None = None,
    velocities_per_position: int = 1,
    batch_size: int = 4096,
    progress: bool = True,
) -> FlowGradients:
    """Draw n points from flows and the gradients of ``method``'s log-density there.

    Args:
        method: one of ``dp_cbe.METHODS`` (``"vanilla"``, ``"selection"``, ``"conditional"``).
        conditional: the p(v|x) flow (data v in km/s, condition x in kpc), or its directory;
            or a sequence of them (an ensemble): each v is drawn from a member chosen at
            random (`dp_flows.sample_ensemble`), the gradients are the members' MAD-clipped
            mean (`dp_flows.ensemble_grad_log_prob`) with its standard errors, and each
            member's own gradients are kept (`FlowGradients.member_set`).
        spatial: the n_obs(x) (or weighted n(x)) flow; required for vanilla and selection,
            and for conditional when no ``positions`` are given.
        n: number of points.
        seed: integer seed of every draw.
        positions: (m, 3) observed positions (kpc) to draw x from (conditional method).
        uniform_fraction: fraction of the points with x uniform in a volume (first in the set):
            the observed one or the ball r < r_max (``uniform_support``). p(v|x) is
            selection-free, so any position the stars reach is a valid one; without such
            points the potential fit sees few positions where the stars thin out. None:
            `default_uniform_fraction` (0.25 for the conditional method given ``positions``,
            else 0).
        r_max: radius (kpc) of that ball; spatial-flow samples outside it are redrawn
            (`dp_flows.sample_within`).
        uniform_support: ``"stars"``: uniform in the volume the observed ``positions`` fill
            (`uniform_in_stars`, within r < r_max when given); ``"ball"``: uniform in r <
            r_max. None: ``"stars"`` when ``positions`` are given, else ``"ball"``.
        velocities_per_position: K: n / K positions are drawn, each with K velocities from
            p(v|x) (consecutive rows; the set's ``group_size``). With K ≥ 4 dp-cbe's
            conditional fit solves for ∇ln n at each position instead of fitting a network
            for it (`dp_cbe.FitConfig.ln_n_gradient`). n must be a multiple of K.
        batch_size: ODE batch size (fixed: one compile).
        progress: progress bars.

    Returns:
        The points and gradients; ``dp_cbe.write_gradients(path, g.gradient_set())`` writes
        them.

    Example (``p_v`` a fitted p(v|x) flow, ``x`` the observed positions; a real flow takes
    minutes to train, so this is not run)::

        g = make_gradients("conditional", conditional=p_v, positions=x, n=2**17)
        dp_cbe.write_gradients("gradients.h5", g.gradient_set())
    """
    import dp_cbe
    import dp_flows
    import jax

    if method not in dp_cbe.METHODS:
        raise ValueError(f"method must be one of {dp_cbe.METHODS}, got {method!r}")
    if uniform_fraction is None:
        uniform_fraction = default_uniform_fraction(method, positions is not None)
    if not 0.0 <= uniform_fraction <= 1.0:
        raise ValueError(f"uniform_fraction must be in [0, 1], got {uniform_fraction}")
    if uniform_support is None:
        uniform_support = "ball" if positions is None else "stars"
    if uniform_support not in ("stars", "ball"):
        raise ValueError(f"uniform_support must be 'stars' or 'ball', got {uniform_support!r}")
    if uniform_fraction > 0 and uniform_support == "ball" and r_max is None:
        raise ValueError("uniform_fraction > 0 needs r_max (the radius of the ball)")
    if uniform_fraction > 0 and uniform_support == "stars" and positions is None:
        raise ValueError("uniform_support = 'stars' needs positions=... (the observed stars)")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    k = velocities_per_position
    if k < 1 or n % k:
        raise ValueError(f"n = {n} is not a positive multiple of velocities_per_position = {k}")
    members = (
        [_as_flow(c) for c in conditional]
        if isinstance(conditional, Sequence) and not isinstance(conditional, str)
        else [_as_flow(conditional)]
    )
    if not members:
        raise ValueError("conditional: an empty sequence of flows")
    spat = _as_flow(spatial)
    if method != "conditional" and spat is None:
        raise ValueError(f"method {method!r} needs the spatial flow (spatial=...)")
    if method == "conditional" and positions is None and spat is None:
        raise ValueError("method 'conditional' needs positions=... (observed x) or spatial=...")
    # The draws' order and streams are those of dp_flows.make_gradients (before it moved
    # here), so that the same flows and seed give the same gradients.h5, byte for byte.
    rng = np.random.default_rng([int(seed), 0x6AD])
    key_x, key_v = jax.random.split(jax.random.key(seed))
    kw: dict[str, Any] = {"batch_size": batch_size, "progress": progress}

    n_pos = n // k  # positions; each gets k velocities
    n_uni = round(uniform_fraction * n_pos)
    n_obs = n_pos - n_uni
    if positions is not None:
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3 or len(positions) == 0:
            raise ValueError(f"positions must have shape (m, 3), got {positions.shape}")
    parts = []
    if n_uni and uniform_support == "ball":
        assert r_max is not None  # checked above
        parts.append(uniform_ball(rng, n_uni, r_max))
    elif n_uni:
        assert positions is not None  # checked above
        if len(positions) <= _K_NEIGHBOURS:
            raise ValueError(
                f"uniform_fraction = {uniform_fraction} puts points in the volume the stars fill, "
                f"and those need more than k = {_K_NEIGHBOURS} >= 1 stars, got {len(positions)}; pass "
                "uniform_fraction=0 (--uniform-fraction 0) for a catalogue this small"
            )
        parts.append(uniform_in_stars(rng, positions, n_uni, r_max))
    if n_obs and method == "conditional" and positions is not None:
        parts.append(positions[rng.choice(len(positions), n_obs, replace=n_obs > len(positions))])
    elif n_obs:
        assert spat is not None  # checked above (vanilla, selection; conditional w/o positions)
        parts.append(dp_flows.sample_within(key_x, spat, n_obs, r_max, **kw))
    x = np.repeat(np.concatenate(parts), k, axis=0)
    std: dict[str, np.ndarray] = {}
    own: dict[str, np.ndarray] = {}
    if len(members) == 1:
        v = dp_flows.sample(key_v, members[0], n, condition=x, **kw)
        dv, dx = dp_flows.grad_log_prob(members[0], v, x, **kw)
    else:
        which = rng.integers(len(members), size=n)  # each point's member, at random
        v = dp_flows.sample_ensemble(key_v, members, n, condition=x, which=which, **kw)
        ens = dp_flows.ensemble_grad_log_prob(members, v, x, **kw)
        dv, dx = ens["grad_x"], ens["grad_c"]
        std = {"dlnf_dv_std": ens["grad_x_se"], "dlnf_dx_std": ens["grad_c_se"]}
        own = {"members_dlnf_dv": ens["members_x"], "members_dlnf_dx": ens["members_c"]}
    assert dx is not None  # p(v|x) flows are conditional: grad_log_prob gives ∇_c ln p
    if method != "conditional":
        assert spat is not None  # checked above
        dn, _ = dp_flows.grad_log_prob(spat, x, **kw)
        dx = dx + dn
        if own:
            own["members_dlnf_dx"] = own["members_dlnf_dx"] + dn[None]
    f64 = np.float64
    return FlowGradients(
        x=x.astype(f64),
        v=v.astype(f64),
        dlnf_dx=dx.astype(f64),
        dlnf_dv=dv.astype(f64),
        density=dp_cbe.DENSITY_OF_METHOD[method],
        **{name: a.astype(f64) for name, a in (std | own).items()},
        group_size=k,
    )


# -- deep-potential gradients ------------------------------------------------------------


class _Methods(Sequence[str]):
    """``dp_cbe.METHODS`` as argparse ``choices``, read when first used (to check or to print a
    usage), so that building the command line does not import dp-cbe and JAX."""

    def _methods(self) -> tuple[str, ...]:
        import dp_cbe

        return dp_cbe.METHODS

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return self._methods()[i]

    def __len__(self) -> int:
        return len(self._methods())

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods())


def _count(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _seed(text: str) -> int:
    n = int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def _fraction(text: str) -> float:
    f = float(text)
    if not 0.0 <= f <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return f


def _kpc(text: str) -> float:
    r = float(text)
    if not (math.isfinite(r) and r > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of kpc > 0, got {text}")
    return r


def add_parser(sub: Any) -> None:
    """The ``deep-potential gradients`` subcommand's arguments (those of the former
    ``dp-flows gradients``)."""
    g = sub.add_parser(
        "gradients",
        help="draw points from fitted flows and write their gradients.h5 (for dp-cbe fit)",
        description="Draw n points from fitted dp-flows flows and write the gradients of a "
        "CBE method's log-density there as gradients.h5 (dp-cbe's format; docs/formats.md).",
    )
    # A metavar, so that argparse reads the choices only to check or print them (%(choices)s).
    g.add_argument("--method", choices=_Methods(), required=True, metavar="METHOD",
                   help="the CBE method: %(choices)s")  # fmt: skip
    g.add_argument("--spatial", help="spatial flow directory (vanilla, selection)")
    g.add_argument("--conditional", required=True, help="p(v|x) flow directory")
    g.add_argument("--catalog", help="catalog.h5 whose positions the conditional method uses")
    g.add_argument("--n", type=_count, required=True, help="number of points")
    g.add_argument("--uniform-fraction", type=_fraction, default=None,
                   help="fraction of the positions uniform in a volume (--uniform-support); "
                   "default 0.25 for the conditional method with --catalog, else 0")  # fmt: skip
    g.add_argument("--r-max", type=_kpc, default=None,
                   help="kpc; the ball for uniform points (with --uniform-support stars: "
                   "they are kept inside it as well)")  # fmt: skip
    g.add_argument("--uniform-support", choices=("stars", "ball"), default=None,
                   help="where uniform points lie: the volume the catalogue's stars fill "
                   "(default with --catalog) or the ball r < r_max (default without)")  # fmt: skip
    g.add_argument("--velocities-per-position", type=_count, default=1, metavar="K",
                   help="draw n/K positions with K velocities each (default 1); K >= 4 lets "
                   "dp-cbe's conditional fit solve for grad ln n per position "
                   "(ln_n_gradient = 'profile')")  # fmt: skip
    g.add_argument("--batch-size", type=_count, default=4096)
    g.add_argument("--seed", type=_seed, default=0)
    g.add_argument("--out", required=True, help="output gradients.h5")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run_cli(args: argparse.Namespace) -> int:
    """Run ``deep-potential gradients`` from parsed arguments; returns the exit status."""
    out = Path(args.out)
    try:
        if out.is_dir():
            raise ValueError(f"--out {out} is a folder; give the gradients file to write")
        if args.catalog and out.resolve() == Path(args.catalog).resolve():
            raise ValueError(f"--out {out} is the input catalogue; give another file")
        import dp_cbe
        import dp_flows

        positions = None
        if args.catalog:
            positions = dp_flows.read_catalog_arrays(args.catalog, ["/stars/x"])["/stars/x"]
        g = make_gradients(
            args.method,
            conditional=args.conditional,
            spatial=args.spatial,
            n=args.n,
            seed=args.seed,
            positions=positions,
            uniform_fraction=args.uniform_fraction,
            r_max=args.r_max,
            uniform_support=args.uniform_support,
            velocities_per_position=args.velocities_per_position,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
        dp_cbe.write_gradients(out, g.gradient_set())
    except (ValueError, KeyError, OSError, RuntimeError) as err:
        print(f"deep-potential gradients: error: {err}", file=sys.stderr)
        return 2
    print(f"{args.n} gradients of ln {g.density} written to {out}")
    return 0
