"""Uploads become upright, metadata-free variants, or are refused with a reason."""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image, ImageFile, ImageOps, PngImagePlugin

from pictograph.images import (
    FULL,
    MAX_JPEG_SCANS,
    THUMBNAIL,
    ImageRejected,
    Variant,
    process_image,
    sniff_content_type,
)
from tests.media.jpeg_bombs import progressive_jpeg

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
JUNK = random.Random(1234).randbytes(4096)  # noqa: S311 - reproducible, not secret


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def halves(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Red left half, blue right half, green top-left corner: any turn or flip shows."""
    image = Image.new(mode, size, RED)
    image.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    image.paste(GREEN, (0, 0, min(size) // 4, min(size) // 4))
    return image


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height RGB pixels."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    idat = png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + ihdr + idat + png_chunk(b"IEND", b"")


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def at(image: Image.Image, fx: float, fy: float) -> tuple[int, ...]:
    return image.getpixel((int(fx * image.width), int(fy * image.height)))


def opened(variant: Variant) -> Image.Image:
    image = Image.open(io.BytesIO(variant.data))
    assert image.size == (variant.width, variant.height)
    assert Image.MIME[image.format] == variant.content_type
    return image


def assert_no_metadata(variant: Variant) -> None:
    image = opened(variant)
    assert len(image.getexif()) == 0
    assert b"Exif" not in variant.data
    assert not {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp"} & image.info.keys()
    assert not getattr(image, "text", {})


def test_camera_photo_comes_out_upright_and_anonymous() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SnoopCam Industries"
    exif[0x0110] = "Spyglass X9"
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)})
    original = encode(halves((4000, 3000)), "JPEG", exif=exif, quality=90)
    oracle = ImageOps.exif_transpose(Image.open(io.BytesIO(original))).convert("RGB")

    thumbnail, full = process_image(original)

    assert (thumbnail.size, full.size) == (THUMBNAIL, FULL)
    assert (full.width, full.height) == (810, 1080)
    assert (thumbnail.width, thumbnail.height) == (240, 320)
    for variant in (thumbnail, full):
        assert variant.content_type == "image/jpeg"
        assert_no_metadata(variant)
        assert b"SnoopCam" not in variant.data and b"Spyglass" not in variant.data
        image = opened(variant).convert("RGB")
        assert image.getexif().get_ifd(0x8825) == {}
        for fx, fy in ((0.1, 0.05), (0.9, 0.05), (0.5, 0.4), (0.5, 0.6), (0.1, 0.9)):
            assert close(at(image, fx, fy), at(oracle, fx, fy))
        # Turned clockwise: the left half is on top and the top-left corner at the top right.
        assert close(at(image, 0.9, 0.05), GREEN)
        assert close(at(image, 0.1, 0.05), RED)
        assert close(at(image, 0.5, 0.9), BLUE)


def test_png_with_alpha_stays_png_with_alpha_and_is_not_upscaled() -> None:
    image = halves((200, 100), "RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 20, 20))
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", "Jane Secret")
    variants = process_image(encode(image, "PNG", pnginfo=text))

    assert [v.size for v in variants] == [THUMBNAIL, FULL]
    for variant in variants:
        assert variant.content_type == "image/png"
        assert (variant.width, variant.height) == (200, 100)
        assert b"Jane Secret" not in variant.data
        assert_no_metadata(variant)
        out = opened(variant)
        assert out.mode == "RGBA"
        assert out.getpixel((5, 5))[3] == 0
        assert out.getpixel((150, 50)) == (*BLUE, 255)
    palette = process_image(encode(halves((64, 64)).convert("P"), "PNG", transparency=0))
    assert all(opened(v).mode == "RGBA" for v in palette)


def test_webp_is_accepted() -> None:
    thumbnail, full = process_image(encode(halves((640, 480)), "WEBP"))
    assert (thumbnail.width, thumbnail.height) == (320, 240)
    assert (full.width, full.height) == (640, 480)
    assert {thumbnail.content_type, full.content_type} == {"image/jpeg"}


def test_multi_picture_jpeg_is_its_first_picture() -> None:
    # Phones store depth maps and previews after the photo; Pillow calls such files MPO.
    second = Image.new("RGB", (64, 64), BLUE)
    data = encode(halves((64, 64)), "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    full = opened(process_image(data)[1])
    assert close(full.getpixel((5, 40)), RED)


def test_other_modes_become_rgb() -> None:
    cmyk = process_image(encode(Image.new("CMYK", (50, 40), (0, 255, 255, 0)), "JPEG"))
    assert close(opened(cmyk[1]).getpixel((25, 20)), RED)
    # 16-bit grey at half brightness must stay mid-grey, not clip to white.
    grey = process_image(encode(Image.new("I;16", (50, 40), 32768), "PNG"))
    assert close(opened(grey[1]).convert("RGB").getpixel((25, 20)), (128, 128, 128), 8)


@pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")
def test_malformed_exif_means_no_rotation() -> None:
    # An IFD claiming 65535 entries in a few bytes, pointing far past the end.
    broken = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff" + b"\x01\x12\x00\x03" * 8
    thumbnail, full = process_image(encode(halves((100, 50)), "JPEG", exif=broken))
    assert (full.width, full.height) == (100, 50)
    for variant in (thumbnail, full):
        assert_no_metadata(variant)


def jpeg_with(header: bytes) -> bytes:
    plain = encode(halves((64, 64)), "JPEG")
    return plain[:2] + header + plain[2:]  # right after SOI


def png_with(chunks: bytes) -> bytes:
    plain = encode(halves((64, 64)), "PNG")
    return plain[:33] + chunks + plain[33:]  # right after IHDR


def app4(size: int) -> bytes:
    return b"\xff\xe4" + struct.pack(">H", size + 2) + b"x" * size


def text_chunks(count: int, size: int) -> bytes:
    return b"".join(png_chunk(b"tEXt", b"k%d\x00" % i + b"y" * size) for i in range(count))


@pytest.mark.parametrize(
    ("bomb", "reason"),
    [
        pytest.param(lambda: jpeg_with(app4(60_000) * 40), "not a complete",
                     id="JPEG, 2.4 MB of APP segments"),
        pytest.param(lambda: jpeg_with(app4(0) * 1_000_000), "too many segments",
                     id="JPEG, 1M empty segments"),
        pytest.param(lambda: jpeg_with(b"\xff" * 5_000_000), "too many fill bytes",
                     id="JPEG, 5 MB of fill bytes"),
        pytest.param(lambda: png_with(text_chunks(3, 400_000)), "too much metadata",
                     id="PNG, 1.2 MB of text"),
        pytest.param(lambda: png_with(png_chunk(b"prIv", b"z" * 30_000) * 40),
                     "too much metadata", id="PNG, private"),
        pytest.param(lambda: png_with(png_chunk(b"prIv", b"") * 1_500_000), "too many chunks",
                     id="PNG, 1.5M chunks"),
    ],
)
def test_metadata_bombs_are_refused_before_pillow_walks_them(
    bomb: Callable[[], bytes], reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused by the bounded checks of images.py, in C-speed searches, or by Pillow from a
    header of bounded size: never by Pillow walking megabytes in Python, nor decoding."""
    opened: list[int] = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(len(fp.getbuffer()))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(ImageRejected, match=reason):
        process_image(bomb())
    assert all(size <= 1_300_000 for size in opened), opened


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", "not a JPEG", id="empty"),
        pytest.param(JUNK, "not a JPEG", id="random bytes"),
        pytest.param(b"\xff\xd8\xff" + JUNK, "not a complete", id="junk behind the JPEG magic"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + JUNK, "not a complete", id="junk behind PNG magic"),
        pytest.param(encode(halves((64, 64)), "GIF"), "not a JPEG", id="gif"),
        pytest.param(encode(halves((64, 64)), "BMP"), "not a JPEG", id="bmp"),
        pytest.param(png_declaring(0, 0), "not a complete", id="zero size"),
        pytest.param(encode(halves((1, 1)), "PNG"), "smaller than", id="one pixel"),
        pytest.param(encode(halves((4000, 2)), "PNG"), "smaller than", id="a line"),
    ],
)
def test_unusable_files_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRejected, match=reason) as refused:
        process_image(data)
    assert refused.value.reason == str(refused.value)


def test_truncated_jpeg_is_refused() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    noise = Image.effect_noise((256, 256), 80).convert("RGB")
    whole = encode(noise, "JPEG")
    process_image(whole)
    with pytest.raises(ImageRejected, match="not a complete, readable image"):
        process_image(whole[: len(whole) // 2])


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animations_are_refused(fmt: str) -> None:
    frames = [halves((64, 64)), halves((64, 64)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageRejected, match="animated"):
        process_image(data)


@pytest.mark.parametrize("side", [30_000, 8_000], ids=["Pillow's own limit", "ours"])
def test_decompression_bombs_are_refused_from_the_header(
    side: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: loads.append(image))
    bomb = png_declaring(side, side)
    assert len(bomb) < 200
    with pytest.raises(ImageRejected, match="more than 40,000,000 pixels"):
        process_image(bomb)
    assert loads == []


def test_max_pixels_is_configurable() -> None:
    data = encode(halves((100, 100)), "PNG")
    with pytest.raises(ImageRejected, match="more than 9,999 pixels"):
        process_image(data, max_pixels=9_999)
    assert len(process_image(data, max_pixels=10_000)) == 2


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (encode(halves((16, 16)), "JPEG"), "image/jpeg"),
        (encode(halves((16, 16)), "PNG"), "image/png"),
        (encode(halves((16, 16)), "WEBP"), "image/webp"),
        (encode(halves((16, 16)), "GIF"), None),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"\xff\xd8", None),
        (JUNK, None),
        (b"", None),
    ],
)
def test_sniffing_looks_at_the_bytes(data: bytes, expected: str | None) -> None:
    assert sniff_content_type(data) == expected


@pytest.mark.parametrize("scans", [MAX_JPEG_SCANS + 1, 5_000])
def test_progressive_jpegs_of_too_many_scans_are_refused_before_decoding(
    scans: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = progressive_jpeg(640, 480, scans)
    loads: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: loads.append(image))
    with pytest.raises(ImageRejected, match=f"more than {MAX_JPEG_SCANS} scans") as refused:
        process_image(bomb)
    assert refused.value.reason == f"the JPEG image has more than {MAX_JPEG_SCANS} scans"
    assert loads == []


def app4_of(body: bytes) -> bytes:
    return b"\xff\xe4" + struct.pack(">H", len(body) + 2) + body


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(lambda: progressive_jpeg(640, 480, MAX_JPEG_SCANS), id="at the limit"),
        pytest.param(lambda: encode(halves((640, 480)), "JPEG", progressive=True),
                     id="Pillow's progressive (10 scans)"),
        pytest.param(lambda: encode(Image.effect_noise((640, 480), 80), "JPEG",
                                    progressive=True, restart_marker_blocks=1),
                     id="a restart marker after every block"),
        pytest.param(lambda: jpeg_with(app4_of(b"\xff\xda\x00\x02" * 5_000)),
                     id="start-of-scan markers inside a segment"),
        pytest.param(lambda: encode(halves((640, 480)), "JPEG")
                     + progressive_jpeg(64, 64, 5_000), id="scans after the end of the image"),
    ],
)
def test_only_the_scans_of_the_picture_count(data: Callable[[], bytes]) -> None:
    assert [variant.size for variant in process_image(data())] == [THUMBNAIL, FULL]


def test_a_jpeg_of_too_many_segments_is_refused() -> None:
    empty_comments = b"\xff\xfe\x00\x02" * 10_001
    with pytest.raises(ImageRejected, match="too many segments"):
        process_image(jpeg_with(empty_comments))
