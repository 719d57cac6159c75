"""The NMF primer's lake: 12 hourly pollution readings on 1000 days, explained by 3 factories.

Each factory has a daily time course (a column of W, over the 12 hours) and discharges on some
days (a row of H, 0 or 1). The data are the primer's: its three profiles

    factory 1 = [0, 0, 9, 5, 3, 2, 1, 0, 0, 0,   0, 0]
    factory 2 = [0, 0, 0, 0, 0, 3, 2, 1, 1, 0,   0, 0]
    factory 3 = [0, 5, 5, 6, 6, 7, 4, 2, 1, 0.5, 0, 0]

and readings X = W @ H (sample_data/lake_factories.csv). ``nmf(X, 3, replicates=100,
normalize="H_max")`` fits X exactly, yet does not return the primer's factory 3, and which
profile it returns depends on the days drawn. That is not a failure of the solver: the answer
is not unique, as the primer says ("there can be an infinite number of factors"). Factory 3
reads at every hour that factories 1 and 2 do, so for any a <= 5/9

    factory 3' = factory 3 - a * factory 1 >= 0,   discharges 1' = discharges 1 + a * discharges 3

is another exact nonnegative factorization of the same readings (and so is taking off some
of factory 2). The example shows what NMF returns, that exact alternative, and two ways to make
the answer unique, measured over several draws of the discharge days:

* data that pin it down: give factories 1 and 2 an hour of their own (factory 1 reads 2 at hour
  0, factory 2 reads 1 at hour 10), so nothing can be taken off factory 3;
* a prior on the answer: discharges are sparse (most days a factory does not discharge), so a
  sparsity penalty on H (``l1_H``, with ``l2_W`` to fix the scale) prefers the true profiles,
  whose discharges are the sparsest of all exact fits, at the cost of a slightly larger error.

    python examples/lake_factories.py            # writes examples/figures/lake_factories.png
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.optimize import linear_sum_assignment

from caimg_nmf.nmf import nmf
from caimg_nmf.rank import select_rank
from caimg_nmf.synthetic import PRIMER_FACTORIES, make_factories, sample_data_path

FIGURES = Path(__file__).resolve().parent / "figures"
SPARSE_H = dict(l1_H=0.1, l2_W=0.1)   # the sparse-discharge prior (measured: r = 1.0000, 10 draws)


def own_hours_profiles():
    """The primer's profiles with factory 1 reading 2 at hour 0 and factory 2 reading 1 at hour 10."""
    W = PRIMER_FACTORIES.copy()
    W[0, 0], W[10, 1] = 2.0, 1.0
    return W


def load(small):
    """(readings 12 x days, true profiles 12 x 3, true discharges 3 x days): the shipped primer's lake."""
    if small:
        return make_factories(300, seed=0)
    X = np.loadtxt(sample_data_path("lake_factories.csv"), delimiter=",")
    truth = np.load(sample_data_path("lake_factories_truth.npz"))
    return X, truth["W_true"], truth["H_true"]


def fit_factories(X, W_true, replicates, **penalties):
    """Best of ``replicates`` rank-3 NMFs, H rescaled to max 1, its components matched to the true
    profiles (Hungarian on correlation). Returns (W, H, r per factory, relative error)."""
    fit = nmf(X, 3, replicates=replicates, normalize="H_max", random_state=0, max_iter=1000, tol=1e-6,
              **penalties)
    # NMF components come out in no particular order: match them to the factories.
    corr = np.corrcoef(fit.W.T, W_true.T)[:3, 3:]
    rows, cols = linear_sum_assignment(-corr)
    order = rows[np.argsort(cols)]
    return fit.W[:, order], fit.H[order], corr[order, np.arange(3)], float(fit.rel_error)


def largest_subtractable(W, k, j):
    """The largest a with W[:, k] - a * W[:, j] >= 0 (0 when factory j reads where k does not)."""
    on = W[:, j] > 0
    return float(np.min(W[on, k] / W[on, j]))


def exact_alternative(W, H, k=2, j=0):
    """Another exact nonnegative factorization: factory k less a * factory j, j's discharges
    raised by a times k's, with the largest such a."""
    a = largest_subtractable(W, k, j)
    W2, H2 = W.copy(), H.copy()
    W2[:, k] -= a * W[:, j]
    H2[j] += a * H[k]
    return W2, H2, a


def recovery_over_draws(n_days, seeds, replicates):
    """r per factory (seeds x 3) for the primer's profiles, for them with hours of their own, and for
    the primer's with the sparse-H prior; each row one draw of the discharge days."""
    own = own_hours_profiles()
    r = {"primer": [], "own hours": [], "sparse H": []}
    for seed in seeds:
        X, W, _ = make_factories(n_days, seed=seed)
        r["primer"].append(fit_factories(X, W, replicates)[2])
        r["sparse H"].append(fit_factories(X, W, replicates, **SPARSE_H)[2])
        Xo, Wo, _ = make_factories(n_days, profiles=own, seed=seed)
        r["own hours"].append(fit_factories(Xo, Wo, replicates)[2])
    return {k: np.array(v) for k, v in r.items()}


def main(out_dir=FIGURES, small=False):
    X, W_true, H_true = load(small)
    replicates = 10 if small else 100
    W, H, profile_corr, rel_error = fit_factories(X, W_true, replicates)
    W_alt, H_alt, a = exact_alternative(W_true, H_true)
    alt_error = float(np.linalg.norm(X - W_alt @ H_alt) / np.linalg.norm(X))
    seeds = range(4 if small else 10)
    draws = recovery_over_draws(X.shape[1], seeds, 10 if small else replicates)
    Xo, Wo, Ho = make_factories(X.shape[1], profiles=own_hours_profiles(), seed=0)
    W_own, H_own, own_corr, _ = fit_factories(Xo, Wo, replicates)
    near_binary = float(np.mean(np.minimum(np.abs(H_own), np.abs(H_own - 1)) <= 0.1))
    rank_reps = 3 if small else 5
    sel = select_rank(X, "1:6", replicates=rank_reps, random_state=0)
    sel_own = select_rank(Xo, "1:6", replicates=rank_reps, random_state=0)

    fig = Figure(figsize=(11, 7.4), layout="constrained")
    grid = fig.add_gridspec(2, 2)
    hours = np.arange(X.shape[0])
    ax = fig.add_subplot(grid[0, 0])
    for j in range(3):
        ax.plot(hours, W_true[:, j], "-", color=f"C{j}", lw=5, alpha=0.3, label="primer's" if j == 0 else None)
        ax.plot(hours, W[:, j], "o--", color=f"C{j}", ms=4, label=f"NMF, factory {j + 1} (r = {profile_corr[j]:.3f})")
    ax.plot(hours, W_alt[:, 2], ":", color="k", lw=1.5,
            label=f"factory 3 - {a:.2f} x factory 1: also an exact fit")
    ax.set(xlabel="hour of the day", ylabel="pollution per discharge", xticks=hours,
           title=f"Primer's profiles: exact fit (error {rel_error:.0e}), not the primer's")
    ax.legend(fontsize=7, loc="upper right")
    ax = fig.add_subplot(grid[0, 1])
    for (name, r), marker in zip(draws.items(), "oso"):
        ax.plot(list(seeds), r.min(axis=1), marker + "-", label=f"{name}: r from {r.min():.3f} to "
                f"{r.min(axis=1).max():.3f}", mfc="none" if name == "sparse H" else None)
    ax.set(xlabel="draw of the discharge days (seed)", ylabel="lowest r of the 3 profiles",
           xticks=list(seeds), title="Unique or not, over draws of the days", ylim=(min(0.7, float(draws["primer"].min()) - 0.02), 1.01))
    ax.legend(fontsize=8, loc="lower right")
    ax = fig.add_subplot(grid[1, 0])
    for j in range(3):
        ax.plot(hours, Wo[:, j], "-", color=f"C{j}", lw=5, alpha=0.3, label="true" if j == 0 else None)
        ax.plot(hours, W_own[:, j], "o--", color=f"C{j}", ms=4, label=f"factory {j + 1} (r = {own_corr[j]:.4f})")
    ax.set(xlabel="hour of the day", ylabel="pollution per discharge", xticks=hours,
           title="Factories 1, 2 with an hour of their own: unique")
    ax.legend(fontsize=8, loc="upper right")
    ax = fig.add_subplot(grid[1, 1])
    for s, name, c in ((sel, "primer's", "C0"), (sel_own, "own hours", "C1")):
        ax.plot(s.ranks, s.stability, "o-", color=c, label=f"{name}: recommended K = {s.recommended}")
    ax.set(xlabel="rank K", ylabel="stability (agreement of replicate fits)",
           title="Rank selection: replicates disagree if not unique")
    ax.legend(fontsize=8, loc="lower left")
    out = Path(out_dir) / "lake_factories.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"lake_factories: primer's profiles r = {np.round(profile_corr, 4)} (factory 3 over draws: "
          f"{draws['primer'][:, 2].min():.3f}..{draws['primer'][:, 2].max():.3f}); an exact alternative with "
          f"a = {a:.3f}; unique with hours of their own (r >= {draws['own hours'].min():.4f}) or a sparse-H "
          f"prior (r >= {draws['sparse H'].min():.4f}); recommended rank {sel.recommended} "
          f"(own hours: {sel_own.recommended}) -> {out}")
    return dict(profile_corr=profile_corr, rel_error=rel_error, alternative_error=alt_error, a=a,
                alternative_W=W_alt, alternative_H=H_alt, draws=draws, own_corr=own_corr,
                near_binary=near_binary, recommended=sel.recommended, recommended_own=sel_own.recommended,
                stability=sel.stability, stability_own=sel_own.stability, figure=out)


if __name__ == "__main__":
    main(small="--small" in sys.argv)
