"""The embedded default scene: a seeded synthetic Pavia-University-like hyperspectral cube.

No data set can be downloaded at run time, so the demo, the tests and the
benchmarks use this generated scene: 610 x 340 pixels, 103 bands over
430-860 nm, nine classes with Pavia University's class sizes. Regions of
materials on a warped Voronoi layout, smooth reflectance templates with
seeded jitter, within-class variability (brightness and spectral shape, per
region, spatially correlated and per pixel), class mixing rules that set
which classes get confused, a point-spread function at region borders and
band-dependent sensor noise. :func:`synthetic_cube` returns the cube and its
ground truth; :func:`synthetic_scene` the :class:`~robustq.data.Scene`. All
randomness comes from ``numpy.random.default_rng(seed)``: the same seed
gives the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robustq.data import Scene, _is_int, scene_from_cube
from robustq.errors import ConfigError

__all__ = ["SYNTHETIC_CLASS_NAMES", "SyntheticSceneConfig", "synthetic_cube", "synthetic_scene"]

#: Names of the synthetic scene's classes 1..9, after Pavia University's.
SYNTHETIC_CLASS_NAMES: tuple[str, ...] = (
    "asphalt",
    "meadows",
    "gravel",
    "trees",
    "painted metal sheets",
    "bare soil",
    "bitumen",
    "self-blocking bricks",
    "shadows",
)
_PAVIA_SHAPE = (610, 340)
_PAVIA_CLASS_SIZES = (6631, 18649, 2099, 3064, 1345, 5029, 1330, 3682, 947)


@dataclass(frozen=True)
class SyntheticSceneConfig:
    """The knobs of :func:`synthetic_cube`; the defaults give a Pavia-University-like scene.

    Layout: ``labelled_fraction`` of the pixels carry a label (Pavia: 42,776 of
    207,400), split between classes in proportion to ``class_weights``
    (Pavia's class sizes) but at least ``min_labelled_per_class`` pixels each;
    every class covers ``landcover_surplus`` times its labelled area (the rest
    of it is unlabelled, like unlabelled fields in Pavia). ``regions_at_reference``
    regions partition a 610 x 340 image (scaled by the square root of the
    area ratio for other sizes); ``region_density_contrast`` is the standard
    deviation of the log density of region seeds (higher: more unequal
    region sizes) and ``boundary_warp`` the boundary displacement in units of
    the mean region radius.
    Spectra: reflectance over ``wavelength_range`` nm; ``spectrum_jitter`` is
    the relative size of the seeded smooth perturbation of each material's
    template. Within-class variability: ``brightness_sd`` (log-brightness
    standard deviation), ``shape_sd`` (relative amplitude of the rank
    ``variation_rank`` spectral variation), both made of a per-region, a
    spatially correlated (``texture_sigma`` pixels) and a per-pixel part.
    ``mixing`` rules ``(a, b, mean, sd)``: pixels of class ``a`` (1-based)
    contain a fraction ``clip(mean + sd * z, 0, 0.9)`` of class ``b``'s
    spectrum, ``z`` a unit-variance per-region plus spatially correlated
    field; these rules set which classes get confused. ``psf_sigma`` (pixels)
    is the Gaussian point-spread function that mixes pixels at region
    borders. Sensor noise is Gaussian with standard deviation ``noise_sd`` at
    the centre of the spectrum, rising as the 4th power of the distance from
    the centre to ``noise_edge_gain`` times that at both ends.
    """

    labelled_fraction: float = 42776 / (610 * 340)
    class_weights: tuple[float, ...] = tuple(float(n) for n in _PAVIA_CLASS_SIZES)
    min_labelled_per_class: int = 100
    landcover_surplus: float = 2.5
    regions_at_reference: int = 360
    region_density_contrast: float = 1.0
    boundary_warp: float = 0.35
    wavelength_range: tuple[float, float] = (430.0, 860.0)
    spectrum_jitter: float = 0.02
    brightness_sd: float = 0.10
    shape_sd: float = 0.06
    variation_rank: int = 3
    texture_sigma: float = 2.0
    mixing: tuple[tuple[int, int, float, float], ...] = (
        (2, 6, 0.35, 0.20),  # meadows with bare-soil patches
        (6, 2, 0.25, 0.15),  # bare soil with sparse vegetation
        (2, 4, 0.10, 0.08),  # meadows with trees
        (3, 8, 0.30, 0.15),  # gravel with brick fragments
        (8, 3, 0.30, 0.15),  # bricks with gravel
        (1, 7, 0.25, 0.15),  # asphalt with bitumen
        (7, 1, 0.25, 0.15),  # bitumen with asphalt
    )
    psf_sigma: float = 0.8
    noise_sd: float = 0.012
    noise_edge_gain: float = 3.0


def _sigmoid(w: np.ndarray, centre: float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(w - centre) / width))


def _bump(w: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((w - centre) / width) ** 2)


def _smooth_curves(rng: np.random.Generator, count: int, w: np.ndarray) -> np.ndarray:
    """``count`` random smooth curves over ``w`` (sums of 4 Gaussian bumps), unit RMS."""
    lo, hi = float(w[0]), float(w[-1])
    centres = rng.uniform(lo - 50.0, hi + 50.0, size=(count, 4, 1))
    widths = rng.uniform(0.07, 0.3, size=(count, 4, 1)) * (hi - lo)
    heights = rng.standard_normal((count, 4, 1))
    curves = (heights * np.exp(-0.5 * ((w - centres) / widths) ** 2)).sum(axis=1)
    curves -= curves.mean(axis=1, keepdims=True)
    return curves / np.sqrt((curves**2).mean(axis=1, keepdims=True))


def _templates(w: np.ndarray) -> np.ndarray:
    """Reflectance templates of the 9 Pavia-like classes, then 4 unlabelled materials."""
    t = (w - w[0]) / max(w[-1] - w[0], 1e-9)
    vegetation_dip = _bump(w, 675.0, 18.0)
    return np.stack(
        [
            0.09 + 0.05 * t + 0.01 * _bump(w, 600.0, 80.0),  # asphalt
            0.05
            + 0.07 * _bump(w, 550.0, 30.0)
            - 0.03 * vegetation_dip
            + 0.40 * _sigmoid(w, 715.0, 14.0),  # meadows
            0.16 + 0.10 * t + 0.04 * _sigmoid(w, 580.0, 25.0),  # gravel
            0.04
            + 0.05 * _bump(w, 550.0, 28.0)
            - 0.025 * vegetation_dip
            + 0.30 * _sigmoid(w, 722.0, 16.0),  # trees
            0.22 + 0.28 * _sigmoid(w, 560.0, 20.0) - 0.08 * _bump(w, 820.0, 40.0),  # metal
            0.10 + 0.22 * t + 0.03 * _sigmoid(w, 560.0, 30.0),  # bare soil
            0.07 + 0.035 * t + 0.015 * _bump(w, 480.0, 40.0),  # bitumen
            0.15 + 0.12 * t + 0.06 * _sigmoid(w, 590.0, 25.0),  # self-blocking bricks
            0.025 + 0.03 * np.exp(-(w - w[0]) / 120.0) + 0.02 * _sigmoid(w, 720.0, 15.0),  # shadow
            0.07 + 0.30 * _sigmoid(w, 600.0, 18.0),  # red tiles (unlabelled)
            0.28 + 0.06 * t,  # concrete (unlabelled)
            0.05 + 0.02 * t + 0.01 * _bump(w, 650.0, 60.0),  # dark roofing (unlabelled)
            0.005 + 0.07 * np.exp(-(w - w[0]) / 150.0),  # water (unlabelled)
        ]
    )


_N_UNLABELLED_MATERIALS = 4
_NOISE_ROWS = 64


def _smooth_field(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float, count: int = 1
) -> np.ndarray:
    """``count`` Gaussian random fields (zero mean, unit std) of correlation length ``sigma``."""
    from scipy.ndimage import gaussian_filter

    white = rng.standard_normal((count, *shape), dtype=np.float32)
    fields = gaussian_filter(white, sigma=(0, *([sigma] * len(shape))), mode="reflect")
    fields -= fields.mean(axis=tuple(range(1, fields.ndim)), keepdims=True)
    fields /= fields.std(axis=tuple(range(1, fields.ndim)), keepdims=True) + 1e-12
    return fields


def _check_synthetic_args(
    height: int, width: int, n_bands: int, n_classes: int, config: SyntheticSceneConfig
) -> None:
    for label, value, low in (
        ("height", height, 16),
        ("width", width, 16),
        ("n_bands", n_bands, 8),
        ("n_classes", n_classes, 2),
    ):
        if not _is_int(value) or value < low:
            raise ConfigError(f"{label} must be an integer >= {low}, got {value!r}")
    if n_classes > len(config.class_weights):
        raise ConfigError(
            f"n_classes={n_classes} but config.class_weights has only "
            f"{len(config.class_weights)} entries"
        )
    if not 0.0 < config.labelled_fraction * config.landcover_surplus <= 0.95:
        raise ConfigError(
            "labelled_fraction x landcover_surplus must be in (0, 0.95], got "
            f"{config.labelled_fraction * config.landcover_surplus:.3f}"
        )


def _layout(
    rng: np.random.Generator,
    height: int,
    width: int,
    n_classes: int,
    config: SyntheticSceneConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Regions, each region's material and the ground truth of a synthetic scene.

    Returns ``region`` (H x W region ids), ``material`` (per region: class
    ``0..K-1`` or an unlabelled material ``K..``) and ``gt`` (H x W, 0 or 1..K).
    """
    from scipy.spatial import cKDTree

    n_pixels = height * width
    scale = math.sqrt(n_pixels / (_PAVIA_SHAPE[0] * _PAVIA_SHAPE[1]))
    n_regions = max(
        4 * (n_classes + _N_UNLABELLED_MATERIALS), round(config.regions_at_reference * scale)
    )
    radius = math.sqrt(n_pixels / n_regions / math.pi)

    # Region seeds from an inhomogeneous Poisson process: dense (small regions)
    # where a smooth log-density field is high, sparse (large regions) elsewhere.
    log_density = (
        config.region_density_contrast
        * _smooth_field(rng, (height, width), sigma=0.12 * min(height, width))[0]
    )
    density = np.exp(log_density - log_density.max()).ravel().astype(np.float64)
    cells = rng.choice(n_pixels, size=n_regions, p=density / density.sum())
    seeds = np.column_stack(np.divmod(cells, width)).astype(np.float64)
    seeds += rng.uniform(0.0, 1.0, size=seeds.shape)

    # Voronoi partition of warped pixel coordinates: irregular region borders.
    warp = config.boundary_warp * radius * _smooth_field(rng, (height, width), radius, count=2)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    coords = np.column_stack([(rows + warp[0]).ravel(), (cols + warp[1]).ravel()])
    region = cKDTree(seeds).query(coords)[1].reshape(height, width)
    areas = np.bincount(region.ravel(), minlength=n_regions)

    weights = np.asarray(config.class_weights[:n_classes], dtype=np.float64)
    labelled_total = config.labelled_fraction * n_pixels
    targets = np.maximum(labelled_total * weights / weights.sum(), config.min_labelled_per_class)
    cover_targets = targets * config.landcover_surplus

    # Regions in random order go to the class furthest from its land-cover
    # target; once every class has its area, the rest become unlabelled materials.
    material = np.empty(n_regions, dtype=np.int64)
    covered = np.zeros(n_classes)
    order = rng.permutation(n_regions)
    unlabelled = rng.integers(n_classes, n_classes + _N_UNLABELLED_MATERIALS, size=n_regions)
    for r in order:
        deficit = 1.0 - covered / cover_targets
        k = int(np.argmax(deficit))
        if deficit[k] > 0 and areas[r] > 0:
            material[r] = k
            covered[k] += areas[r]
        else:
            material[r] = unlabelled[r]

    # Label whole regions of each class until its target is reached; the
    # region that crosses the target is labelled partly, nearest its seed first.
    gt = np.zeros(n_pixels, dtype=np.int64)
    flat_region = region.ravel()
    for k in range(n_classes):
        own = [r for r in order if material[r] == k]
        remaining = int(round(targets[k]))
        for r in own:
            if remaining <= 0:
                break
            pixels = np.flatnonzero(flat_region == r)
            if pixels.size > remaining:
                dist = (pixels // width - seeds[r, 0]) ** 2 + (pixels % width - seeds[r, 1]) ** 2
                pixels = pixels[np.argsort(dist, kind="stable")[:remaining]]
            gt[pixels] = k + 1
            remaining -= pixels.size
    return region, material, gt.reshape(height, width)


def _material_spectra(
    rng: np.random.Generator, w: np.ndarray, n_classes: int, config: SyntheticSceneConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Mean spectra (M x B) and variation bases (M x rank x B) of every material."""
    templates = _templates(w)
    labelled, unlabelled = templates[:9], templates[9:]
    if n_classes > 9:
        # Extra classes: smooth random reflectance curves in the same range.
        extra = 0.25 + 0.12 * _smooth_curves(rng, n_classes - 9, w)
        labelled = np.concatenate([labelled, np.clip(extra, 0.02, None)])
    means = np.concatenate([labelled[:n_classes], unlabelled])
    means = means * (1.0 + config.spectrum_jitter * _smooth_curves(rng, len(means), w))
    rank = config.variation_rank
    bases = _smooth_curves(rng, len(means) * rank, w).reshape(len(means), rank, len(w))
    return means, bases


def _variation(
    rng: np.random.Generator,
    region: np.ndarray,
    n_fields: int,
    texture_sigma: float,
    per_pixel: bool = True,
) -> np.ndarray:
    """Unit-variance variation (n_fields x H*W): per region + spatially correlated (+ per pixel)."""
    n_regions = int(region.max()) + 1
    per_region = rng.standard_normal((n_fields, n_regions), dtype=np.float32)[:, region.ravel()]
    texture = _smooth_field(rng, region.shape, texture_sigma, count=n_fields)
    texture = texture.reshape(n_fields, -1)
    if not per_pixel:
        return (np.sqrt(0.45) * per_region + np.sqrt(0.4) * texture) / np.sqrt(0.85)
    pixel = rng.standard_normal(texture.shape, dtype=np.float32)
    return np.sqrt(0.45) * per_region + np.sqrt(0.4) * texture + np.sqrt(0.15) * pixel


def synthetic_cube(
    seed: int = 0,
    height: int = 610,
    width: int = 340,
    n_bands: int = 103,
    n_classes: int = 9,
    config: SyntheticSceneConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a deterministic synthetic hyperspectral cube and its ground truth.

    Returns ``(cube, gt)``: ``cube`` float32 ``height x width x n_bands``
    reflectance-like values (mostly 0..0.7; noise can push dark pixels
    slightly below 0), ``gt`` int64 ``height x width``
    with labels ``1..n_classes`` and 0 for unlabelled background (about 80 %
    of the pixels, as in Pavia University). Same arguments, same arrays. The
    recipe (all parameters in :class:`SyntheticSceneConfig`; four independent
    streams spawned from ``SeedSequence(seed)`` for layout, spectra,
    variability and noise):

    1. Layout: ``round(regions_at_reference * sqrt(H*W / (610*340)))`` region
       seeds drawn with probability ``exp(contrast * z)``, ``z`` a smooth unit
       Gaussian field (length ``0.12 * min(H, W)``); each pixel belongs to the
       nearest seed after its coordinates are displaced by two smooth fields
       of amplitude ``boundary_warp`` x the mean region radius (a warped
       Voronoi partition). Regions in random order go to the class with the
       largest relative shortfall of land cover (target: ``landcover_surplus``
       x its labelled target), the rest to 4 unlabelled materials (red tiles,
       concrete, dark roofing, water). Labelled targets are
       ``labelled_fraction * H * W`` split by ``class_weights``, at least
       ``min_labelled_per_class``; each class's regions are labelled whole in
       the same random order until the target, the last one partly (pixels
       nearest its seed).
    2. Spectra over ``n_bands`` wavelengths evenly spaced in
       ``wavelength_range``: hand-made templates (vegetation with a green peak,
       red dip and red edge; soils and minerals rising towards the infrared;
       dark flat asphalt and bitumen; bright painted metal; dark shadows),
       each multiplied by ``1 + spectrum_jitter * c``, ``c`` a seeded smooth
       curve (sum of 4 Gaussian bumps, unit RMS); classes beyond 9 get random
       smooth curves. Each material also gets ``variation_rank`` smooth basis
       curves.
    3. Pixel spectra: ``mean_m * (1 + shape_sd * a . basis_m)`` with unit
       variance coefficients ``a``; then the ``mixing`` rules blend in the
       partner class's mean spectrum by the fraction
       ``clip(mean + sd * z, 0, 0.9)``; then multiply by a brightness
       ``exp(brightness_sd * z)``. Every ``z``/``a`` is
       ``sqrt(.45) * per-region + sqrt(.4) * smooth field (texture_sigma)
       + sqrt(.15) * per-pixel`` standard normal parts (the mixing fraction
       uses no per-pixel part, so its parts are rescaled to unit variance).
    4. Optics and sensor: a Gaussian blur of ``psf_sigma`` pixels in both
       spatial axes (mixed pixels at region borders), then Gaussian noise with
       band standard deviation ``noise_sd * (1 + (noise_edge_gain - 1) * u**4)``,
       ``u`` running from -1 to 1 over the bands (drawn in blocks of 64 rows).

    With the defaults (Pavia's 42,776 labelled pixels in its exact class
    sizes) the paper's 1-D CNN trained on 250 samples per class (10 %
    validation) reaches about 84-88 % overall accuracy on the rest; errors
    concentrate on meadows vs bare soil, asphalt vs bitumen, gravel vs
    self-blocking bricks and meadows vs trees, as in Pavia University.
    """
    from scipy.ndimage import gaussian_filter

    config = config or SyntheticSceneConfig()
    _check_synthetic_args(height, width, n_bands, n_classes, config)
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    layout_rng, spectra_rng, variation_rng, noise_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4)
    )
    region, material, gt = _layout(layout_rng, height, width, n_classes, config)
    wavelengths = np.linspace(*config.wavelength_range, n_bands)
    means, bases = _material_spectra(spectra_rng, wavelengths, n_classes, config)

    pixel_material = material[region.ravel()]
    rank = config.variation_rank
    variation = _variation(variation_rng, region, rank + 1, config.texture_sigma)
    coefficients, brightness = variation[:rank].T, variation[rank]
    # Sub-pixel cover varies smoothly, so the mixing fractions have no per-pixel part.
    mixing_z = _variation(
        variation_rng, region, max(len(config.mixing), 1), config.texture_sigma, per_pixel=False
    )

    # Work material by material on contiguous blocks (pixels sorted by
    # material), then scatter the blocks back into image order once.
    by_material = np.argsort(pixel_material, kind="stable")
    bounds = np.searchsorted(pixel_material[by_material], np.arange(len(means) + 1))
    means32, bases32 = means.astype(np.float32), bases.astype(np.float32)
    log_brightness = (config.brightness_sd * brightness).astype(np.float32)
    blocks = np.empty((height * width, n_bands), dtype=np.float32)
    for m in range(len(means)):
        pixels = by_material[bounds[m] : bounds[m + 1]]
        block = coefficients[pixels] @ bases32[m]
        block *= config.shape_sd
        block += 1.0
        block *= means32[m]
        for rule, (a, b, mean, sd) in enumerate(config.mixing):
            if a - 1 == m and 1 <= b <= n_classes:
                fraction = np.clip(mean + sd * mixing_z[rule, pixels], 0.0, 0.9)[:, None]
                block *= 1.0 - fraction
                block += fraction * means32[b - 1]
        block *= np.exp(log_brightness[pixels])[:, None]
        blocks[bounds[m] : bounds[m + 1]] = block
    pure = np.empty_like(blocks)
    pure[by_material] = blocks

    cube = pure.reshape(height, width, n_bands)
    if config.psf_sigma > 0:
        # The blocks buffer is free again: blur into it instead of a new array.
        blurred = blocks.reshape(height, width, n_bands)
        gaussian_filter(cube, sigma=(config.psf_sigma, config.psf_sigma, 0), output=blurred)
        cube = blurred
    u = np.linspace(-1.0, 1.0, n_bands)
    band_sd = (config.noise_sd * (1.0 + (config.noise_edge_gain - 1.0) * u**4)).astype(np.float32)
    # Noise is drawn in fixed blocks of rows to bound memory; same seed, same noise.
    for top in range(0, height, _NOISE_ROWS):
        rows = cube[top : top + _NOISE_ROWS]
        noise = noise_rng.standard_normal(rows.shape, dtype=np.float32)
        noise *= band_sd
        rows += noise
    return cube.astype(np.float32, copy=False), gt


def synthetic_scene(
    seed: int = 0,
    height: int = 610,
    width: int = 340,
    n_bands: int = 103,
    n_classes: int = 9,
    config: SyntheticSceneConfig | None = None,
) -> Scene:
    """The embedded synthetic Pavia-University-like scene as a :class:`Scene`.

    Equivalent to ``scene_from_cube(*synthetic_cube(...), name="synthetic-pavia")``;
    see :func:`synthetic_cube` for how it is generated. The default size is
    Pavia University's (610 x 340, 103 bands, 9 classes); a 120 x 80 scene
    still holds every class with at least ``min_labelled_per_class`` samples.
    """
    cube, gt = synthetic_cube(seed, height, width, n_bands, n_classes, config)
    return scene_from_cube(cube, gt, name="synthetic-pavia")
