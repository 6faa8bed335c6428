"""Image loading for top-down crops: one warp of the decoded image, a small LRU cache, and an
optional reduced-size JPEG decode for training.

By default an image is decoded at full size and warped bilinearly, as the reference toolbox
does, so crops are the reference's to the grey level. Several persons of one image (validation
walks them in order) share one decode through the cache.

`reduced_decode` trades that exactness for speed in training: a person crop is usually a
resampling of a small part of a photo, so when the crop shrinks the image by at least 2, 4 or
8, libjpeg can decode straight to that reduced size with its DCT scaling (OpenCV's
IMREAD_REDUCED_*), skipping most of the inverse DCT and colour conversion. Reduced pixel i is
the block of original pixels [r i, r i + r), so its centre sits at original pixel coordinate
r i + (r - 1) / 2; composing that map into the crop's warp keeps the crop aligned with the
full-resolution one. The pixels then differ from the reference's (anti-aliased instead of
aliased, up to hundreds of grey levels at sharp edges of large persons), though not the
geometry. The reduction is chosen from the crop alone and the cache serves only that exact
decode, so a sample's pixels never depend on which samples a worker read before.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from PIL import Image

from mobilevitpose.geometry import val_crop

# libjpeg's DCT scaling factors exposed by OpenCV, with the matching decode flags.
DECODE_FLAGS: dict[int, int] = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


EXIF_ORIENTATION = 0x0112
# Bytes at the end of a JPEG searched for its end marker (some cameras append a short trailer).
JPEG_TAIL = 4096


class ImageReadError(ValueError):
    """An image file that exists but cannot be decoded, or does not match its annotation."""


def read_image(path: str | Path, reduction: int = 1) -> np.ndarray:
    """Decode an image to BGR uint8 (H, W, 3), at 1/`reduction` size (1, 2, 4 or 8)."""
    if reduction not in DECODE_FLAGS:
        raise ValueError(f"reduction must be one of {tuple(DECODE_FLAGS)}; got {reduction}")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"image file not found: {path}") from err
    except OSError as err:
        raise ImageReadError(f"cannot read image file {path}: {err}") from err
    image = cv2.imdecode(data, DECODE_FLAGS[reduction]) if data.size else None
    if image is None:
        raise ImageReadError(f"cannot decode image file {path} (corrupt or not an image)")
    # libjpeg decodes a truncated JPEG with a grey bottom and only a warning on stderr; an end
    # marker (FF D9) near the end of the file tells a complete one.
    if data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-JPEG_TAIL:].tobytes():
        raise ImageReadError(f"image file {path} is a truncated JPEG (no end marker)")
    return image


def decoded_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) that `read_image` decodes `path` to, from the file's header alone; None
    when the header cannot be read (the decode then names the problem, or skips the image)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            # OpenCV turns the pixels upright as the EXIF orientation says; 5-8 swap the sides.
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, ValueError):
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def check_recorded_size(path: str | Path, recorded: tuple[int, int], source: Path) -> None:
    """Refuse an image record (of annotation file `source`) whose width and height disagree
    with the file's: boxes are clipped and flips mirrored by the recorded size, so every crop of
    the image would be misplaced. Reads the file's header only."""
    actual = decoded_size(path)
    if actual is not None and actual != tuple(recorded):
        raise ValueError(
            f"{source}: image {path} is {actual[0]}x{actual[1]} px but its 'width' and "
            f"'height' say {recorded[0]}x{recorded[1]}; correct the image record"
        )


def downscale_factor(matrix: np.ndarray) -> float:
    """Image pixels per crop pixel along the crop's most magnified direction."""
    (a, b), (c, d) = np.asarray(matrix, dtype=np.float64)[:, :2]
    # Largest singular value of the 2x2 linear part, in closed form: an SVD costs far more.
    total = a * a + b * b + c * c + d * d
    det = a * d - b * c
    sigma_max = np.sqrt((total + np.sqrt(max(total * total - 4.0 * det * det, 0.0))) / 2.0)
    return 1.0 / float(sigma_max)


def choose_reduction(matrix: np.ndarray) -> int:
    """Largest decode reduction that the crop (image -> input `matrix`) still downsamples."""
    factor = downscale_factor(matrix)
    return max(r for r in DECODE_FLAGS if r <= factor) if factor >= 1.0 else 1


def reduced_matrix(matrix: np.ndarray, reduction: int) -> np.ndarray:
    """Re-express an image -> input 2x3 matrix for the image decoded at 1/`reduction` size."""
    offset = (reduction - 1) / 2.0
    to_full = np.array([[reduction, 0.0, offset], [0.0, reduction, offset], [0.0, 0.0, 1.0]])
    return np.asarray(matrix, dtype=np.float64) @ to_full


def to_rgb_tensor(crop_bgr: np.ndarray) -> torch.Tensor:
    """BGR uint8 (h, w, 3), as OpenCV decodes and warps, -> RGB uint8 tensor (3, h, w)."""
    out = np.empty((3, *crop_bgr.shape[:2]), dtype=np.uint8)
    # Copying whole planes is faster than a strided HWC -> CHW transpose.
    for channel, plane in enumerate(reversed(cv2.split(crop_bgr))):
        out[channel] = plane
    return torch.from_numpy(out)


class Decoded(NamedTuple):
    """An image decoded for a crop: BGR pixels at 1/`reduction` size, and the crop's matrix
    from those pixels to input px."""

    image: np.ndarray
    matrix: np.ndarray
    reduction: int


class CropReader:
    """Cut warped crops out of image files, decoding each image as little as the crop allows.

    `cache_size` decoded images (keyed by path and reduction) are kept per process: each
    DataLoader worker holds its own small cache. `reduced_decode=True` decodes at reduced size
    where the crop allows (training only: see the module's docstring). `num_decodes` counts the
    files actually decoded.
    """

    def __init__(self, cache_size: int = 8, reduced_decode: bool = False) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0; got {cache_size}")
        self.cache_size = cache_size
        self.reduced_decode = reduced_decode
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self.num_decodes = 0

    def clear(self) -> None:
        self._cache.clear()

    def load(self, path: str, reduction: int, image_size: tuple[int, int]) -> np.ndarray:
        """The BGR image of `path` decoded at 1/`reduction` size.

        Only that exact decode comes from the cache: a sharper one would give other pixels
        than the sample's own decode, so the result would depend on what was read before.
        """
        hit = self._cache.get((path, reduction))
        if hit is not None:
            self._cache.move_to_end((path, reduction))
            return hit
        image = read_image(path, reduction)
        self.num_decodes += 1
        height, width = image.shape[:2]
        # Flips and boxes use the annotated size; a different file size would misplace them.
        # (libjpeg rounds reduced sizes up, other formats round down.)
        if (
            abs(width * reduction - image_size[0]) >= reduction
            or abs(height * reduction - image_size[1]) >= reduction
        ):
            raise ImageReadError(
                f"image file {path} is {width * reduction}x{height * reduction} px (at 1/"
                f"{reduction}: {width}x{height}) but its annotation says "
                f"{image_size[0]}x{image_size[1]}"
            )
        if self.cache_size:
            self._cache[(path, reduction)] = image
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return image

    def decode(self, path: str, image_size: tuple[int, int], matrix: np.ndarray) -> Decoded:
        """The decoded image for a crop by `matrix` (image px -> input px), with the matrix
        re-expressed for that decode's size."""
        reduction = choose_reduction(matrix) if self.reduced_decode else 1
        image = self.load(path, reduction, image_size)
        if reduction > 1:
            matrix = reduced_matrix(matrix, reduction)
        return Decoded(image, matrix, reduction)

    def crop(
        self,
        path: str,
        image_size: tuple[int, int],
        matrix: np.ndarray,
        input_size: tuple[int, int],
    ) -> np.ndarray:
        """BGR uint8 crop (h_in, w_in, 3) of the image file warped by `matrix`."""
        decoded = self.decode(path, image_size, matrix)
        return warp_crop(decoded.image, decoded.matrix, input_size)


def warp_crop(image_bgr: np.ndarray, matrix: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """BGR uint8 crop (h_in, w_in, 3) of an image warped by `matrix` (image px -> input px):
    bilinear, zero outside the image, like the reference's cv2.warpAffine. The one warp of the
    dataset, the estimator and the benchmarks."""
    return cv2.warpAffine(
        image_bgr,
        np.asarray(matrix, dtype=np.float64),
        (int(input_size[0]), int(input_size[1])),
        flags=cv2.INTER_LINEAR,
    )


def person_crops(
    image_bgr: np.ndarray,
    boxes_xyxy: np.ndarray,
    input_size: tuple[int, int],
    udp: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The evaluation crops (padded, aspect-fixed boxes, `val_crop`) of N person boxes (N, 4)
    xyxy in image px: uint8 RGB (N, 3, h, w), and their centres and scales (N, 2) in image px."""
    crops, centers, scales = [], [], []
    for box in boxes_xyxy:
        crop = val_crop(np.asarray(box, dtype=np.float32), input_size)
        pixels = warp_crop(image_bgr, crop.image_matrix(input_size, udp), input_size)
        crops.append(to_rgb_tensor(pixels).numpy())
        centers.append(crop.center)
        scales.append(crop.scale)
    return np.stack(crops), np.stack(centers), np.stack(scales)
