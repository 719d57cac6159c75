"""Choosing the number of components K of ``X ~= W H``.

NMF does not tell you K, and its components come out in no particular order (any
permutation of the columns of W with the rows of H fits equally well), so K has to be chosen
from evidence gathered over several K. :func:`select_rank` fits every candidate rank and
reports three curves:

* **Variance explained** ``VAF = 1 - ||X - WH||^2 / ||X - mean(X)||^2`` (and the plain
  ``R^2 = 1 - ||X - WH||^2 / ||X||^2``). It always rises with K; its elbow (the kneedle rule:
  the point farthest above the chord joining the first and last ranks) is a heuristic whose
  answer moves with the range of ranks tried, and any "VAF >= 90 %" threshold is arbitrary.
* **Cross-validated error**: a random speckle of entries (``holdout``) is hidden, NMF is fit
  to the rest (masked HALS), and the error is measured on the hidden entries. Too few
  components underfit, too many fit the noise and predict the hidden entries worse. The
  smallest rank within one standard error of the minimum is the evidence-based choice.
* **Stability**: independent fits are compared component by component (Hungarian-matched
  cosine similarity of W columns). At a rank the data support, every start finds the same
  parts (stability near 1); above it the extra components split parts arbitrarily and
  stability drops.

The recommendation uses cross-validation when it was computed (stepping down to the largest
stable rank when the cross-validated choice is not reproducible across starts), else stability,
else the elbow; :attr:`RankSelection.reason` says which evidence decided and why.
"""
from __future__ import annotations

import math
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import _rank_fits as fits
from .errors import InputError

__all__ = ["select_rank", "RankSelection", "parse_ranks", "count_fits", "METHODS",
           "STABILITY_THRESHOLD"]

METHODS = ("vaf", "cv", "stability")
#: Stability below this means the replicate fits no longer agree on the components. Measured on
#: planted matrices (tests/test_rank.py): >= 0.999 at the true rank, 0.84-0.97 one rank above.
STABILITY_THRESHOLD = 0.98
_EXTRAS = ("ranks", "vaf", "r2", "cv_error", "cv_error_std", "stability", "recommended", "elbow")


@dataclass
class RankSelection:
    """The evidence for choosing K, one value per candidate rank (NaN where not computed).

    Attributes
    ----------
    ranks : ndarray of int
    vaf, r2 : ndarray
        Variance explained and plain R^2 of the best full fit at each rank.
    cv_error, cv_error_std : ndarray
        Mean and standard deviation, over random held-out masks, of the relative error
        ``||X - WH|| / ||X||`` on the held-out entries.
    stability : ndarray
        Mean Hungarian-matched cosine similarity of W columns between pairs of fits.
    recommended : int
    reason : str
        One sentence: which evidence decided and why.
    elbow : int
        Rank at the elbow of the VAF curve (a heuristic).
    methods : tuple of str
    """

    ranks: np.ndarray
    vaf: np.ndarray
    r2: np.ndarray
    cv_error: np.ndarray
    cv_error_std: np.ndarray
    stability: np.ndarray
    recommended: int
    reason: str
    elbow: int
    methods: tuple = METHODS
    settings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain dict: lists of floats per rank, ``recommended``, ``elbow``, ``reason``."""
        out = {k: (getattr(self, k).tolist() if isinstance(getattr(self, k), np.ndarray)
                   else getattr(self, k)) for k in _EXTRAS}
        out.update(reason=self.reason, methods=list(self.methods), settings=dict(self.settings))
        return out

    def extras(self, prefix="rank_selection/") -> dict:
        """Arrays named for a result file: ``rank_selection/ranks``, ``.../vaf``, ..."""
        return {prefix + k: np.asarray(getattr(self, k)) for k in _EXTRAS}

    def table(self) -> str:
        """Text table, one line per rank, the recommended one marked."""
        lines = [f"{'rank':>5} {'VAF':>8} {'R2':>8} {'CV error':>10} {'+-sd':>8} {'stability':>10}"]
        for i, k in enumerate(self.ranks):
            mark = "  <- recommended" if k == self.recommended else ""
            vals = [self.vaf[i], self.r2[i], self.cv_error[i], self.cv_error_std[i], self.stability[i]]
            f = ["-" if not np.isfinite(v) else f"{v:.4f}" for v in vals]
            lines.append(f"{k:>5} {f[0]:>8} {f[1]:>8} {f[2]:>10} {f[3]:>8} {f[4]:>10}{mark}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"RankSelection(ranks {int(self.ranks[0])}..{int(self.ranks[-1])}, "
                f"recommended={self.recommended}, elbow={self.elbow})")

    def plot(self, figsize=(10.5, 3.3)):
        """One figure: VAF/R^2, cross-validated error and stability against rank, with the
        recommended rank marked. Object-oriented matplotlib (no pyplot state)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout="constrained")
        axes = fig.subplots(1, 3)
        k = self.ranks
        ax = axes[0]
        ax.plot(k, self.vaf, "o-", color="C0", label="VAF")
        ax.plot(k, self.r2, "s--", color="C7", ms=4, label="R²")
        if np.isfinite(self.vaf).any():
            i = int(np.flatnonzero(k == self.elbow)[0])
            ax.plot(k[i], self.vaf[i], "o", mfc="none", mec="C3", ms=13, mew=1.5,
                    label=f"elbow ({self.elbow})")
        ax.set(title="Variance explained", ylabel="fraction of variance")
        ax.legend(fontsize=8, loc="lower right")
        ax = axes[1]
        if np.isfinite(self.cv_error).any():
            ax.errorbar(k, self.cv_error, yerr=self.cv_error_std, fmt="o-", color="C1", capsize=3)
        ax.set(title="Held-out error (cross-validation)", ylabel="relative error on held-out entries")
        ax = axes[2]
        ax.plot(k, self.stability, "o-", color="C2")
        ax.axhline(STABILITY_THRESHOLD, color="0.6", lw=0.8, ls=":")
        ax.set(title="Stability across replicates", ylabel="matched cosine similarity",
               ylim=(min(0.5, np.nanmin(self.stability, initial=1.0) - 0.05), 1.02))
        for ax in axes:
            ax.axvline(self.recommended, color="C3", ls="--", lw=1)
            ax.set_xlabel("rank K")
            if len(k) <= 20:
                ax.set_xticks(k)
            ax.grid(alpha=0.3)
        fig.suptitle(f"Recommended rank K = {self.recommended} (dashed line)", fontsize=11)
        return fig


#: the most candidate ranks one selection tries (each is several fits)
MAX_RANKS = 10000


def parse_ranks(spec, max_rank=None, *, label=None):
    """Candidate ranks from ``"a:b"`` (inclusive), ``"a:b:step"``, ``"2,3,5"``, an int n
    (1..n) or a sequence of ints. Raises InputError naming what is wrong, prefixed by ``label``
    (what the user typed, e.g. ``"--ranks 5:2"``; default ``ranks '5:2'``)."""
    def bad(why):
        raise InputError(f"{label or f'ranks {spec!r}'}: {why}. Use a:b (inclusive, e.g. 2:30), a:b:step "
                         "(e.g. 2:30:2) or a comma list (e.g. 2,4,8); ranks are integers >= 1.") from None

    def checked(ranks: range) -> list:  # sized before it is made: "1:99999999999" is not a list to build
        if max_rank is not None and len(ranks) and ranks[-1] > max_rank:
            bad(f"rank {ranks[-1]} is larger than min(rows, columns) = {max_rank} of the data")
        if len(ranks) > MAX_RANKS:
            bad(f"{len(ranks)} ranks to try; at most {MAX_RANKS}")
        return list(ranks)

    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        ranks = checked(range(1, int(spec) + 1))
    elif isinstance(spec, str):
        text = spec.strip()
        if ":" in text:
            parts = text.split(":")
            if len(parts) not in (2, 3) or not all(re.fullmatch(r"-?\d+", p.strip()) for p in parts):
                bad("expected integers a:b or a:b:step")
            a, b, *step = (int(p) for p in parts)
            step = step[0] if step else 1
            if step < 1:
                bad(f"step {step} must be at least 1")
            if a < 1:
                bad(f"the first rank {a} must be at least 1")
            if b < a:
                bad(f"the last rank {b} is smaller than the first {a}")
            ranks = checked(range(a, b + 1, step))
        else:
            items = [p.strip() for p in text.split(",") if p.strip()]
            if not items or not all(re.fullmatch(r"-?\d+", p) for p in items):
                bad("expected integers")
            ranks = [int(p) for p in items]
    else:
        try:
            ranks = [int(r) for r in spec]
        except (TypeError, ValueError):
            bad("expected integers")
        if any(r != x for r, x in zip(ranks, spec)):
            bad("expected integers")
    if not ranks:
        bad("no ranks")
    if min(ranks) < 1:
        bad(f"rank {min(ranks)} must be at least 1")
    if max_rank is not None and max(ranks) > max_rank:
        bad(f"rank {max(ranks)} is larger than min(rows, columns) = {max_rank} of the data")
    return sorted(set(ranks))


def count_fits(n_ranks, methods=METHODS, replicates=5):
    """Number of NMF fits :func:`select_rank` runs (for progress bars)."""
    per_rank = replicates * (("cv" in methods) + bool({"vaf", "stability"} & set(methods)))
    return n_ranks * per_rank


def select_rank(X, ranks, *, methods=METHODS, replicates=5, random_state=0, n_jobs=1,
                holdout=0.1, solver="hals", max_iter=300, tol=1e-4, progress=None) -> RankSelection:
    """Fit NMF at each candidate rank and recommend one.

    Parameters
    ----------
    X : array-like (P, T), nonnegative
    ranks : int, str or sequence of int
        Candidates: ``8`` (1..8), ``"2:30"``, ``"2:30:2"``, ``"2,4,8"`` or a list.
    methods : subset of ("vaf", "cv", "stability")
    replicates : int
        Held-out masks per rank for "cv", and independent full fits (random starts) per rank
        for "vaf" and "stability" (VAF uses the best of them).
    random_state : int
    n_jobs : int
        Threads running fits in parallel (-1: one per core).
    holdout : float
        Fraction of entries hidden in each cross-validation mask, in (0, 0.5].
    solver : str
        Engine solver of the full fits ("hals", "mu", "als", "anls"); the cross-validation
        fits always use masked HALS (see ``caimg_nmf._rank_fits.masked_nmf``).
    max_iter, tol : iteration limit and tolerance of every fit.
    progress : callable(n) or None
        Called with 1 after each fit; :func:`count_fits` gives the total.

    Returns
    -------
    RankSelection

    Examples
    --------
    >>> from caimg_nmf.synthetic import make_matrix
    >>> X, _, _ = make_matrix(60, 80, rank=4, noise=0.05)
    >>> sel = select_rank(X, "1:7", replicates=3)
    >>> sel.recommended
    4
    """
    from .nmf._validation import check_X

    X, _, kind = check_X(X)
    X = np.asarray(X, np.float64)
    if not np.any(X):
        raise InputError("X is all zeros: there is nothing to factorize.") from None
    ranks = parse_ranks(ranks, max_rank=min(X.shape))
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(f"methods {methods!r}: choose one or more of {', '.join(METHODS)}.") from None
    if isinstance(replicates, bool) or not isinstance(replicates, (int, np.integer)) or not 1 <= replicates <= 1000:
        raise InputError(f"replicates = {replicates!r} must be an integer from 1 to 1000 (rank.replicates' "
                         "maximum).") from None
    if "stability" in methods and replicates < 2:
        raise InputError("stability compares replicate fits: it needs replicates >= 2.") from None
    if not (isinstance(holdout, (int, float)) and 0 < holdout <= 0.5):
        raise InputError(f"holdout = {holdout!r} must be a fraction in (0, 0.5].") from None
    seeds = np.random.SeedSequence(random_state).spawn(2)
    cv_seeds = [int(s.generate_state(1)[0]) for s in seeds[0].spawn(replicates)]
    fit_seeds = [int(s.generate_state(1)[0]) for s in seeds[1].spawn(replicates)]
    tick = progress or (lambda n=1: None)

    tasks = []
    for k in ranks:
        if "cv" in methods:
            tasks += [("cv", k, r) for r in range(replicates)]
        if {"vaf", "stability"} & set(methods):
            tasks += [("full", k, r) for r in range(replicates)]

    def work(task):
        what, k, r = task
        if what == "cv":
            out = fits.cv_error(X, k, holdout, cv_seeds[r], max_iter=max_iter, tol=tol)
        else:
            out = fits.full_fit(X, k, fit_seeds[r], solver=solver, max_iter=max_iter, tol=tol)
        tick(1)
        return task, out

    n_jobs = (__import__("os").cpu_count() or 1) if n_jobs in (None, -1) else max(1, int(n_jobs))
    from .nmf.fit import blas_limit

    # Many small fits: one BLAS thread each (several threads per small product only contend).
    with warnings.catch_warnings(), blas_limit(1):
        warnings.simplefilter("ignore")
        if n_jobs == 1:
            done = [work(t) for t in tasks]
        else:
            with ThreadPoolExecutor(n_jobs) as pool:
                done = list(pool.map(work, tasks))
    results = dict(done)

    n = len(ranks)
    nan = np.full(n, np.nan)
    vaf, r2, cv, cv_sd, stab = nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy()
    centred = float(np.sum((X - X.mean()) ** 2))
    total = float(np.sum(X ** 2))
    for i, k in enumerate(ranks):
        if "cv" in methods:
            errs = np.array([results[("cv", k, r)] for r in range(replicates)])
            cv[i], cv_sd[i] = errs.mean(), errs.std(ddof=1) if replicates > 1 else 0.0
        if {"vaf", "stability"} & set(methods):
            outs = [results[("full", k, r)] for r in range(replicates)]
            best = min(e for _, e in outs)
            r2[i] = 1 - best ** 2
            vaf[i] = 1 - best ** 2 * total / centred if centred > 0 else np.nan
            if "stability" in methods:
                stab[i] = fits.stability([W for W, _ in outs])
    if "vaf" not in methods:
        vaf[:], r2[:] = np.nan, np.nan
    ranks_arr = np.array(ranks)
    elbow = int(ranks_arr[fits.kneedle(ranks_arr, vaf)]) if "vaf" in methods else int(ranks_arr[0])
    recommended, reason = _recommend(ranks_arr, methods, vaf, cv, cv_sd, stab, elbow, replicates)
    settings = dict(replicates=int(replicates), holdout=float(holdout), solver=solver,
                    max_iter=int(max_iter), tol=float(tol), random_state=random_state)
    return RankSelection(ranks=ranks_arr, vaf=vaf, r2=r2, cv_error=cv, cv_error_std=cv_sd,
                         stability=stab, recommended=int(recommended), reason=reason,
                         elbow=elbow, methods=methods, settings=settings)


def _recommend(ranks, methods, vaf, cv, cv_sd, stab, elbow, replicates):
    """(rank, one-sentence reason): cross-validation first, then stability, then the elbow."""
    if "cv" in methods:
        i_min = int(np.nanargmin(cv))
        se = cv_sd[i_min] / math.sqrt(replicates)
        k = int(ranks[np.flatnonzero(cv <= cv[i_min] + se)[0]])
        why = (f"cross-validation: rank {k} is the smallest rank whose held-out error "
               f"({cv[ranks == k][0]:.4g}) is within one standard error of the minimum "
               f"({cv[i_min]:.4g} at rank {int(ranks[i_min])})")
        if i_min == len(ranks) - 1 and len(ranks) > 1:
            why += "; the held-out error was still falling at the largest rank tried, so try larger ranks"
        if "stability" in methods:
            s_k = stab[ranks == k][0]
            ok = np.flatnonzero((ranks <= k) & (stab >= STABILITY_THRESHOLD))
            if s_k < STABILITY_THRESHOLD and ok.size:
                k_cv, k = k, int(ranks[ok[-1]])
                why = (f"cross-validation and stability: held-out error points to rank {k_cv} (smallest "
                       f"rank within one standard error of the minimum, {cv[i_min]:.4g} at rank "
                       f"{int(ranks[i_min])}), but replicate fits do not agree on its components "
                       f"(stability {s_k:.3f} < {STABILITY_THRESHOLD}), so the largest stable rank "
                       f"below it, {k}, is chosen (held-out error {cv[ranks == k][0]:.4g})")
    elif "stability" in methods:
        below = np.flatnonzero(stab < STABILITY_THRESHOLD)
        if below.size == 0:
            k = int(ranks[-1])
            why = (f"stability: replicate fits agree (>= {STABILITY_THRESHOLD}) at every rank tried, "
                   f"so the largest, {k}, is chosen; try larger ranks")
        elif below[0] == 0:
            k = elbow
            why = (f"stability is below {STABILITY_THRESHOLD} already at rank {int(ranks[0])}, so the "
                   f"VAF elbow ({elbow}) is used")
        else:
            k = int(ranks[below[0] - 1])
            why = (f"stability: rank {k} is the largest before the replicate fits stop agreeing "
                   f"(stability {stab[below[0]]:.3f} < {STABILITY_THRESHOLD} at rank {int(ranks[below[0]])})")
    else:
        k = elbow
        why = (f"VAF elbow: rank {k} is where the variance-explained curve bends most (kneedle rule); "
               "this is a heuristic that depends on the ranks tried")
    extra = []
    if "vaf" in methods and not why.startswith("VAF"):
        extra.append(f"the VAF elbow is at {elbow}")
    if "stability" in methods and "cv" in methods:
        s, above = stab[ranks == k][0], stab[ranks > k]
        extra.append(f"stability at {k} is {s:.3f}" + (f" and falls to {np.nanmin(above):.3f} above it"
                                                       if above.size else ""))
    return k, f"Recommended rank {k} by {why}" + (f" ({'; '.join(extra)})." if extra else ".")
