"""Uploaded images: decoded with Pillow (the bytes decide the type, not the client), checked against pixel bombs,
and re-encoded as a fresh PNG without metadata, so nothing active or private (scripts, EXIF, GPS) survives."""
from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from ..platform.errors import Unprocessable, UnsupportedMediaType

FORMATS = ("PNG", "JPEG", "GIF", "WEBP")  # the only decoders Pillow may try (no EPS, PSD, SVG...)
MAX_DIMENSION = 4096  # px, either side, as the file's header states it (before anything is decoded)
MAX_PIXELS = MAX_DIMENSION * MAX_DIMENSION
# The largest size each kind is stored at (aspect ratio kept; smaller images are not enlarged).
BOXES = {"avatar": (512, 512), "banner": (1920, 640)}
EXT = "png"
_HINT = "Upload a PNG, JPEG, GIF or WebP image, e.g. curl -F file=@avatar.png."


def reencode_image(data: bytes, kind: str) -> bytes:
    """The image in data as a new PNG of at most BOXES[kind], RGB or RGBA, first frame only; else a 415/422."""
    box = BOXES[kind]
    with warnings.catch_warnings():
        # Pillow warns past Image.MAX_IMAGE_PIXELS and raises past twice that: both are refusals here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=FORMATS) as im:
                width, height = im.size
                if width > MAX_DIMENSION or height > MAX_DIMENSION or width * height > MAX_PIXELS:
                    raise _too_many_pixels(width, height)
                im.seek(0)  # an animated GIF or WebP: its first frame
                im.load()
                im = ImageOps.exif_transpose(im)  # photos keep their orientation once EXIF is gone
                has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
                im = im.convert("RGBA" if has_alpha else "RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels() from None
        except UnidentifiedImageError:
            raise UnsupportedMediaType("The upload is not a PNG, JPEG, GIF or WebP image.", _HINT) from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt data
            raise Unprocessable(f"The image could not be decoded ({str(exc)[:120]}).", _HINT) from None
    im.thumbnail(box, Image.Resampling.LANCZOS)
    # A fresh image holds pixels only: no info dict, so no EXIF, ICC profile, text chunks or comments are written.
    clean = Image.frombytes(im.mode, im.size, im.tobytes())
    out = io.BytesIO()
    clean.save(out, format="PNG", compress_level=6)
    return out.getvalue()


def _too_many_pixels(width: int = 0, height: int = 0) -> Unprocessable:
    size = f"{width}x{height} pixels" if width else "too many pixels"
    return Unprocessable(
        f"The image is {size}; at most {MAX_DIMENSION}x{MAX_DIMENSION} is accepted.",
        "Scale the image down before uploading it (avatars are stored at 512x512, banners at 1920x640 at most).",
    )

