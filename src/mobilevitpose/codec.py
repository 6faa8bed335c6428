"""Heatmap codecs: keypoints <-> Gaussian heatmaps, and the flip-test helper.

Two codecs, as the reference toolbox (MMPose) defines them, because published COCO numbers
depend on these exact details:

- ``msra``: Gaussian centred on the *rounded* keypoint, cut to a (6 sigma + 1)^2 window;
  decoded by argmax plus a quarter-pixel shift towards the larger neighbour. With
  ``unbiased=True`` (DARK) the Gaussian is centred on the float keypoint over the whole map and
  decoding takes a Newton step on the log of the blurred heatmap.
- ``udp``: the window of ``msra``, with the Gaussian centred on the float keypoint; keypoints
  are scaled by (size - 1) ratios so that pixel centres line up between input and heatmap, and
  decoding takes a Newton step on the log of the blurred heatmap (DARK-UDP).

Encoding works on one instance (K keypoints, input-crop pixels). Decoding takes (K, H, W) or a
batch (N, K, H, W) and returns input-crop pixels; `decode_to_image` maps them on to the image.
Scores are always the raw heatmap maxima, taken before any refinement. The flip test, which
works on heatmaps before decoding, is `models.flip`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mobilevitpose.geometry import input_to_image

CODEC_KINDS = ("msra", "udp")


def gaussian_heatmaps(
    keypoints_hm: np.ndarray,
    keypoints_visible: np.ndarray,
    heatmap_size: tuple[int, int],
    sigma: float,
    *,
    subpixel_centre: bool,
    window: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one Gaussian per keypoint: (K, 2) heatmap px, (K,) -> (K, H, W) f32, (K,) f32.

    ``window=True`` cuts the Gaussian to |x - mu| <= 3 sigma around mu = int(kp + 0.5) (MSRA and
    UDP); ``window=False`` keeps the whole map (DARK). ``subpixel_centre`` puts the peak at the
    float keypoint (UDP, DARK) instead of at mu (MSRA). Keypoints with visibility < 0.5 draw
    nothing and keep their visibility as weight; a keypoint whose 3-sigma box misses the map
    entirely (tested on mu, or on the float keypoint without a window) gets weight 0. For
    3 sigma a whole number this is exactly the reference's pasted (6 sigma + 1)^2 patch.
    """
    keypoints_hm = np.asarray(keypoints_hm, dtype=np.float64)
    keypoints_visible = np.asarray(keypoints_visible, dtype=np.float32)
    num_keypoints = keypoints_hm.shape[0]
    if keypoints_hm.shape != (num_keypoints, 2) or keypoints_visible.shape != (num_keypoints,):
        raise ValueError(
            f"keypoints must be (K, 2) and keypoints_visible (K,); got {keypoints_hm.shape} "
            f"and {keypoints_visible.shape}"
        )
    drawn = keypoints_visible >= 0.5
    if not np.isfinite(keypoints_hm[drawn]).all():
        raise ValueError(f"visible keypoints must be finite; got {keypoints_hm[drawn].tolist()}")

    size = np.asarray(heatmap_size, dtype=np.float64)
    radius = 3.0 * sigma
    # Invisible keypoints may hold anything (COCO stores 0, 0): keep them out of the arithmetic.
    points = np.where(drawn[:, None], keypoints_hm, 0.0)
    # The reference truncates towards zero here, which matters just left of / above the map.
    mu = (points + 0.5).astype(np.int64).astype(np.float64)
    anchor = mu if window else points
    inside = ((anchor - radius) < size).all(axis=1) & ((anchor + radius + 1) >= 0).all(axis=1)
    weights = np.where(drawn & ~inside, 0.0, keypoints_visible).astype(np.float32)

    width, height = heatmap_size
    centre = points if subpixel_centre else mu
    profiles = []
    for axis, length in enumerate((width, height)):
        grid = np.arange(length, dtype=np.float64)[None, :]
        profile = np.exp(-((grid - centre[:, axis, None]) ** 2) / (2.0 * sigma**2))
        if window:
            profile *= np.abs(grid - mu[:, axis, None]) <= radius
        profiles.append((profile * (drawn & inside)[:, None]).astype(np.float32))
    # A 2-D isotropic Gaussian (and its square window) is the outer product of 1-D profiles,
    # taken in float32: the (K, H, W) product is most of the encoding time.
    heatmaps = profiles[1][:, :, None] * profiles[0][:, None, :]
    return heatmaps, weights


def get_heatmap_maximum(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax location (..., K, 2) f32 and max value (..., K) f32 of (..., K, H, W) maps.

    Maps whose maximum is <= 0 get location (-1, -1).
    """
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim < 3:
        raise ValueError(f"heatmaps must be (..., K, H, W); got shape {heatmaps.shape}")
    width = heatmaps.shape[-1]
    flat = heatmaps.reshape(*heatmaps.shape[:-2], -1)
    index = flat.argmax(axis=-1)
    scores = np.take_along_axis(flat, index[..., None], axis=-1)[..., 0].astype(np.float32)
    locations = np.stack([index % width, index // width], axis=-1).astype(np.float32)
    locations[scores <= 0] = -1.0
    return locations, scores


def blur_heatmaps(heatmaps: np.ndarray, kernel_size: int = 11) -> np.ndarray:
    """DARK modulation: Gaussian blur with zeros outside the map, rescaled to each map's max.

    OpenCV's sigma for ``sigma=0`` is 0.3 ((k - 1) / 2 - 1) + 0.8, i.e. 2.0 for k = 11. A
    constant-zero border is the same as the reference's zero padding by (k - 1) / 2 then crop.
    """
    # Contiguous, as OpenCV needs: heatmaps of a channels_last network come strided.
    heatmaps = np.ascontiguousarray(heatmaps, dtype=np.float32)
    flat = heatmaps.reshape(-1, *heatmaps.shape[-2:])
    blurred = np.empty_like(flat)
    for src, dst in zip(flat, blurred, strict=True):
        cv2.GaussianBlur(
            src, (kernel_size, kernel_size), 0, dst=dst, borderType=cv2.BORDER_CONSTANT
        )
    original_max = flat.max(axis=(1, 2))
    blurred_max = blurred.max(axis=(1, 2))
    ratio = np.divide(
        original_max, blurred_max, out=np.ones_like(original_max), where=blurred_max != 0
    )
    blurred *= ratio[:, None, None]
    return blurred.reshape(heatmaps.shape)


def _sample(maps: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """maps (M, H, W) at integer (x, y) of shape (M,), clamped to the map (edge replication)."""
    height, width = maps.shape[-2:]
    rows = np.clip(y, 0, height - 1)
    cols = np.clip(x, 0, width - 1)
    return maps[np.arange(maps.shape[0]), rows, cols]


def _flatten(keypoints_hm: np.ndarray, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    heatmaps = np.asarray(heatmaps)
    if keypoints_hm.shape != (*heatmaps.shape[:-2], 2):
        raise ValueError(
            f"keypoints {keypoints_hm.shape} do not match heatmaps {heatmaps.shape}: "
            "expected (..., K, 2) for (..., K, H, W)"
        )
    return keypoints_hm.reshape(-1, 2), heatmaps.reshape(-1, *heatmaps.shape[-2:])


def refine_quarter_offset(keypoints_hm: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """MSRA refinement: move each integer argmax 0.25 px towards its larger neighbour per axis.

    The bounds are the reference's: x moves only when 1 < x < W - 1 and 0 < y < H, y only when
    1 < y < H - 1 and 0 < x < W.
    """
    points, maps = _flatten(np.asarray(keypoints_hm, dtype=np.float32), heatmaps)
    height, width = maps.shape[-2:]
    x = points[:, 0].astype(np.int64)
    y = points[:, 1].astype(np.int64)
    dx = _sample(maps, x + 1, y) - _sample(maps, x - 1, y)
    dy = _sample(maps, x, y + 1) - _sample(maps, x, y - 1)
    move_x = (1 < x) & (x < width - 1) & (0 < y) & (y < height)
    move_y = (1 < y) & (y < height - 1) & (0 < x) & (x < width)
    shift = np.stack([np.sign(dx) * move_x, np.sign(dy) * move_y], axis=-1) * 0.25
    return (points + shift).astype(np.float32).reshape(np.shape(keypoints_hm))


def refine_dark(
    keypoints_hm: np.ndarray, heatmaps: np.ndarray, blur_kernel_size: int = 11
) -> np.ndarray:
    """DARK refinement: one Newton step on log(blurred heatmap) from the integer argmax.

    Second derivatives use the step-2 differences / 4; only maxima with 1 < x < W - 2 and
    1 < y < H - 2 move, and only where the Hessian is invertible.
    """
    points, maps = _flatten(np.asarray(keypoints_hm, dtype=np.float32), heatmaps)
    height, width = maps.shape[-2:]
    blurred = blur_heatmaps(maps, blur_kernel_size)
    x = points[:, 0].astype(np.int64)
    y = points[:, 1].astype(np.int64)

    def f(ox: int, oy: int) -> np.ndarray:
        # The log is pointwise: taking it on the few samples costs far less than on whole maps.
        return np.log(np.maximum(_sample(blurred, x + ox, y + oy), 1e-10)).astype(np.float64)

    centre = f(0, 0)
    dx = 0.5 * (f(1, 0) - f(-1, 0))
    dy = 0.5 * (f(0, 1) - f(0, -1))
    dxx = 0.25 * (f(2, 0) - 2 * centre + f(-2, 0))
    dyy = 0.25 * (f(0, 2) - 2 * centre + f(0, -2))
    dxy = 0.25 * (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1))
    det = dxx * dyy - dxy**2
    movable = (1 < x) & (x < width - 2) & (1 < y) & (y < height - 2) & (det != 0)
    safe_det = np.where(movable, det, 1.0)
    # offset = -H^-1 grad, with the 2x2 inverse written out to stay vectorised.
    offset_x = -(dyy * dx - dxy * dy) / safe_det
    offset_y = -(dxx * dy - dxy * dx) / safe_det
    offset = np.stack([offset_x, offset_y], axis=-1) * movable[:, None]
    return (points + offset).astype(np.float32).reshape(np.shape(keypoints_hm))


def refine_dark_udp(
    keypoints_hm: np.ndarray, heatmaps: np.ndarray, blur_kernel_size: int = 11
) -> np.ndarray:
    """DARK-UDP refinement: Newton step on log(clip(blurred, 1e-3, 50)) with unit-step differences.

    Neighbours beyond the map repeat the edge, and the Hessian gets float32-eps on its diagonal
    so every maximum moves. Locations at (-1, -1) (no positive maximum) are left there.
    """
    points, maps = _flatten(np.asarray(keypoints_hm, dtype=np.float32), heatmaps)
    blurred = blur_heatmaps(maps, blur_kernel_size)
    x = points[:, 0].astype(np.int64)
    y = points[:, 1].astype(np.int64)

    def f(ox: int, oy: int) -> np.ndarray:
        return np.log(np.clip(_sample(blurred, x + ox, y + oy), 1e-3, 50.0)).astype(np.float64)

    centre = f(0, 0)
    dx = 0.5 * (f(1, 0) - f(-1, 0))
    dy = 0.5 * (f(0, 1) - f(0, -1))
    dxx = f(1, 0) - 2 * centre + f(-1, 0)
    dyy = f(0, 1) - 2 * centre + f(0, -1)
    dxy = 0.5 * (f(1, 1) - f(1, 0) - f(0, 1) + 2 * centre - f(-1, 0) - f(0, -1) + f(-1, -1))
    eps = float(np.finfo(np.float32).eps)
    hxx, hyy = dxx + eps, dyy + eps
    det = hxx * hyy - dxy**2
    valid = (points[:, 0] >= 0) & (det != 0)
    safe_det = np.where(valid, det, 1.0)
    step_x = (hyy * dx - dxy * dy) / safe_det
    step_y = (hxx * dy - dxy * dx) / safe_det
    step = np.stack([step_x, step_y], axis=-1) * valid[:, None]
    return (points - step).astype(np.float32).reshape(np.shape(keypoints_hm))


@dataclass(frozen=True)
class HeatmapCodec:
    """Encode keypoints (input-crop px) to heatmaps and decode heatmaps back.

    ``kind``: "msra" or "udp". ``unbiased`` (MSRA only) switches to DARK encoding and decoding.
    ``blur_kernel_size`` is the DARK / DARK-UDP modulation kernel.
    """

    kind: str
    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    unbiased: bool = False
    blur_kernel_size: int = 11

    def __post_init__(self) -> None:
        if self.kind not in CODEC_KINDS:
            raise ValueError(f"codec kind must be one of {CODEC_KINDS}; got {self.kind!r}")
        for name in ("input_size", "heatmap_size"):
            # Hydra hands over lists; keep the frozen dataclass hashable with tuples.
            value = tuple(int(v) for v in getattr(self, name))
            if len(value) != 2 or min(value) < 2:
                raise ValueError(f"{name} must be (width, height), both >= 2; got {value}")
            object.__setattr__(self, name, value)
        if self.sigma <= 0:
            raise ValueError(f"sigma must be > 0; got {self.sigma}")
        if self.unbiased and self.kind != "msra":
            raise ValueError("unbiased=True (DARK) applies to kind='msra' only; UDP is unbiased")
        if self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be odd and >= 1; got {self.blur_kernel_size}")

    @property
    def flip_shift(self) -> bool:
        """Whether the flip test shifts flipped-back heatmaps by one pixel (MSRA and DARK)."""
        return self.kind == "msra"

    @property
    def scale_factor(self) -> np.ndarray:
        """Input-crop pixels per heatmap pixel used when encoding, (sx, sy)."""
        input_size = np.asarray(self.input_size, dtype=np.float64)
        heatmap_size = np.asarray(self.heatmap_size, dtype=np.float64)
        if self.kind == "udp":
            return (input_size - 1) / (heatmap_size - 1)
        return input_size / heatmap_size

    def encode(
        self, keypoints_input: np.ndarray, keypoints_visible: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(K, 2) input-crop keypoints and (K,) visibility -> heatmaps (K, H, W), weights (K,)."""
        keypoints_hm = np.asarray(keypoints_input, dtype=np.float64) / self.scale_factor
        dark = self.unbiased
        return gaussian_heatmaps(
            keypoints_hm,
            keypoints_visible,
            self.heatmap_size,
            self.sigma,
            subpixel_centre=self.kind == "udp" or dark,
            window=not dark,
        )

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, H, W) or (N, K, H, W) -> keypoints (..., K, 2) input-crop px, scores (..., K).

        Maps with no positive value decode to (-1, -1) with their (non-positive) max as score.
        """
        heatmaps = np.asarray(heatmaps, dtype=np.float32)
        width, height = self.heatmap_size
        if heatmaps.ndim not in (3, 4) or heatmaps.shape[-2:] != (height, width):
            raise ValueError(
                f"heatmaps must be (K, {height}, {width}) or (N, K, {height}, {width}) for "
                f"heatmap_size {self.heatmap_size}; got {heatmaps.shape}"
            )
        keypoints_hm, scores = get_heatmap_maximum(heatmaps)
        found = scores > 0
        if self.kind == "udp":
            keypoints_hm = refine_dark_udp(keypoints_hm, heatmaps, self.blur_kernel_size)
            # The reference divides by (W - 1) but multiplies by w_in, not w_in - 1; with
            # `input_to_image` this is exactly the inverse of the UDP warp in image pixels.
            per_pixel = np.asarray(self.input_size, np.float64) / (
                np.asarray(self.heatmap_size, np.float64) - 1
            )
        else:
            if self.unbiased:
                keypoints_hm = refine_dark(keypoints_hm, heatmaps, self.blur_kernel_size)
            else:
                keypoints_hm = refine_quarter_offset(keypoints_hm, heatmaps)
            per_pixel = self.scale_factor
        keypoints_input = np.where(found[..., None], keypoints_hm * per_pixel, -1.0)
        return keypoints_input.astype(np.float32), scores

    def decode_to_image(
        self, heatmaps: np.ndarray, center: np.ndarray, scale: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, H, W) heatmaps of unrotated crops with (N, 2) centres and scales in image px
        -> keypoints (N, K, 2) in image px (float32) and scores (N, K)."""
        keypoints_input, scores = self.decode(heatmaps)
        keypoints_img = input_to_image(keypoints_input, center, scale, self.input_size)
        return keypoints_img.astype(np.float32), scores
