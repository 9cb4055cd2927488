"""recos_utils.core.photos (Chapters 2, 4, 5): the one photograph loader, against scikit-image's
own arrays and colour conversion, and the wrappers built on it (backgrounds.photo,
alexnet.photographs / grey_image)."""
import numpy as np
import pytest
import skimage.data
from skimage.color import rgb2gray

from recos_utils.chapters import ch5_alexnet as alexnet

from recos_utils.core import backgrounds

from recos_utils.core import photos

LUMA = np.array([0.2125, 0.7154, 0.0721])        # ITU-R 709, as in skimage.color.rgb2gray


@pytest.mark.parametrize("name", ["chelsea", "camera", "coins"])
def test_rgb_and_grey_against_scikit_image(name):
    raw = np.asarray(getattr(skimage.data, name)())
    rgb = photos.rgb(name)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    if raw.ndim == 2:
        assert all(np.array_equal(rgb[..., c], raw) for c in range(3))
        np.testing.assert_allclose(photos.grey(name), raw / 255.0, rtol=0, atol=1e-12)
    else:
        np.testing.assert_array_equal(rgb, raw[..., :3])
        # luminance: the 709 weights applied to the [0, 1] channels, written out here
        np.testing.assert_allclose(photos.grey(name), (raw[..., :3] / 255.0) @ LUMA,
                                   rtol=0, atol=1e-12)
    g = photos.grey(name)
    assert g.dtype == np.float64 and g.shape == raw.shape[:2] and 0 <= g.min() and g.max() <= 1


def test_read_is_cached_read_only_and_rejects_what_it_cannot_load():
    a = photos.read("chelsea")
    assert a is photos.read("chelsea") and not a.flags.writeable
    assert photos.read("stereo_motorcycle").shape == skimage.data.stereo_motorcycle()[0].shape
    with pytest.raises(AttributeError):
        photos.read("no_such_photo")


@pytest.mark.parametrize("name", ["chelsea", "camera", "stereo_motorcycle"])
def test_backgrounds_photo_is_rounded_luma_of_the_same_photograph(name):
    raw = skimage.data.stereo_motorcycle()[0] if name == "stereo_motorcycle" \
        else np.asarray(getattr(skimage.data, name)())
    want = raw if raw.ndim == 2 else np.clip(np.rint(raw[..., :3] @ LUMA), 0, 255)
    got = backgrounds.photo(name)
    assert got.dtype == np.uint8 and not got.flags.writeable
    np.testing.assert_array_equal(got, want.astype(np.uint8))


def test_alexnet_photographs_use_the_loader():
    ph, skipped = alexnet.photographs(("coffee", "moon"))
    assert skipped == {}
    np.testing.assert_allclose(ph["coffee"], skimage.data.coffee() / 255.0, rtol=0, atol=1e-12)
    moon = skimage.data.moon() / 255.0
    np.testing.assert_allclose(ph["moon"], np.repeat(moon[:, :, None], 3, axis=2), rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(alexnet.grey_image(ph["coffee"]), rgb2gray(ph["coffee"]),
                               rtol=0, atol=0)
