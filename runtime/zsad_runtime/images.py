"""Loading images and ground-truth masks from files, PIL images and numpy arrays.

Everything downstream (backbones, scorers, overlays) sees one kind of image: an 8-bit RGB ``PIL.Image``. This
module is where the zoo of real-world inputs (greyscale, palette, alpha, CMYK, 16-bit, float, EXIF-rotated
phone pictures) is turned into that, and where unusable inputs are rejected with a message that names the file
and says what to do.

Decisions:

- **Transparency is composited onto black.** Compositing onto black is the same as premultiplying the colour by
  alpha, so the result never depends on the arbitrary RGB values that editors leave under fully transparent
  pixels, and every transparent region of a batch becomes the same colour (mutual and reference scoring then see
  it as normal). Industrial cut-outs are also more often shown on dark than on white backgrounds.
- **16-bit images are divided by 257** (65535 -> 255), i.e. the full 16-bit range maps to the full 8-bit range,
  and never stretched per image. Per-image min-max stretching would make a dim good image and a bright good image
  look alike but would also make intensities incomparable across a batch, which is exactly what mutual and
  reference scoring compare. ``I`` (32-bit integer) images are treated as 16-bit data clipped to [0, 65535].
- **Float (``F``) images** have no standard range. The narrowest of [0, 1], [0, 255] and [0, 65535] that holds
  all values is taken as the full range; anything else is rejected rather than guessed.
- **EXIF orientation is applied**, and ``original_size`` is the size *after* rotation: the size the user sees in
  an image viewer, on which heat maps are overlaid.
- **Truncated files are errors.** A full decode (``.load()``) is forced at load time, and
  ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left alone: silently grey-filling the missing part would plant a fake
  defect.
- **Decompression bombs** (PIL's ``MAX_IMAGE_PIXELS`` limit, warning or error) are refused: zsad looks at a few
  hundred pixels per side, so such an image must be downscaled anyway.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from zsad_runtime.errors import DatasetError, ImageLoadError

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".gif"}
)
"""Suffixes (lower case) that folder expansion treats as images."""

DEFAULT_MIN_SIDE = 16

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})

ImageSource = str | Path | Image.Image | np.ndarray


@dataclass
class LoadedImage:
    """An input image converted to 8-bit RGB, with what is needed to report on it."""

    image: Image.Image
    name: str
    path: Path | None
    original_size: tuple[int, int]  # (width, height), after EXIF rotation


def load_image(
    source: ImageSource, *, name: str | None = None, min_side: int = DEFAULT_MIN_SIDE
) -> LoadedImage:
    """Load a path, PIL image or numpy array as an 8-bit RGB image; raise ``ImageLoadError`` if it is unusable.

    ``name`` defaults to the file name for paths, the PIL image's ``filename`` when it has one, and ``"<array>"``
    or ``"<PIL image>"`` otherwise.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        pil = _open_file(path)
        label = name if name is not None else path.name
        where = str(path)
    elif isinstance(source, Image.Image):
        path = Path(source.filename) if getattr(source, "filename", "") else None
        label = name if name is not None else (path.name if path is not None else "<PIL image>")
        where = str(path) if path is not None else label
        pil = _decode(source, where)
    elif isinstance(source, np.ndarray):
        path = None
        label = name if name is not None else "<array>"
        where = label
        pil = _array_to_pil(source, where)
    else:
        raise ImageLoadError(
            f"{type(source).__name__} is not an image source; pass a file path, a PIL image or a numpy array"
        )

    pil = _exif_transpose(pil, where)
    rgb = to_rgb(pil, where)
    width, height = rgb.size
    if min(width, height) < min_side:
        raise ImageLoadError(
            f"{where}: {width}x{height} px is too small to inspect; zsad needs at least {min_side} px per side"
        )
    return LoadedImage(image=rgb, name=label, path=path, original_size=(width, height))


def to_rgb(image: Image.Image, where: str = "<PIL image>") -> Image.Image:
    """Convert any PIL mode to 8-bit RGB following the decisions in the module docstring."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        return _grey_to_rgb(np.clip(values, 0, 65535) / 257.0)
    if mode == "F":
        values = np.asarray(image).astype(np.float64)
        return _grey_to_rgb(_float_to_8bit(values, where))
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA")).astype(np.float64)
        premultiplied = rgba[..., :3] * (rgba[..., 3:4] / 255.0)  # == alpha-composite onto black
        return Image.fromarray(np.rint(premultiplied).astype(np.uint8), mode="RGB")
    if mode == "RGB":
        return image  # PIL's convert() to the same mode is a full copy
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageLoadError(
            f"{where}: PIL cannot convert mode {mode!r} to RGB ({exc}); save the image as RGB or greyscale PNG"
        ) from None


def load_mask(path: str | Path | None, size: tuple[int, int]) -> np.ndarray:
    """Read a ground-truth mask as a bool array of shape (height, width); nonzero pixels are anomalous.

    ``size`` is the (width, height) of the image the mask belongs to; a mask of another size is resized
    nearest-neighbour (after thresholding, so no interpolated grey levels appear). ``None`` (a normal image, or
    an anomalous one without annotation) gives an all-False mask. Palette masks are read by index, as
    segmentation tools write them (index 0 = background), not by displayed colour. For masks with alpha,
    transparent pixels are normal whatever their colour (the same premultiplication as for images).
    """
    width, height = size
    if path is None:
        return np.zeros((height, width), dtype=bool)
    path = Path(path)
    pil = _exif_transpose(_open_file(path), str(path))
    mask = _nonzero(pil)
    if mask.shape != (height, width):
        resized = Image.fromarray(mask.astype(np.uint8) * 255, mode="L").resize((width, height), Image.NEAREST)
        mask = np.asarray(resized) > 0
    return mask


def list_images(paths: Iterable[str | Path] | str | Path) -> list[Path]:
    """Expand folders (recursively, sorted, known suffixes only, hidden entries skipped) and keep files as given.

    Files named explicitly are kept even with an unknown suffix, so that the loader reports them as bad instead
    of them silently disappearing. Hidden files are skipped in folders because editors and macOS leave
    ``.DS_Store`` and ``._name.png`` resource forks that look like images but are not. Duplicates are dropped,
    keeping the first occurrence.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            images = _images_in(path)
            if not images:
                suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
                raise DatasetError(f"{path}: folder contains no images ({suffixes}); point zsad at a folder of images")
            found.extend(images)
        elif path.exists():
            found.append(path)
        else:
            raise ImageLoadError(f"{path}: no such file or folder; check the path")
    return list(dict.fromkeys(found))


def _images_in(folder: Path) -> list[Path]:
    """Image files under ``folder``, plus entries that only *look* like images (broken links, symlink loops):
    those are kept so that loading reports them as skipped instead of them silently disappearing."""
    try:
        next(os.scandir(folder), None)
    except OSError as exc:
        raise DatasetError(f"{folder}: folder cannot be read ({exc.strerror or exc}); check its permissions") from None
    images = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.is_symlink() and not _resolves(path):
            images.append(path)  # broken link or loop: reported when loaded
        elif path.is_file():
            images.append(path)
    return images


def _resolves(path: Path) -> bool:
    try:
        path.resolve(strict=True)
        return True
    except (OSError, RuntimeError):  # missing target, or a loop
        return False


def _open_file(path: Path) -> Image.Image:
    """Open and fully decode an image file, turning every failure into a one-line ``ImageLoadError``."""
    if path.is_symlink() and not _resolves(path):
        raise ImageLoadError(f"{path}: broken symbolic link (its target is missing or links back to itself); "
                             "fix or remove the link")
    if not path.exists():
        raise ImageLoadError(f"{path}: file does not exist; check the path")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a folder, not an image file; pass the image files or use folder input")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageLoadError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
    if size == 0:
        raise ImageLoadError(f"{path}: file is empty (0 bytes); re-copy or re-export the image")
    with warnings.catch_warnings():
        # Only the bomb warning is promoted to an error; other warnings keep their usual treatment.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except UnidentifiedImageError:
            raise ImageLoadError(
                f"{path}: not an image file PIL can read; convert it to PNG or JPEG or remove it"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageLoadError(f"{path}: {_too_large(exc)}") from None
        except PermissionError as exc:
            raise ImageLoadError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
        except Exception as exc:  # noqa: BLE001 - PIL plugins raise many unrelated types for broken headers
            raise ImageLoadError(f"{path}: corrupt image header ({_describe(exc)}); re-export the image") from None
        return _decode(image, str(path))


def _decode(image: Image.Image, where: str) -> Image.Image:
    """Force a full decode so truncated or corrupt pixel data fails here, not in the middle of a batch."""
    try:
        image.load()
    except Exception as exc:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ValueError, zlib/struct errors
        raise ImageLoadError(
            f"{where}: image data is corrupt or truncated ({_describe(exc)}); re-copy or re-export the image"
        ) from None
    return image


def _exif_transpose(image: Image.Image, where: str) -> Image.Image:
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) not in (2, 3, 4, 5, 6, 7, 8):
            return image  # nothing to rotate; ImageOps.exif_transpose would return a full copy (243 MB at 81 Mpx)
        return ImageOps.exif_transpose(image)
    except Exception as exc:  # noqa: BLE001 - a malformed EXIF block must not make a readable image unusable
        warnings.warn(f"{where}: ignoring unreadable EXIF orientation ({_describe(exc)})", stacklevel=3)
        return image


def _too_large(exc: Exception) -> str:
    match = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f"{int(match.group(1)) / 1e6:.0f} Mpx" if match else "too many pixels"
    limit = f"{(Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} Mpx"
    return (
        f"image is {pixels}, above PIL's decompression-bomb limit of {limit}; "
        "downscale it (e.g. to 4096 px on the long side) before inspecting it"
    )


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _array_to_pil(array: np.ndarray, where: str) -> Image.Image:
    """Turn an HxW, HxWx1, HxWx3 or HxWx4 array (uint8, uint16, bool, small ints, float in [0, 1]) into PIL. One
    array is one image, so a 1, 3 or 4 x H x W array is read channels-first (a torch tensor's layout)."""
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
        raise ImageLoadError(
            f"{where}: array of shape {array.shape} is not an image; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
        )
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype == np.uint16:
        return _grey_or_colour(np.rint(array.astype(np.float64) / 257.0).astype(np.uint8))
    if array.dtype == np.bool_:
        return _grey_or_colour(array.astype(np.uint8) * 255)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ImageLoadError(f"{where}: float array contains NaN or infinity; replace them before loading")
        low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if low < 0.0 or high > 1.0:
            raise ImageLoadError(
                f"{where}: float array has values in [{low:g}, {high:g}], outside [0, 1]; scale it to [0, 1] "
                "or pass uint8"
            )
        return _grey_or_colour(np.rint(array.astype(np.float64) * 255.0).astype(np.uint8))
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ImageLoadError(
                f"{where}: {array.dtype} array has values outside [0, 255]; convert it to uint8, uint16 or "
                "float in [0, 1]"
            )
        return _grey_or_colour(array.astype(np.uint8))
    raise ImageLoadError(f"{where}: arrays of dtype {array.dtype} are not images; use uint8, uint16 or float in [0, 1]")


def _grey_or_colour(array: np.ndarray) -> Image.Image:
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[array.ndim if array.ndim == 2 else array.shape[-1]]
    return Image.fromarray(np.ascontiguousarray(array), mode=mode)


def _grey_to_rgb(values: np.ndarray) -> Image.Image:
    grey = np.rint(values).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=-1), mode="RGB")


def _float_to_8bit(values: np.ndarray, where: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise ImageLoadError(f"{where}: float image contains NaN or infinity; replace them before loading")
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if low < 0.0:
        raise ImageLoadError(f"{where}: float image has negative values ({low:g}); rescale it to [0, 1]")
    for full_range in (1.0, 255.0, 65535.0):
        if high <= full_range:
            return values * (255.0 / full_range)
    raise ImageLoadError(f"{where}: float image has values up to {high:g}; rescale it to [0, 1]")


def _nonzero(image: Image.Image) -> np.ndarray:
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in {"1", "L", "F", "P"}:
        return np.asarray(image) != 0
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        return rgba[..., :3].any(axis=-1) & (rgba[..., 3] > 0)
    return np.asarray(image.convert("RGB")).any(axis=-1)
