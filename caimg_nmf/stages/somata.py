"""Somata seen in the mean image: cells that are there but barely fire in the recording.

Activity-based detection (local NMF on the movie's fluctuations) cannot find a cell that does not
fire, and finds a weakly firing one only when its events stand out. Yet with a cytosolic indicator
such as GCaMP a soma is visible in the mean image: a ring of bright cytoplasm around a darker
nucleus, the shape annotators draw around. This stage finds those rings and adds, as cells, the ones
that no activity-found cell covers.

The contrast image: the mean image minus its Gaussian blur over three cell diameters, averaged over
the dimmest quarter of a ring (0.5 to 1.1 cell radii) minus the average over the centre disc (0.5
radii): a soma's ring is bright all round, while the edge of one bright neighbour lights one side
only. Divided by the local standard deviation (on the same three diameters), its values are turned
into robust z-scores over the frame (median, MAD), so ``min_contrast`` reads in units of the image's
own contrast. A candidate is a local maximum at least ``min_contrast`` high, at least 0.8 cell
diameters from the next one, whose centre is darker than its surroundings (0.65 to 1 diameter
out), and, given an image of the mean image's noise (half the difference of the means of the even
and the odd frames), whose contrast stands ``min_noise_z`` robust standard deviations above what
that noise gives: the z-score alone is relative, and finds "somata" in any texture, noise included.
Its footprint is a disc of one cell diameter about the centre; it is added when at most
``max_overlap`` of that disc lies inside the masks of the cells already found. The pipeline looks
in what the cells found leave of the mean image (their footprints x mean traces subtracted), where
the dark gap between three bright cells no longer looks like a ring.

Traces of added cells are fitted on the movie with everything else held fixed: the movie minus the
other cells' footprints x traces, the background components and the static baseline, projected on
the discs by least squares, in the units of every other trace (fluorescence at the footprint's
peak). The pipeline does not clip them at 0: a dark nucleus makes a disc dimmer than the smooth
background model beneath it. Those components do not follow the neuropil at the scale of one cell,
so the residual's mean over a ring round each soma (0.65 to 1 diameter out, cells left out) is its
neuropil, ``neuropil_coefficient`` of whose fluctuations is taken off the disc before the fit
(:mod:`._fixed_traces`).

On the Neurofinder development recording (600 x 256 x 512, 155 annotated neurons) this took F1 from
0.319 to 0.519 (README, Performance); the thresholds were chosen on that recording.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..errors import InputError
from ._fixed_traces import fit_fixed_traces, neuropil_rings
from ._local_fit import windows_to_dense

__all__ = ["Somata", "soma_contrast", "split_noise_image", "find_somata", "disc_footprints", "fit_fixed_traces",
           "neuropil_rings"]


@dataclass
class Somata:
    """Somata found by :func:`find_somata` (fields: ``centres`` (N, 2) row, col; ``scores`` (N,)
    contrast z-scores; ``radius`` of their discs; ``n_candidates``, the somata found before those
    that cells already found cover were left out)."""
    centres: np.ndarray      # (N, 2) int: row, col of each soma's centre
    scores: np.ndarray       # (N,) float32: the contrast z-score at the centre
    radius: float            # disc radius in pixels (half a cell diameter)
    n_candidates: int = 0    # rings found before those covered by cells already found were left out

    @property
    def n_somata(self) -> int:
        return int(self.centres.shape[0])


def _kernel(inside: np.ndarray) -> np.ndarray:
    k = inside.astype(np.float64)
    return k / k.sum()


def soma_contrast(mean_image: np.ndarray, diameter: float, noise_image=None):
    """Ring-minus-centre contrast of a mean image, as robust z-scores, the nucleus darkness, and the
    contrast over its noise.

    Parameters
    ----------
    mean_image : ndarray (H, W)
    diameter : float
        Cell diameter in pixels.
    noise_image : ndarray (H, W), optional
        An image with the mean image's noise and none of its structure (:func:`split_noise_image`).

    Returns
    -------
    z : ndarray (H, W) float32
        (dimmest quarter of the ring - centre) of the locally normalised image, minus its median
        over the frame, over 1.4826 x its median absolute deviation.
    darkness : ndarray (H, W) float32
        Mean of the surroundings (0.65 to 1 diameter out) minus the centre mean: > 0 where the
        centre is darker than what lies around the cell.
    significance : ndarray (H, W) float32 or None
        The same contrast in image units, minus the median of the contrast of ``noise_image``, over
        its robust standard deviation (median absolute deviation): how far it stands out from what
        noise alone gives (None without a noise image).
    """
    img = np.asarray(mean_image, np.float64)
    r = diameter / 2.0
    scale = 3.0 * diameter
    half = int(np.ceil(2 * r)) + 1
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    rr = np.hypot(yy, xx)
    angle = np.arctan2(yy, xx)
    ring = (rr > 0.5 * r) & (rr <= 1.1 * r)
    # the ring's dimmest quarter: a soma is bright all round, while the edge of one bright
    # neighbour lights up one side only
    quarters = [_kernel(ring & (np.abs(np.angle(np.exp(1j * (angle - a)))) <= np.pi / 4 + 1e-9))
                for a in (0, np.pi / 2, np.pi, -np.pi / 2)]
    centre = _kernel(rr <= 0.5 * r)
    around = _kernel((rr > 1.3 * r) & (rr <= 2.0 * r))

    def contrasts(image):   # (dimmest quarter - centre, surroundings - centre), in image units
        local = image - ndi.gaussian_filter(image, scale, mode="reflect")
        mean_centre = ndi.correlate(local, centre, mode="reflect")
        dimmest = np.min([ndi.correlate(local, q, mode="reflect") for q in quarters], axis=0)
        return local, dimmest - mean_centre, ndi.correlate(local, around, mode="reflect") - mean_centre

    local, contrast, darkness = contrasts(img)
    # normalised by the local spread, which varies over three diameters: dividing after averaging over
    # one is nearly the same as averaging the normalised image
    spread = np.sqrt(ndi.gaussian_filter(local ** 2, scale, mode="reflect"))
    normalised = contrast / np.maximum(spread, 1e-12 * max(float(np.abs(img).max()), 1e-30))
    z = _robust_z(normalised)
    significance = None
    if noise_image is not None:
        null = contrasts(np.asarray(noise_image, np.float64))[1]
        centre_null = np.median(null)
        sd_null = 1.4826 * np.median(np.abs(null - centre_null))
        if not sd_null > 0:
            raise InputError("soma_contrast: the noise image is constant, so it says nothing of the mean "
                             "image's noise; pass None to leave that test out.") from None
        significance = ((contrast - centre_null) / max(sd_null, 1e-30)).astype(np.float32)
    return z, darkness.astype(np.float32), significance


def _robust_z(values: np.ndarray) -> np.ndarray:
    med = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - med))
    return ((values - med) / max(mad, 1e-12)).astype(np.float32)


def split_noise_image(frames, chunk: int = 256) -> np.ndarray:
    """Half the difference between the mean of the even frames and the mean of the odd ones.

    Cells, background and slow changes cancel; what is left has the mean image's noise (with any
    spatial correlation that registration gave it): the null for :func:`find_somata`.

    Parameters
    ----------
    frames : array (T, H, W), T >= 2
        The movie (may be a memory map: it is read ``chunk`` frames at a time).
    chunk : int
        Frames read at a time (rounded down to an even number, at least 2).

    Returns
    -------
    ndarray (H, W) float32
    """
    T = frames.shape[0]
    if T < 2:
        raise InputError(f"split_noise_image needs at least 2 frames, got {T}.") from None
    chunk = max(2, chunk - chunk % 2)   # even: each block starts on an even frame
    even = np.zeros(frames.shape[1:], np.float64)
    odd = np.zeros(frames.shape[1:], np.float64)
    for t0 in range(0, T, chunk):   # chunk is even: frame parity is kept
        block = np.asarray(frames[t0:t0 + chunk], np.float32)
        even += block[0::2].sum(axis=0, dtype=np.float64)
        odd += block[1::2].sum(axis=0, dtype=np.float64)
    n_even, n_odd = (T + 1) // 2, T // 2
    return ((even / n_even - odd / n_odd) / 2).astype(np.float32)


def disc_footprints(centres: np.ndarray, radius: float, shape: tuple, out: np.ndarray | None = None) -> np.ndarray:
    """Flat disc footprints.

    Parameters
    ----------
    centres : array (N, 2) of int
        Row, col of each disc's centre, inside the frame.
    radius : float
        Disc radius in pixels.
    shape : (H, W)
    out : ndarray (N, H, W), optional
        Zeros to write the discs into.

    Returns
    -------
    ndarray (N, H, W) float32
        1 on the disc about each centre (its part inside the frame), 0 elsewhere.
    """
    H, W = shape
    centres = np.asarray(centres).reshape(-1, 2)
    if len(centres) and (not np.issubdtype(centres.dtype, np.integer) or centres.min() < 0
                         or centres[:, 0].max() >= H or centres[:, 1].max() >= W):
        raise InputError(f"disc_footprints: centres must be integer (row, col) pixels inside the {H} x {W} "
                         f"frame; got dtype {centres.dtype}, rows {centres[:, 0].min()}..{centres[:, 0].max()}, "
                         f"cols {centres[:, 1].min()}..{centres[:, 1].max()}.") from None
    ri = int(np.ceil(radius))
    yy, xx = np.mgrid[-ri:ri + 1, -ri:ri + 1]
    disc = ((yy ** 2 + xx ** 2) <= radius ** 2).astype(np.float32)
    return windows_to_dense(np.broadcast_to(disc, (len(centres),) + disc.shape), centres, ri, (H, W), out=out)


#: the smallest cell diameter (pixels) whose ring and centre hold pixels enough to compare
MIN_DIAMETER = 4.0


def find_somata(mean_image: np.ndarray, diameter: float, cfg, *, cell_masks: np.ndarray | None = None,
                noise_image=None, also_in=None) -> Somata:
    """Find somata (bright rings around a dimmer centre) in a mean image that no cell covers yet.

    Parameters
    ----------
    mean_image : ndarray (H, W)
    diameter : float
        Cell diameter in pixels.
    cfg : SomataConfig
        ``min_contrast``, ``min_noise_z`` and ``max_overlap``.
    cell_masks : ndarray (K, H, W) or (H, W) bool, optional
        Masks of the cells already found (or their union); a soma whose disc lies more than
        ``max_overlap`` inside them is left out.
    noise_image : ndarray (H, W), optional
        An image with the mean image's noise and none of its structure (:func:`split_noise_image`).
        Given, a soma must also stand out from noise: its contrast at least ``cfg.min_noise_z``
        robust standard deviations of the contrast of that image. The z-score threshold is
        relative to the image's own contrast, so without this check any texture, noise
        included, yields some somata.
    also_in : ndarray (H, W), optional
        With ``noise_image``: a second image (the mean image itself, when ``mean_image`` is what the
        cells found leave of it) in which the ring must also stand ``min_noise_z`` above noise.
        Taking a cell's footprint x mean trace off can leave a dark pit beside it (its footprint's tail
        reaches past its mask), which with the cell's light round it looks like a ring in what is left
        and like nothing in the mean image: measured, one false soma on each of 2 of 4 nucleus-free
        synthetic movies (``sizes`` scenario) without this, none with it; Neurofinder 00.00 top
        and 01.01 left unchanged (F1 0.519, 0.210).

    Returns
    -------
    Somata
        Strongest contrast first.

    Examples
    --------
    >>> import numpy as np
    >>> from caimg_nmf.config import SomataConfig
    >>> yy, xx = np.mgrid[:64, :64]
    >>> rr = np.hypot(yy - 32, xx - 20)
    >>> image = 1.0 + ((rr > 2.5) & (rr <= 5)) - 0.3 * (rr <= 2.5)   # a ring round a dim nucleus
    >>> find_somata(image, 10, SomataConfig()).centres.tolist()
    [[32, 20]]
    """
    from skimage.feature import peak_local_max

    img = np.asarray(mean_image)
    if img.ndim != 2:
        raise InputError(f"find_somata needs a 2-D mean image, got shape {img.shape}.") from None
    if not np.all(np.isfinite(img)):
        raise InputError("find_somata: the mean image holds NaN or infinite values; replace them "
                         "(e.g. np.nan_to_num) before looking for somata.") from None
    if not (np.isfinite(diameter) and diameter >= MIN_DIAMETER):
        raise InputError(f"find_somata: the cell diameter must be a number of at least {MIN_DIAMETER:g} pixels "
                         f"(a ring round a nucleus), got {diameter}. Bin less, or turn the search off "
                         "(somata.enabled = false).") from None
    if cell_masks is not None and (np.ndim(cell_masks) not in (2, 3) or np.shape(cell_masks)[-2:] != img.shape):
        raise InputError(f"find_somata: cell_masks has shape {np.shape(cell_masks)}; it must be (K, H, W) or "
                         f"(H, W) with (H, W) = {img.shape}, the mean image's.") from None
    if also_in is not None and np.shape(also_in) != img.shape:
        raise InputError(f"find_somata: also_in has shape {np.shape(also_in)}; it must be {img.shape}, the "
                         "mean image's.") from None
    if noise_image is not None and np.shape(noise_image) != img.shape:
        raise InputError(f"find_somata: noise_image has shape {np.shape(noise_image)}; it must be "
                         f"{img.shape}, the mean image's.") from None
    radius = diameter / 2.0
    z, darkness, significance = soma_contrast(img, diameter, noise_image)
    if also_in is not None and significance is not None:   # it must stand out from noise in both images
        significance = np.minimum(significance, soma_contrast(np.asarray(also_in, np.float64), diameter,
                                                              noise_image)[2])
    border = max(1, int(round(radius)) - 1)   # keep discs mostly inside the frame
    peaks = peak_local_max(z, min_distance=max(1, int(0.8 * diameter)), threshold_abs=cfg.min_contrast,
                           exclude_border=border)
    peaks = peaks.reshape(-1, 2)
    keep = darkness[peaks[:, 0], peaks[:, 1]] > 0
    if significance is not None:
        keep &= significance[peaks[:, 0], peaks[:, 1]] >= cfg.min_noise_z
    peaks = peaks[keep]
    n_candidates = len(peaks)
    if len(peaks) and cell_masks is not None and len(cell_masks):
        covered = np.asarray(cell_masks, bool)
        covered = covered.any(axis=0) if covered.ndim == 3 else covered
        ri = int(np.ceil(radius))
        yy, xx = np.mgrid[-ri:ri + 1, -ri:ri + 1]
        disc = ((yy ** 2 + xx ** 2) <= radius ** 2).astype(np.float64)
        # the fraction of each disc (its part inside the frame) that cells already found cover
        inside = ndi.correlate(covered.astype(np.float64), disc, mode="constant")
        area = ndi.correlate(np.ones(covered.shape), disc, mode="constant")
        fraction = inside[peaks[:, 0], peaks[:, 1]] / area[peaks[:, 0], peaks[:, 1]]
        peaks = peaks[fraction <= cfg.max_overlap]
    scores = z[peaks[:, 0], peaks[:, 1]] if len(peaks) else np.zeros(0, np.float32)
    order = np.argsort(-scores, kind="stable")
    return Somata(centres=peaks[order].astype(np.int64), scores=scores[order].astype(np.float32),
                  radius=float(radius), n_candidates=int(n_candidates))
