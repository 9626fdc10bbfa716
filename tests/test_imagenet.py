"""ImageNet preprocessing: OpenCV-style resize, BGR/mean, labels, top-k."""

from __future__ import annotations

import numpy as np
import pytest

from streamline_bridge.errors import InputError
from streamline_bridge.nets.imagenet import load_image, preprocess, read_labels, resize_bilinear, top_k


def test_resize_matches_opencv_inter_linear_on_a_known_case():
    # 4 -> 2 pixels: OpenCV samples at source x = 0.5 and 2.5, i.e. the mean of each pair
    row = np.array([[[0.0], [10.0], [20.0], [30.0]]])
    np.testing.assert_allclose(resize_bilinear(row, 1, 2)[0, :, 0], [5.0, 25.0])
    # 2 -> 4 upsampling: edge pixels clamp, inner ones interpolate at x = -0.25, 0.25, 0.75, 1.25
    row = np.array([[[0.0], [8.0]]])
    np.testing.assert_allclose(resize_bilinear(row, 1, 4)[0, :, 0], [0.0, 2.0, 6.0, 8.0])


def test_preprocess_is_bgr_chw_minus_mean():
    rgb = np.zeros((2, 2, 3), np.float32)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50  # R, G, B
    out = preprocess(rgb, 2, 2, (10.0, 20.0, 30.0))
    assert out.shape == (3, 2, 2)
    np.testing.assert_allclose(out[:, 0, 0], [50 - 10, 100 - 20, 200 - 30])


def test_labels_and_top_k(shared):
    labels = read_labels(shared / "data/synset_words.txt")
    assert len(labels) == 1000 and labels[281] == "tabby, tabby cat"
    prob = np.zeros(1000)
    prob[[281, 282, 5]] = [0.5, 0.3, 0.2]
    assert [i for i, _, _ in top_k(prob, labels, 3)] == [281, 282, 5]
    assert top_k(prob, labels, 1)[0][2] == "tabby, tabby cat"


def test_cat_image_loads_as_rgb(shared):
    img = load_image(shared / "data/images/cat.jpg")
    assert img.shape == (360, 480, 3) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 255


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "not-an-image.jpg"
    bad.write_bytes(b"GIF? no")
    with pytest.raises(InputError, match="not-an-image.jpg"):
        load_image(bad)


def test_torchvision_preprocessing_normalises_rgb_by_imagenet_statistics() -> None:
    from streamline_bridge.nets.imagenet import TORCHVISION_MEAN_RGB, TORCHVISION_STD_RGB, preprocess_torchvision

    mean = np.array(TORCHVISION_MEAN_RGB) * 255
    rgb = np.broadcast_to(mean, (6, 8, 3)).astype(np.float32).copy()
    rgb[:, :, 0] += 255 * TORCHVISION_STD_RGB[0]  # red one standard deviation above the mean
    out = preprocess_torchvision(rgb, 3, 4)
    assert out.shape == (3, 3, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], 1.0, atol=1e-5)  # RGB order kept, one deviation
    np.testing.assert_allclose(out[1:], 0.0, atol=1e-5)
