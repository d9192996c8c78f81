"""Tests of zsad.data.images: every PIL mode and array kind to RGB, EXIF, errors, masks, folder expansion.

Expected pixels are computed directly from the values written (premultiplication, /257, palette lookup), not
taken from the loader's own output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zsad.data.images import IMAGE_SUFFIXES, list_images, load_image, load_mask
from zsad.errors import DatasetError, ImageLoadError, ZsadError

RNG_SEED = 1234
H, W = 20, 24  # not square, so a width/height mix-up shows


def _rgb(path_or_source) -> np.ndarray:
    loaded = load_image(path_or_source)
    assert loaded.image.mode == "RGB"
    return np.asarray(loaded.image).astype(int)


def _grey3(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=-1).astype(int)


# ------------------------------------------------------------------------------------------------ modes


def test_rgb_png_roundtrip_keeps_pixels_and_reports_metadata(tmp_path: Path) -> None:
    pixels = np.random.default_rng(RNG_SEED).integers(0, 256, (H, W, 3), dtype=np.uint8)
    path = tmp_path / "part.png"
    Image.fromarray(pixels).save(path)
    loaded = load_image(path)
    np.testing.assert_array_equal(np.asarray(loaded.image), pixels)
    assert loaded.name == "part.png"
    assert loaded.path == path
    assert loaded.original_size == (W, H)


def test_grey_l(tmp_path: Path) -> None:
    grey = np.random.default_rng(RNG_SEED).integers(0, 256, (H, W), dtype=np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(_rgb(tmp_path / "l.png"), _grey3(grey))


def test_bilevel_1(tmp_path: Path) -> None:
    bits = np.random.default_rng(RNG_SEED).integers(0, 2, (H, W)).astype(bool)
    Image.fromarray(bits).convert("1").save(tmp_path / "b.png")
    np.testing.assert_array_equal(_rgb(tmp_path / "b.png"), _grey3(bits * 255))


def test_la_is_composited_onto_black(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    grey = rng.integers(0, 256, (H, W), dtype=np.uint8)
    alpha = rng.integers(0, 256, (H, W), dtype=np.uint8)
    Image.fromarray(np.stack([grey, alpha], axis=-1), mode="LA").save(tmp_path / "la.png")
    expected = np.rint(grey * (alpha / 255.0))
    np.testing.assert_array_equal(_rgb(tmp_path / "la.png"), _grey3(expected))


def test_rgba_is_composited_onto_black(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    rgba = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 255, 255, 0)  # fully transparent white must come out black
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    expected = np.rint(rgba[..., :3] * (rgba[..., 3:] / 255.0)).astype(int)
    out = _rgb(tmp_path / "rgba.png")
    np.testing.assert_array_equal(out, expected)
    assert tuple(out[0, 0]) == (0, 0, 0)


def _palette_image(indices: np.ndarray) -> Image.Image:
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 100, 50]
    image.putpalette(palette + [0] * (768 - len(palette)))
    return image


def test_palette_without_transparency(tmp_path: Path) -> None:
    indices = np.random.default_rng(RNG_SEED).integers(0, 4, (H, W))
    _palette_image(indices).save(tmp_path / "p.png")
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]])
    np.testing.assert_array_equal(_rgb(tmp_path / "p.png"), colours[indices])


def test_palette_with_transparent_index(tmp_path: Path) -> None:
    indices = np.random.default_rng(RNG_SEED).integers(0, 4, (H, W))
    _palette_image(indices).save(tmp_path / "pt.png", transparency=1)
    colours = np.array([[255, 0, 0], [0, 0, 0], [0, 0, 255], [200, 100, 50]])  # index 1 transparent -> black
    np.testing.assert_array_equal(_rgb(tmp_path / "pt.png"), colours[indices])


def test_cmyk(tmp_path: Path) -> None:
    # Pure inks, on which every CMYK->RGB convention agrees.
    inks = {(0, 0, 0, 0): (255, 255, 255), (255, 0, 0, 0): (0, 255, 255), (0, 255, 0, 0): (255, 0, 255),
            (0, 0, 255, 0): (255, 255, 0), (0, 0, 0, 255): (0, 0, 0)}
    cmyk = np.zeros((H, W, 4), dtype=np.uint8)
    expected = np.zeros((H, W, 3), dtype=int)
    for column, (ink, rgb) in enumerate(inks.items()):
        cmyk[:, column::len(inks)] = ink
        expected[:, column::len(inks)] = rgb
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "cmyk.tif")
    np.testing.assert_array_equal(_rgb(tmp_path / "cmyk.tif"), expected)


@pytest.mark.parametrize(("dtype", "suffix"), [("<u2", ".png"), ("<u2", ".tif"), (">u2", ".tif")])
def test_16bit_maps_full_range_by_257(tmp_path: Path, dtype: str, suffix: str) -> None:
    values = np.random.default_rng(RNG_SEED).integers(0, 65536, (H, W)).astype(dtype)
    values[0, :4] = [0, 257, 65535, 128]
    image = Image.fromarray(values)
    assert image.mode in {"I;16", "I;16B"}
    image.save(tmp_path / f"sixteen{suffix}")
    out = _rgb(tmp_path / f"sixteen{suffix}")
    np.testing.assert_array_equal(out, _grey3(np.rint(values.astype(float) / 257.0)))
    assert list(out[0, :3, 0]) == [0, 1, 255]


def test_32bit_integer_is_clipped_to_16bit_range(tmp_path: Path) -> None:
    values = np.random.default_rng(RNG_SEED).integers(-1000, 70000, (H, W)).astype(np.int32)
    Image.fromarray(values, mode="I").save(tmp_path / "int.tif")
    expected = np.rint(np.clip(values, 0, 65535) / 257.0)
    np.testing.assert_array_equal(_rgb(tmp_path / "int.tif"), _grey3(expected))


@pytest.mark.parametrize("full_range", [1.0, 255.0, 65535.0])
def test_float_f_uses_narrowest_standard_range(tmp_path: Path, full_range: float) -> None:
    values = np.random.default_rng(RNG_SEED).uniform(0, full_range, (H, W)).astype(np.float32)
    values[0, 0] = full_range
    Image.fromarray(values, mode="F").save(tmp_path / "f.tif")
    expected = np.rint(values.astype(np.float64) * (255.0 / full_range))
    np.testing.assert_array_equal(_rgb(tmp_path / "f.tif"), _grey3(expected))


def test_float_f_out_of_range_is_refused(tmp_path: Path) -> None:
    values = np.full((H, W), 70000.0, dtype=np.float32)
    Image.fromarray(values, mode="F").save(tmp_path / "big.tif")
    with pytest.raises(ImageLoadError, match="big.tif.*rescale"):
        load_image(tmp_path / "big.tif")


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((40, 60, 3), dtype=np.uint8)
    stored[:, :30] = (255, 0, 0)  # left half red
    stored[:, 30:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    loaded = load_image(tmp_path / "phone.jpg")
    assert loaded.original_size == (40, 60)  # width and height swapped
    expected = np.rot90(stored, k=-1).astype(int)  # clockwise: the left half ends up on top
    out = np.asarray(loaded.image).astype(int)
    assert out.shape == expected.shape
    assert np.abs(out - expected).mean() < 8  # JPEG noise only
    assert out[5, 20, 0] > 200 and out[-5, 20, 2] > 200


# ------------------------------------------------------------------------------------------------ arrays


def test_arrays_of_every_supported_shape_and_dtype() -> None:
    rng = np.random.default_rng(RNG_SEED)
    grey = rng.integers(0, 256, (H, W), dtype=np.uint8)
    colour = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    sixteen = rng.integers(0, 65536, (H, W, 3)).astype(np.uint16)
    floats = rng.uniform(0, 1, (H, W, 3))
    np.testing.assert_array_equal(_rgb(grey), _grey3(grey))
    np.testing.assert_array_equal(_rgb(grey[..., None]), _grey3(grey))
    np.testing.assert_array_equal(_rgb(colour), colour)
    np.testing.assert_array_equal(_rgb(rgba), np.rint(rgba[..., :3] * (rgba[..., 3:] / 255.0)))
    np.testing.assert_array_equal(_rgb(sixteen), np.rint(sixteen / 257.0))
    np.testing.assert_array_equal(_rgb(floats), np.rint(floats * 255.0))
    np.testing.assert_array_equal(_rgb(floats.astype(np.float32)), np.rint(floats.astype(np.float32) * 255.0))
    np.testing.assert_array_equal(_rgb(colour.astype(np.int64)), colour)
    assert load_image(colour).name == "<array>" and load_image(colour).path is None
    assert load_image(colour, name="cam3").name == "cam3"


@pytest.mark.parametrize(
    ("array", "pattern"),
    [
        (np.zeros((20, 24, 2), dtype=np.uint8), "not an image"),
        (np.zeros((2, 20, 24, 3), dtype=np.uint8), "not an image"),
        (np.full((20, 24), 1.5), r"outside \[0, 1\]"),
        (np.full((20, 24), np.nan), "NaN"),
        (np.full((20, 24), 300, dtype=np.int32), "outside \\[0, 255\\]"),
        (np.zeros((20, 24), dtype=np.complex64), "dtype complex64"),
    ],
)
def test_bad_arrays(array: np.ndarray, pattern: str) -> None:
    with pytest.raises(ImageLoadError, match=pattern):
        load_image(array)


def test_pil_input_is_converted_and_not_modified() -> None:
    rgba = Image.new("RGBA", (W, H), (200, 100, 50, 0))
    loaded = load_image(rgba)
    assert rgba.mode == "RGBA"
    assert np.asarray(loaded.image).max() == 0
    assert loaded.name == "<PIL image>"


def test_opened_pil_image_keeps_its_file_name(tmp_path: Path) -> None:
    Image.new("RGB", (W, H), (1, 2, 3)).save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as opened:
        loaded = load_image(opened)
    assert loaded.name == "x.png" and loaded.path == tmp_path / "x.png"


def test_unsupported_source_type() -> None:
    with pytest.raises(ImageLoadError, match="not an image source"):
        load_image(42)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ errors


def _assert_one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    assert isinstance(error.value, ZsadError)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError) as error:
        load_image(tmp_path / "nope.png")
    _assert_one_line(error, "nope.png", "does not exist", "check the path")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError) as error:
        load_image(tmp_path)
    _assert_one_line(error, str(tmp_path), "is a folder")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageLoadError) as error:
        load_image(tmp_path / "empty.png")
    _assert_one_line(error, "empty.png", "0 bytes")


def test_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("these are not pixels\n" * 10)
    with pytest.raises(ImageLoadError) as error:
        load_image(tmp_path / "notes.png")
    _assert_one_line(error, "notes.png", "not an image file", "convert it to PNG or JPEG")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path: Path, fmt: str) -> None:
    noise = np.random.default_rng(RNG_SEED).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = tmp_path / f"full.{fmt.lower()}"
    Image.fromarray(noise).save(full, format=fmt)
    data = full.read_bytes()
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError) as error:
        load_image(cut)
    _assert_one_line(error, cut.name, "corrupt or truncated", "re-copy")


def test_too_small_has_the_documented_message(tmp_path: Path) -> None:
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(ImageLoadError) as error:
        load_image(tmp_path / "dot.png")
    _assert_one_line(error, "dot.png", "1x1 px is too small to inspect; zsad needs at least 16 px per side")
    Image.new("RGB", (16, 16)).save(tmp_path / "ok.png")
    assert load_image(tmp_path / "ok.png").original_size == (16, 16)
    assert load_image(tmp_path / "dot.png", min_side=1).original_size == (1, 1)


@pytest.mark.parametrize("side", [40, 50])  # 1600 px: PIL warns; 2500 px (> 2x limit): PIL raises
def test_too_large_is_refused_with_its_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    Image.new("RGB", (side, side)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError) as error:
        load_image(tmp_path / "huge.png")
    _assert_one_line(error, "huge.png", "decompression-bomb", "downscale")


# ------------------------------------------------------------------------------------------------ masks


def test_mask_none_is_all_normal() -> None:
    mask = load_mask(None, (W, H))
    assert mask.shape == (H, W) and mask.dtype == bool and not mask.any()


def test_mask_nonzero_is_anomalous_and_resized_nearest(tmp_path: Path) -> None:
    values = np.random.default_rng(RNG_SEED).choice([0, 1, 128, 255], size=(8, 12)).astype(np.uint8)
    Image.fromarray(values, mode="L").save(tmp_path / "m.png")
    same = load_mask(tmp_path / "m.png", (12, 8))
    np.testing.assert_array_equal(same, values != 0)
    doubled = load_mask(tmp_path / "m.png", (24, 16))
    np.testing.assert_array_equal(doubled, np.kron(values != 0, np.ones((2, 2), dtype=bool)))


def test_mask_colour_palette_alpha_and_16bit(tmp_path: Path) -> None:
    hit = np.zeros((H, W), dtype=bool)
    hit[3:9, 5:15] = True
    rgb = np.zeros((H, W, 3), dtype=np.uint8)
    rgb[hit] = (0, 0, 7)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    rgba = np.zeros((H, W, 4), dtype=np.uint8)
    rgba[..., :3] = 255  # transparent white background is normal
    rgba[hit] = (255, 0, 0, 255)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    _palette_image(hit.astype(np.uint8) * 2).save(tmp_path / "p.png")  # by index: red index 0 is background
    Image.fromarray(hit.astype(np.uint16) * 1000).save(tmp_path / "m16.png")
    for name in ("rgb.png", "rgba.png", "p.png", "m16.png"):
        np.testing.assert_array_equal(load_mask(tmp_path / name, (W, H)), hit, err_msg=name)


def test_mask_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="gone_mask.png"):
        load_mask(tmp_path / "gone_mask.png", (W, H))


# ------------------------------------------------------------------------------------------------ folders


def test_list_images_expands_folders_and_keeps_given_files(tmp_path: Path) -> None:
    root = tmp_path / "batch"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".cache").mkdir()
    for relative in ["b.png", "a.JPG", "sub/c.tiff", "sub/deeper/d.bmp", ".hidden.png", "._a.png",
                     ".cache/e.png", "notes.txt", "sub/readme.md"]:
        (root / relative).write_bytes(b"x")
    odd = tmp_path / "scan.raw"
    odd.write_bytes(b"x")
    listed = list_images([root, odd, root / "b.png"])
    assert listed == [root / "a.JPG", root / "b.png", root / "sub" / "c.tiff", root / "sub" / "deeper" / "d.bmp",
                      odd]


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="missing_dir.*no such file or folder"):
        list_images([tmp_path / "missing_dir"])
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    with pytest.raises(DatasetError, match="docs.*no images"):
        list_images([tmp_path / "docs"])


def test_image_suffixes_are_lower_case_with_dot() -> None:
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"} <= IMAGE_SUFFIXES
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)
