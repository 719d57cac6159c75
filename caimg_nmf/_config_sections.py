"""The configuration's sections: one frozen dataclass per pipeline stage, each key declared once with
its default, documentation and allowed values (checked by :mod:`caimg_nmf.config`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional, Union

__all__ = ["SECTIONS", "InputConfig", "PreprocessConfig", "MotionConfig", "FactorizeConfig", "NMFConfig",
           "RankConfig", "DetectConfig", "CurateConfig", "SomataConfig", "RoisConfig", "TracesConfig", "SpikesConfig",
           "OutputConfig", "FiguresConfig"]


#: The largest integer any key accepts unless it declares a smaller ``max``.
_INT_MAX = 2**31 - 1


def _key(default, doc, *, choices=None, min=None, max=None, min_exclusive=False, length=None,
         words=None, unit=None):
    """Declare a config key: its default, its documentation and its allowed values.

    ``words``: strings accepted in place of a number (e.g. ``("auto",)`` for nmf.rank). ``unit``:
    what the number counts (``"px"``, ``"Hz"``, ``"s"``), said in messages. Every float key has a
    ``min`` and a ``max`` (inf and NaN are always refused): a value beyond them is a typo or a unit
    mix-up, and would otherwise run for hours, overflow, or find nothing without saying why."""
    if max is None and isinstance(default, int) and not isinstance(default, bool):
        max = _INT_MAX  # no count in a run comes near it: a larger value is a typo (10**18 tiles)
    meta = {"doc": doc, "choices": choices, "min": min, "max": max,
            "min_exclusive": min_exclusive, "length": length, "words": words, "unit": unit}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed; use a tuple")  # guards our own code
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------------
# Sections. Each is a frozen dataclass with a ``section`` name; add new ones to SECTIONS below.
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputConfig:
    section: ClassVar[str] = "input"
    path: str = _key("", "Movie to analyse: a TIFF file, a glob or folder of TIFFs (concatenated in "
                     "time in natural name order: frame2 before frame10; single-frame files are frames), an "
                     "HDF5 file, or a .npy file. Relative paths: to the config file's folder when written in a "
                     "config file, to the working folder when given on the command line or in code.")
    dataset: str = _key("", "HDF5 dataset holding the movie, e.g. '/mov'. Empty: the file's only 3-D dataset.")
    axes: str = _key("TYX", "Axis order of the stored movie: 'TYX' (frames first, as TIFF stores it) or "
                     "'YXT' (height x width x frames, as the NMF primer and MATLAB describe it).",
                     choices=("TYX", "YXT"))
    first_frame: int = _key(0, "First frame to use (0-based).", min=0)
    n_frames: int = _key(0, "Number of frames to use from first_frame; 0 means all.", min=0)
    check_axes: bool = _key(True, "Refuse an axis order that the data contradict (frames 8x longer than wide "
                            "while the other order gives ordinary frames, or a sample whose still image lies "
                            "along the other candidate time axis). Set false if the order given is right.")
    frame_rate: Optional[float] = _key(None, "Frames per second of the recording (time axes, ΔF/F baseline "
                                       "windows, spike inference). Omit to read it from the file (ImageJ, "
                                       "ScanImage or OME metadata; an HDF5 frame_rate/fs/fps attribute); "
                                       "when the file does not say it either, 10 Hz is assumed with a "
                                       "warning. A value set here wins over the file's. At most 10 kHz: kilohertz "
                                       "voltage imaging and line scans are the fastest recordings; a larger value is "
                                       "a unit mix-up.",
                                       min=0.0, min_exclusive=True, max=10000.0, unit="Hz")
    pixel_size_um: Optional[float] = _key(None, "Pixel size of the recording in micrometres (scale bars of the "
                                          "figures, the result's pixel_size_um). Omit to read it from the file "
                                          "(ImageJ resolution and unit, OME PhysicalSizeX; an HDF5 pixel_size_um "
                                          "or element_size_um attribute); when the file does not say it either, "
                                          "scale bars are in pixels. A value set here wins over the file's. "
                                          "From 1 nm (super-resolution) to 1 mm per pixel: a value beyond is a "
                                          "unit mix-up (nm or mm for µm).",
                                          min=0.001, max=1000.0, unit="µm")
    cell_diameter: Optional[float] = _key(None, "Typical cell diameter in pixels. Omit to estimate it "
                                          "from the movie. At least 2 px and at most a quarter of the "
                                          "frame's shorter side, both after crop and spatial_bin (checked "
                                          "once the movie's size is known).", min=2.0, max=100000.0, unit="px")


@dataclass(frozen=True)
class PreprocessConfig:
    section: ClassVar[str] = "preprocess"
    crop: tuple = _key((), "Crop [top, bottom, left, right] in pixels (Python slice bounds, bottom/right "
                       "exclusive) applied before anything else; empty for the whole frame.", length=(0, 4))
    spatial_bin: int = _key(1, "Average blocks of N x N pixels (1 = off).", min=1)
    temporal_bin: int = _key(1, "Average groups of N consecutive frames (1 = off); divides frame_rate.", min=1)
    baseline: str = _key("percentile", "How the movie is made nonnegative around its resting level: "
                         "'percentile' subtracts each pixel's baseline_percentile over time and clips at 0 "
                         "(cells stand out, static background goes); 'min' subtracts the movie's minimum; "
                         "'none' only checks that the movie is already nonnegative.",
                         choices=("percentile", "min", "none"))
    baseline_percentile: float = _key(50.0, "Percentile over time used as each pixel's baseline. The median "
                                      "is a pixel's resting level when cells fire sparsely; a low percentile "
                                      "leaves a positive noise floor after clipping that NMF spreads into "
                                      "every footprint (five-cell sample: worst footprint cosine 0.87 at 10, "
                                      "0.98 at 50).", min=0.0, max=100.0, unit="%")


@dataclass(frozen=True)
class FactorizeConfig:
    section: ClassVar[str] = "factorize"
    method: str = _key("local", "'local': cells are found where the movie's pixels co-fluctuate (correlation "
                       "image), then a local NMF fits each cell's footprint within about one cell diameter "
                       "of its seed together with smooth background components; the number of cells "
                       "follows from the data (set input.cell_diameter). 'whole': one NMF of the whole "
                       "baseline-subtracted field with nmf.rank components (the NMF primer's recipe; fine "
                       "for small, clean movies, finds background on real recordings).",
                       choices=("local", "whole"))


@dataclass(frozen=True)
class NMFConfig:
    section: ClassVar[str] = "nmf"
    rank: Union[int, str] = _key(5, "Number of components K for factorize.method = 'whole' (the local method "
                                 "finds the number of cells from the data), or \"auto\" to choose it by "
                                 "cross-validation over the ranks of the [rank] section (caimg-nmf rank "
                                 "shows the evidence).", min=1, words=("auto",))
    solver: str = _key("hals", "NMF solver.", choices=("hals", "mu", "als", "anls"))
    beta_loss: str = _key("frobenius", "Loss: 'frobenius' (Gaussian noise) or 'kullback-leibler' (Poisson "
                          "photon counts; solver 'mu' only).", choices=("frobenius", "kullback-leibler"))
    init: str = _key("nndsvda", "Initialisation.", choices=("random", "nndsvd", "nndsvda", "nndsvdar"))
    replicates: int = _key(1, "Independent starts; the lowest-error one is kept.", min=1, max=10000)
    max_iter: int = _key(300, "Iteration limit per replicate.", min=1, max=10**6)
    tol: float = _key(1e-4, "Stop when the relative decrease of the error falls below this.", min=0.0,
                      max=1.0)
    l1_W: float = _key(0.0, "L1 (sparsity) penalty on footprints.", min=0.0, max=1e12)
    l1_H: float = _key(0.0, "L1 (sparsity) penalty on traces.", min=0.0, max=1e12)
    seed: int = _key(0, "Random seed: the same input, config and seed give the same result.", min=0)
    n_jobs: int = _key(1, "Parallel workers for replicates.", min=1, max=1024)
    backend: str = _key("numpy", "Compute backend: 'numpy', or 'torch' (optional extra caimg_nmf[gpu]).",
                        choices=("numpy", "torch"))
    memory_budget_gb: float = _key(2.0, "Memory the NMF may use; larger movies are streamed from disk.",
                                   min=0.0, min_exclusive=True, max=65536.0, unit="GB")


# --- rank selection (nmf.rank = "auto" and caimg-nmf rank) -------------------------------------
@dataclass(frozen=True)
class RankConfig:
    section: ClassVar[str] = "rank"
    min_rank: int = _key(1, "Smallest rank tried when nmf.rank = \"auto\".", min=1)
    max_rank: int = _key(20, "Largest rank tried (capped at min(pixels, frames)).", min=1)
    step: int = _key(1, "Step between the ranks tried.", min=1)
    replicates: int = _key(5, "Held-out masks (cross-validation) and independent fits (stability) per rank.",
                           min=2, max=1000)
    holdout: float = _key(0.1, "Fraction of the movie's entries hidden in each cross-validation mask.",
                          min=0.0, max=0.5, min_exclusive=True)
    methods: tuple = _key(("vaf", "cv", "stability"), "Evidence computed; the recommendation uses 'cv' "
                          "when present, else 'stability', else the 'vaf' elbow.",
                          choices=("vaf", "cv", "stability"), length=(1, 2, 3))


@dataclass(frozen=True)
class RoisConfig:
    section: ClassVar[str] = "rois"
    threshold: float = _key(0.3, "A pixel belongs to a cell's mask when its footprint value is at least "
                            "this fraction of the footprint's peak (the region holding the peak is kept).",
                            min=0.0, max=1.0, min_exclusive=True)
    smooth: float = _key(0.7, "Gaussian sigma (pixels) applied to a footprint before thresholding, so that "
                          "pixel noise in the footprint does not cut its mask into pieces (0 = none).", min=0.0,
                          max=50.0, unit="px")
    fill_holes: bool = _key(True, "Fill holes enclosed by a mask: GCaMP somata are rings around a dark "
                            "nucleus, which belongs to the cell.")
    min_area: int = _key(4, "Masks smaller than this many pixels are flagged.", min=0)


@dataclass(frozen=True)
class TracesConfig:
    section: ClassVar[str] = "traces"
    baseline_percentile: float = _key(8.0, "Running percentile used as the baseline F0 of ΔF/F.", min=0.0, max=100.0)
    baseline_window_s: float = _key(30.0, "Length of the running-percentile window in seconds.",
                                    min=0.0, min_exclusive=True, max=86400.0, unit="s")


@dataclass(frozen=True)
class OutputConfig:
    section: ClassVar[str] = "output"
    path: str = _key("", "Result HDF5 file. Empty: '<input name>_caimg/result.h5' in the current folder. "
                     "Figures go to a 'figures' folder beside it. Relative paths as for input.path.")
    overwrite: bool = _key(False, "Replace an existing result at output.path (atomically).")


@dataclass(frozen=True)
class FiguresConfig:
    section: ClassVar[str] = "figures"
    enabled: bool = _key(True, "Write figures after the run.")
    formats: tuple = _key(("png", "pdf"), "File formats to write.", choices=("png", "pdf", "svg"),
                          length=(1, 2, 3))  # none would be found only after the analysis
    style: str = _key("paper", "'paper' (journal column sizes, 7 pt text), 'screen' (slides, posters), or "
                      "the path of your own matplotlib .mplstyle file.")
    dpi: int = _key(300, "Resolution of raster figures. At most 1200 (journals ask 300-600, line art "
                    "1200; a double-column figure at 1200 dpi is already ~100 megapixels).", min=50, max=1200)


@dataclass(frozen=True)
class MotionConfig:
    section: ClassVar[str] = "motion"
    method: str = _key("rigid", "Motion correction: 'none' (frames are only converted to float32), 'rigid' "
                       "(one sub-pixel translation per frame, by phase correlation with a template) or "
                       "'piecewise' (a translation per overlapping patch, blended into a smooth "
                       "displacement field; for tissue that warps). 'piecewise' falls back to 'rigid' "
                       "when the frame holds fewer than two patches.",
                       choices=("none", "rigid", "piecewise"))
    max_shift: float = _key(10.0, "Largest shift searched, in pixels along each axis; estimated shifts are "
                            "clipped to +-max_shift. It is also capped at a quarter of the frame's height "
                            "(rows) or width (columns).", min=0.0, max=10000.0, unit="px")
    upsample: int = _key(10, "Sub-pixel precision of the phase correlation: shifts are found to 1/upsample "
                         "pixel (1 = whole pixels only).", min=1, max=1000)
    template_frames: int = _key(200, "Number of frames, spread over the movie, used to build the template.", min=1)
    iterations: int = _key(1, "Template refinement passes: after registering the template frames to their "
                           "mean, register them again this many times to the improved template.", min=0, max=100)
    patch_size: int = _key(128, "Side of the square patches of 'piecewise', in pixels.", min=8)
    patch_overlap: int = _key(32, "Overlap of neighbouring patches of 'piecewise', in pixels (less than "
                              "patch_size).", min=0)
    max_deviation: float = _key(3.0, "'piecewise': largest difference, in pixels along each axis, between a "
                                "patch's shift and the frame's rigid shift.", min=0.0, max=10000.0, unit="px")
    chunk_frames: int = _key(200, "Frames read, registered and written at a time (bounds the memory used).",
                             min=1)
    spatial_filter_sigma: float = _key(1.0, "Band-pass applied before correlation, so that noise and slow "
                                       "background do not drive the registration: Gaussian smoothing with "
                                       "this sigma (pixels) minus a Gaussian 8 times wider. 0 = off. The "
                                       "registered frames themselves are not filtered.", min=0.0, max=50.0,
                                       unit="px")


@dataclass(frozen=True)
class DetectConfig:
    section: ClassVar[str] = "detect"
    summary_rate: float = _key(4.0, "Frames are averaged in groups to about this rate (Hz) for the summary "
                               "images and the footprint fit; traces are then fitted at the full rate.",
                               min=0.0, min_exclusive=True, max=10000.0, unit="Hz")
    max_binned_frames: int = _key(5000, "At most this many time-binned frames: a longer recording is binned more "
                                  "(the binned movie is held in memory with a working copy; 5000 frames of "
                                  "512 x 512 take 10-12 GB). 0 = no limit; otherwise at least 10.", min=0)
    baseline_percentile: float = _key(10.0, "Percentile over time of each (time-binned) pixel used as its "
                                      "resting level when computing the correlation and peak-to-noise images.",
                                      min=0.0, max=100.0)
    min_corr: float = _key(0.2, "Seeds need a local correlation (pixel vs. its 8 neighbours, on the "
                           "high-passed movie) of at least this.", min=-1.0, max=1.0)
    min_pnr: float = _key(6.0, "Seeds need a peak-to-noise ratio (peak of the smoothed, high-passed trace over "
                          "its noise) of at least this.", min=0.0, max=1000.0)
    seed_separation: float = _key(0.4, "Minimum distance between seeds, in cell diameters.", min=0.0,
                                  max=100.0)
    max_cells: int = _key(0, "At most this many seeds, best first (0 = no limit).", min=0)
    window_radius: float = _key(1.0, "A footprint may be nonzero only within this radius (in cell diameters) "
                                "of its seed. At least 0.8: a cell must not reach its window's rim, which "
                                "marks spread-out background (max_rim).", min=0.8, max=10.0)
    neuropil_ring: float = _key(0.0, "If > 0, each cell is fitted with its local neuropil: a ring from this "
                                "fraction of its window's radius out to the window's edge, without the pixels "
                                "of cells, with a trace of its own (Suite2p's neuropil mask, fitted jointly "
                                "with the cells; saved as /neuropil_traces, not subtracted from /traces). It takes up the halo of neuropil "
                                "that follows a cell's activity, which otherwise spreads the footprint to its "
                                "window's rim. On the Neurofinder recording 0.6 gave F1 0.287 against 0.319 "
                                "without it, and it makes the fit ~40 % slower: off by default.", min=0.0, max=0.95)
    background_spacing: float = _key(3.0, "Neuropil/background is modelled by smooth bilinear 'tent' footprints on "
                                     "a grid with this spacing (in cell diameters), each with its own trace.",
                                     min=0.5, max=1000.0)
    tile_size: int = _key(96, "The fit runs on square tiles of this many pixels (plus a margin), one at a time.",
                          min=16, max=65536)
    n_jobs: int = _key(0, "Tiles fitted at the same time, in worker processes sharing the movie (results do not "
                       "depend on it). 0: one per core this process may use (in a batch, its worker's share).",
                       min=0, max=1024)
    n_iter: int = _key(40, "Alternating HALS iterations for footprints and traces on the time-binned movie.", min=1,
                       max=10000)
    n_trace_iter: int = _key(10, "HALS iterations for the traces at the full frame rate.", min=0, max=10000)
    reseed_passes: int = _key(1, "After the first fit, look for more seeds in the residual (movie minus the fitted "
                              "cells and background) this many times, refitting after each: finds cells "
                              "hidden next to brighter ones.", min=0, max=20)
    reseed_separation: float = _key(0.4, "Seeds found in the residual must lie at least this many cell "
                                    "diameters from every existing seed.", min=0.0, max=100.0)
    max_rim: float = _key(0.15, "Components whose mask covers more than this fraction of the outer ring of their "
                          "window (radius window_radius diameters) are spread-out background, not cells: "
                          "they stay in the fit, so that their signal is not pushed onto nearby cells, and "
                          "are reported as rejected.", min=0.0, max=1.0)
    split_blobs: bool = _key(True, "Before the last fit, split a component whose footprint (the ROI rule: 0.3 x "
                             "peak after a 0.7 px blur) has two or more separate regions of at least half a "
                             "cell disc into one component per region, each then fitted with its own trace.")
    merge_corr: float = _key(0.7, "Components whose masks touch and whose detrended traces correlate at least "
                             "this much are pieces of one cell: they are merged and refitted (1 = never).",
                             min=0.0, max=1.0)


@dataclass(frozen=True)
class CurateConfig:
    section: ClassVar[str] = "curate"
    min_area: float = _key(0.5, "Reject masks smaller than this fraction of a disc of one cell diameter.", min=0.0,
                           max=100.0)
    max_area: float = _key(4.0, "Reject masks larger than this many discs of one cell diameter.", min=0.0,
                           max=10000.0)
    min_snr: float = _key(3.0, "Reject cells whose trace peak (3-frame mean, above its median) is below this "
                          "many noise standard deviations.", min=0.0, max=1000.0)
    min_concentration: float = _key(0.85, "Reject components with less than this fraction of their footprint's "
                                    "energy (sum of squares) inside their mask: a cell's footprint is concentrated "
                                    "on its soma, while noise and neuropil pieces are scattered over their window.",
                                    min=0.0, max=1.0)
    min_compactness: float = _key(0.35, "Reject masks whose area / area of the enclosing disc (about the centroid) "
                                  "is below this (long thin shapes: dendrites, vessels).", min=0.0, max=1.0)
    min_consistency: float = _key(0.6, "Reject components whose event image (the movie at the 5 % of frames where "
                                  "the trace is highest, minus the movie where it is in its lower half) correlates "
                                  "less than this with the footprint: what lights up with the trace must look like "
                                  "the footprint. -1 turns the check off.", min=-1.0, max=1.0)
    merge_overlap: float = _key(0.5, "Two cells are duplicates when the smaller mask lies at least this fraction "
                                "inside the other ...", min=0.0, max=1.0)
    merge_corr: float = _key(0.8, "... and their detrended traces correlate at least this much, or ...",
                             min=-1.0, max=1.0)
    merge_event_similarity: float = _key(0.75, "... their event images (the movie at each one's strongest frames) "
                                         "correlate at least this much: one cell whose events were split between "
                                         "components. The weaker is merged into the stronger. Above 1 turns "
                                         "this test off.", min=-1.0, max=1.01)


@dataclass(frozen=True)
class SomataConfig:
    section: ClassVar[str] = "somata"
    enabled: bool = _key(True, "Local method: add, as cells, somata seen in the mean image (a bright ring of "
                         "cytoplasm round a dimmer nucleus, as GCaMP shows them) that no activity-found cell "
                         "covers: cells that barely fire in the recording. Their footprints are discs of one "
                         "cell diameter, their traces fitted with the rest of the model fixed and corrected for "
                         "the neuropil round them; the result's /cells/origin says 'mean image' for them. "
                         "Thresholds chosen on one annotated recording (Neurofinder 00.00; README, Performance).")
    min_contrast: float = _key(2.5, "Smallest contrast of a soma (the dimmest quarter of its ring minus its "
                               "centre), in robust standard deviations (median, MAD) of that contrast over the "
                               "frame ...", min=0.0, max=1000.0)
    min_noise_z: float = _key(10.0, "... and at least this many robust standard deviations above the contrast "
                              "that the mean image's noise alone gives (measured on half the difference of the "
                              "means of even and odd frames): min_contrast is relative to the image's own "
                              "contrast and would pass texture, noise included.", min=0.0, max=1000.0)
    max_overlap: float = _key(0.1, "Leave out a soma when more than this fraction of its disc lies inside the "
                              "masks of cells already found.", min=0.0, max=1.0)
    filled: Union[bool, str] = _key("auto", "Also add filled somata (a blob brighter than the ring round it, as GCaMP6s "
                              "often shows them) at radii of 0.6 to 1.6 x half the cell diameter, footprints the "
                              "disc at the radius that fits best, touching neighbours split by a watershed. "
                              "Thresholded on the recording's own noise (false_per_field), which bounds the false "
                              "somata that noise makes, not those that texture (neuropil, the gaps between cells) "
                              "makes. 'auto': on when what the cells found leave of the mean image has at most "
                              "filled_max_texture times the noise image's spread at the cell's scale (short or "
                              "noisy recordings, where cells must be found from how they look), off otherwise "
                              "(long recordings, whose mean image is mostly texture). Saved as the result's "
                              "somata_texture_to_noise and somata_filled_search.", words=("auto",))
    filled_max_texture: float = _key(8.0, "filled = 'auto': the largest texture-to-noise ratio (robust spread of "
                                     "the disc-minus-annulus contrast at half a cell diameter, of what the cells "
                                     "found leave of the mean image over that of the noise image) at which the "
                                     "filled search runs. Neurofinder 01.01 (101 frames) has 4.2, 00.00 (600 "
                                     "frames) 12.1; a movie of pure noise 1. Visible silent cells count as "
                                     "texture: on a quiet short recording full of them set filled = true.", min=1.0, max=1000.0)
    false_per_field: float = _key(0.1, "Filled search: the threshold is the score that this many local maxima of "
                                  "the same detector on the noise image (half the difference of the even- and "
                                  "odd-frame means) exceed (1: the largest; below 1 extrapolated along their "
                                  "tail): about this many filled 'somata' per field come from noise alone (0.1: "
                                  "one false soma on one movie of pure noise in ten). Saved as the result's "
                                  "somata_filled_threshold, each one's score in /cells/filled_score.",
                                  min=0.001, max=1000.0)
    neuropil_coefficient: float = _key(0.7, "A soma's trace is fitted after this fraction of its neuropil's "
                                       "fluctuations (the mean of the movie, less the rest of the model, over a "
                                       "ring 0.65 to 1 diameter out, cells left out, minus its median; saved in "
                                       "/neuropil_traces) is taken off its pixels (as Suite2p's F - 0.7 Fneu). A "
                                       "ring with fewer pixels than the disc is not used. 0: no correction.",
                                       min=0.0, max=1.0)


@dataclass(frozen=True)
class SpikesConfig:
    section: ClassVar[str] = "spikes"
    enabled: bool = _key(True, "Infer spikes from the traces (nonnegative deconvolution).")
    order: int = _key(1, "Calcium model: 1 = AR(1), a jump and an exponential decay (OASIS, exact); 2 = AR(2), "
                      "a rise and a decay, for frame rates at which the indicator's rise spans frames "
                      "(GCaMP6 at ~30 Hz).", choices=(1, 2))
    decay_time_s: float = _key(0.0, "Decay time constant of the indicator in seconds; 0 estimates it per cell "
                               "from the trace's autocorrelation (GCaMP6s ~1.0, GCaMP6f ~0.4).", min=0.0,
                               max=100.0, unit="s")
    rise_time_s: float = _key(0.0, "order = 2: rise time constant in seconds (GCaMP6f ~0.05, GCaMP6s ~0.1). "
                              "Set both it and decay_time_s, or neither: both are then estimated per cell "
                              "from the trace's autocovariance (the AR(1) model where that gives no rise).",
                              min=0.0, max=100.0, unit="s")
    min_spike: float = _key(2.5, "Smallest spike kept, in noise standard deviations of the trace.", min=0.0,
                            max=1000.0)
    baseline_percentile: float = _key(20.0, "Percentile of the trace used as its baseline before "
                                      "deconvolution.", min=0.0, max=100.0)


SECTIONS: tuple = (InputConfig, PreprocessConfig, MotionConfig, FactorizeConfig, NMFConfig, RankConfig,
                   DetectConfig, CurateConfig, SomataConfig, RoisConfig, TracesConfig, SpikesConfig, OutputConfig,
                   FiguresConfig)
