"""Diagnostic figures: reconstruction vs the movie, rank selection, NMF loss."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ._common import SkipFigure, empty_axes, font_scale, line_width, new_figure, robust_limits, single_width, size_scale, styled

__all__ = ["reconstruction", "reconstruct_frames", "default_frames", "rank_selection", "nmf_loss"]


def default_frames(result, n: int = 3) -> list[int]:
    """``n`` frames worth showing: the most active, a median and the least active frame (by the
    summed traces), in time order."""
    T = result.n_frames
    if T == 0:
        return []
    activity = result.traces.sum(axis=0) if result.n_cells else np.zeros(T)
    order = np.argsort(activity, kind="stable")
    picks = [order[-1], order[len(order) // 2], order[0]]
    if n > 3:
        picks += list(np.linspace(0, T - 1, n - 3).astype(int))
    out = []
    for p in picks:
        if int(p) not in out:
            out.append(int(p))
    return sorted(out[:n])


def reconstruct_frames(result, frames) -> np.ndarray:
    """Model frames: footprints · traces, plus background (``background/footprints`` ·
    ``background/traces``) and ``baseline`` (scalar, (H, W), (T,) or (T, H, W)) when saved.

    Summed in float64 over blocks of components, so that no float64 copy of all footprints (a
    gigabyte for 500 cells of 512 × 512) is made."""
    frames = np.asarray(frames, int)
    H, W = result.frame_shape
    out = np.zeros((len(frames), H * W))
    _add_components(out, result.footprints, result.traces, frames)
    bf, bt = result.get("background/footprints"), result.get("background/traces")
    if bf is not None and bt is not None and len(bf):
        _add_components(out, bf, np.reshape(bt, (len(bf), -1)), frames)
    out = out.reshape(len(frames), H, W)
    base = result.get("baseline")
    if base is not None:
        base = np.asarray(base, np.float64)
        if base.ndim == 0 or base.shape == (H, W):
            out += base
        elif base.ndim == 1 and len(base) == result.n_frames:
            out += base[frames][:, None, None]
        elif base.ndim == 3 and base.shape[1:] == (H, W):
            out += base[frames]
    return out


def _add_components(out, footprints, traces, frames, block: int = 32) -> None:
    """``out`` (F, P) += traces[:, frames]ᵀ · footprints (K, ...) flattened, ``block`` components at a time."""
    weights = np.asarray(traces, np.float64)[:, frames].T
    for k0 in range(0, len(footprints), block):
        A = np.asarray(footprints[k0:k0 + block], np.float64).reshape(-1, out.shape[1])
        out += weights[:, k0:k0 + len(A)] @ A


def reconstruction(result, movie, frames=None, *, style=None):
    """Original frames vs the model (cells + background + baseline) vs the residual, one row per
    frame. ``movie`` is an array (T, H, W) or a :class:`caimg_nmf.io.Movie` (only the frames shown
    are read); it must be the movie the result describes (same frame size, registered)."""
    with styled(style):
        if movie is None:
            raise SkipFigure("no movie given for the reconstruction figure")
        shape = tuple(getattr(movie, "shape", np.shape(movie)))
        H, W = result.frame_shape
        if len(shape) != 3 or shape[1:] != (H, W):
            raise InputError(f"the movie's shape {shape} does not match the result's frames {(H, W)}; "
                             "give the (registered, cropped) movie the result was computed from.")
        T = min(shape[0], result.n_frames)
        frames = default_frames(result) if frames is None else [int(f) for f in np.ravel(frames)]
        bad = [f for f in frames if not 0 <= f < T]
        if bad or not frames:
            raise InputError(f"frames {bad or frames} out of range 0…{T - 1}.")
        # the model is in movie units plus the offset a movie with negative values was given
        offset = _finite_or_zero(result.attrs.get("input_offset"))
        orig = np.stack([np.asarray(movie[f:f + 1], np.float64)[0] for f in frames]) + offset
        model = reconstruct_frames(result, frames)
        resid = orig - model
        n = len(frames)
        panel = single_width() * 2 / 3.25
        fig = new_figure(single_width() * 2, n * panel * H / W + 0.45 * font_scale())
        axes = fig.subplots(n, 3, squeeze=False)
        vmin, vmax = robust_limits(np.concatenate([orig.ravel(), model.ravel()]), 0.5, 99.8)
        r = float(np.percentile(np.abs(resid), 99.5)) or 1.0
        fr = result.frame_rate
        for i, f in enumerate(frames):
            im0 = axes[i, 0].imshow(orig[i], cmap="gray", vmin=vmin, vmax=vmax, interpolation="none")
            axes[i, 1].imshow(model[i], cmap="gray", vmin=vmin, vmax=vmax, interpolation="none")
            im2 = axes[i, 2].imshow(resid[i], cmap="RdBu_r", vmin=-r, vmax=r, interpolation="none")
            for ax in axes[i]:
                empty_axes(ax)
            rel = np.linalg.norm(resid[i]) / max(np.linalg.norm(orig[i]), 1e-12)
            axes[i, 0].set_ylabel(f"frame {f}\n{f / fr:.1f} s", fontsize=6.5 * font_scale())
            axes[i, 2].text(0.98, 0.03, f"{100 * rel:.1f}% of |frame|", transform=axes[i, 2].transAxes,
                            ha="right", va="bottom", fontsize=5.5 * font_scale(), color="black",
                            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))
        for ax, title in zip(axes[0], ("Original", "Reconstruction", "Residual")):
            ax.set_title(title)
        cb = fig.colorbar(im0, ax=axes[:, :2], fraction=0.025, pad=0.01, shrink=0.9)
        cb.set_label("F (a.u.)")
        cb2 = fig.colorbar(im2, ax=axes[:, 2], fraction=0.05, pad=0.02, shrink=0.9)
        cb2.set_label("Residual (a.u.)")
        return fig


def _finite_or_zero(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.0
    return value if np.isfinite(value) else 0.0


def rank_selection(result, *, style=None):
    """Rank-selection curves against the rank: variance explained, cross-validated error and
    stability (whichever were saved), with the recommended rank marked."""
    with styled(style):
        ranks = result.get("rank_selection/ranks")
        if ranks is None or len(np.ravel(ranks)) == 0:
            raise SkipFigure("this result has no rank selection (extras 'rank_selection/ranks')")
        ranks = np.ravel(np.asarray(ranks, np.float64))
        curves = []
        for key, label, color in (("vaf", "Variance explained", "#0072B2"),
                                  ("cv_error", "CV error", "#D55E00"),
                                  ("stability", "Stability", "#009E73")):
            v = result.get(f"rank_selection/{key}")
            if v is not None and len(np.ravel(v)) == len(ranks):
                curves.append((label, np.ravel(np.asarray(v, np.float64)), color))
        if not curves:
            raise SkipFigure("rank selection has no curves with one value per rank")
        rec = result.get("rank_selection/recommended")
        rec = float(np.ravel(rec)[0]) if rec is not None and np.size(rec) else None
        fig = new_figure(single_width(), (0.9 + 0.85 * len(curves)) * size_scale())
        axes = fig.subplots(len(curves), 1, sharex=True, squeeze=False)[:, 0]
        for ax, (label, v, color) in zip(axes, curves):
            ax.plot(ranks, v, "o-", color=color, lw=line_width())
            ax.set_ylabel(label)
            if rec is not None:
                ax.axvline(rec, color="0.3", ls="--", lw=line_width(0.8), zorder=0)
                hit = np.flatnonzero(ranks == rec)
                if hit.size:
                    import matplotlib as mpl

                    ax.plot([rec], [v[hit[0]]], "o", mfc="none", mec="black", mew=line_width(),
                            ms=1.9 * float(mpl.rcParams["lines.markersize"]))
        axes[-1].set_xlabel("Rank (number of components)")
        if len(ranks) <= 12:
            axes[-1].set_xticks(ranks)
        if rec is not None:
            axes[0].set_title(f"Recommended rank: {rec:g}")
        return fig


def nmf_loss(result, *, style=None):
    """NMF relative error per iteration (log scale when positive)."""
    with styled(style):
        loss = np.ravel(np.asarray(result.loss, np.float64))
        if loss.size == 0:
            raise SkipFigure("this result has no NMF loss history")
        fig = new_figure(single_width(), 2.0 * size_scale())
        ax = fig.add_subplot()
        it = np.arange(1, loss.size + 1)
        ax.plot(it, loss, color="#0072B2", lw=line_width(1.1), marker="o" if loss.size <= 30 else None)
        finite = loss[np.isfinite(loss)]
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 3:
            from matplotlib.ticker import FuncFormatter, NullFormatter

            ax.set_yscale("log")
            fmt = FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(fmt)
            ax.yaxis.set_minor_formatter(fmt if finite.max() / finite.min() < 20 else NullFormatter())
        ax.set_xlabel("Iteration")
        ax.set_ylabel("Relative error")
        ax.set_xlim(0.5, loss.size + 0.5)
        if finite.size:
            ax.set_title(f"final {finite[-1]:.4g} after {loss.size} iterations", loc="right",
                         fontsize=6.5 * font_scale(), color="0.3")
        return fig
