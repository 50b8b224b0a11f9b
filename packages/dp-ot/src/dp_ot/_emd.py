"""Exact earth mover's distance: drop-ins for POT's ``ot.emd`` and ``ot.emd2``.

Uniform histograms of equal size go through the exact assignment solver (an optimal plan is
then a permutation). General histograms are solved exactly by the network simplex in C++
(block-search pricing, strongly feasible trees), as POT does. ``numItermax`` bounds the number
of simplex pivots, as in POT; ``numThreads`` is accepted for compatibility and ignored.

Inconsistent inputs that POT rejects with ``AssertionError`` (histogram lengths that do not
match ``M``, unequal masses) raise :class:`EMDInputError`, which subclasses both
``ValueError`` and ``AssertionError``: code written against POT and code expecting the
``ValueError`` of the rest of dp-ot both catch it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from jaxtyping import Float

from . import _core  # pyright: ignore[reportMissingModuleSource]  # compiled; typed by _core.pyi

__all__ = ["EMDInputError", "emd", "emd2"]


class EMDInputError(ValueError, AssertionError):
    """Inputs POT rejects with ``AssertionError``: mismatched dimensions or unequal masses."""


# POT's result codes (ot.lp.emd_wrap): 0 infeasible, 1 optimal, 2 unbounded, 3 max iterations.
_RESULT = {0: 1, 1: 0, 3: 3}  # dp-ot core status -> POT result_code
_MESSAGES = {
    0: "Problem infeasible. Check that a and b are in the simplex",
    1: None,
    2: "Problem unbounded",
    3: "numItermax reached before optimality. Try to increase numItermax.",
}


def _histogram(w: Any, n: int, name: str) -> np.ndarray:
    if w is None or len(w) == 0:
        return np.full(n, 1.0 / n) if n else np.zeros(0)
    arr = np.asarray(w, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise EMDInputError("Dimension mismatch, check dimensions of M with a and b")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and nonnegative")
    return arr


def _center_ot_dual(
    u: np.ndarray, v: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """POT's ``center_ot_dual``: shift so that the weighted dual sums balance."""
    denom = a.sum() + b.sum()
    c = (b @ v - a @ u) / denom if denom else 0.0
    return u + c, v - c


def _solve(
    a: Any, b: Any, M: Any, numItermax: int, center_dual: bool, check_marginals: bool
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, int]:
    cost = np.asarray(M)
    if cost.ndim != 2:
        raise ValueError(f"M must be a 2-D array, got {cost.ndim}-D")
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    if not np.all(np.isfinite(cost)):
        raise ValueError("M contains NaN or infinite entries")
    n1, n2 = cost.shape
    a = _histogram(a, n1, "a")
    b = _histogram(b, n2, "b")
    if check_marginals and not abs(a.sum() - b.sum()) < 1.5e-6:  # POT: assert_almost_equal(6)
        raise EMDInputError(
            f"a and b vector must have the same sum (got {a.sum()!r} and {b.sum()!r})"
        )
    if b.sum() > 0:
        b = b * (a.sum() / b.sum())
    if int(numItermax) != numItermax or numItermax < 1:
        raise ValueError(f"numItermax must be a positive integer, got {numItermax!r}")
    if n1 == n2 and n1 > 0 and np.all(a == a[0]) and np.all(b == b[0]) and a[0] == b[0]:
        c4r, u, v = _core.square_duals(cost)  # uniform: an optimal plan is a permutation
        G = np.zeros((n1, n2))
        G[np.arange(n1), c4r] = a
        total = float(np.sum(cost[np.arange(n1), c4r] * a))
        code = 1
    else:
        G, total, u, v, status = _core.emd(a, b, cost, int(numItermax))
        code = _RESULT[status]
    if center_dual:
        u, v = _center_ot_dual(u, v, a, b)
    return G, total, u, v, code


def _log(total: float, u: np.ndarray, v: np.ndarray, code: int) -> dict[str, Any]:
    message = _MESSAGES[code]
    if message is not None:
        warnings.warn(message, UserWarning, stacklevel=3)
    return {"cost": total, "u": u, "v": v, "warning": message, "result_code": code}


def emd(
    a: Float[np.ndarray, " n"] | list,
    b: Float[np.ndarray, " m"] | list,
    M: Float[np.ndarray, "n m"],
    numItermax: int = 100000,
    log: bool = False,
    center_dual: bool = True,
    numThreads: int | str = 1,
    check_marginals: bool = True,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Exact optimal transport plan (drop-in for POT's ``ot.emd``).

    Args:
        a: (n,) source weights; an empty list means uniform.
        b: (m,) target weights; an empty list means uniform. Rescaled to ``a``'s total.
        M: (n, m) finite ground costs.
        numItermax: maximum number of simplex pivots before giving up (result_code 3).
        log: also return a dict with ``cost``, ``u``, ``v``, ``warning``, ``result_code``.
        center_dual: centre the dual potentials as POT does.
        numThreads: ignored (kept for signature compatibility).
        check_marginals: require ``|sum a - sum b| < 1.5e-6``.

    Returns:
        The (n, m) float64 plan ``G`` (marginals ``a`` and ``b``), and the log if requested.
        A non-optimal outcome emits a ``UserWarning`` with POT's message.

    Raises:
        EMDInputError: ``a``/``b`` lengths do not match ``M``, or unequal sums (a subclass of
            both ``ValueError`` and POT's ``AssertionError``).
        ValueError: ``M`` not 2-D or not finite, negative or non-finite weights.

    Example:
        >>> from dp_ot import emd
        >>> emd([0.5, 0.5], [0.5, 0.5], [[0.0, 1.0], [1.0, 0.0]]).tolist()
        [[0.5, 0.0], [0.0, 0.5]]
    """
    del numThreads
    G, total, u, v, code = _solve(a, b, M, numItermax, center_dual, check_marginals)
    info = _log(total, u, v, code)
    return (G, info) if log else G


def emd2(
    a: Float[np.ndarray, " n"] | list,
    b: Float[np.ndarray, " m"] | Float[np.ndarray, "m k"] | list,
    M: Float[np.ndarray, "n m"],
    processes: int = 1,
    numItermax: int = 100000,
    log: bool = False,
    return_matrix: bool = False,
    center_dual: bool = True,
    numThreads: int | str = 1,
    check_marginals: bool = True,
) -> Any:
    """Exact optimal transport cost (drop-in for POT's ``ot.emd2``).

    Same arguments as :func:`emd`; a 2-D ``b`` (m, k) solves ``k`` problems and returns a
    list. With ``log`` returns ``[cost, log]`` (plus ``log["G"]`` if ``return_matrix``).
    """
    del processes, numThreads
    b_arr = None if b is None or len(b) == 0 else np.asarray(b, dtype=np.float64)

    def one(bk: Any) -> Any:
        G, total, u, v, code = _solve(a, bk, M, numItermax, center_dual, check_marginals)
        if not (log or return_matrix):
            _log(total, u, v, code)
            return total
        info = _log(total, u, v, code)
        if return_matrix:
            info["G"] = G
        return [total, info]

    if b_arr is not None and b_arr.ndim == 2:
        return [one(b_arr[:, k].copy()) for k in range(b_arr.shape[1])]
    return one(b if b_arr is None else b_arr)
