"""Exact linear assignment: a drop-in for ``scipy.optimize.linear_sum_assignment`` and a
batched, multi-threaded solver for many square problems."""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import Float, Int

from . import _core  # pyright: ignore[reportMissingModuleSource]  # compiled; typed by _core.pyi

__all__ = ["batch_linear_sum_assignment", "linear_sum_assignment"]


def _as_cost_matrix(cost_matrix: Any, ndim: int) -> np.ndarray:
    """Validate like scipy: safe cast to float64 (TypeError), ndim (ValueError)."""
    arr = np.asarray(cost_matrix)
    if arr.ndim != ndim:
        if ndim == 2:
            raise ValueError(f"expected a matrix (2-D array), got a {arr.ndim} array")
        raise ValueError(f"expected a {ndim}-D array, got a {arr.ndim}-D array")
    if not np.can_cast(arr.dtype, np.float64, casting="safe"):
        raise TypeError(
            f"Cannot cast array data from {arr.dtype!r} to dtype('float64') according to "
            "the rule 'safe'"
        )
    return np.ascontiguousarray(arr, dtype=np.float64)


def linear_sum_assignment(
    cost_matrix: Float[np.ndarray, "n m"], maximize: bool = False
) -> tuple[Int[np.ndarray, " k"], Int[np.ndarray, " k"]]:
    """Solve the linear sum assignment problem exactly (drop-in for scipy's).

    Assigns each row to a distinct column (or each column to a distinct row when there are
    more rows than columns) minimising (or maximising) the summed cost. Entries may be
    ``+inf`` (forbidden pairs, or ``-inf`` with ``maximize=True``).

    Args:
        cost_matrix: (n, m) costs, any dtype that casts safely to float64.
        maximize: maximise the total instead of minimising it.

    Returns:
        ``(row_ind, col_ind)``, each of length ``min(n, m)``, rows sorted ascending; the
        optimal total is ``cost_matrix[row_ind, col_ind].sum()``.

    Raises:
        ValueError: not 2-D; NaN or (after the sign flip for ``maximize``) ``-inf`` entries
            ("matrix contains invalid numeric entries"); no finite complete assignment
            ("cost matrix is infeasible").
        TypeError: the dtype cannot be cast safely to float64 (strings, complex, object).

    Example:
        >>> import numpy as np
        >>> from dp_ot import linear_sum_assignment
        >>> row, col = linear_sum_assignment(np.array([[4, 1, 3], [2, 0, 5], [3, 2, 2]]))
        >>> col.tolist()
        [1, 0, 2]
    """
    cost = _as_cost_matrix(cost_matrix, 2)
    if maximize:
        cost = -cost
    rows, cols = _core.lsa(cost)
    return rows.astype(np.intp, copy=False), cols.astype(np.intp, copy=False)


def batch_linear_sum_assignment(
    costs: Float[np.ndarray, "B n n"], threads: int = 1
) -> Int[np.ndarray, "B n"]:
    """Solve ``B`` independent square assignment problems on a thread pool.

    Args:
        costs: (B, n, n) costs (finite or ``+inf``).
        threads: worker threads (>= 1). The result does not depend on it.

    Returns:
        (B, n) int64: ``out[b, i]`` is the column assigned to row ``i`` of problem ``b``.

    Raises:
        ValueError: wrong shape, ``threads < 1``, invalid entries or an infeasible problem
            (the message names the problem index).
    """
    arr = _as_cost_matrix(costs, 3)
    if arr.shape[1] != arr.shape[2]:
        raise ValueError(f"costs must have shape (B, n, n), got {arr.shape}")
    if int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return _core.batch(arr, int(threads))
