#!/usr/bin/env python3
"""Hostile images: small files that ask a decoder for far more work or memory than their size suggests.

Each class is a function that returns the file's bytes; `cases(memory_mib)` lists the classes and their
neighbours with the answer the function owes each (`detected`, or an error code), sized for the pixel
budget of a Lambda memory size. The tests (tests/hostile_inputs.py, tests/memory_caps.py) and the
benchmark (benches/hostile.py) take their inputs from here; nothing is committed.

    .venv/bin/python tools/hostile_images.py DIR [--memory 1769]    (writes every case into DIR)

Written with the standard library only, byte by byte, so each structure is exactly the one named:
- JPEG scan bombs: a progressive JPEG whose one AC scan, all coefficients zero (one end-of-band run
  per 32,767 blocks), is repeated thousands of times; every scan walks every block of the frame.
- JPEG coding variants no decoder here supports: arithmetic coding, lossless, hierarchical, 12-bit;
  JPEGs defining 100,000 Huffman tables.
- GIFs whose first frame is larger than the logical screen, or lies outside it.
- PNGs with an ICC profile (iCCP) or image data (IDAT) that inflates to gigabytes, APNGs with
  oversized frames, an interlaced PNG at the budget; a run-length BMP that ends at once.
- Animated WebPs with a first frame of the whole canvas at the pixel budget, and lossless WebPs whose
  few pixels name tens of thousands of prefix-code groups.
"""

import argparse
import json
import pathlib
import struct
import sys
import zlib

RESERVED_MIB = 80  # DecodeLimits::RESERVED_MIB
WORST_BYTES_PER_PIXEL = 13  # DecodeLimits::WORST_BYTES_PER_PIXEL
DEFAULT_PIXELS = 40_000_000


def budget(memory_mib):
    """The pixel budget the function derives from its memory size (DecodeLimits::for_memory)."""
    left = max(memory_mib - RESERVED_MIB, 1) << 20
    return min(left // WORST_BYTES_PER_PIXEL, DEFAULT_PIXELS)


def size_for(pixels):
    """Width and height of a 4:3 image with at most `pixels` pixels."""
    h = int((pixels * 3 / 4) ** 0.5)
    return pixels // h, h


# ---------------------------------------------------------------------------------------------- JPEG

class BitWriter:
    """Entropy-coded JPEG data: bits MSB first, 0xFF stuffed with 0x00, padded with ones."""

    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value, bits):
        for i in range(bits - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc = self.n = 0

    def finish(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)
        return bytes(self.out)


def segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_scan_bomb(width, height, components=1, ac_scans=2200):
    """A progressive JPEG (SOF2) of grey blocks: one DC scan of all components, then `ac_scans` scans
    of the first band (coefficients 1-63) that say "all zero" in one end-of-band run per 32,767 blocks,
    taking the components in turn. Every component samples 1x1."""
    bw, bh = (width + 7) // 8, (height + 7) // 8
    blocks = bw * bh
    out = bytearray(b"\xFF\xD8")
    out += segment(0xDB, b"\x00" + bytes([1] * 64))
    sof = struct.pack(">BHHB", 8, height, width, components)
    for c in range(components):
        sof += bytes([c + 1, 0x11, 0])
    out += segment(0xC2, sof)
    # DC table 0: one symbol, category 0 (no difference), code "0". AC table 0: the end-of-band runs
    # EOBr (symbols 0x00, 0x10, ..., 0xE0), fifteen 4-bit codes.
    dc = bytes([0x00]) + bytes([1] + [0] * 15) + bytes([0])
    ac = bytes([0x10]) + bytes([0, 0, 0, 15] + [0] * 12) + bytes(r << 4 for r in range(15))
    out += segment(0xC4, dc + ac)
    # The DC scan, interleaved: one block of each component per MCU, one "0" bit each.
    sos = bytes([components]) + b"".join(bytes([c + 1, 0x00]) for c in range(components)) + b"\x00\x00\x00"
    out += segment(0xDA, sos)
    zero_bits = blocks * components
    out += b"\x00" * (zero_bits // 8)
    if zero_bits % 8:
        out.append(0xFF >> (zero_bits % 8))  # the last zeros, then ones to the byte's end
    # One AC scan per component, encoded once and repeated.
    bits = BitWriter()
    left = blocks
    while left:
        run = min(left, 32767)
        r = run.bit_length() - 1
        bits.put(r, 4)
        bits.put(run - (1 << r), r)
        left -= run
    data = bits.finish()
    scans = [segment(0xDA, bytes([1, c + 1, 0x00, 1, 63, 0x00])) + data for c in range(components)]
    for i in range(ac_scans):
        out += scans[i % components]
    out += b"\xFF\xD9"
    return bytes(out)


def baseline_jpeg(width=64, height=48):
    """A small, valid baseline JPEG (SOF0) of grey blocks: the shape the coding variants patch."""
    bw, bh = (width + 7) // 8, (height + 7) // 8
    out = bytearray(b"\xFF\xD8")
    out += segment(0xDB, b"\x00" + bytes([1] * 64))
    out += segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + bytes([1, 0x11, 0]))
    dc = bytes([0x00]) + bytes([1] + [0] * 15) + bytes([0])
    ac = bytes([0x10]) + bytes([1] + [0] * 15) + bytes([0x00])  # EOB, code "0"
    out += segment(0xC4, dc + ac)
    out += segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0]))
    bits = BitWriter()
    for _ in range(bw * bh):
        bits.put(0, 2)  # DC difference 0, then end of block
    out += bits.finish() + b"\xFF\xD9"
    return bytes(out)


def jpeg_huffman_tables(tables, width=1664, height=1248):
    """The baseline JPEG with its Huffman table segment (two tables in 40 bytes) repeated until it
    defines `tables` tables: each a lookup table both decoders build before any pixel."""
    data = baseline_jpeg(width, height)
    i = data.index(b"\xFF\xC4")
    dht = data[i:i + 2 + int.from_bytes(data[i + 2:i + 4], "big")]
    return data[:i] + dht * (tables // 2 - 1) + data[i:]


def jpeg_variant(sof_marker, precision=8):
    """The baseline JPEG with its frame marker (and sample precision) replaced: how an arithmetic-coded
    (SOF9-11), lossless (SOF3), hierarchical (SOF5-7, SOF13-15) or 12-bit (SOF1, SOF2) file starts."""
    data = bytearray(baseline_jpeg())
    i = data.index(b"\xFF\xC0")
    data[i + 1] = sof_marker
    data[i + 4] = precision
    return bytes(data)


# ----------------------------------------------------------------------------------------------- GIF

class LsbBits:
    """A bit stream least significant bit first, as GIF's LZW codes and WebP lossless are written;
    `code` writes a WebP prefix code bit by bit from its first (most significant) bit."""

    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, value, count):
        self.acc |= value << self.n
        self.n += count
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def code(self, code, length):
        for i in range(length - 1, -1, -1):
            self.put((code >> i) & 1, 1)

    def finish(self):
        return bytes(self.out + (bytes([self.acc]) if self.n else b""))


def lzw_zeros(pixels, min_code_size=2):
    """GIF LZW data for `pixels` pixels of colour 0: the encoder's longest-run codes, a clear code
    whenever the table fills. About 35 KB per 46 million pixels."""
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    stream = LsbBits()
    put = stream.put
    width = min_code_size + 1
    put(clear, width)
    # After a clear code the first code is one pixel; each later code is the run one longer than the
    # previous, which is the entry the decoder is about to add (run k has code end + k - 1).
    next_code, prev_len, left = end + 1, 0, pixels
    while left:
        if prev_len == 0:
            length = 1
            put(0, width)
        else:
            length = min(prev_len + 1, left)
            put(0 if length == 1 else end + length - 1, width)
            next_code += 1
            if next_code == 1 << width and width < 12:
                width += 1
        left -= length
        prev_len = length
        if next_code == 4096:
            put(clear, width)
            width, next_code, prev_len = min_code_size + 1, end + 1, 0
    put(end, width)
    bits = stream.finish()
    blocks = bytearray([min_code_size])
    for i in range(0, len(bits), 255):
        chunk = bits[i:i + 255]
        blocks += bytes([len(chunk)]) + chunk
    return bytes(blocks + b"\x00")


def gif(screen, frame, offset=(0, 0)):
    """A GIF89a with a `screen` logical screen and one frame of size `frame` at `offset`, all black."""
    (sw, sh), (fw, fh), (left, top) = screen, frame, offset
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", sw, sh, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff")
    out += b"\x2C" + struct.pack("<HHHHB", left, top, fw, fh, 0)
    out += lzw_zeros(fw * fh)
    return bytes(out + b"\x3B")


# ----------------------------------------------------------------------------------------------- PNG

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zeros_deflate(prefix, zeros):
    """A zlib stream of `prefix` followed by `zeros` zero bytes, built in a fraction of a second
    whatever `zeros` is: one byte-aligned deflate block of 1 MiB of zeros, repeated."""
    head = zlib.compressobj(9)
    out = head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)
    mib = 1 << 20
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = block.compress(b"\x00" * mib) + block.flush(zlib.Z_FULL_FLUSH)
    out += one * (zeros // mib)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    out += tail.compress(b"\x00" * (zeros % mib)) + tail.flush(zlib.Z_FINISH)
    a, b = zlib.adler32(prefix) & 0xFFFF, zlib.adler32(prefix) >> 16
    b = (b + zeros * a) % 65521
    return out + struct.pack(">I", (b << 16) | a)


def png_rgb(width=64, height=48, before_idat=b"", idat_zeros=0, after_image=b""):
    """An 8-bit RGB PNG of grey rows, with chunks before its image data, zeros after its pixels in
    the same compressed stream, and chunks after it."""
    raw = b"".join(b"\x00" + b"\x80" * (3 * width) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + before_idat + chunk(b"IDAT", zeros_deflate(raw, idat_zeros)) + after_image
            + chunk(b"IEND", b""))


def png_interlaced_zeros(width, height):
    """An interlaced (Adam7) 8-bit RGB PNG of black pixels: seven passes over the image, its data a few
    hundred bytes a megapixel."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = 0
    for x0, y0, dx, dy in passes:
        cols, rows = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if cols and rows:
            raw += rows * (1 + 3 * cols)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1))
            + chunk(b"IDAT", zeros_deflate(b"", raw)) + chunk(b"IEND", b""))


def png_iccp_bomb(inflated, after_image=False):
    """A 64x48 PNG whose ICC profile inflates to `inflated` bytes, where it belongs (before the image
    data) or after it."""
    profile = chunk(b"iCCP", b"icc\x00\x00" + zeros_deflate(b"", inflated))
    return png_rgb(after_image=profile) if after_image else png_rgb(before_idat=profile)


def apng_oversized_frames(frame=(60000, 60000), fdat_zeros=256 << 20):
    """A 64x48 APNG whose second frame claims `frame` pixels and carries `fdat_zeros` zeros."""
    w, h = 64, 48
    fctl = lambda seq, fw, fh: chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, fw, fh, 0, 0, 1, 10, 0, 0))
    before = chunk(b"acTL", struct.pack(">II", 2, 0)) + fctl(0, w, h)
    after = fctl(1, *frame) + chunk(b"fdAT", struct.pack(">I", 2) + zeros_deflate(b"", fdat_zeros))
    return png_rgb(w, h, before_idat=before, after_image=after)


# ----------------------------------------------------------------------------------------------- BMP

def bmp_rle8_end_at_once(width, height):
    """An 8-bit run-length BMP (BI_RLE8) whose data says "end of bitmap" at once: a 64-byte file the
    decoder fills to `width` x `height` pixels."""
    palette = b"\x00\x00\x00\x00\xff\xff\xff\x00"
    data = b"\x00\x01"
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(data), 2835, 2835, 2, 2)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + info + palette + data


# ---------------------------------------------------------------------------------------------- WebP

def vp8l_flat(width, height):
    """A lossless WebP bitstream (VP8L) of one colour: no transforms, no colour cache, one prefix-code
    group whose five codes each have a single symbol, so every pixel takes zero bits."""
    stream = LsbBits()
    put = stream.put
    put(0x2F, 8)
    put(width - 1, 14)
    put(height - 1, 14)
    put(0, 1)  # alpha unused
    put(0, 3)  # version
    put(0, 1)  # no transform
    put(0, 1)  # no colour cache
    put(0, 1)  # no meta prefix codes
    for symbol in (0, 128, 128, 128, 0):  # green, red, blue, alpha, distance
        put(1, 1)  # simple code
        put(0, 1)  # one symbol
        put(1, 1)  # of 8 bits
        put(symbol, 8)
    return stream.finish()


def canonical(lengths):
    """Canonical prefix codes {symbol: (code, length)} for {symbol: length}."""
    codes, code, prev = {}, 0, 0
    for symbol, length in sorted(lengths.items(), key=lambda kv: (kv[1], kv[0])):
        code <<= length - prev
        codes[symbol] = (code, length)
        code, prev = code + 1, length
    return codes


# The order code-length code lengths are stored in (the WebP lossless specification).
CODE_LENGTH_ORDER = [17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]


def webp_huffman_groups(groups, width=4, height=4):
    """A lossless WebP of `width` x `height` pixels whose entropy image points at prefix-code group
    `groups - 1`, so a decoder reads `groups` groups of five codes. Each code has eleven symbols of
    lengths 1 to 10 (and 10): about 15 bytes that a decoder without group remapping turns into a
    1,024-entry lookup table, 4 KB. libwebp builds only the groups the image uses."""
    bits = LsbBits()
    bits.put(0x2F, 8)
    bits.put(width - 1, 14)
    bits.put(height - 1, 14)
    bits.put(0, 1)  # alpha unused
    bits.put(0, 3)  # version
    bits.put(0, 1)  # no transform
    bits.put(0, 1)  # no colour cache
    bits.put(1, 1)  # meta prefix codes
    bits.put(0, 3)  # one entropy-image pixel per 4x4 block
    # The entropy image: single-symbol codes, so each of its pixels (green, red, blue, alpha) costs no
    # bits and names group (red << 8 | green).
    bits.put(0, 1)  # no colour cache
    for symbol in ((groups - 1) & 0xFF, (groups - 1) >> 8, 0, 0, 0):
        bits.put(1, 1)  # simple code
        bits.put(0, 1)  # one symbol
        bits.put(1, 1)  # of 8 bits
        bits.put(symbol, 8)
    # Code-length code: the values 1 to 10, complete, lengths within 7.
    clc_lengths = {1: 2, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 6, 8: 6, 9: 6, 10: 6}
    clc = canonical(clc_lengths)
    lengths = list(range(1, 11)) + [10]  # symbols 0..10
    symbol_codes = canonical(dict(enumerate(lengths)))
    for _ in range(groups * 5):
        bits.put(0, 1)  # normal code
        bits.put(10, 4)  # 14 code-length code lengths
        for symbol in CODE_LENGTH_ORDER[:14]:
            bits.put(clc_lengths.get(symbol, 0), 3)
        bits.put(1, 1)  # the code lengths end early...
        bits.put(1, 3)  # ...after a 4-bit count
        bits.put(len(lengths) - 2, 4)
        for length in lengths:
            bits.code(*clc[length])
    # The pixels: symbol 0 of each code (green, red, blue, alpha), one bit each.
    for _ in range(width * height * 4):
        bits.code(*symbol_codes[0])
    return riff(riff_chunk(b"VP8L", bits.finish()))


def riff(body):
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def riff_chunk(kind, data):
    return kind + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


def webp_animated(canvas, frame=None, frames=2):
    """An animated WebP (VP8X + ANMF, with the alpha flag: the decoder's costliest output) on a
    `canvas`, whose frames are each `frame` (default: the whole canvas) of one colour."""
    (cw, ch), (fw, fh) = canvas, frame or canvas
    vp8x = struct.pack("<B3x", 0x12) + (cw - 1).to_bytes(3, "little") + (ch - 1).to_bytes(3, "little")
    body = riff_chunk(b"VP8X", vp8x) + riff_chunk(b"ANIM", struct.pack("<IH", 0xFFFFFFFF, 0))
    for _ in range(frames):
        header = (0).to_bytes(3, "little") * 2 + (fw - 1).to_bytes(3, "little") + (fh - 1).to_bytes(3, "little")
        header += (100).to_bytes(3, "little") + b"\x00"
        body += riff_chunk(b"ANMF", header + riff_chunk(b"VP8L", vp8l_flat(fw, fh)))
    return riff(body)


# --------------------------------------------------------------------------------------------- cases

def cases(memory_mib=1769):
    """(name, bytes, expected answer) for every class and its neighbours, at the pixel budget of
    `memory_mib`: `detected`, or the error code the function owes."""
    pixels = budget(memory_mib)
    bw, bh = size_for(pixels)
    out = [
        # Scan bombs: refused by their work before any scan is decoded, on both JPEG decoders (the
        # DCT-scaled one takes images of at least twice the model's input on both axes).
        ("jpeg_scans_2200_grey_831x623", jpeg_scan_bomb(831, 623, 1, 2200), "image_too_complex"),
        ("jpeg_scans_2200_grey_832x624", jpeg_scan_bomb(832, 624, 1, 2200), "image_too_complex"),
        ("jpeg_scans_101_grey_64x48", jpeg_scan_bomb(64, 48, 1, 101), "image_too_complex"),
        ("jpeg_scans_2200_grey_budget", jpeg_scan_bomb(bw, bh, 1, 2200), "image_too_complex"),
        ("jpeg_scans_4000_grey_budget", jpeg_scan_bomb(bw, bh, 1, 4000), "image_too_complex"),
        ("jpeg_scans_20000_colour_budget", jpeg_scan_bomb(bw, bh, 3, 20000), "image_too_complex"),
        # Their neighbours that are fine: as many scans as a progressive encoder writes.
        ("jpeg_scans_9_grey_budget", jpeg_scan_bomb(bw, bh, 1, 9), "detected"),
        ("jpeg_scans_12_colour_budget", jpeg_scan_bomb(bw, bh, 3, 12), "detected"),
        # Huffman table definitions: a few dozen bytes each, a lookup table each for both decoders.
        ("jpeg_huffman_tables_100000", jpeg_huffman_tables(100_000), "image_too_complex"),
        ("jpeg_huffman_tables_1000", jpeg_huffman_tables(1000), "detected"),
        # Coding variants: named, 415.
        ("jpeg_arithmetic_sof9", jpeg_variant(0xC9), "unsupported_format"),
        ("jpeg_arithmetic_progressive_sof10", jpeg_variant(0xCA), "unsupported_format"),
        ("jpeg_lossless_sof3", jpeg_variant(0xC3), "unsupported_format"),
        ("jpeg_hierarchical_sof5", jpeg_variant(0xC5), "unsupported_format"),
        ("jpeg_12bit_sof1", jpeg_variant(0xC1, 12), "unsupported_format"),
        ("jpeg_12bit_progressive_sof2", jpeg_variant(0xC2, 12), "unsupported_format"),
        ("jpeg_extended_8bit_sof1", jpeg_variant(0xC1, 8), "detected"),
        # GIF frames: larger than the screen, or outside it.
        ("gif_frame_over_budget_on_budget_screen", gif((bw, bh), size_for(int(pixels * 1.5)), (1, 0)),
         "image_too_large"),
        ("gif_frame_at_budget_offset_on_budget_screen", gif((bw, bh), (bw, bh), (1, 0)), "detected"),
        ("gif_121mp_frame_on_1x1_screen", gif((1, 1), (11000, 11000)), "image_too_large"),
        ("gif_frame_inside_screen", gif((bw, bh), (bw // 2, bh // 2), (bw // 4, bh // 4)), "detected"),
        # PNG: an ICC profile or image data that inflates to gigabytes; APNG frames past the image.
        ("png_iccp_inflates_to_2gb", png_iccp_bomb(2 << 30), "detected"),
        ("png_iccp_after_the_image", png_iccp_bomb(2 << 30, after_image=True), "detected"),
        ("png_idat_trailing_2gb", png_rgb(idat_zeros=2 << 30), "detected"),
        ("apng_oversized_second_frame", apng_oversized_frames(), "detected"),
        ("png_interlaced_budget", png_interlaced_zeros(bw, bh), "detected"),
        # BMP runs: a few bytes that fill the whole budget.
        ("bmp_rle8_budget", bmp_rle8_end_at_once(bw, bh), "detected"),
        # Animated WebP: the first frame's buffers besides the canvas.
        ("webp_animated_at_budget", webp_animated((min(bw, 16383), bh)), "image_too_large"),
        ("webp_animated_half_budget", webp_animated(size_for(pixels // 2)), "detected"),
        # Lossless WebP naming more prefix-code groups than any encoder writes: each a 4 KB table.
        ("webp_lossless_65536_groups", webp_huffman_groups(65536), "image_too_complex"),
        ("webp_lossless_4097_groups", webp_huffman_groups(4097), "image_too_complex"),
        # At the limit: 4096 groups of 4 KB tables, about 90 MB, over the memory cap at 128 MB only.
        ("webp_lossless_4096_groups", webp_huffman_groups(4096),
         "detected" if memory_mib - RESERVED_MIB >= 100 else "image_too_large"),
    ]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=pathlib.Path)
    parser.add_argument("--memory", type=int, default=1769, help="the Lambda memory size to size for (MiB)")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    index = []
    for name, data, expected in cases(args.memory):
        (args.dir / name).write_bytes(data)
        index.append({"file": name, "bytes": len(data), "expected": expected})
        print(f"{name}: {len(data):,} bytes, expected {expected}", file=sys.stderr)
    (args.dir / "index.json").write_text(json.dumps(index, indent=1))


if __name__ == "__main__":
    main()
