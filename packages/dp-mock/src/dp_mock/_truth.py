"""Truth: every truth function of a mock, rebuilt from its configuration (and dust grid)."""

from __future__ import annotations

import numpy as np

from ._config import MockConfig
from ._dust import DustField, gaussian_random_field
from ._plummer import PlummerSphere
from ._seeds import OBSERVED_FRACTION_SEED, chunk_key, dust_seed
from ._selection import MagnitudeSelection
from ._systems import AbstractSphericalSystem, Points, Radii, Values, _as_points


class Truth:
    """The truth behind a mock: the system's DF, dust, extinction and selection (kpc, km/s, M☉, mag).

    Every method takes positions ``x`` of shape (n, 3) (and velocities ``v``, (n, 3)). The
    tracer system (``PlummerSphere`` or ``HernquistSphere``, isotropic or Osipkov–Merritt) is
    ``system``.

    Args:
        config: the mock's configuration.
        ln_dust: ln ρ_dust grid (G, G, G); None regenerates it from ``config.seed`` (ignored,
            and must be None, when ``config.dust`` is False).
    """

    def __init__(self, config: MockConfig, ln_dust: np.ndarray | None = None) -> None:
        self.config = config
        self.system: AbstractSphericalSystem = config.spherical_system()
        self.magnitudes: MagnitudeSelection = config.selection()
        self.dust: DustField | None = None
        self._fraction: float | None = None
        if config.dust:
            if ln_dust is None:
                ln_dust = gaussian_random_field(
                    dust_seed(config.seed),
                    config.dust_grid,
                    extent=config.dust_extent,
                    power_index=config.dust_power_index,
                    mean=config.dust_mean,
                    std=config.dust_std,
                )
            expected = (config.dust_grid,) * 3
            if np.shape(ln_dust) != expected:
                raise ValueError(f"ln_dust has shape {np.shape(ln_dust)}, config says {expected}")
            self.dust = DustField(ln_dust, extent=config.dust_extent)
        elif ln_dust is not None:
            raise ValueError("ln_dust given for a dust-free configuration")

    @property
    def plummer(self) -> PlummerSphere:
        """The system, for callers written when it was always a Plummer sphere."""
        if not isinstance(self.system, PlummerSphere):
            raise AttributeError(f"this mock's system is {self.config.system!r}; use Truth.system")
        return self.system

    @property
    def r_max(self) -> float:
        """Truncation radius of the tracers (kpc)."""
        return self.config.r_max

    def potential(self, x: Points) -> Values:
        """Φ(x), (km/s)²."""
        return self.system.potential(x)

    def acceleration(self, x: Points) -> Points:
        """−∇Φ(x), (km/s)²/kpc."""
        return self.system.acceleration(x)

    def density(self, x: Points) -> Values:
        """Mass density (M☉/kpc³)."""
        return self.system.density(x)

    def enclosed_mass(self, r: Radii) -> Radii:
        """M(<r) (M☉) of the system at radii r (kpc), closed form (see the system's method)."""
        return self.system.enclosed_mass(r)

    def circular_velocity(self, r: Radii) -> Radii:
        """v_c(r) = √(G M(<r)/r) (km/s) at radii r (kpc), closed form; 0 at r = 0."""
        return self.system.circular_velocity(r)

    def number_density(self, x: Points) -> Values:
        """Intrinsic tracer pdf n(x) (kpc⁻³), normalised to 1 inside r_max."""
        return self.system.number_density(x)

    def log_df(self, x: Points, v: Points) -> Values:
        """ln f(x, v), f normalised to 1 over r < r_max."""
        return self.system.log_df(x, v)

    def log_p_v_given_x(self, x: Points, v: Points) -> Values:
        """ln p(v|x), normalised over v."""
        return self.system.log_p_v_given_x(x, v)

    def grad_log_p_v_given_x(self, x: Points, v: Points) -> tuple[Points, Points]:
        """(∇_x ln p(v|x), ∇_v ln p(v|x)), kpc⁻¹ and (km/s)⁻¹."""
        return self.system.grad_log_p_v_given_x(x, v)

    def grad_log_f(self, x: Points, v: Points) -> tuple[Points, Points]:
        """(∇_x ln f, ∇_v ln f), kpc⁻¹ and (km/s)⁻¹."""
        return self.system.grad_log_f(x, v)

    def dust_density(self, x: Points) -> Values:
        """ρ_dust (mag/kpc); zeros without dust."""
        if self.dust is None:
            return np.zeros(len(_as_points(x)))
        return self.dust.density(x)

    def extinction(self, x: Points) -> Values:
        """A(x) from the observer at the origin (mag), exact for the trilinear dust."""
        if self.dust is None:
            return np.zeros(len(_as_points(x)))
        return self.dust.extinction(x)

    def selection(self, x: Points) -> Values:
        """S(x) = Φ_N((m_max − M̄ − μ − A)/σ_M) inside r_max, 0 outside (any x accepted)."""
        x = _as_points(x)
        if self.dust is None:
            return self.magnitudes.probability(x)
        inside = np.einsum("ij,ij->i", x, x) < self.r_max**2
        a = np.zeros(len(x))
        a[inside] = self.dust.extinction(x[inside])
        return self.magnitudes.probability(x, a)

    def observed_density(self, x: Points) -> Values:
        """Expected pdf of the observed stars, n(x) S(x) / ∫ n S (kpc⁻³)."""
        return self.number_density(x) * self.selection(x) / self.observed_fraction()

    def observed_fraction(self) -> float:
        """∫ n S d³x, the expected fraction of drawn stars that are observed.

        Monte Carlo over 2¹⁸ tracer positions (fixed seed, cached): relative error ~ 0.2 %.
        """
        if self._fraction is None:
            x, _ = self.system.sample_positions(chunk_key(OBSERVED_FRACTION_SEED), 2**18)
            self._fraction = float(np.mean(self.selection(x)))
        return self._fraction

    def sample_velocities(self, seed: int, x: Points) -> Points:
        """Exact draws v ~ p(v|x) at given positions, shape (n, 3), km/s.

        Row i depends only on (seed, i, x[i]) (counter-based streams), not on the thread count.

        Example:
            >>> from dp_mock import Truth, preset
            >>> truth = Truth(preset("demo-om").replace(dust=False))
            >>> truth.sample_velocities(0, np.ones((5, 3))).shape
            (5, 3)
        """
        x = _as_points(x)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        return self.system.sample_velocities(chunk_key(int(seed)), np.arange(len(x)), x)

    def velocity_moments(self, r: Radii) -> tuple[Radii, Radii, Radii]:
        """(σ_r², σ_t², κ) at radii r (kpc): radial and one tangential component's velocity
        dispersion ((km/s)²) and the radial kurtosis ⟨v_r⁴⟩/σ_r⁴, from the DF (closed form for
        Plummer, Gauss–Legendre quadrature otherwise). β = 1 − σ_t²/σ_r² = r²/(r² + r_a²)."""
        return self.system.velocity_moments(r)
