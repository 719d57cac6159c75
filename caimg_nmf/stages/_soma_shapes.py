"""Filled somata in a mean image, at several sizes, with a threshold calibrated on the recording.

With GCaMP6s (Neurofinder 01.01) many somata are filled blobs, not the bright ring round a dark
nucleus that :func:`.somata.find_somata` looks for. :func:`find_filled_somata` looks for them at
several radii (0.6 to 1.6 x half the cell diameter).

Score. For each radius r: the mean over a disc of radius r minus the mean over an annulus round it
(1.25 r to 2 r), both over pixels no cell found covers (nor a margin of ``MARGIN`` diameters round
them: a cell's light reaches past its mask, and the gap between cells found looks like a blob), and
the smaller of that contrast in what the cells found leave of the mean image and in the mean image
itself. The radius at a pixel is the one of largest contrast (the size that fits); the score is that
contrast over the robust standard deviation (median absolute deviation) of the same filter on the
noise image (half the difference of the even- and odd-frame means: the mean image's noise and none
of its structure), i.e. in units of the recording's own noise at that scale. A blob that a radius
``GUARD`` x the largest fits better is larger than a soma (a bump of the background) and is left out.

Threshold, from the recording: the same score map of the noise image, its local maxima the null.
The threshold is the value that ``false_per_field`` of those maxima exceed (the largest one, for 1;
below 1 extrapolated along the tail of their distribution): noise alone then gives about that many
false somata over the field, on any recording.

Not a texture test: neuropil and the dark gaps between densely packed cells make blobs as readily
as somata (the negated image, tried as a second null, has as many peaks above any threshold as the
image itself on both development recordings, 0101_left and top), so where the mean image is textured
well above its noise (long recordings) this finds many false somata. :func:`texture_to_noise`
measures that; the pipeline's ``somata.filled = "auto"`` runs the search only where it is small.
Measured (README, Performance): Neurofinder 01.01 left half F1 0.076 -> 0.21 (ratio 4.2, searched),
00.00 top unchanged at 0.519 (ratio 12.1, not searched; forced on, 0.44).

Touching somata make one blob that a large disc fits about as well as each fits its own; a blob whose
bright region holds two discs of the smallest radius or more (maxima of its distance transform, the
classic split of touching objects) is split into them.

Footprints: the disc at each soma's radius, a pixel two discs share given to the one it is nearer to
(in radii); flat (1 inside).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.signal import fftconvolve

#: radii tried, in units of half the cell diameter (the issue's 0.6-1.6 x the diameter)
RADIUS_FACTORS = (0.6, 0.8, 1.0, 1.25, 1.6)
#: the guard radius, past the largest tried, as a multiple of it
GUARD = 1.25
#: margin round the cells found (cell diameters) that a soma must keep out of
MARGIN = 0.3


@dataclass
class FilledSomata:
    """Somata found by :func:`find_filled_somata` (strongest first)."""
    centres: np.ndarray      # (N, 2) int: row, col of each soma's centre
    scores: np.ndarray       # (N,) float32: disc-minus-annulus contrast in noise units
    radii: np.ndarray        # (N,) float: the radius (px) that scored best
    masks: np.ndarray        # (N, H, W) bool: footprints (discs split between touching neighbours)
    threshold: float         # the calibrated score threshold
    n_noise_peaks: int       # local maxima of the noise image's score map (the null's size)

    @property
    def n_somata(self) -> int:
        return int(self.centres.shape[0])


def _blob_kernels(r: float):
    """Disc (radius r) and annulus (1.25 r to 2 r) indicator kernels."""
    ri = int(np.ceil(2.0 * r))
    yy, xx = np.mgrid[-ri:ri + 1, -ri:ri + 1]
    rr = np.hypot(yy, xx)
    return (rr <= r).astype(np.float64), ((rr > 1.25 * r) & (rr <= 2.0 * r)).astype(np.float64)


def _disc_structure(radius: float) -> np.ndarray:
    ri = max(1, int(round(radius)))
    yy, xx = np.mgrid[-ri:ri + 1, -ri:ri + 1]
    return np.hypot(yy, xx) <= radius


def _correlate(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # symmetric kernel: convolution is correlation; reflected edges make no step. FFT: kernels up to
    # 3 cell diameters across would take seconds each by direct correlation on 512 x 512
    p = kernel.shape[0] // 2
    return fftconvolve(np.pad(image, p, mode="reflect"), kernel, mode="valid")


def _score_maps(images, noise_image: np.ndarray, radii, free: np.ndarray):
    """Contrast maps at the radius that fits best, for the images and for the noise image.

    The radius at a pixel is the one of largest contrast in image units (disc mean minus annulus
    mean; at each radius the smallest over ``images``): for a disc of light that is its own radius,
    while the midpoint of two touching somata fits a large disc worse than either soma fits its own.
    (In noise units larger discs would win: they average more pixels.) Its score is that contrast
    over the noise image's robust standard deviation at that radius.

    Means over the disc and the annulus are taken over the ``free`` pixels only (those no cell
    found covers): what a cell found leaves of the mean image round its edge (its footprint x mean
    trace is not the cell's exact light) would otherwise make the gap between cells a blob. Pixels
    whose disc or annulus is less than a third free score 0. Linear in the image for a given
    ``free``, so the noise image's response is the noise of the image's.

    Returns
    -------
    best, which, best_noise : score (noise units) of the images and its radius index, and the score
        of the noise image at the radius that fits it best.
    """
    shape = noise_image.shape
    best, best_contrast = np.zeros(shape), np.full(shape, -np.inf)
    best_noise, best_noise_contrast = np.zeros(shape), np.full(shape, -np.inf)
    which = np.zeros(shape, np.int32)
    w = free.astype(np.float64)
    floor = 1e-12 * max(max(float(np.abs(im).max()) for im in images), 1e-30)
    for i, r in enumerate(radii):
        disc, annulus = _blob_kernels(r)
        n_disc, n_annulus = _correlate(w, disc), _correlate(w, annulus)
        enough = (n_disc >= disc.sum() / 3) & (n_annulus >= annulus.sum() / 3)
        n_disc, n_annulus = np.maximum(n_disc, 1e-9), np.maximum(n_annulus, 1e-9)

        def contrast(im):
            return np.where(enough, _correlate(im * w, disc) / n_disc - _correlate(im * w, annulus) / n_annulus, 0.0)

        on_noise = contrast(noise_image)
        values = on_noise[enough]
        sd = 1.4826 * float(np.median(np.abs(values - np.median(values)))) if values.size else 0.0
        sd = max(sd, floor)
        response = np.min([contrast(im) for im in images], axis=0)
        better = response > best_contrast
        best_contrast[better], best[better], which[better] = response[better], response[better] / sd, i
        better = on_noise > best_noise_contrast
        best_noise_contrast[better], best_noise[better] = on_noise[better], on_noise[better] / sd
    return best, which, best_noise


def _peaks(score: np.ndarray, min_distance: int, border: int) -> np.ndarray:
    from skimage.feature import peak_local_max

    return peak_local_max(score, min_distance=min_distance, exclude_border=border,
                          threshold_abs=0.0).reshape(-1, 2)


def _noise_threshold(null_peaks: np.ndarray, false_per_field: float) -> float:
    """The score that ``false_per_field`` of the noise image's peaks exceed (field areas are equal).

    At 1 or more, read off the sorted peaks (1: the largest). Below 1, extrapolated: the number of
    peaks above u of a smooth noise field falls as exp(-u^2 / 2 s^2) (Rice), so log(count) is fitted
    as a line in u^2 over the largest ``_TAIL`` peaks and solved for ``false_per_field``. (The largest
    null peak alone is exceeded by the image's largest noise peak half the time: a movie of pure noise
    would get a false soma on every other run.)"""
    v = np.sort(np.asarray(null_peaks, np.float64))[::-1]
    v = v[v > 0]
    if false_per_field >= 1 or len(v) < 4:
        n = int(np.ceil(false_per_field)) - 1
        return float(v[max(n, 0)]) if len(v) > max(n, 0) else 0.0
    top = v[:_TAIL]
    counts = np.arange(1, len(top) + 1, dtype=np.float64)
    slope, intercept = np.polyfit(top ** 2, np.log(counts), 1)
    if not slope < 0:   # a flat tail: no extrapolation to trust, the largest peak
        return float(v[0])
    return float(max(np.sqrt(max((np.log(false_per_field) - intercept) / slope, 0.0)), v[0]))


#: null peaks the tail fit of :func:`_noise_threshold` uses
_TAIL = 20


def _footprints(centres, radii, shape) -> np.ndarray:
    """Discs at each soma's radius; a pixel that two discs share goes to the one it is nearer to in
    radii (|p - c| / r), so touching neighbours split along the line where they meet."""
    H, W = shape
    discs = np.zeros((len(centres), H, W), bool)
    nearest = np.full((H, W), np.inf)
    owner = np.full((H, W), -1)
    yy, xx = np.mgrid[:H, :W]
    for k, ((y, x), r) in enumerate(zip(centres, radii)):
        d = np.hypot(yy - y, xx - x) / r
        discs[k] = d <= 1
        closer = discs[k] & (d < nearest)
        nearest[closer], owner[closer] = d[closer], k
    for k in range(len(centres)):
        discs[k] &= owner == k
    return discs


def _split_touching(image, centres, scores, radii, smallest):
    """Somata that touch make one blob that a large disc fits about as well as each fits its own: split
    a blob whose bright region (brighter than halfway between its surroundings and its disc) holds
    two or more discs of at least the smallest radius apart (maxima of its distance transform)."""
    from skimage.feature import peak_local_max

    H, W = image.shape
    smooth = ndi.gaussian_filter(np.asarray(image, np.float64), 1.0)
    out_c, out_s, out_r = [], [], []
    for (y, x), score, r in zip(centres, scores, radii):
        ri = int(np.ceil(2.0 * r))
        y0, y1, x0, x1 = max(0, y - ri), min(H, y + ri + 1), max(0, x - ri), min(W, x + ri + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        rr = np.hypot(yy - y, xx - x)
        patch = smooth[y0:y1, x0:x1]
        inner, around = patch[rr <= r].mean(), patch[(rr > 1.25 * r) & (rr <= 2.0 * r)].mean()
        lab, _ = ndi.label((rr <= 1.6 * r) & (patch > 0.5 * (inner + around)))
        region = ndi.binary_fill_holes(lab == lab[y - y0, x - x0]) if lab[y - y0, x - x0] else None
        parts = np.zeros((0, 2), int)
        if region is not None:
            depth = ndi.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
            parts = peak_local_max(depth, min_distance=max(2, int(round(1.5 * smallest))),
                                   threshold_abs=0.8 * smallest, exclude_border=False).reshape(-1, 2)
        if len(parts) < 2:
            out_c.append((y, x)), out_s.append(score), out_r.append(r)
            continue
        for py, px in parts:
            out_c.append((py + y0, px + x0)), out_s.append(score)
            out_r.append(float(np.clip(depth[py, px] + 0.5, smallest, r)))
    return (np.asarray(out_c, np.int64).reshape(-1, 2), np.asarray(out_s, np.float32), np.asarray(out_r))


def texture_to_noise(image, noise_image, diameter, covered=None) -> float:
    """How far the structure of ``image`` stands above its noise at the scale of a cell: the robust
    spread (MAD) of the disc-minus-annulus contrast at radius half a ``diameter`` in ``image`` over
    that in ``noise_image`` (both over the ``free`` pixels). About 1 for an image of noise alone; it
    grows with the recording's length, as the mean image's noise falls and its texture (neuropil,
    vessels, the gaps between cells) stays. The noise-calibrated threshold of
    :func:`find_filled_somata` bounds false somata from noise only, so it is trusted where this is small.
    ``covered``: pixels of cells found, left out with a margin of ``MARGIN`` diameters, as there.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> noise = rng.normal(size=(96, 96))
    >>> round(texture_to_noise(rng.normal(size=(96, 96)), noise, 10.0), 1)
    1.0
    """
    disc, annulus = _blob_kernels(diameter / 2.0)
    kernel = disc / disc.sum() - annulus / annulus.sum()
    sel = np.ones(np.shape(image), bool)
    if covered is not None:
        sel = ~ndi.binary_dilation(np.asarray(covered, bool), _disc_structure(MARGIN * diameter))
    if sel.sum() < 16:
        sel = np.ones(np.shape(image), bool)

    def spread(im):
        v = _correlate(np.asarray(im, np.float64), kernel)[sel]
        return 1.4826 * float(np.median(np.abs(v - np.median(v))))

    return spread(image) / max(spread(noise_image), 1e-30)


def find_filled_somata(image, diameter, noise_image, *, mean_image=None, covered=None, taken=None,
                       false_per_field=1.0, max_overlap=0.1,
                       radius_factors=RADIUS_FACTORS) -> FilledSomata:
    """Filled somata brighter than their surroundings, thresholded for ``false_per_field`` false
    ones from noise (see the module's docstring).

    Parameters
    ----------
    image : ndarray (H, W)
        The mean image, or what the cells found leave of it (their footprints x mean traces taken off).
    mean_image : ndarray (H, W), optional
        With ``image`` what cells leave of it: the mean image itself, in which a soma must stand out
        too (taking off a cell's footprint x mean trace leaves its surroundings brighter than it
        was, and the gap between cells a blob).
    diameter : float
        Cell diameter in pixels.
    noise_image : ndarray (H, W)
        The mean image's noise (:func:`.somata.split_noise_image`).
    covered : ndarray (H, W) bool, optional
        Pixels of cells already found from activity; with a margin of ``MARGIN`` cell diameters (their
        light reaches past their masks), neither in a soma's contrast nor in its footprint.
    taken : ndarray (H, W) bool, optional
        Pixels of somata already found (discs: no margin).
    max_overlap : float
        A soma is kept only when at most this fraction of its footprint lies in ``covered``.
    false_per_field : float
        Somata that noise alone would give over the field at the threshold.
    radius_factors : sequence of float
        Radii tried, in half cell diameters.

    Returns
    -------
    FilledSomata
    """
    img = np.asarray(image, np.float64)
    # one radius more, past the largest: a blob that fits it best is larger than a soma (a bump of the
    # background, the light between cells), and is left out
    factors = np.asarray(radius_factors, np.float64)
    radii = np.append(factors, factors[-1] * GUARD) * diameter / 2.0
    free = np.ones(img.shape, bool)
    if covered is not None:   # with a margin: a cell's light reaches past its mask
        free = ~ndi.binary_dilation(np.asarray(covered, bool), _disc_structure(MARGIN * diameter))
    if taken is not None:
        free &= ~np.asarray(taken, bool)
    images = [img] if mean_image is None else [img, np.asarray(mean_image, np.float64)]
    best, which, best_noise = _score_maps(images, np.asarray(noise_image, np.float64), radii, free)
    min_distance = max(2, int(round(0.6 * diameter)))
    border = max(1, int(round(0.4 * diameter)))
    null = best_noise[tuple(_peaks(best_noise, min_distance, border).T)]
    threshold = _noise_threshold(null, false_per_field)
    found = _peaks(best, min_distance, border)
    scores = best[found[:, 0], found[:, 1]]
    keep = (scores > threshold) & (which[found[:, 0], found[:, 1]] < len(factors))
    found, scores = found[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    found, scores = found[order], scores[order]
    r = radii[which[found[:, 0], found[:, 1]]]
    found, scores, r = _split_touching(img, found, scores, r, radii[0])
    masks = _footprints(found, r, img.shape)
    if (covered is not None or taken is not None) and len(found):
        # the light of a cell found reaches past its mask, and the gap between cells can look like a
        # blob: keep a soma only when at most max_overlap of its disc lies in cells found or their margin
        inside = np.array([(~free & m).sum() / max(m.sum(), 1) for m in masks])
        own = inside <= max_overlap
        found, scores, r, masks = found[own], scores[own], r[own], masks[own]
    return FilledSomata(centres=found.astype(np.int64), scores=scores.astype(np.float32), radii=r,
                        masks=masks, threshold=float(threshold), n_noise_peaks=int(len(null)))
