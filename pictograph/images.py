"""Turning an uploaded file into the variants we serve, or refusing it.

Pure and CPU-bound: callers run it in a worker thread, several at once. That is why nothing
here changes Pillow's module-level settings or the warnings filters, which every thread shares.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass

from PIL import ExifTags, Image

from pictograph.media_types import IMAGE_TYPES, LONGEST_SIDE, MediaSize, content_type_of

THUMBNAIL, FULL = MediaSize.THUMBNAIL, MediaSize.FULL

# Below this nobody can see a picture; such files are tracking pixels or junk.
_MIN_SIDE = 8
# Real photos carry tens of kilobytes of EXIF, ICC and XMP; a megabyte is an attack or junk.
_MAX_METADATA_BYTES = 1_000_000
# Pillow walks JPEG header segments and PNG chunks in Python, a few microseconds apiece, so a
# 20 MB upload of padding or empty chunks would cost seconds. Real files stay far below these.
_MAX_JPEG_HEADER_BYTES = _MAX_METADATA_BYTES + 256_000
_MAX_PNG_CHUNKS = 50_000
# A progressive JPEG's decoding cost grows with its scans: each one visits every block of the
# picture, so a file of a thousand scans that say almost nothing (end-of-band runs) costs
# minutes at 36 Mpx (libjpeg-turbo calls it LJT-01-003 and lets callers cap it, at 500 scans in
# TJFLAG_LIMITSCANS). Encoders write 3 to 5 scans (Photoshop), 10 (libjpeg and libjpeg-turbo's
# progressive mode, Pillow's), about 11 (mozjpeg) or 18 for CMYK: 100 leaves room for any
# hand-tuned script and bounds a 40 Mpx file to a few seconds. The CPU limit of the process
# that decodes (image_sandbox.py) covers whatever else is costly.
MAX_JPEG_SCANS = 100
# Marker segments walked while counting scans; real files have tens. Restart markers inside
# the coded data are not walked, so a file using them costs nothing here.
_MAX_JPEG_SEGMENTS = 10_000
_FILL_BYTES = re.compile(rb"\xff+")
# 0xFF bytes a marker may be padded with: encoders write none, or a few.
_MAX_JPEG_FILL_BYTES = 4096
# Coded data runs up to the first 0xFF that is not a stuffed zero (FF 00), a restart marker
# (FF D0-D7) or fill before a marker: searched in C, so a 20 MB scan costs milliseconds.
_END_OF_CODED_DATA = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD9)}  # TEM, RST0-7, SOI: no length follows
_SOS, _EOI = 0xDA, 0xD9
_NOT_ACCEPTED = "not a JPEG, PNG or WebP image"
_UNREADABLE = "the file is not a complete, readable image"
# The same table ImageOps.exif_transpose uses; applied by hand so that malformed EXIF can only
# ever mean "no rotation" instead of an exception halfway through.
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class Variant:
    size: str  # THUMBNAIL or FULL
    data: bytes
    width: int
    height: int
    content_type: str  # what `data` is


class ImageRejected(Exception):
    """The upload is not a usable image. `reason` is safe to show the author."""

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sniff_content_type(data: bytes) -> str | None:
    """image/jpeg, image/png or image/webp decided from the bytes (magic numbers), never from a
    name or a claimed type; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def process_image(data: bytes, *, max_pixels: int = 40_000_000) -> list[Variant]:
    """THUMBNAIL and FULL variants, upright, with every bit of metadata removed."""
    image, declared = _decode(data, max_pixels)
    orientation = _orientation(image)
    # Shrink first, then turn: turning 40 Mpx costs far more than turning 1 Mpx. The size comes
    # from the declared dimensions because JPEG drafting may have decoded at a fraction of them.
    full = _resized(_working_pixels(image), _fit(declared, LONGEST_SIDE[FULL]))
    if orientation in _TRANSPOSE_FOR_ORIENTATION:
        full = full.transpose(_TRANSPOSE_FOR_ORIENTATION[orientation])
    thumbnail = _resized(full, _fit(full.size, LONGEST_SIDE[THUMBNAIL]))
    return [_encode(THUMBNAIL, thumbnail), _encode(FULL, full)]


def _decode(data: bytes, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """The fully decoded image and its declared size, or ImageRejected."""
    content_type = sniff_content_type(data)
    if content_type is None:
        raise ImageRejected(_NOT_ACCEPTED)
    expected = IMAGE_TYPES[content_type][0]
    # Pillow's own bomb limit only warns below twice Image.MAX_IMAGE_PIXELS. Enforcing it here
    # beats turning the warning into an error: warnings filters are process-wide, not per thread.
    max_pixels = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    try:
        return _open_and_load(data, expected, max_pixels)
    except (ImageRejected, MemoryError):
        raise
    except Image.DecompressionBombError as error:
        raise ImageRejected(_too_large(max_pixels)) from error
    except Exception as error:
        # Broken files make Pillow raise nearly anything (OSError, SyntaxError, struct.error,
        # IndexError...); all of them mean the same thing to the author.
        raise ImageRejected(_UNREADABLE) from error


def _open_and_load(
    data: bytes, expected: str, max_pixels: int
) -> tuple[Image.Image, tuple[int, int]]:
    if expected == "PNG":
        _check_png_chunks(data)
    elif expected == "JPEG":
        # First, in C-speed searches: Pillow walks segments and fill bytes in Python.
        _check_jpeg_scans(data)
        if len(data) > _MAX_JPEG_HEADER_BYTES:
            # The header must be readable from a bounded prefix; otherwise this raises.
            Image.open(io.BytesIO(data[:_MAX_JPEG_HEADER_BYTES]), formats=[expected])
    # Image.open reads only the header, so everything up to load() is cheap.
    image = Image.open(io.BytesIO(data), formats=[expected])
    # Pillow calls a JPEG with extra pictures (phone depth maps, previews) MPO; the first
    # picture is the photo itself, so it is a JPEG for us and its frame count does not matter.
    is_mpo = image.format == "MPO"
    if ("JPEG" if is_mpo else image.format) != expected:
        raise ImageRejected(_NOT_ACCEPTED)
    if not is_mpo and getattr(image, "n_frames", 1) > 1:
        raise ImageRejected("animated images are not supported")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRejected(_too_large(max_pixels))
    if min(width, height) < _MIN_SIDE:
        raise ImageRejected(f"the image is smaller than {_MIN_SIDE} pixels on a side")
    _check_metadata(image)
    if expected == "JPEG":
        # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the result still covers FULL.
        image.draft(None, (LONGEST_SIDE[FULL], LONGEST_SIDE[FULL]))
    # With ImageFile.LOAD_TRUNCATED_IMAGES at its default (False) a truncated file raises here.
    image.load()
    # PNG text chunks after the pixel data are only read by load().
    _check_metadata(image)
    return image, (width, height)


def _check_png_chunks(data: bytes) -> None:
    offset = 8  # past the signature
    for _ in range(_MAX_PNG_CHUNKS):
        if offset + 8 > len(data):
            return
        length, kind = struct.unpack_from(">I4s", data, offset)
        if kind == b"IEND":
            return
        offset += 12 + length  # length, type, body, CRC
    raise ImageRejected("the PNG file is split into too many chunks")


def _check_jpeg_scans(data: bytes) -> None:
    """Counts the scans (SOS segments) of the first picture, the one that is decoded, before
    any of them is. Stops quietly at anything malformed: decoding will refuse it."""
    scans, offset = 0, 2  # past SOI
    for _ in range(_MAX_JPEG_SEGMENTS):
        fill = _FILL_BYTES.match(data, offset)
        if fill is None or fill.end() >= len(data):
            return
        if fill.end() - fill.start() > _MAX_JPEG_FILL_BYTES:
            raise ImageRejected("the JPEG file is padded with too many fill bytes")
        marker, offset = data[fill.end()], fill.end() + 1
        if marker == _EOI:
            return
        if marker in _STANDALONE_MARKERS:
            continue
        length = int.from_bytes(data[offset:offset + 2], "big")  # it counts its own 2 bytes
        if length < 2:
            return
        offset += length
        if marker == _SOS:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise ImageRejected(f"the JPEG image has more than {MAX_JPEG_SCANS} scans")
            end = _END_OF_CODED_DATA.search(data, offset)
            if end is None:
                return
            offset = end.start()
    raise ImageRejected("the JPEG file is split into too many segments")


def _check_metadata(image: Image.Image) -> None:
    applist: list[tuple[str, bytes]] | None = getattr(image, "applist", None)
    if applist is not None:
        # A JPEG's APPn segments hold its EXIF, ICC and XMP and anything else besides.
        parts: list[bytes | str] = [segment for _, segment in applist]
    else:
        parts = [value for value in image.info.values() if isinstance(value, bytes | str)]
        parts += [chunk[1] for chunk in getattr(image, "private_chunks", [])]
    if sum(map(len, parts)) > _MAX_METADATA_BYTES:
        raise ImageRejected("the image carries too much metadata")


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except MemoryError:
        raise
    except Exception:
        # Malformed EXIF is common in the wild; it costs the photo its rotation, nothing more.
        return 1


def _working_pixels(image: Image.Image) -> Image.Image:
    """RGBA when the image has any transparency, RGB otherwise."""
    mode = "RGBA" if image.has_transparency_data else "RGB"
    if image.mode.startswith("I"):
        # 16-bit greyscale: a plain convert clips everything above 255 to white.
        image = image.convert("I").point(lambda value: value / 256).convert("L")
    return image if image.mode == mode else image.convert(mode)


def _fit(size: tuple[int, int], longest: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, longest / max(width, height))  # never upscale
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(size: str, image: Image.Image) -> Variant:
    # A fresh image from the pixels alone: no EXIF, ICC, XMP or text in `info` can follow it.
    clean = Image.frombytes(image.mode, image.size, image.tobytes())
    out = io.BytesIO()
    if clean.mode == "RGBA":
        clean.save(out, "PNG", optimize=True)
        content_type = content_type_of("PNG")
    else:
        clean.save(out, "JPEG", quality=85, optimize=True, progressive=True)
        content_type = content_type_of("JPEG")
    return Variant(size, out.getvalue(), clean.width, clean.height, content_type)


def _too_large(max_pixels: int) -> str:
    return f"the image has more than {max_pixels:,} pixels"
