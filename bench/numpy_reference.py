#!/usr/bin/env python3
"""Vectorised NumPy float64 reference of the engine's GBM model (benchmark only).

Same model and bookkeeping as mc-engine for the benchmark cases: correlated
exact-log-step GBM (Cholesky factor of the correlation matrix), holdings that
drift between rebalancing dates, portfolio value, max drawdown monitored every
step, year-end values kept for fan-chart percentiles (type 7 = NumPy's
default "linear"), terminal mean / sd / percentiles / VaR / CVaR.

Vectorised across paths: per step one (paths x assets) normal draw, one
matrix product with L^T, one exp, and array updates.

Usage: numpy_reference.py <a|b|c>  -> prints one line like the Rust bench.
Run with OPENBLAS_NUM_THREADS=1 etc. for a per-core comparison.
"""
import resource
import sys
import time

import numpy as np

CASES = {
    # name: (assets, years, steps/year, paths, rebalance every k steps or 0)
    "a": (10, 30, 12, 100_000, 1),
    "b": (3, 10, 252, 10_000, 21),
    "c": (1, 10, 1, 1_000, 0),
}


def simulate(n, years, spy, paths, k, seed=20240601):
    w = np.full(n, 1.0 / n)
    mu = 0.03 + 0.005 * np.arange(n)
    sigma = 0.05 + 0.02 * np.arange(n)
    corr = np.full((n, n), 0.3)
    np.fill_diagonal(corr, 1.0)
    L = np.linalg.cholesky(corr)
    dt = 1.0 / spy
    a = (mu - 0.5 * sigma**2) * dt
    M = (sigma * np.sqrt(dt))[:, None] * L  # row i scaled by sigma_i sqrt(dt)
    MT = np.ascontiguousarray(M.T)
    v0 = 100_000.0
    rng = np.random.default_rng(seed)

    h = np.tile(v0 * w, (paths, 1))
    peak = np.full(paths, v0)
    mdd = np.zeros(paths)
    dd = np.empty(paths)
    v = np.empty(paths)
    yearly = np.empty((years, paths))
    x = np.empty((paths, n))
    for s in range(1, years * spy + 1):
        z = rng.standard_normal((paths, n))
        np.matmul(z, MT, out=x)
        x += a
        np.exp(x, out=x)
        h *= x
        h.sum(axis=1, out=v)
        if k and s % k == 0:
            np.multiply(v[:, None], w, out=h)
        np.maximum(peak, v, out=peak)
        np.subtract(peak, v, out=dd)
        dd /= peak
        np.maximum(mdd, dd, out=mdd)
        if s % spy == 0:
            yearly[s // spy - 1] = v

    probs = [1, 5, 10, 25, 50, 75, 90, 95, 99]
    bands = [(row.mean(), np.percentile(row, probs)) for row in yearly]
    t = yearly[-1]
    loss = (v0 - t) / v0
    m95 = int(np.ceil(0.05 * paths))
    tail = np.partition(t, m95 - 1)[:m95]
    stats = dict(
        mean=t.mean(),
        sd=t.std(ddof=1),
        var95=np.percentile(loss, 95),
        cvar95=((v0 - tail) / v0).mean(),
        mdd=np.percentile(mdd, [50, 95]),
        p50=bands[-1][1][4],
    )
    return stats


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "a"
    n, years, spy, paths, k = CASES[name]
    work = paths * n * years * spy
    reps = 51 if name == "c" else 1
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        stats = simulate(n, years, spy, paths, k)
        times.append(time.perf_counter() - t0)
    times.sort()
    secs = times[len(times) // 2]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        f"case={name} mode=numpy threads=1 seconds={secs:.6f} asset_steps={work} "
        f"ns_per_asset_step={secs * 1e9 / work:.3f} peak_rss_mb={peak_mb:.1f} "
        f"check={stats['mean']:.6e}"
    )


if __name__ == "__main__":
    main()
