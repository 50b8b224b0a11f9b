// Thin pybind11 layer over the plain C++ core (cpp/): validates shapes and dtypes, allocates
// outputs with the GIL held, releases the GIL around every solve and maps status codes to
// exceptions (emd's status is returned, the Python side turns it into POT's warnings).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>
#include <tuple>

#include "dpot/dpot.hpp"

namespace py = pybind11;
using Arr = py::array_t<double, py::array::c_style | py::array::forcecast>;
using I64 = py::array_t<int64_t>;

namespace {

void raise_status(int st) {
  if (st == dpot::kInvalid) throw py::value_error("matrix contains invalid numeric entries");
  if (st == dpot::kInfeasible) throw py::value_error("cost matrix is infeasible");
  if (st != dpot::kOk) throw std::runtime_error("dp_ot: solver status " + std::to_string(st));
}

void require_ndim(const py::array& a, int nd, const char* name) {
  if (a.ndim() != nd)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(nd) +
                          "-D array, got " + std::to_string(a.ndim()) + "-D");
}

std::tuple<I64, I64> lsa(const Arr& cost) {
  require_ndim(cost, 2, "cost_matrix");
  const int64_t nr = cost.shape(0), nc = cost.shape(1);
  const int64_t k = std::min(nr, nc);
  I64 rows(k), cols(k);
  int st;
  {
    py::gil_scoped_release release;
    st = dpot::linear_sum_assignment(cost.data(), nr, nc, rows.mutable_data(),
                                     cols.mutable_data());
  }
  raise_status(st);
  return {rows, cols};
}

std::tuple<I64, Arr, Arr> square_duals(const Arr& cost) {
  require_ndim(cost, 2, "cost_matrix");
  const int64_t n = cost.shape(0);
  if (cost.shape(1) != n) throw py::value_error("cost_matrix must be square");
  I64 c4r(n);
  Arr u(n), v(n);
  int st;
  {
    py::gil_scoped_release release;
    dpot::AssignmentSolver solver;
    st = solver.solve(cost.data(), n, n, c4r.mutable_data(), u.mutable_data(), v.mutable_data(),
                      dpot::Ties::kAny);
  }
  raise_status(st);
  return {c4r, u, v};
}

I64 batch(const Arr& costs, int threads) {
  require_ndim(costs, 3, "costs");
  const int64_t B = costs.shape(0), n = costs.shape(1);
  if (costs.shape(2) != n) throw py::value_error("costs must have shape (B, n, n)");
  if (threads < 1) throw py::value_error("threads must be >= 1");
  I64 out({B, n});
  std::vector<int> status(static_cast<size_t>(B));
  {
    py::gil_scoped_release release;
    dpot::batch_assignment(costs.data(), B, n, threads, out.mutable_data(), status.data());
  }
  for (int64_t b = 0; b < B; ++b)
    if (status[b] != dpot::kOk) {
      try {
        raise_status(status[b]);
      } catch (py::value_error& e) {
        throw py::value_error(std::string("problem ") + std::to_string(b) + ": " + e.what());
      }
    }
  return out;
}

py::array_t<uint8_t> pair(const Arr& x0, const Arr& x1, int threads) {
  require_ndim(x0, 3, "x0");
  require_ndim(x1, 3, "x1");
  const int64_t B = x1.shape(0), blk = x1.shape(1), d = x1.shape(2);
  if (x0.shape(0) != B || x0.shape(1) != blk || x0.shape(2) != d)
    throw py::value_error("x0 and x1 must have the same shape (B, block, dim)");
  if (blk > 256) throw py::value_error("block must be <= 256 (pairings are stored as uint8)");
  if (threads < 1) throw py::value_error("threads must be >= 1");
  py::array_t<uint8_t> out({B, blk});
  std::vector<int> status(static_cast<size_t>(B));
  {
    py::gil_scoped_release release;
    dpot::pair_blocks(x0.data(), x1.data(), B, blk, d, threads, out.mutable_data(),
                      status.data());
  }
  for (int64_t b = 0; b < B; ++b)
    if (status[b] != dpot::kOk)
      throw py::value_error("block " + std::to_string(b) +
                            ": non-finite squared distances (NaN/inf in the data?)");
  return out;
}

py::tuple emd(const Arr& a, const Arr& b, const Arr& M, int64_t max_iter) {
  require_ndim(a, 1, "a");
  require_ndim(b, 1, "b");
  require_ndim(M, 2, "M");
  const int64_t n = M.shape(0), m = M.shape(1);
  if (a.shape(0) != n || b.shape(0) != m)
    throw py::value_error("Dimension mismatch, check dimensions of M with a and b");
  Arr G({n, m}), alpha(n), beta(m);
  std::fill(G.mutable_data(), G.mutable_data() + n * m, 0.0);
  double cost = 0.0;
  int st;
  {
    py::gil_scoped_release release;
    st = dpot::emd(a.data(), b.data(), M.data(), n, m, max_iter, G.mutable_data(),
                   alpha.mutable_data(), beta.mutable_data(), &cost);
  }
  if (st == dpot::kInvalid)
    throw py::value_error("emd: M must be finite and a, b finite and nonnegative");
  return py::make_tuple(G, cost, alpha, beta, st);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "dp-ot native core (see cpp/include/dpot/dpot.hpp)";
  m.def("lsa", &lsa, py::arg("cost"), "Rectangular assignment; rows sorted. Raises ValueError.");
  m.def("square_duals", &square_duals, py::arg("cost"),
        "Square assignment with optimal duals: (col4row, u, v).");
  m.def("batch", &batch, py::arg("costs"), py::arg("threads") = 1,
        "Solve (B, n, n) problems on `threads` threads: (B, n) column per row.");
  m.def("pair_blocks", &pair, py::arg("x0"), py::arg("x1"), py::arg("threads") = 1,
        "Exact squared-Euclidean assignment per block: out[b, k] = x0 row paired with x1[b, k].");
  m.def("emd", &emd, py::arg("a"), py::arg("b"), py::arg("M"), py::arg("max_iter"),
        "Exact EMD by the network simplex: (G, cost, alpha, beta, status).");
  m.def("simd_level", &dpot::simd_level,
        "Active SIMD kernels: 'avx2', 'sse2' (x86-64 baseline) or 'portable' (non-x86 builds).");
  m.def("set_simd_enabled", &dpot::set_simd_enabled, py::arg("enabled"),
        "Allow run-time SIMD dispatch (True) or force the baseline kernels (False).");
}
