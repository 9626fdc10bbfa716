"""ImageNet input and output the way Caffe's ImageNet models expect them.

Input: RGB image -> resized with OpenCV-style bilinear interpolation (half-pixel centres, no
antialiasing: Pillow's default resize smooths when shrinking and changes SqueezeNet's answer on
Caffe's cat.jpg from "tabby" to "kit fox") -> BGR, 0..255, minus the per-channel mean, CHW.
:func:`preprocess_torchvision` is torchvision's instead (RGB, 0..1, normalised by ImageNet's
per-channel mean and standard deviation), for models trained that way.
Output: the top-k classes of a probability vector with their synset names.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from streamline_bridge.errors import InputError

# Per-channel BGR mean of ILSVRC 2012 as SqueezeNet's train_val.prototxt gives it (mean_value).
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)
# torchvision's ImageNet normalisation (RGB, on 0..1 values)
TORCHVISION_MEAN_RGB = (0.485, 0.456, 0.406)
TORCHVISION_STD_RGB = (0.229, 0.224, 0.225)


def _bilinear_axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (low, high) and weights of the high one, as OpenCV's INTER_LINEAR computes them."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    low = np.floor(src).astype(np.int64)
    frac = src - low
    frac[low < 0] = 0.0
    low = np.clip(low, 0, n_in - 1)
    frac[low >= n_in - 1] = 0.0
    high = np.minimum(low + 1, n_in - 1)
    return low, high, frac


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an HxWxC float image like ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)``."""
    y0, y1, fy = _bilinear_axis(image.shape[0], height)
    x0, x1, fx = _bilinear_axis(image.shape[1], width)
    rows = image[y0] * (1 - fy)[:, None, None] + image[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as an HxWx3 float32 RGB array in 0..255."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.float32)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(path, f"cannot read the image: {exc}") from None


def synthetic_image(size: int, seed: int = 0) -> np.ndarray:
    """A deterministic size x size RGB test image (smooth gradients plus seeded noise), 0..255."""
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    noise = np.random.default_rng(seed).uniform(0, 32, (size, size, 3))
    base = np.stack([255 * x, 255 * y, 255 * (1 - x) * (1 - y)], axis=-1) * 0.85
    return (base + noise).astype(np.float32)


def preprocess(
    rgb: np.ndarray, height: int, width: int, mean_bgr: np.ndarray | tuple[float, ...] = CAFFE_MEAN_BGR
) -> np.ndarray:
    """RGB HxWx3 (0..255) -> Caffe input 3xHxW: resized, BGR, mean subtracted.

    ``mean_bgr`` is a per-channel triple or a 3xHxW mean image (e.g. ``ilsvrc_2012_mean.npy``),
    which is resized to the input size first.
    """
    bgr = resize_bilinear(np.asarray(rgb, dtype=np.float32), height, width)[:, :, ::-1]
    chw = np.ascontiguousarray(bgr.transpose(2, 0, 1), dtype=np.float32)
    mean = np.asarray(mean_bgr, dtype=np.float32)
    if mean.ndim == 3:
        mean = resize_bilinear(mean.transpose(1, 2, 0), height, width).transpose(2, 0, 1)
    else:
        mean = mean.reshape(3, 1, 1)
    return chw - mean


def preprocess_torchvision(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """RGB HxWx3 (0..255) -> torchvision's input 3xHxW: resized (as :func:`preprocess`), 0..1,
    minus :data:`TORCHVISION_MEAN_RGB`, divided by :data:`TORCHVISION_STD_RGB`."""
    chw = resize_bilinear(np.asarray(rgb, dtype=np.float32), height, width).transpose(2, 0, 1) / 255.0
    mean = np.asarray(TORCHVISION_MEAN_RGB, np.float32).reshape(3, 1, 1)
    std = np.asarray(TORCHVISION_STD_RGB, np.float32).reshape(3, 1, 1)
    return np.ascontiguousarray((chw - mean) / std, dtype=np.float32)


def read_labels(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a ``synset_words.txt`` (``<wnid> <names>`` per line, line i+1 = class i)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    labels = [line.split(" ", 1)[1] if " " in line else line for line in lines if line.strip()]
    if not labels:
        raise InputError(path, "no class names in the labels file")
    return labels


def top_k(prob: np.ndarray, labels: list[str] | None, k: int = 5) -> list[tuple[int, float, str]]:
    """The ``k`` most probable classes as (index, probability, name) — name "" without labels."""
    p = np.asarray(prob, dtype=np.float64).ravel()
    order = np.argsort(-p, kind="stable")[:k]
    return [(int(i), float(p[i]), labels[i] if labels and i < len(labels) else "") for i in order]
