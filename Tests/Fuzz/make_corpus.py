#!/usr/bin/python3
"""Generate a corpus of valid and hostile image files for testing image decoders.

    make_corpus.py OUT_DIR --count N --seed S [--only-kinds P,...] [--skip-kinds P,...]

Writes
  OUT_DIR/seeds/     valid images in every format and variant the decoders read (PIL and the small
                     encoders below), at awkward and ordinary sizes, with photo-like content
  OUT_DIR/good/      a fixed subset of the seeds: a run with the hostile files must classify these
                     exactly as a run over good/ alone does
  OUT_DIR/mut/       N files derived from the seeds, named mINDEX_FORMAT_KIND.EXT so the mutation is
                     visible in the name (m01234_png_ihdr-width-crcok.png)
  OUT_DIR/manifest.json   what each file is (kind, base seed, mutation detail)

Everything depends only on --seed (and --only-kinds/--skip-kinds): each mutated file has its own
random stream derived from (seed, index), so file m01234 is the same whatever N is.

Requires Debian's python3-pil (9.4) and python3-numpy; run with /usr/bin/python3.

Kinds are matched by --only-kinds/--skip-kinds as shell patterns against either the kind
("bitflip-few") or FORMAT_KIND ("png_ihdr-width-crcok"); `--list-kinds` prints them.
"""
import argparse
import fnmatch
import io
import json
import os
import random
import shutil
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

MAX_FILE = 2 * 1024 * 1024          # no output file is larger than this
SMALL_FILE = 100 * 1024             # most outputs come from seeds below this size

EXT = {"jpeg": ".jpg", "png": ".png", "gif": ".gif", "bmp": ".bmp", "webp": ".webp", "tiff": ".tif"}
ALT_EXT = {"jpeg": ".jpeg", "tiff": ".tiff"}   # the other spellings the CLI searches for
HAVE_WEBP = features.check("webp")


# ---------------------------------------------------------------------------------------------
# Picture content: smooth gradients, waves, shapes, text and noise, so encoders behave as they
# do on photographs (mixed flat and busy areas, sharp colour edges for chroma subsampling).

WORDS = ["tench", "goldfish", "corpus", "0123456789", "hostile", "decoder", "Lorem ipsum", "EOF?"]


def picture(w, h, rng, noise=None, shapes=True):
    """An RGB uint8 array (h, w, 3)."""
    x = np.arange(w, dtype=np.float32)[None, :] / max(w - 1, 1)
    y = np.arange(h, dtype=np.float32)[:, None] / max(h - 1, 1)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle), 0, 1)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = np.empty((h, w, 3), np.float32)
    for ch in range(3):
        fx, fy = rng.uniform(0.5, 6, 2)
        wave = 30 * np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 6.3))
        img[:, :, ch] = c0[ch] + (c1[ch] - c0[ch]) * t + wave
    sigma = rng.choice([0, 3, 8, 15]) if noise is None else noise
    if sigma:
        img += rng.normal(0, sigma, img.shape).astype(np.float32)
    arr = np.clip(img, 0, 255).astype(np.uint8)
    if not shapes or w < 4 or h < 4:
        return arr
    im = Image.fromarray(arr)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 25))):
        x0, x1 = sorted(rng.integers(0, w, 2))
        y0, y1 = sorted(rng.integers(0, h, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = rng.integers(0, 4)
        if shape == 0:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        elif shape == 1:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif shape == 2:
            pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(int(rng.integers(3, 7)))]
            draw.polygon(pts, fill=colour)
        else:
            draw.line([x0, y0, x1, y1], fill=colour, width=int(rng.integers(1, max(2, min(w, h) // 20))))
    font = ImageFont.load_default()
    for _ in range(int(rng.integers(1, 5))):
        pos = (int(rng.integers(0, max(1, w - 20))), int(rng.integers(0, max(1, h - 10))))
        draw.text(pos, str(rng.choice(WORDS)), fill=tuple(int(v) for v in rng.integers(0, 256, 3)), font=font)
    return np.asarray(im)


def luma(rgb):
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).astype(np.uint8)


def alpha_plane(h, w, rng):
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    a = 255 * np.clip(0.2 + 0.8 * np.abs(np.sin(3 * x + 2 * y + rng.uniform(0, 3))), 0, 1)
    a[: h // 4, : w // 4] = 0          # a fully transparent corner: the colour under it is kept
    return a.astype(np.uint8)


def quantize(rgb, colours):
    """Palette indices (h, w) and an RGB palette of `colours` entries."""
    p = Image.fromarray(rgb).quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal = (p.getpalette() or [])[: 3 * colours]
    pal += [0] * (3 * colours - len(pal))
    return np.asarray(p, dtype=np.uint8), pal


# ---------------------------------------------------------------------------------------------
# PNG: a small encoder (PIL writes neither Adam7 nor 16-bit RGB), and a chunk parser.

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def png_chunk(ctype, data):
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def _pack_samples(samples, depth):
    """Rows of samples (h, n) -> packed row bytes (h, rowbytes) at the given bit depth."""
    h, n = samples.shape
    if depth == 8:
        return samples.astype(np.uint8)
    if depth == 16:
        return samples.astype(">u2").view(np.uint8).reshape(h, 2 * n)
    per = 8 // depth
    padded = np.zeros((h, -(-n // per) * per), np.uint16)
    padded[:, :n] = samples
    padded = padded.reshape(h, -1, per)
    out = np.zeros(padded.shape[:2], np.uint16)
    for k in range(per):
        out |= padded[:, :, k] << (8 - depth * (k + 1))
    return out.astype(np.uint8)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filter(rows, bpp, choose):
    """Filter each row with the type choose(i) picks (0-4), PNG's prefix byte included."""
    out = bytearray()
    prev = np.zeros(rows.shape[1], np.int16)
    zeros = np.zeros(bpp, np.int16)
    for i in range(rows.shape[0]):
        raw = rows[i].astype(np.int16)
        ft = choose(i)
        a = np.concatenate([zeros, raw[:-bpp]])[: raw.size]
        c = np.concatenate([zeros, prev[:-bpp]])[: raw.size]
        if ft == 0:
            f = raw
        elif ft == 1:
            f = raw - a
        elif ft == 2:
            f = raw - prev
        elif ft == 3:
            f = raw - ((a + prev) >> 1)
        else:
            f = raw - _paeth(a, prev, c)
        out.append(ft)
        out += (f & 0xFF).astype(np.uint8).tobytes()
        prev = raw
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_raw(samples, colour_type, depth, interlace, filters="mixed", rng=None):
    """The uncompressed, filtered image data of a PNG. samples: (h, w) or (h, w, c)."""
    if samples.ndim == 2:
        samples = samples[:, :, None]
    h, w, c = samples.shape
    bpp = max(1, c * depth // 8)
    rng = rng or random.Random(0)

    def choose(i):
        return rng.randrange(5) if filters == "mixed" else filters

    if not interlace:
        return _filter(_pack_samples(samples.reshape(h, w * c), depth), bpp, choose)
    out = b""
    for x0, y0, dx, dy in ADAM7:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue   # an empty pass has no rows at all, not even filter bytes
        out += _filter(_pack_samples(sub.reshape(sub.shape[0], -1), depth), bpp, choose)
    return out


def png_encode(samples, colour_type, depth, interlace=False, palette=None, trns=None, pre=(), post=(),
               idat_size=None, level=6, filters="mixed", rng=None):
    h, w = samples.shape[:2]
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 1 if interlace else 0)
    body = png_chunk(b"IHDR", ihdr)
    for ctype, data in pre:
        body += png_chunk(ctype, data)
    if palette is not None:
        body += png_chunk(b"PLTE", bytes(palette))
    if trns is not None:
        body += png_chunk(b"tRNS", trns)
    z = zlib.compress(png_raw(samples, colour_type, depth, interlace, filters, rng), level)
    step = idat_size or max(len(z), 1)
    for i in range(0, max(len(z), 1), step):
        body += png_chunk(b"IDAT", z[i:i + step])
    for ctype, data in post:
        body += png_chunk(ctype, data)
    return PNG_SIG + body + png_chunk(b"IEND", b"")


def png_chunks(data):
    """[(offset, length, type, data_start)] as the file declares them; stops where it stops making sense."""
    if not data.startswith(PNG_SIG):
        return []
    out, pos = [], 8
    while pos + 12 <= len(data):
        length = struct.unpack_from(">I", data, pos)[0]
        ctype = data[pos + 4:pos + 8]
        if pos + 12 + length > len(data):
            break
        out.append((pos, length, ctype, pos + 8))
        pos += 12 + length
        if ctype == b"IEND":
            break
    return out


def png_rebuild(chunks):
    """A PNG from [(type, data)] with valid CRCs."""
    return PNG_SIG + b"".join(png_chunk(t, d) for t, d in chunks)


def png_split(data):
    return [(t, data[s:s + n]) for _, n, t, s in png_chunks(data)]


# ---------------------------------------------------------------------------------------------
# JPEG: a small baseline encoder (PIL 9.4 cannot write restart intervals), EXIF blocks, a segment
# parser and the scan-bomb builder.

ZIGZAG = np.array([0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
                   13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
                   52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63])
Q_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                   14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                   92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
Q_CHROMA = np.array([17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
                     47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32)
# The example Huffman tables of ITU T.81 Annex K.3: (bits[1..16], values).
DC_LUMA = ([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], list(range(12)))
DC_CHROMA = ([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], list(range(12)))
AC_LUMA = ([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d], bytes.fromhex(
    "01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738"
    "393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5"
    "a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9fa"))
AC_CHROMA = ([0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77], bytes.fromhex(
    "000102031104052131061241510761711322328108144291a1b1c109233352f0156272d10a162434e125f11718191a262728292a3536"
    "3738393a434445464748494a535455565758595a636465666768696a737475767778797a82838485868788898a92939495969798999aa2"
    "a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9fa"))


def _huff_codes(table):
    bits, vals = table
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


def _segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _dht(tc, th, table):
    bits, vals = table
    return _segment(0xC4, bytes([tc << 4 | th]) + bytes(bits) + bytes(vals))


def _qtable(base, quality):
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255).astype(np.int32)


class _BitWriter:
    def __init__(self):
        self.out, self.acc, self.n = bytearray(), 0, 0

    def put(self, value, length):
        self.acc = (self.acc << length) | (value & ((1 << length) - 1))
        self.n += length
        while self.n >= 8:
            self.n -= 8
            byte = (self.acc >> self.n) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0)           # byte stuffing
        self.acc &= (1 << self.n) - 1

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)   # pad with ones


def jpeg_baseline(rgb, quality=85, sampling=(2, 2), grey=False, restart=0):
    """A baseline JPEG (JFIF, Annex K tables). sampling: luma (H, V); chroma is 1x1. restart: MCUs
    between RSTn markers (0: none)."""
    h, w = rgb.shape[:2]
    f = rgb.astype(np.float64)
    if grey:
        planes, factors = [0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]], [(1, 1)]
    else:
        y = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
        cb = 128 - 0.168736 * f[..., 0] - 0.331264 * f[..., 1] + 0.5 * f[..., 2]
        cr = 128 + 0.5 * f[..., 0] - 0.418688 * f[..., 1] - 0.081312 * f[..., 2]
        planes, factors = [y, cb, cr], [sampling, (1, 1), (1, 1)]
    hmax, vmax = max(s[0] for s in factors), max(s[1] for s in factors)
    mcux, mcuy = -(-w // (8 * hmax)), -(-h // (8 * vmax))
    qt = [_qtable(Q_LUMA, quality), _qtable(Q_CHROMA, quality)]
    k = np.arange(8)
    dct = np.sqrt(np.where(k == 0, 1 / 8, 2 / 8))[:, None] * np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16)
    comp_blocks = []
    for ci, (plane, (hs, vs)) in enumerate(zip(planes, factors)):
        # Pad to whole MCUs by replicating the edge, then subsample by averaging.
        fy, fx = vmax // vs, hmax // hs
        full = np.pad(plane, ((0, mcuy * 8 * vmax - h), (0, mcux * 8 * hmax - w)), mode="edge")
        sub = full.reshape(full.shape[0] // fy, fy, full.shape[1] // fx, fx).mean(axis=(1, 3)) - 128
        bh, bw = sub.shape[0] // 8, sub.shape[1] // 8
        blocks = sub.reshape(bh, 8, bw, 8).transpose(0, 2, 1, 3)
        coef = np.einsum("ux,abxy,vy->abuv", dct, blocks, dct).reshape(bh, bw, 64)
        q = qt[0 if ci == 0 else 1]
        # coefficients and tables are in natural (row-major) order; the stream and DQT use zigzag order
        comp_blocks.append(np.round(coef[..., ZIGZAG] / q[ZIGZAG]).astype(np.int32))
    dc_codes = [_huff_codes(DC_LUMA), _huff_codes(DC_CHROMA)]
    ac_codes = [_huff_codes(AC_LUMA), _huff_codes(AC_CHROMA)]
    bw_ = _BitWriter()

    def magnitude(v):
        n = int(abs(v)).bit_length()
        return n, (v if v >= 0 else v + (1 << n) - 1)

    pred = [0] * len(planes)
    nmcu, rst = 0, 0
    for my in range(mcuy):
        for mx in range(mcux):
            if restart and nmcu and nmcu % restart == 0:
                bw_.flush()
                bw_.out += bytes([0xFF, 0xD0 + rst % 8])
                rst += 1
                pred = [0] * len(planes)
            nmcu += 1
            for ci, (hs, vs) in enumerate(factors):
                t = 0 if ci == 0 else 1
                for by in range(vs):
                    for bx in range(hs):
                        blk = comp_blocks[ci][my * vs + by, mx * hs + bx]
                        diff = int(blk[0]) - pred[ci]
                        pred[ci] = int(blk[0])
                        n, bits = magnitude(diff)
                        code, length = dc_codes[t][n]
                        bw_.put(code, length)
                        if n:
                            bw_.put(bits, n)
                        run = 0
                        for v in blk[1:]:
                            if v == 0:
                                run += 1
                                continue
                            while run > 15:
                                bw_.put(*ac_codes[t][0xF0])
                                run -= 16
                            n, bits = magnitude(int(v))
                            bw_.put(*ac_codes[t][run << 4 | n])
                            bw_.put(bits, n)
                            run = 0
                        if run:
                            bw_.put(*ac_codes[t][0x00])
    bw_.flush()
    out = b"\xff\xd8" + _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += _segment(0xDB, b"\x00" + bytes(qt[0][ZIGZAG].astype(np.uint8)) + (b"" if grey else b"\x01" + bytes(qt[1][ZIGZAG].astype(np.uint8))))
    sof = struct.pack(">BHHB", 8, h, w, len(planes))
    for ci, (hs, vs) in enumerate(factors):
        sof += bytes([ci + 1, hs << 4 | vs, 0 if ci == 0 else 1])
    out += _segment(0xC0, sof)
    out += _dht(0, 0, DC_LUMA) + _dht(1, 0, AC_LUMA)
    if not grey:
        out += _dht(0, 1, DC_CHROMA) + _dht(1, 1, AC_CHROMA)
    if restart:
        out += _segment(0xDD, struct.pack(">H", restart))
    sos = bytes([len(planes)]) + b"".join(bytes([ci + 1, 0x00 if ci == 0 else 0x11]) for ci in range(len(planes)))
    out += _segment(0xDA, sos + b"\x00\x3f\x00") + bytes(bw_.out) + b"\xff\xd9"
    return out


def exif_block(orientation=1, bo="<", extra_entries=(), next_ifd=0, count_override=None):
    """An APP1 payload: 'Exif\\0\\0' + a TIFF structure whose IFD0 holds Orientation."""
    entries = [(0x0112, 3, 1, struct.pack(bo + "HH", orientation & 0xFFFF, 0))] + list(extra_entries)
    n = len(entries) if count_override is None else count_override
    tiff = (b"II" if bo == "<" else b"MM") + struct.pack(bo + "HI", 42, 8) + struct.pack(bo + "H", n)
    for tag, typ, count, value in entries:
        tiff += struct.pack(bo + "HHI", tag, typ, count) + value
    tiff += struct.pack(bo + "I", next_ifd)
    return b"Exif\x00\x00" + tiff


def jpeg_segments(data):
    """[(marker, offset, total_length)] for the marker segments, entropy data as marker None.
    Stops at EOI or where the structure stops making sense."""
    out = []
    if not data.startswith(b"\xff\xd8"):
        return out
    out.append((0xD8, 0, 2))
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        m = data[pos + 1]
        if m == 0xFF:
            pos += 1
            continue
        if m == 0xD9:
            out.append((m, pos, 2))
            break
        if 0xD0 <= m <= 0xD7 or m == 0x01:
            out.append((m, pos, 2))
            pos += 2
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if length < 2 or pos + 2 + length > len(data):
            break
        out.append((m, pos, 2 + length))
        pos += 2 + length
        if m == 0xDA:
            start = pos
            while pos + 1 < len(data):
                if data[pos] == 0xFF and data[pos + 1] != 0 and not (0xD0 <= data[pos + 1] <= 0xD7):
                    break
                pos += 1
            else:
                pos = len(data)
            out.append((None, start, pos - start))
    return out


def jpeg_scan_bomb(w, h, scans, components=1, rng=None):
    """A progressive JPEG whose every scan is a DC-first scan of the whole image with almost no data:
    cheap to store, but a decoder without a scan limit decodes every block once per scan."""
    out = b"\xff\xd8" + _segment(0xDB, b"\x00" + bytes(_qtable(Q_LUMA, 75).astype(np.uint8)))
    sof = struct.pack(">BHHB", 8, h, w, components) + b"".join(bytes([c + 1, 0x11, 0]) for c in range(components))
    out += _segment(0xC2, sof) + _dht(0, 0, DC_LUMA)
    rng = rng or random.Random(0)
    parts = [out]
    for i in range(scans):
        c = i % components
        al = 0 if i < components else rng.choice([0, 0, 0, 1])
        parts.append(_segment(0xDA, bytes([1, c + 1, 0x00, 0, 0, al])) + b"\x00" * rng.randint(1, 4))
    parts.append(b"\xff\xd9")
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------
# BMP: an encoder for the variants PIL does not write (4-bit, RLE, top-down, bit fields, core and
# V4/V5 headers).

def _rle8(indices):
    out = bytearray()
    for row in indices:
        x = 0
        while x < len(row):
            run = 1
            while x + run < len(row) and run < 255 and row[x + run] == row[x]:
                run += 1
            if run >= 3 or len(row) - x < 3:
                out += bytes([run, row[x]])
                x += run
            else:
                # absolute mode for a stretch without runs (3..255 pixels, padded to a word)
                n = 3
                while x + n < len(row) and n < 255 and not (x + n + 2 < len(row) and row[x + n] == row[x + n + 1] == row[x + n + 2]):
                    n += 1
                out += bytes([0, n]) + bytes(row[x:x + n]) + (b"\x00" if n % 2 else b"")
                x += n
        out += b"\x00\x00"
    out[-2:] = b"\x00\x01"
    return bytes(out)


def _rle4(indices):
    out = bytearray()
    for row in indices:
        x = 0
        while x < len(row):
            run = 1
            while x + run < len(row) and run < 255 and row[x + run] == row[x]:
                run += 1
            out += bytes([run, (row[x] << 4) | row[x]])
            x += run
        out += b"\x00\x00"
    out[-2:] = b"\x00\x01"
    return bytes(out)


def bmp_encode(rgb, bpp, rng, compression="rgb", top_down=False, header=40, alpha=None):
    """bpp 1/4/8 (palette), 16 (565 bit fields or 555), 24, 32 (BGRX, or bit fields with alpha)."""
    h, w = rgb.shape[:2]
    palette, pixels, comp, masks = b"", b"", 0, b""
    entry = 3 if header == 12 else 4
    if bpp <= 8:
        idx, pal = quantize(rgb, 1 << bpp)
        for i in range(1 << bpp):
            palette += bytes([pal[3 * i + 2], pal[3 * i + 1], pal[3 * i]]) + (b"" if entry == 3 else b"\x00")
        rows = idx if top_down else idx[::-1]
        if compression == "rle" and bpp == 8:
            pixels, comp = _rle8(rows), 1
        elif compression == "rle" and bpp == 4:
            pixels, comp = _rle4(rows), 2
        else:
            pixels = _pack_samples(rows, bpp)
    else:
        r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
        if bpp == 16:
            if compression == "bitfields":
                v, comp = (r >> 3) << 11 | (g >> 2) << 5 | (b >> 3), 3
                masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
            else:
                v = (r >> 3) << 10 | (g >> 3) << 5 | (b >> 3)
            px = v.astype("<u2").view(np.uint8).reshape(h, w * 2)
        elif bpp == 24:
            px = np.stack([b, g, r], -1).astype(np.uint8).reshape(h, w * 3)
        else:
            a = alpha.astype(np.uint32) if alpha is not None else np.zeros_like(r)
            v = (a << 24) | (r << 16) | (g << 8) | b
            if compression == "bitfields":
                comp = 3
                masks = struct.pack("<IIII", 0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)
            px = v.astype("<u4").view(np.uint8).reshape(h, w * 4)
        pixels = px if top_down else px[::-1]
    if not isinstance(pixels, bytes):
        stride = (pixels.shape[1] + 3) & ~3
        buf = np.zeros((pixels.shape[0], stride), np.uint8)
        buf[:, :pixels.shape[1]] = pixels
        pixels = buf.tobytes()
    height = -h if top_down else h
    if header == 12:
        dib = struct.pack("<IHHHH", 12, w, h, 1, bpp)
    else:
        colours = (1 << bpp) if bpp <= 8 else 0
        dib = struct.pack("<IiiHHIIiiII", header, w, height, 1, bpp, comp, len(pixels), 2835, 2835, colours, 0)
        if header == 40:
            dib += masks[:12] if comp == 3 else b""
        else:
            m = (masks + b"\x00" * 16)[:16]
            # colour space sRGB, 36 bytes of end points, 12 of gamma; V5 adds intent and profile fields
            dib += m + b"BGRs" + b"\x00" * 48 + (b"\x00" * 16 if header == 124 else b"")
    offset = 14 + len(dib) + len(palette)
    head = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return head + dib + palette + pixels


# ---------------------------------------------------------------------------------------------
# TIFF: an encoder for strips and tiles, chunky and planar, 1/8/16-bit, none/LZW/deflate/PackBits,
# horizontal prediction, several pages; and an IFD parser for the mutations.

def lzw_tiff(data):
    """TIFF LZW (MSB-first codes, 9-12 bits, 'early change' as libtiff writes it)."""
    out, acc, nacc = bytearray(), 0, 0
    nbits = 9

    def put(code):
        nonlocal acc, nacc
        acc = (acc << nbits) | code
        nacc += nbits
        while nacc >= 8:
            nacc -= 8
            out.append((acc >> nacc) & 0xFF)
        acc &= (1 << nacc) - 1

    table = {bytes([i]): i for i in range(256)}
    free = 258
    put(256)
    cur = b""
    for byte in data:
        nxt = cur + bytes([byte])
        if nxt in table:
            cur = nxt
            continue
        put(table[cur])
        table[nxt] = free
        free += 1
        if free == 4094:
            put(256)
            table = {bytes([i]): i for i in range(256)}
            free, nbits = 258, 9
        elif free > (1 << nbits) - 1:
            nbits += 1     # the decoder, one entry behind, widens its codes at the same code
        cur = bytes([byte])
    if cur:
        put(table[cur])
        free += 1          # as libtiff does: the last code counts as an entry before EOI
        if free == 4094:
            put(256)
            nbits = 9
        elif free > (1 << nbits) - 1:
            nbits += 1
    put(257)
    if nacc:
        out.append((acc << (8 - nacc)) & 0xFF)
    return bytes(out)


def packbits(data, row_bytes):
    out = bytearray()
    for r in range(0, len(data), row_bytes):
        row, i = data[r:r + row_bytes], 0
        while i < len(row):
            run = 1
            while i + run < len(row) and run < 128 and row[i + run] == row[i]:
                run += 1
            if run >= 2:
                out += bytes([257 - run, row[i]])
                i += run
                continue
            j = i
            while j < len(row) and j - i < 128 and not (j + 1 < len(row) and row[j] == row[j + 1]):
                j += 1
            out += bytes([j - i - 1]) + row[i:j]
            i = j
    return bytes(out)


def _tiff_compress(raw, compression, row_bytes):
    if compression == 1:
        return raw
    if compression == 5:
        return lzw_tiff(raw)
    if compression in (8, 32946):
        return zlib.compress(raw, 6)
    if compression == 32773:
        return packbits(raw, row_bytes)
    raise ValueError(compression)


def tiff_encode(pages, bo="<"):
    """pages: dicts with arr (h, w, spp) uint8/uint16 (h, w) for 1-bit, bps, photometric, compression,
    and optionally rows (RowsPerStrip), tile (tw, th), planar (1/2), predictor, colormap, extra."""
    out = bytearray((b"II" if bo == "<" else b"MM") + struct.pack(bo + "HI", 42, 0))
    next_ptr = 4
    for page in pages:
        arr = page["arr"]
        if arr.ndim == 2:
            arr = arr[:, :, None]
        h, w, spp = arr.shape
        bps, comp = page["bps"], page.get("compression", 1)
        planar, pred = page.get("planar", 1), page.get("predictor", 1)
        planes = [arr] if planar == 1 else [arr[:, :, s:s + 1] for s in range(spp)]
        tile = page.get("tile")
        units = []
        for plane in planes:
            c = plane.shape[2]
            if tile:
                tw, th = tile
                padded = np.zeros((-(-h // th) * th, -(-w // tw) * tw, c), plane.dtype)
                padded[:h, :w] = plane
                blocks = [padded[y:y + th, x:x + tw] for y in range(0, h, th) for x in range(0, w, tw)]
            else:
                rows = page.get("rows", h)
                blocks = [plane[y:y + rows] for y in range(0, h, rows)]
            for blk in blocks:
                bh, bw_ = blk.shape[:2]
                s = blk.reshape(bh, bw_ * c).astype(np.int64)
                if pred == 2:
                    s[:, c:] = (s[:, c:] - s[:, :-c]) % (1 << bps)
                if bps == 16:
                    rb = s.astype(bo + "u2").view(np.uint8).reshape(bh, -1)
                else:
                    rb = _pack_samples(s, bps)
                units.append(_tiff_compress(rb.tobytes(), comp, rb.shape[1]))
        offsets = []
        for u in units:
            offsets.append(len(out))
            out += u
            if len(out) % 2:
                out += b"\x00"
        photometric = page["photometric"]
        tags = [(256, 4, [w]), (257, 4, [h]), (258, 3, [bps] * spp), (259, 3, [comp]), (262, 3, [photometric]),
                (277, 3, [spp]), (282, 5, [(72, 1)]), (283, 5, [(72, 1)]), (284, 3, [planar]), (296, 3, [2])]
        if len(pages) > 1:
            tags.append((254, 4, [0]))
        if tile:
            tags += [(322, 3, [tile[0]]), (323, 3, [tile[1]]), (324, 4, offsets), (325, 4, [len(u) for u in units])]
        else:
            tags += [(273, 4, offsets), (278, 4, [page.get("rows", h)]), (279, 4, [len(u) for u in units])]
        if pred != 1:
            tags.append((317, 3, [pred]))
        if "colormap" in page:
            tags.append((320, 3, page["colormap"]))
        if "extra" in page:
            tags.append((338, 3, [page["extra"]]))
        tags.sort()
        if len(out) % 2:
            out += b"\x00"
        ifd = len(out)
        struct.pack_into(bo + "I", out, next_ptr, ifd)
        values_at = ifd + 2 + 12 * len(tags) + 4
        entries, values = b"", b""
        for tag, typ, vals in tags:
            if typ == 5:
                payload = b"".join(struct.pack(bo + "II", *v) for v in vals)
            else:
                payload = b"".join(struct.pack(bo + ("H" if typ == 3 else "I"), v) for v in vals)
            if len(payload) <= 4:
                field = payload.ljust(4, b"\x00")
            else:
                field = struct.pack(bo + "I", values_at + len(values))
                values += payload + (b"\x00" if len(payload) % 2 else b"")
            entries += struct.pack(bo + "HHI", tag, typ, len(vals)) + field
        out += struct.pack(bo + "H", len(tags)) + entries + b"\x00\x00\x00\x00"
        next_ptr = ifd + 2 + 12 * len(tags)
        out += values
    return bytes(out)


TIFF_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}


def tiff_ifds(data):
    """(byte order, [IFD]) with IFD = {offset, count, next_at, entries: {tag: entry}} and
    entry = {at, tag, type, count, value_at (where the values are), inline}."""
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return None, []
    bo = "<" if data[:2] == b"II" else ">"
    off = struct.unpack_from(bo + "I", data, 4)[0]
    ifds, seen = [], set()
    while off and off + 2 <= len(data) and off not in seen and len(ifds) < 16:
        seen.add(off)
        n = struct.unpack_from(bo + "H", data, off)[0]
        if off + 2 + 12 * n + 4 > len(data):
            break
        entries = {}
        for i in range(n):
            at = off + 2 + 12 * i
            tag, typ, count = struct.unpack_from(bo + "HHI", data, at)
            size = TIFF_TYPE_SIZE.get(typ, 1) * count
            inline = size <= 4
            value_at = at + 8 if inline else struct.unpack_from(bo + "I", data, at + 8)[0]
            entries[tag] = dict(at=at, tag=tag, type=typ, count=count, value_at=value_at, inline=inline)
        next_at = off + 2 + 12 * n
        ifds.append(dict(offset=off, count=n, next_at=next_at, entries=entries))
        off = struct.unpack_from(bo + "I", data, next_at)[0]
    return bo, ifds


def tiff_values(data, bo, e):
    size = TIFF_TYPE_SIZE.get(e["type"], 1)
    fmt = {1: "B", 3: "H", 4: "I", 8: "h", 9: "i"}.get(e["type"])
    if fmt is None or e["value_at"] + size * e["count"] > len(data):
        return []
    return list(struct.unpack_from(bo + fmt * e["count"], data, e["value_at"]))


def tiff_set_values(buf, bo, e, values):
    """Overwrite an entry's values in place (as many as there is room for)."""
    fmt = {1: "B", 3: "H", 4: "I", 8: "h", 9: "i"}.get(e["type"], "I")
    size = struct.calcsize(fmt)
    for i, v in enumerate(values[: e["count"]]):
        at = e["value_at"] + i * size
        if at + size <= len(buf):
            struct.pack_into(bo + fmt, buf, at, v & ((1 << (8 * size)) - 1) if fmt in "BHI" else v)


# ---------------------------------------------------------------------------------------------
# GIF and RIFF (WebP) parsers.

def gif_blocks(data):
    """{'screen_at': 6, 'gct': (at, len), 'blocks': [(kind, at, ...)]} or None.
    kind 'image': (at, lct_at, lct_len, lzw_at, subblocks_at, end); 'ext': (at, label, end)."""
    if len(data) < 13 or data[:3] != b"GIF":
        return None
    flags = data[10]
    pos = 13
    gct = (13, 3 << ((flags & 7) + 1)) if flags & 0x80 else (13, 0)
    pos += gct[1]
    blocks = []

    def skip_sub(p):
        while p < len(data):
            n = data[p]
            if n == 0:
                return p + 1
            p += 1 + n
        return None

    while pos < len(data):
        b = data[pos]
        if b == 0x3B:
            blocks.append(("trailer", pos))
            break
        if b == 0x21 and pos + 2 <= len(data):
            end = skip_sub(pos + 2)
            if end is None:
                break
            blocks.append(("ext", pos, data[pos + 1], end))
            pos = end
        elif b == 0x2C and pos + 10 <= len(data):
            f = data[pos + 9]
            lct = 3 << ((f & 7) + 1) if f & 0x80 else 0
            lzw_at = pos + 10 + lct
            end = skip_sub(lzw_at + 1) if lzw_at < len(data) else None
            if end is None:
                break
            blocks.append(("image", pos, pos + 10, lct, lzw_at, end))
            pos = end
        else:
            break
    return dict(gct=gct, blocks=blocks)


def riff_chunks(data):
    """[(fourcc, at, size)] of a RIFF/WEBP file's top-level chunks."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return []
    out, pos = [], 12
    while pos + 8 <= len(data):
        cc = data[pos:pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        out.append((cc, pos, size))
        pos += 8 + size + (size & 1)
    return out


# ---------------------------------------------------------------------------------------------
# Seeds.

class Seed:
    def __init__(self, name, fmt, data, good=False, note=""):
        self.name, self.fmt, self.data, self.good, self.note = name, fmt, data, good, note


def pil_bytes(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def make_seeds(seed):
    nrng = np.random.default_rng(seed)
    prng = random.Random(seed)
    seeds = []
    sizes = [(1, 1), (2, 2), (3, 500), (500, 3), (17, 13), (64, 48), (227, 227), (320, 240), (641, 479),
             (500, 375), (1000, 1)]

    def pic(w, h, **kw):
        if w * h > 1_000_000:
            kw.setdefault("noise", 2)     # large seeds stay under the file size limit
        return picture(w, h, nrng, **kw)

    def add(name, fmt, data, good=False, note=""):
        seeds.append(Seed(name, fmt, data, good, note))

    # JPEG (PIL/libjpeg-turbo, plus the restart-interval encoder above)
    for w, h in sizes:
        rgb = pic(w, h)
        im = Image.fromarray(rgb)
        add(f"jpeg_{w}x{h}_q90_420", "jpeg", pil_bytes(im, "JPEG", quality=90, subsampling=2), good=(w, h) in [(1, 1), (3, 500), (641, 479), (500, 375)])
        add(f"jpeg_{w}x{h}_q95_444", "jpeg", pil_bytes(im, "JPEG", quality=95, subsampling=0), good=(w, h) == (227, 227))
        add(f"jpeg_{w}x{h}_progressive", "jpeg", pil_bytes(im, "JPEG", quality=85, progressive=True), good=(w, h) == (320, 240))
        if w * h >= 64 * 48:
            add(f"jpeg_{w}x{h}_q75_422_opt", "jpeg", pil_bytes(im, "JPEG", quality=75, subsampling=1, optimize=True))
            add(f"jpeg_{w}x{h}_grey", "jpeg", pil_bytes(im.convert("L"), "JPEG", quality=88), good=(w, h) == (64, 48))
            add(f"jpeg_{w}x{h}_cmyk", "jpeg", pil_bytes(im.convert("CMYK"), "JPEG", quality=85), good=(w, h) == (320, 240))
            add(f"jpeg_{w}x{h}_q10", "jpeg", pil_bytes(im, "JPEG", quality=10))
    for w, h in [(320, 240), (641, 479)]:
        im = Image.fromarray(pic(w, h))
        for o in range(1, 9):
            add(f"jpeg_{w}x{h}_exif_orient{o}", "jpeg", pil_bytes(im, "JPEG", quality=85, exif=exif_block(o, "<" if o % 2 else ">")),
                good=(w, h) == (641, 479) and o in (1, 3, 6, 8))
    try:
        from PIL import ImageCms
        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    except Exception:
        icc = b"\x00\x00\x02\x00lcms" + b"\x00" * 120
    im = Image.fromarray(pic(500, 375))
    add("jpeg_500x375_icc_comment", "jpeg", pil_bytes(im, "JPEG", quality=85, icc_profile=icc, comment=b"a comment"))
    for (w, h), samp, rst, grey in [((64, 48), (2, 2), 1, False), ((227, 227), (2, 2), 4, False), ((641, 479), (1, 1), 17, False),
                                    ((320, 240), (2, 1), 7, False), ((500, 375), (1, 1), 9, True), ((3, 500), (2, 2), 2, False)]:
        add(f"jpeg_{w}x{h}_restart{rst}_{samp[0]}{samp[1]}{'_grey' if grey else ''}", "jpeg",
            jpeg_baseline(pic(w, h), quality=85, sampling=samp, grey=grey, restart=rst), good=(w, h) in [(227, 227), (641, 479)])
    big = Image.fromarray(pic(1600, 1200, noise=3))
    add("jpeg_1600x1200_q90_420", "jpeg", pil_bytes(big, "JPEG", quality=90), good=True)
    add("jpeg_1600x1200_progressive", "jpeg", pil_bytes(big, "JPEG", quality=85, progressive=True))
    huge = Image.fromarray(pic(4000, 3000, noise=0))
    add("jpeg_4000x3000_q80_420", "jpeg", pil_bytes(huge, "JPEG", quality=80), good=True)
    add("jpeg_4000x3000_progressive", "jpeg", pil_bytes(huge, "JPEG", quality=70, progressive=True))
    add("jpeg_4000x3000_q85_444", "jpeg", pil_bytes(huge, "JPEG", quality=85, subsampling=0))

    # PNG
    variants = ["rgb8", "rgba8", "grey8", "greya8", "pal8", "pal8trns", "pal4", "pal2", "pal1", "grey1", "grey2", "grey4",
                "grey16", "rgb16", "rgba16"]
    for w, h in sizes + [(1600, 1200)]:
        rgb = pic(w, h)
        for v in (variants if w * h <= 641 * 479 else ["rgb8", "pal8", "grey8"]):
            for interlace in ([False, True] if w * h <= 641 * 479 and (v in ("rgb8", "grey8", "pal4", "rgb16", "rgba8") or w * h < 300) else [False]):
                data = png_variant(rgb, v, interlace, nrng, prng)
                name = f"png_{w}x{h}_{v}{'_adam7' if interlace else ''}"
                good = (w, h, v, interlace) in [(1, 1, "rgb8", False), (3, 500, "rgba8", False), (641, 479, "rgb8", False),
                                               (641, 479, "pal8", False), (227, 227, "rgb8", True), (320, 240, "grey16", False),
                                               (64, 48, "rgb16", True), (500, 375, "greya8", False), (1600, 1200, "rgb8", False),
                                               (17, 13, "pal1", True), (2, 2, "grey4", False)]
                add(name, "png", data, good=good)
    rgb = pic(320, 240)
    samples = rgb
    text = [(b"tEXt", b"Comment\x00a plain text chunk"), (b"zTXt", b"Description\x00\x00" + zlib.compress(b"compressed text " * 200)),
            (b"iTXt", b"Title\x00\x00\x00en\x00Title\x00an international text chunk")]
    add("png_320x240_rgb8_text", "png", png_encode(samples, 2, 8, post=text, rng=prng), good=True)
    add("png_320x240_rgb8_iccp", "png", png_encode(samples, 2, 8, pre=[(b"iCCP", b"sRGB\x00\x00" + zlib.compress(icc))], rng=prng))
    add("png_320x240_rgb8_chunks", "png", png_encode(samples, 2, 8, pre=[(b"gAMA", struct.pack(">I", 45455)), (b"sRGB", b"\x00"),
        (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)), (b"pHYs", struct.pack(">IIB", 2835, 2835, 1))],
        post=[(b"eXIf", exif_block(6)[6:]), (b"tIME", struct.pack(">HBBBBB", 2020, 1, 2, 3, 4, 5))], rng=prng))
    add("png_641x479_rgb8_idat64", "png", png_encode(pic(641, 479), 2, 8, idat_size=64, rng=prng), good=True)
    add("png_641x479_rgb8_idat1_adam7", "png", png_encode(pic(64, 48), 2, 8, interlace=True, idat_size=1, rng=prng))
    for ft in range(5):
        add(f"png_227x227_rgb8_filter{ft}", "png", png_encode(pic(227, 227), 2, 8, filters=ft, rng=prng))
    add("png_4000x3000_rgb8_flat", "png", png_encode(pic(4000, 3000, noise=0), 2, 8, level=9, filters=1, rng=prng), good=True)
    im = Image.fromarray(pic(500, 375))
    add("png_500x375_pil_rgb", "png", pil_bytes(im, "PNG"))
    add("png_500x375_pil_p", "png", pil_bytes(im.quantize(64), "PNG"))

    # GIF
    for w, h in sizes + [(1600, 1200)]:
        im = Image.fromarray(pic(w, h))
        add(f"gif_{w}x{h}", "gif", pil_bytes(im.quantize(256), "GIF", interlace=0), good=(w, h) in [(1, 1), (641, 479)])
        if w * h <= 641 * 479:
            add(f"gif_{w}x{h}_interlaced", "gif", pil_bytes(im.quantize(128), "GIF", interlace=1), good=(w, h) == (320, 240))
        if w * h <= 320 * 240:
            add(f"gif_{w}x{h}_trns", "gif", pil_bytes(im.quantize(16), "GIF", transparency=3))
    for w, h, n in [(64, 48, 3), (320, 240, 8), (17, 13, 5), (641, 479, 4)]:
        frames = [Image.fromarray(pic(w, h)).quantize(int(nrng.integers(2, 257))) for _ in range(n)]
        add(f"gif_{w}x{h}_anim{n}", "gif", pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0,
                                                      disposal=2), good=(w, h) == (320, 240))
    add("gif_227x227_grey", "gif", pil_bytes(Image.fromarray(pic(227, 227)).convert("L"), "GIF"))

    # BMP
    for w, h in sizes + [(1600, 1200)]:
        rgb = pic(w, h)
        alpha = alpha_plane(h, w, nrng)
        small = w * h <= 641 * 479
        combos = [(24, "rgb", False, 40), (8, "rgb", False, 40)] if small else [(8, "rgb", False, 40)]
        if small:
            combos += [(32, "rgb", False, 40), (32, "bitfields", False, 124), (16, "bitfields", False, 40), (16, "rgb", True, 40),
                       (8, "rle", False, 40), (4, "rle", False, 40), (4, "rgb", False, 40), (1, "rgb", False, 40),
                       (24, "rgb", True, 40), (8, "rgb", True, 108), (24, "rgb", False, 12), (8, "rgb", False, 12)]
        for bpp, comp, td, hdr in combos:
            name = f"bmp_{w}x{h}_{bpp}bit{'_' + comp if comp != 'rgb' else ''}{'_topdown' if td else ''}{'_hdr' + str(hdr) if hdr != 40 else ''}"
            good = (w, h, bpp, comp, td, hdr) in [(1, 1, 24, "rgb", False, 40), (641, 479, 24, "rgb", False, 40), (320, 240, 8, "rle", False, 40),
                                                  (227, 227, 32, "bitfields", False, 124), (3, 500, 4, "rgb", False, 40),
                                                  (500, 375, 24, "rgb", True, 40), (1600, 1200, 8, "rgb", False, 40)]
            add(name, "bmp", bmp_encode(rgb, bpp, nrng, comp, td, hdr, alpha), good=good)
    for mode in ["RGB", "P", "1", "RGBA"]:
        im = Image.fromarray(pic(227, 227))
        im = im.quantize(256) if mode == "P" else im.convert(mode)
        add(f"bmp_227x227_pil_{mode}", "bmp", pil_bytes(im, "BMP"))

    # WebP
    if HAVE_WEBP:
        for w, h in sizes + [(1600, 1200)]:
            rgb = pic(w, h)
            im = Image.fromarray(rgb)
            rgba = Image.fromarray(np.dstack([rgb, alpha_plane(h, w, nrng)]))
            add(f"webp_{w}x{h}_lossy", "webp", pil_bytes(im, "WEBP", quality=80), good=(w, h) in [(641, 479), (1, 1)])
            if w * h <= 641 * 479:
                add(f"webp_{w}x{h}_lossless", "webp", pil_bytes(im, "WEBP", lossless=True), good=(w, h) == (320, 240))
                add(f"webp_{w}x{h}_lossy_alpha", "webp", pil_bytes(rgba, "WEBP", quality=70), good=(w, h) == (227, 227))
                add(f"webp_{w}x{h}_lossless_alpha", "webp", pil_bytes(rgba, "WEBP", lossless=True))
        im = Image.fromarray(pic(320, 240))
        add("webp_320x240_exif_orient6", "webp", pil_bytes(im, "WEBP", quality=80, exif=exif_block(6)), good=True)
        if features.check("webp_anim"):
            frames = [Image.fromarray(pic(160, 120)) for _ in range(4)]
            add("webp_160x120_anim4", "webp", pil_bytes(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50, quality=70))
        add("webp_4000x3000_lossy", "webp", pil_bytes(Image.fromarray(pic(4000, 3000, noise=0)), "WEBP", quality=60))

    # TIFF (own encoder: exact structure; PIL/libtiff: what libtiff itself writes)
    for w, h in [(1, 1), (3, 500), (17, 13), (64, 48), (227, 227), (320, 240), (641, 479)]:
        rgb = pic(w, h)
        grey = luma(rgb)
        idx, pal = quantize(rgb, 256)
        cmap = [pal[3 * i + c] * 257 for c in range(3) for i in range(256)]
        alpha = alpha_plane(h, w, nrng)
        rgb16 = rgb.astype(np.uint16) * 257
        for label, page in [
            ("rgb8_none", dict(arr=rgb, bps=8, photometric=2, compression=1)),
            ("rgb8_lzw_pred", dict(arr=rgb, bps=8, photometric=2, compression=5, predictor=2, rows=16)),
            ("rgb8_deflate", dict(arr=rgb, bps=8, photometric=2, compression=8, rows=7)),
            ("rgb8_packbits", dict(arr=rgb, bps=8, photometric=2, compression=32773, rows=1)),
            ("rgb8_tiles16", dict(arr=rgb, bps=8, photometric=2, compression=8, tile=(16, 16))),
            ("rgb8_tiles64x32_lzw", dict(arr=rgb, bps=8, photometric=2, compression=5, tile=(64, 32))),
            ("rgb8_planar", dict(arr=rgb, bps=8, photometric=2, compression=32946, planar=2, rows=9)),
            ("rgba8", dict(arr=np.dstack([rgb, alpha]), bps=8, photometric=2, compression=8, extra=2)),
            ("grey8_lzw", dict(arr=grey, bps=8, photometric=1, compression=5)),
            ("grey8_miniswhite", dict(arr=255 - grey, bps=8, photometric=0, compression=1)),
            ("grey16", dict(arr=grey.astype(np.uint16) * 257, bps=16, photometric=1, compression=8, predictor=2)),
            ("rgb16", dict(arr=rgb16, bps=16, photometric=2, compression=1)),
            ("palette8", dict(arr=idx, bps=8, photometric=3, compression=32773, colormap=cmap)),
            ("bilevel", dict(arr=(grey > 127).astype(np.uint8), bps=1, photometric=1, compression=32773)),
        ]:
            for bo in (["<", ">"] if label in ("rgb8_none", "grey16", "rgb8_lzw_pred") else ["<"]):
                good = (w, h, label, bo) in [(1, 1, "rgb8_none", "<"), (641, 479, "rgb8_lzw_pred", "<"), (227, 227, "rgb8_tiles16", "<"),
                                             (320, 240, "grey16", ">"), (64, 48, "palette8", "<"), (3, 500, "rgb8_planar", "<")]
                add(f"tiff_{w}x{h}_{label}{'_be' if bo == '>' else ''}", "tiff", tiff_encode([page], bo), good=good)
        pages = [dict(arr=pic(w, h), bps=8, photometric=2, compression=8, rows=8) for _ in range(3)]
        add(f"tiff_{w}x{h}_3pages", "tiff", tiff_encode(pages), good=(w, h) == (320, 240))
    for comp in ["tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg", "raw"]:
        im = Image.fromarray(pic(500, 375))
        add(f"tiff_500x375_pil_{comp}", "tiff", pil_bytes(im, "TIFF", compression=comp), good=comp == "tiff_adobe_deflate")
    frames = [Image.fromarray(pic(227, 227)) for _ in range(3)]
    add("tiff_227x227_pil_multipage", "tiff", pil_bytes(frames[0], "TIFF", save_all=True, append_images=frames[1:], compression="tiff_lzw"))
    add("tiff_1600x1200_deflate", "tiff", tiff_encode([dict(arr=pic(1600, 1200, noise=0), bps=8, photometric=2, compression=8, rows=64)]), good=True)
    return seeds


def png_variant(rgb, v, interlace, nrng, prng):
    h, w = rgb.shape[:2]
    g = luma(rgb)
    if v == "rgb8":
        return png_encode(rgb, 2, 8, interlace, rng=prng)
    if v == "rgba8":
        return png_encode(np.dstack([rgb, alpha_plane(h, w, nrng)]), 6, 8, interlace, rng=prng)
    if v == "grey8":
        return png_encode(g, 0, 8, interlace, rng=prng)
    if v == "greya8":
        return png_encode(np.dstack([g, alpha_plane(h, w, nrng)]), 4, 8, interlace, rng=prng)
    if v.startswith("pal"):
        depth = int(v[3])
        idx, pal = quantize(rgb, 1 << depth)
        trns = bytes(range(0, 256, 16)) if v.endswith("trns") else None
        return png_encode(idx, 3, depth, interlace, palette=pal, trns=trns, rng=prng)
    if v.startswith("grey") and v[4:] in ("1", "2", "4"):
        depth = int(v[4:])
        return png_encode(g >> (8 - depth), 0, depth, interlace, rng=prng)
    low = nrng.integers(0, 256, rgb.shape[:2], dtype=np.uint16)
    if v == "grey16":
        return png_encode((g.astype(np.uint16) << 8) | low, 0, 16, interlace, rng=prng)
    if v == "rgb16":
        return png_encode((rgb.astype(np.uint16) << 8) | low[:, :, None], 2, 16, interlace, rng=prng)
    if v == "rgba16":
        a = alpha_plane(h, w, nrng).astype(np.uint16) * 257
        return png_encode(np.dstack([(rgb.astype(np.uint16) << 8) | low[:, :, None], a]), 6, 16, interlace, rng=prng)
    raise ValueError(v)


# ---------------------------------------------------------------------------------------------
# Mutations. Each takes (data, rng, ctx) and returns (bytes, detail) or None when it does not
# apply to this file; ctx gives the seed pool for splices.

INTERESTING8 = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x10, 0x40]
INTERESTING32 = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 1000001, 0x7FFFFFFF, 0x80000000,
                 0xFFFFFFFE, 0xFFFFFFFF]
MAGIC = {"png": PNG_SIG, "jpeg": b"\xff\xd8\xff\xe0", "gif": b"GIF89a", "bmp": b"BM", "tiff": b"II*\x00", "webp": b"RIFF\x00\x00\x00\x00WEBPVP8 "}


def _pos(rng, n, head_bias=0.5):
    """A position, biased toward the first 512 bytes where the headers are."""
    if n <= 1:
        return 0
    if rng.random() < head_bias:
        return rng.randrange(min(n, 512))
    return rng.randrange(n)


def m_bitflip_few(d, rng, ctx):
    b = bytearray(d)
    if not b:
        return None
    k = rng.randint(1, 4)
    for _ in range(k):
        b[_pos(rng, len(b))] ^= 1 << rng.randrange(8)
    return bytes(b), f"{k} bits"


def m_bitflip_many(d, rng, ctx):
    b = bytearray(d)
    if not b:
        return None
    k = max(8, int(len(b) * rng.choice([0.0005, 0.002, 0.01])))
    for _ in range(k):
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b), f"{k} bits"


def m_bytes_interesting(d, rng, ctx):
    b = bytearray(d)
    if not b:
        return None
    for _ in range(rng.randint(1, 8)):
        b[_pos(rng, len(b), 0.7)] = rng.choice(INTERESTING8)
    return bytes(b), ""


def m_int_interesting(d, rng, ctx):
    b = bytearray(d)
    if len(b) < 8:
        return None
    parts = []
    for _ in range(rng.randint(1, 3)):
        p = _pos(rng, len(b) - 4, 0.8)
        v = rng.choice(INTERESTING32)
        width, bo = rng.choice([(2, "<"), (2, ">"), (4, "<"), (4, ">")])
        b[p:p + width] = struct.pack(bo + ("H" if width == 2 else "I"), v & (0xFFFF if width == 2 else 0xFFFFFFFF))
        parts.append(f"{v:#x}@{p}")
    return bytes(b), " ".join(parts)


def m_run_overwrite(d, rng, ctx):
    b = bytearray(d)
    if len(b) < 8:
        return None
    for _ in range(rng.randint(1, 3)):
        n = rng.randint(4, max(4, min(4096, len(b) // 2)))
        p = rng.randrange(0, max(1, len(b) - n))
        fill = rng.choice(["zero", "ff", "random", "repeat"])
        if fill == "zero":
            run = b"\x00" * n
        elif fill == "ff":
            run = b"\xff" * n
        elif fill == "random":
            run = bytes(rng.randrange(256) for _ in range(n))
        else:
            run = (bytes(b[p:p + 4]) * (n // 4 + 1))[:n]
        b[p:p + n] = run
    return bytes(b), ""


def m_insert(d, rng, ctx):
    p = _pos(rng, len(d) + 1)
    n = rng.choice([1, 2, 4, 16, 256, 1024])
    return d[:p] + bytes(rng.randrange(256) for _ in range(n)) + d[p:], f"{n}@{p}"


def m_delete(d, rng, ctx):
    if len(d) < 4:
        return None
    p = _pos(rng, len(d) - 1)
    n = rng.randint(1, max(1, min(4096, (len(d) - p) // 2)))
    return d[:p] + d[p + n:], f"{n}@{p}"


def m_duplicate(d, rng, ctx):
    if len(d) < 4:
        return None
    p = rng.randrange(len(d) - 1)
    n = rng.randint(1, min(8192, len(d) - p))
    q = rng.randrange(len(d))
    return d[:q] + d[p:p + n] + d[q:], f"{n} from {p} at {q}"


def m_trunc_random(d, rng, ctx):
    if len(d) < 2:
        return None
    p = rng.randrange(1, len(d))
    return d[:p], f"at {p} of {len(d)}"


def m_trunc_1(d, rng, ctx):
    return (d[:-1], f"{len(d) - 1} of {len(d)}") if len(d) > 1 else None


def m_trunc_tail(d, rng, ctx):
    n = rng.randint(2, 64)
    return (d[:-n], f"-{n}") if len(d) > n else None


def header_end(d, fmt):
    """Where a file's header ends: IHDR, the SOF/SOS headers, the screen and colour table, the DIB header and palette,
    the first IFD, the first chunk header."""
    if fmt == "png":
        return 33
    if fmt == "jpeg":
        for m, at, n in jpeg_segments(d):
            if m == 0xDA:
                return at + n
        return min(len(d), 20)
    if fmt == "gif":
        g = gif_blocks(d)
        return 13 + (g["gct"][1] if g else 0)
    if fmt == "bmp":
        return min(len(d), struct.unpack_from("<I", d, 10)[0]) if len(d) >= 14 else 2
    if fmt == "tiff":
        bo, ifds = tiff_ifds(d)
        return ifds[0]["next_at"] + 4 if ifds else 8
    if fmt == "webp":
        return 30
    return 16


def m_trunc_header(d, rng, ctx):
    p = header_end(d, ctx["fmt"]) + rng.choice([-1, 0, 0, 1, 2])
    if not 0 < p < len(d):
        return None
    return d[:p], f"at {p}"


def m_splice(d, rng, ctx):
    other = ctx["pick"](ctx["fmt"])
    if other is None or len(d) < 4 or len(other) < 4:
        return None
    p, q = rng.randrange(1, len(d)), rng.randrange(1, len(other))
    return (d[:p] + other[q:])[:MAX_FILE], f"{p}+{q}"


def m_splice_cross(d, rng, ctx):
    fmt = rng.choice([f for f in EXT if f != ctx["fmt"] and (f != "webp" or HAVE_WEBP)])
    other = ctx["pick"](fmt)
    if other is None or len(d) < 4:
        return None
    p, q = rng.randrange(1, len(d)), rng.randrange(0, len(other))
    return (d[:p] + other[q:])[:MAX_FILE], f"{p}+{fmt}:{q}"


def m_swap_blocks(d, rng, ctx):
    if len(d) < 64:
        return None
    n = rng.randint(4, len(d) // 4)
    p, q = sorted(rng.sample(range(0, len(d) - n), 2))
    if q < p + n:
        return None
    return d[:p] + d[q:q + n] + d[p + n:q] + d[p:p + n] + d[q + n:], f"{n}: {p}<->{q}"


def m_zero_tail(d, rng, ctx):
    if len(d) < 16:
        return None
    p = rng.randrange(len(d) // 4, len(d))
    return d[:p] + b"\x00" * (len(d) - p), f"from {p}"


def m_random_body(d, rng, ctx):
    n = rng.choice([16, 100, 1000, 20000])
    return MAGIC[ctx["fmt"]] + bytes(rng.randrange(256) for _ in range(n)), f"{n}"


def m_magic_only(d, rng, ctx):
    m = MAGIC[ctx["fmt"]]
    return m[:rng.randint(1, len(m))], ""


# -- format confusion

def m_confuse_ext(d, rng, ctx):
    ext = rng.choice([e for f, e in EXT.items() if f != ctx["fmt"]])
    return d, f"named {ext}", ext


def m_header_swap(d, rng, ctx):
    """Another format's signature (and for PNG a whole valid IHDR) in front of, or over, this body."""
    fmt = rng.choice([f for f in EXT if f != ctx["fmt"]])
    if fmt == "png":
        head = PNG_SIG + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 48, 8, 2, 0, 0, 0))
    else:
        head = MAGIC[fmt]
    if rng.random() < 0.5:
        return head + d, f"{fmt} header prepended", EXT[rng.choice([fmt, ctx["fmt"]])]
    return head + d[len(head):], f"{fmt} header over", EXT[rng.choice([fmt, ctx["fmt"]])]


def m_empty(d, rng, ctx):
    return b"", "", rng.choice(list(EXT.values()) + [".jpeg", ".tiff"])


# -- PNG

def _png_field(d, rng, field):
    ch = png_split(d)
    if not ch or ch[0][0] != b"IHDR" or len(ch[0][1]) != 13:
        return None
    ihdr = bytearray(ch[0][1])
    w, h, depth, ct, cm, fm, il = struct.unpack(">IIBBBBB", ihdr)
    if field == "width":
        v = rng.choice([0, 1, w + 1, w * 2, 65536, 1000001, 30000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1])
        struct.pack_into(">I", ihdr, 0, v)
    elif field == "height":
        v = rng.choice([0, 1, h + 1, h * 2, 65536, 1000001, 30000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1])
        struct.pack_into(">I", ihdr, 4, v)
    elif field == "depth":
        v = rng.choice([0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 32, 255])
        ihdr[8] = v
    elif field == "colortype":
        v = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 255])
        ihdr[9] = v
    elif field == "interlace":
        v = rng.choice([1 - il, 2, 255])
        ihdr[12] = v
    else:
        v = rng.choice([1, 255])
        ihdr[10 if rng.random() < 0.5 else 11] = v
    new = PNG_SIG + png_chunk(b"IHDR", bytes(ihdr)) + d[8 + 25:]
    if rng.random() < 0.35:
        old_crc = d[8 + 21:8 + 25]
        new = new[:8 + 21] + old_crc + new[8 + 25:]
        return new, f"{field}={v}", "crcbad"
    return new, f"{field}={v}", "crcok"


def mk_png_ihdr(field):
    def f(d, rng, ctx):
        r = _png_field(d, rng, field)
        if r is None:
            return None
        data, detail, crc = r
        return data, detail, None, crc
    return f


def m_png_chunk_len(d, rng, ctx):
    ch = png_chunks(d)
    if not ch:
        return None
    at, n, t, _ = rng.choice(ch)
    v = rng.choice([0, max(0, n - 1), n + 1, n + 100, 2 ** 31 - 1, 2 ** 32 - 1, rng.randrange(2 ** 32)])
    b = bytearray(d)
    struct.pack_into(">I", b, at, v)
    return bytes(b), f"{t.decode('latin1')} {n}->{v}"


def m_png_chunk_type(d, rng, ctx):
    ch = png_chunks(d)
    if not ch:
        return None
    at, n, t, _ = rng.choice(ch)
    new = rng.choice([b"IDAT", b"IHDR", b"IEND", b"PLTE", b"cRAP", b"CRAP", b"\x00\x00\x00\x00", bytes(rng.randrange(256) for _ in range(4))])
    b = bytearray(d)
    b[at + 4:at + 8] = new
    crc_ok = rng.random() < 0.6
    if crc_ok:
        struct.pack_into(">I", b, at + 8 + n, zlib.crc32(new + d[at + 8:at + 8 + n]) & 0xFFFFFFFF)
    return bytes(b), f"{t.decode('latin1')}->{new!r}", None, "crcok" if crc_ok else "crcbad"


def _idat_index(ch):
    return [i for i, (t, _) in enumerate(ch) if t == b"IDAT"]


def m_png_idat_split(d, rng, ctx):
    ch = png_split(d)
    idx = _idat_index(ch)
    if not idx:
        return None
    z = b"".join(ch[i][1] for i in idx)
    step = rng.choice([1, 2, 7, 64, 1000])
    pieces = [(b"IDAT", z[i:i + step]) for i in range(0, len(z), step)]
    if len(pieces) > 60000:
        return None
    new = ch[:idx[0]] + pieces + [c for c in ch[idx[-1] + 1:]]
    return png_rebuild(new), f"{len(pieces)} IDATs of {step}"


def m_png_idat_dup(d, rng, ctx):
    ch = png_split(d)
    idx = _idat_index(ch)
    if not idx:
        return None
    i = rng.choice(idx)
    return png_rebuild(ch[:i + 1] + [ch[i]] + ch[i + 1:]), f"IDAT {i} twice"


def m_png_idat_drop(d, rng, ctx):
    ch = png_split(d)
    idx = _idat_index(ch)
    if not idx:
        return None
    if rng.random() < 0.5 or len(idx) == 1:
        return png_rebuild([c for c in ch if c[0] != b"IDAT"]), "all IDATs"
    i = rng.choice(idx)
    return png_rebuild(ch[:i] + ch[i + 1:]), f"IDAT {i}"


def m_png_idat_trunc(d, rng, ctx):
    """Compressed data cut short, every CRC valid: the structure is fine, the image data ends early."""
    ch = png_split(d)
    idx = _idat_index(ch)
    if not idx:
        return None
    z = b"".join(ch[i][1] for i in idx)
    cut = rng.choice([0, 1, len(z) // 2, len(z) - 1, max(0, len(z) - 5), rng.randrange(max(1, len(z)))])
    return png_rebuild(ch[:idx[0]] + [(b"IDAT", z[:cut])] + ch[idx[-1] + 1:]), f"{cut} of {len(z)} bytes"


def _png_raw_mutate(d, rng, how):
    ch = png_split(d)
    idx = _idat_index(ch)
    if not idx:
        return None
    try:
        raw = zlib.decompress(b"".join(ch[i][1] for i in idx))
    except zlib.error:
        return None
    if how == "short":
        cut = rng.choice([len(raw) - 1, len(raw) // 2, 0, rng.randrange(max(1, len(raw)))])
        raw, detail = raw[:cut], f"{cut} of {len(raw)} bytes"
    elif how == "long":
        n = rng.choice([1, 100, len(raw)])
        raw, detail = raw + bytes(rng.randrange(256) for _ in range(n)), f"+{n} bytes"
    else:
        b = bytearray(raw)
        if not b:
            return None
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.choice([5, 6, 7, 128, 255])
        raw, detail = bytes(b), "filter-type bytes"
    return png_rebuild(ch[:idx[0]] + [(b"IDAT", zlib.compress(raw))] + ch[idx[-1] + 1:]), detail


def m_png_raw_short(d, rng, ctx):
    """A complete zlib stream (valid checksums) that inflates to less than the image needs."""
    return _png_raw_mutate(d, rng, "short")


def m_png_raw_long(d, rng, ctx):
    return _png_raw_mutate(d, rng, "long")


def m_png_filter_bad(d, rng, ctx):
    return _png_raw_mutate(d, rng, "filter")


def m_png_zlib_bad(d, rng, ctx):
    ch = png_split(d)
    idx = _idat_index(ch)
    if not idx:
        return None
    z = bytearray(b"".join(ch[i][1] for i in idx))
    if len(z) < 6:
        return None
    where = rng.choice(["header", "adler", "dictionary", "stored-len"])
    if where == "header":
        z[rng.randrange(2)] ^= 1 << rng.randrange(8)
    elif where == "adler":
        z[-rng.randint(1, 4)] ^= 0xFF
    elif where == "dictionary":
        z[1] |= 0x20          # FDICT set: a preset dictionary nobody has
        z[1] = (z[1] & 0xE0) | (31 - ((z[0] << 8 | (z[1] & 0xE0)) % 31)) % 31
    else:
        z[2] = 0x00           # first block stored, with a length that cannot be right
    return png_rebuild(ch[:idx[0]] + [(b"IDAT", bytes(z))] + ch[idx[-1] + 1:]), where


def m_png_chunk_order(d, rng, ctx):
    ch = png_split(d)
    if len(ch) < 3:
        return None
    how = rng.choice(["idat-first", "iend-early", "ihdr-late", "plte-late", "shuffle"])
    if how == "idat-first":
        new = [c for c in ch if c[0] == b"IDAT"] + [c for c in ch if c[0] != b"IDAT"]
    elif how == "iend-early":
        new = ch[:1] + [(b"IEND", b"")] + ch[1:]
    elif how == "ihdr-late":
        new = ch[1:-1] + ch[:1] + ch[-1:]
    elif how == "plte-late":
        p = [c for c in ch if c[0] == b"PLTE"]
        if not p:
            return None
        new = [c for c in ch if c[0] != b"PLTE"]
        new.insert(len(new) - 1, p[0])
    else:
        new = ch[:]
        rng.shuffle(new)
    return png_rebuild(new), how


def m_png_chunk_drop(d, rng, ctx):
    ch = png_split(d)
    types = sorted({c[0] for c in ch if c[0] in (b"IHDR", b"PLTE", b"IEND", b"tRNS")})
    if not types:
        return None
    t = rng.choice(types)
    return png_rebuild([c for c in ch if c[0] != t]), t.decode()


def m_png_ihdr_twice(d, rng, ctx):
    ch = png_split(d)
    if not ch or ch[0][0] != b"IHDR":
        return None
    w, h = struct.unpack_from(">II", ch[0][1])
    other = struct.pack(">II", rng.choice([1, w * 4, 20000]), rng.choice([1, h * 4, 20000])) + ch[0][1][8:]
    at = rng.choice([1, len(ch) - 1])
    return png_rebuild(ch[:at] + [(b"IHDR", other)] + ch[at:]), f"second IHDR at {at}"


def m_png_plte_bad(d, rng, ctx):
    ch = png_split(d)
    if not ch or ch[0][0] != b"IHDR":
        return None
    how = rng.choice(["empty", "257", "not3", "one", "on-grey"])
    pal = {"empty": b"", "257": bytes(3 * 257), "not3": bytes(100), "one": b"\x10\x20\x30", "on-grey": bytes(range(48))}[how]
    new = [c for c in ch if c[0] != b"PLTE"]
    new.insert(1, (b"PLTE", pal))
    return png_rebuild(new), how


def m_png_trns_bad(d, rng, ctx):
    ch = png_split(d)
    if not ch:
        return None
    t = bytes(rng.choice([0, 1, 2, 5, 6, 300, 1000]))
    new = [c for c in ch if c[0] != b"tRNS"]
    at = next((i for i, c in enumerate(new) if c[0] == b"IDAT"), 1)
    new.insert(at, (b"tRNS", t))
    return png_rebuild(new), f"{len(t)} bytes"


def m_png_critical_unknown(d, rng, ctx):
    ch = png_split(d)
    if not ch:
        return None
    at = next((i for i, c in enumerate(ch) if c[0] == b"IDAT"), 1)
    return png_rebuild(ch[:at] + [(rng.choice([b"CRAP", b"ZzZz", b"IDAt", b"iDOT"]), bytes(rng.randrange(256) for _ in range(rng.choice([0, 4, 28]))))] + ch[at:]), ""


def m_png_text_bad(d, rng, ctx):
    ch = png_split(d)
    if not ch:
        return None
    how = rng.choice(["text-nonull", "ztxt-garbage", "ztxt-method", "itxt-flag", "iccp-garbage", "exif-garbage", "huge-keyword"])
    chunk = {
        "text-nonull": (b"tEXt", b"x" * 100),
        "ztxt-garbage": (b"zTXt", b"Comment\x00\x00" + bytes(rng.randrange(256) for _ in range(200))),
        "ztxt-method": (b"zTXt", b"Comment\x00\x07" + zlib.compress(b"text")),
        "itxt-flag": (b"iTXt", b"Title\x00\x01\x00\x00\x00" + bytes(rng.randrange(256) for _ in range(64))),
        "iccp-garbage": (b"iCCP", b"icc\x00\x00" + zlib.compress(bytes(rng.randrange(256) for _ in range(300)))),
        "exif-garbage": (b"eXIf", b"MM\x00\x2a" + bytes(rng.randrange(256) for _ in range(64))),
        "huge-keyword": (b"tEXt", b"k" * 5000 + b"\x00v"),
    }[how]
    at = 1 if chunk[0] == b"iCCP" else next((i for i, c in enumerate(ch) if c[0] == b"IDAT"), 1)
    return png_rebuild(ch[:at] + [chunk] + ch[at:]), how


def m_png_apng(d, rng, ctx):
    """APNG animation chunks with impossible frames (decoders that read APNG must cope)."""
    ch = png_split(d)
    if not ch or ch[0][0] != b"IHDR":
        return None
    w, h = struct.unpack_from(">II", ch[0][1])
    actl = struct.pack(">II", rng.choice([0, 1, 2, 2 ** 31]), 0)
    fw, fh = rng.choice([(w, h), (w * 2, h), (0, 0), (2 ** 31, 1)])
    fctl = struct.pack(">IIIIIHHBB", 0, fw, fh, rng.choice([0, w]), 0, 1, rng.choice([0, 10]), rng.choice([0, 9]), rng.choice([0, 5]))
    at = next((i for i, c in enumerate(ch) if c[0] == b"IDAT"), 1)
    extra = [(b"fcTL", struct.pack(">I", 1) + fctl[4:]), (b"fdAT", struct.pack(">I", 2) + bytes(rng.randrange(256) for _ in range(32)))]
    return png_rebuild(ch[:1] + [(b"acTL", actl)] + ch[1:at] + [(b"fcTL", fctl)] + ch[at:-1] + extra + ch[-1:]), f"frame {fw}x{fh}"


_BOMB_CACHE = {}


def _zeros_deflate(n, row=None, rows=1):
    """zlib of n zero bytes (or of `row` repeated `rows` times), cached: bombs share their payloads."""
    key = (n, row, rows)
    if key not in _BOMB_CACHE:
        c = zlib.compressobj(9)
        parts = []
        if row is None:
            block = b"\x00" * (1 << 20)
            for _ in range(n >> 20):
                parts.append(c.compress(block))
            parts.append(c.compress(b"\x00" * (n & ((1 << 20) - 1))))
        else:
            for _ in range(rows):
                parts.append(c.compress(row))
        parts.append(c.flush())
        _BOMB_CACHE[key] = b"".join(parts)
    return _BOMB_CACHE[key]


def m_png_bomb_text(d, rng, ctx):
    """zTXt or iCCP that inflates to hundreds of MiB in an otherwise valid PNG."""
    ch = png_split(d)
    if not ch or ch[0][0] != b"IHDR":
        return None
    mib = rng.choice([128, 256, 512])
    z = _zeros_deflate(mib << 20)
    if rng.random() < 0.5:
        chunk, which, at = (b"zTXt", b"Comment\x00\x00" + z), "zTXt", next((i for i, c in enumerate(ch) if c[0] == b"IDAT"), 1)
    else:
        chunk, which, at = (b"iCCP", b"bomb\x00\x00" + z), "iCCP", 1
    return png_rebuild(ch[:at] + [chunk] + [c for c in ch[at:] if c[0] != b"iCCP"]), f"{which} inflating to {mib} MiB", None, which.lower()


def m_png_bomb_idat(d, rng, ctx):
    """A valid PNG of one colour, large enough to cost GBs if the header limit does not stop it."""
    w, h, ct, depth, interlace = rng.choice([(20000, 20000, 0, 8, 0), (20000, 20000, 3, 1, 0), (20000, 20000, 2, 8, 0),
                                             (10000, 10000, 0, 8, 0), (9999, 10001, 0, 8, 0), (10000, 10000, 2, 8, 0),
                                             (16384, 6000, 2, 8, 0), (8000, 8000, 6, 8, 0), (10000, 10000, 0, 8, 1), (65535, 65535, 3, 1, 0)])
    channels = {0: 1, 2: 3, 3: 1, 6: 4}[ct]
    rowbytes = -(-w * channels * depth // 8)
    if interlace:
        # each Adam7 pass: its own row length; one colour (zero bytes) so filter 0 rows of zeros
        total = 0
        for x0, y0, dx, dy in ADAM7:
            pw, ph = -(-(w - x0) // dx), -(-(h - y0) // dy)
            total += ph * (1 + -(-pw * channels * depth // 8))
        z = _zeros_deflate(total)
    else:
        z = _zeros_deflate(0, b"\x00" * (1 + rowbytes), h)
    if len(z) > MAX_FILE - 1024:
        return None
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ct, 0, 0, interlace)
    chunks = [(b"IHDR", ihdr)]
    if ct == 3:
        chunks.append((b"PLTE", b"\x20\x80\xc0\xff\xff\xff"))
    chunks += [(b"IDAT", z[i:i + 65536]) for i in range(0, len(z), 65536)] + [(b"IEND", b"")]
    return png_rebuild(chunks), f"{w}x{h} type {ct} depth {depth}{' adam7' if interlace else ''}", None, f"{w}x{h}"


# -- JPEG

def _jpeg_find(d, markers):
    return [(m, at, n) for m, at, n in jpeg_segments(d) if m in markers]


SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def m_jpeg_sof(field):
    def f(d, rng, ctx):
        sofs = _jpeg_find(d, SOF_MARKERS)
        if not sofs:
            return None
        m, at, n = sofs[0]
        b = bytearray(d)
        p = at + 4                 # precision, height, width, ncomp, then 3 bytes per component
        h, w, nc = struct.unpack_from(">HHB", b, p + 1)
        if field == "dims":
            nh = rng.choice([0, 1, h + 1, 65535, 65500, w, 16384, 10000])
            nw = rng.choice([w, 0, 1, w + 1, 65535, h, 16384, 10000])
            struct.pack_into(">HH", b, p + 1, nh, nw)
            return bytes(b), f"{w}x{h} -> {nw}x{nh}"
        if field == "ncomp":
            v = rng.choice([0, 2, 4, 5, 255, 3 if nc == 1 else 1])
            b[p + 5] = v
            if rng.random() < 0.5 and v < 10:
                # keep the segment consistent: as many component specs as declared
                comps = bytes(b[p + 6:p + 6 + 3 * nc])
                specs = b"".join(bytes([i + 1, 0x11, 0]) if i >= nc else comps[3 * i:3 * i + 3] for i in range(v))
                seg = bytes([b[p]]) + struct.pack(">HHB", h, w, v) + specs
                return d[:at] + _segment(m, seg) + d[at + n:], f"{nc} -> {v} components, length kept consistent"
            return bytes(b), f"{nc} -> {v} components"
        if field == "sampling":
            c = rng.randrange(nc) if nc else 0
            v = rng.choice([0x00, 0x55, 0x44, 0xFF, 0x14, 0x41, 0x31, 0x13, 0x22, 0x12])
            if p + 7 + 3 * c < len(b):
                b[p + 7 + 3 * c] = v
            return bytes(b), f"component {c} sampling {v:#04x}"
        if field == "qtable":
            c = rng.randrange(nc) if nc else 0
            v = rng.choice([2, 3, 4, 15, 255])
            if p + 8 + 3 * c < len(b):
                b[p + 8 + 3 * c] = v
            return bytes(b), f"component {c} table {v}"
        if field == "precision":
            v = rng.choice([0, 1, 12, 16, 255])
            b[p] = v
            return bytes(b), f"precision {v}"
        if field == "type":
            v = rng.choice([0xC1, 0xC2, 0xC3, 0xC5, 0xC9, 0xCA, 0xCD, 0xCF, 0xC0])
            b[at + 1] = v
            return bytes(b), f"SOF{m - 0xC0} -> SOF{v - 0xC0}"
        if field == "compid":
            c = rng.randrange(nc) if nc else 0
            v = rng.choice([0, 4, 200, 255, 1])
            if p + 6 + 3 * c < len(b):
                b[p + 6 + 3 * c] = v
            return bytes(b), f"component {c} id {v}"
        return None
    return f


def m_jpeg_dqt(d, rng, ctx):
    dqts = _jpeg_find(d, {0xDB})
    if not dqts:
        return None
    m, at, n = rng.choice(dqts)
    b = bytearray(d)
    how = rng.choice(["id", "precision", "zeros", "length", "drop"])
    if how == "id":
        b[at + 4] = (b[at + 4] & 0xF0) | rng.choice([4, 7, 15])
    elif how == "precision":
        b[at + 4] ^= 0x10
    elif how == "zeros":
        b[at + 5:at + n] = b"\x00" * (n - 5)
    elif how == "length":
        struct.pack_into(">H", b, at + 2, rng.choice([2, 3, 66, n - 3, n + 1, 0xFFFF]))
    else:
        return d[:at] + d[at + n:], how
    return bytes(b), how


def m_jpeg_dht(d, rng, ctx):
    dhts = _jpeg_find(d, {0xC4})
    if not dhts:
        return None
    m, at, n = rng.choice(dhts)
    b = bytearray(d)
    how = rng.choice(["counts-overflow", "counts-sum", "class", "id", "length", "drop", "empty", "all-drop"])
    if how == "counts-overflow":
        b[at + 5:at + 21] = bytes([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255])[:16] if rng.random() < 0.5 else bytes([3] + [0] * 15)
    elif how == "counts-sum":
        b[at + 5 + rng.randrange(16)] = 255
    elif how == "class":
        b[at + 4] = (b[at + 4] & 0x0F) | 0x20
    elif how == "id":
        b[at + 4] = (b[at + 4] & 0xF0) | rng.choice([2, 3, 4, 15])
    elif how == "length":
        struct.pack_into(">H", b, at + 2, rng.choice([2, 17, 19, n - 3, n + 5]))
    elif how == "drop":
        return d[:at] + d[at + n:], how
    elif how == "empty":
        seg = _segment(0xC4, bytes([b[at + 4]]) + b"\x00" * 16)
        return d[:at] + seg + d[at + n:], how
    else:
        out = d
        for mm, aa, nn in sorted(dhts, key=lambda s: -s[1]):
            out = out[:aa] + out[aa + nn:]
        return out, how
    return bytes(b), how


def m_jpeg_sos(d, rng, ctx):
    soss = _jpeg_find(d, {0xDA})
    if not soss:
        return None
    m, at, n = rng.choice(soss)
    b = bytearray(d)
    ns = b[at + 4]
    how = rng.choice(["ncomp", "compid", "table", "spectral", "approx", "length"])
    if how == "ncomp":
        b[at + 4] = rng.choice([0, 4, 5, 255, ns + 1])
    elif how == "compid" and ns:
        b[at + 5] = rng.choice([0, 9, 255])
    elif how == "table" and ns:
        b[at + 6] = rng.choice([0x33, 0x40, 0x04, 0xFF])
    elif how == "spectral":
        q = at + 5 + 2 * ns
        if q + 1 < len(b):
            b[q], b[q + 1] = rng.choice([(5, 2), (0, 64), (63, 63), (1, 0), (0, 255)])
    elif how == "approx":
        q = at + 7 + 2 * ns
        if q < len(b):
            b[q] = rng.choice([0x0F, 0xF0, 0xFF, 0x1D])
    else:
        struct.pack_into(">H", b, at + 2, rng.choice([2, 3, n - 3, n + 1, 0xFFFF]))
    return bytes(b), how


def m_jpeg_noeoi(d, rng, ctx):
    if not d.endswith(b"\xff\xd9"):
        return None
    n = rng.choice([2, 2, 3, 10])
    return d[:-n], f"-{n}"


def m_jpeg_after_eoi(d, rng, ctx):
    tail = rng.choice([b"\xff\xd9", b"\xff\xd8\xff\xe0" + bytes(100), bytes(rng.randrange(256) for _ in range(500)), d[:1000]])
    return d + tail, f"+{len(tail)}"


def m_jpeg_dri(d, rng, ctx):
    """A restart interval that does not match the RSTn markers (none, or other spacing), or RSTn broken."""
    segs = jpeg_segments(d)
    sos = [s for s in segs if s[0] == 0xDA]
    if not sos:
        return None
    how = rng.choice(["insert", "insert", "rst-renumber", "rst-drop"])
    if how == "insert":
        v = rng.choice([1, 2, 7, 0xFFFF, 0])
        m, at, n = sos[0]
        dri = [s for s in segs if s[0] == 0xDD]
        if dri:
            b = bytearray(d)
            struct.pack_into(">H", b, dri[0][1] + 4, v)
            return bytes(b), f"interval {v} (changed)"
        return d[:at] + _segment(0xDD, struct.pack(">H", v)) + d[at:], f"interval {v}"
    rsts = [s for s in segs if s[0] is not None and 0xD0 <= s[0] <= 0xD7]
    if not rsts:
        return None
    b = bytearray(d)
    if how == "rst-renumber":
        for s in rng.sample(rsts, min(len(rsts), rng.randint(1, 4))):
            b[s[1] + 1] = 0xD0 + rng.randrange(8)
        return bytes(b), how
    s = rng.choice(rsts)
    return d[:s[1]] + d[s[1] + 2:], how


def m_jpeg_marker_len(d, rng, ctx):
    segs = [s for s in jpeg_segments(d) if s[0] is not None and s[2] > 2]
    if not segs:
        return None
    m, at, n = rng.choice(segs)
    b = bytearray(d)
    v = rng.choice([0, 1, 2, n - 3, n - 1, n + 1, 0xFFFF])
    struct.pack_into(">H", b, at + 2, max(0, v))
    return bytes(b), f"{m:#04x} length {n - 2}->{v}"


def m_jpeg_marker_insert(d, rng, ctx):
    ent = [s for s in jpeg_segments(d) if s[0] is None and s[2] > 4]
    if not ent:
        return None
    _, at, n = rng.choice(ent)
    p = at + rng.randrange(n)
    mk = rng.choice([b"\xff\xd9", b"\xff\xd8", b"\xff\xc4\x00\x02", b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00", b"\xff\xd3", b"\xff\xc0\x00\x0b\x08\x00\x01\x00\x01\x01\x01\x11\x00"])
    return d[:p] + mk + d[p:], f"{mk[:2].hex()} at {p}"


def m_jpeg_entropy(d, rng, ctx):
    ent = [s for s in jpeg_segments(d) if s[0] is None and s[2] > 4]
    if not ent:
        return None
    b = bytearray(d)
    _, at, n = rng.choice(ent)
    for _ in range(rng.randint(1, 32)):
        p = at + rng.randrange(n)
        v = rng.randrange(255)           # never 0xFF: keeps the marker structure
        if b[p] != 0xFF and (p == 0 or b[p - 1] != 0xFF):
            b[p] = v
    return bytes(b), ""


def m_jpeg_scan_bomb(d, rng, ctx):
    w = h = rng.choice([512, 1024, 2048, 2048])
    scans = rng.choice([500, 2000, 5000, 10000, 20000])
    comps = rng.choice([1, 1, 3])
    return jpeg_scan_bomb(w, h, scans, comps, rng), f"{w}x{h}, {scans} scans, {comps} components", None, f"{scans}"


def m_jpeg_scans_repeated(d, rng, ctx):
    """A real progressive JPEG with its scans repeated many times (a bomb that looks like a photo)."""
    segs = jpeg_segments(d)
    if not any(s[0] == 0xC2 for s in segs):
        return None
    scans = []
    for i, s in enumerate(segs):
        if s[0] == 0xDA and i + 1 < len(segs) and segs[i + 1][0] is None:
            scans.append(d[s[1]:segs[i + 1][1] + segs[i + 1][2]])
    if not scans:
        return None
    small = min(scans, key=len)
    k = max(1, min(20000, (MAX_FILE - len(d)) // max(1, len(small))))
    k = rng.choice([k, k // 4, 1000]) if k > 1000 else k
    eoi = d.rfind(b"\xff\xd9")
    if eoi < 0:
        return None
    return d[:eoi] + small * k + d[eoi:], f"{k} extra scans", None, None


def m_jpeg_app(d, rng, ctx):
    how = rng.choice(["huge-length", "many-app", "exif-orient", "exif-loop", "exif-count", "exif-offset", "icc-chunks"])
    if how == "huge-length":
        return d[:2] + b"\xff\xe1\xff\xff" + b"Exif\x00\x00" + d[2:], how
    if how == "many-app":
        k = rng.choice([1000, 10000])
        return d[:2] + (b"\xff\xe5\x00\x04ab" * k) + d[2:], f"{how} {k}"
    if how == "exif-orient":
        v = rng.choice([0, 9, 255, 0xFFFF])
        return d[:2] + _segment(0xE1, exif_block(v)) + d[2:], f"orientation {v}"
    if how == "exif-loop":
        return d[:2] + _segment(0xE1, exif_block(6, next_ifd=8)) + d[2:], "IFD0 next -> IFD0"
    if how == "exif-count":
        return d[:2] + _segment(0xE1, exif_block(6, count_override=0xFFFF)) + d[2:], "entry count 65535"
    if how == "exif-offset":
        ent = [(0x8769, 4, 1, struct.pack("<I", 0x7FFFFFF0)), (0x010F, 2, 0x10000000, struct.pack("<I", 40))]
        return d[:2] + _segment(0xE1, exif_block(3, extra_entries=ent)) + d[2:], "offsets past the end"
    # ICC profile split over APP2 segments with inconsistent sequence numbers
    segs = b"".join(_segment(0xE2, b"ICC_PROFILE\x00" + bytes([rng.choice([0, 1, 3, 255]), rng.choice([0, 1, 2])]) + bytes(64)) for _ in range(3))
    return d[:2] + segs + d[2:], how


# -- GIF

def m_gif_screen(d, rng, ctx):
    if len(d) < 13:
        return None
    b = bytearray(d)
    w, h = rng.choice([(65535, 65535), (10000, 10000), (0, 0), (1, 1), (65535, 1), (20000, 5000)])
    struct.pack_into("<HH", b, 6, w, h)
    return bytes(b), f"screen {w}x{h}", None, None


def _gif_images(d):
    g = gif_blocks(d)
    return [blk for blk in g["blocks"] if blk[0] == "image"] if g else []


def m_gif_frame_dims(d, rng, ctx):
    imgs = _gif_images(d)
    if not imgs:
        return None
    _, at, *_ = rng.choice(imgs)
    b = bytearray(d)
    field = rng.choice(["size", "offset", "both"])
    if field in ("size", "both"):
        struct.pack_into("<HH", b, at + 5, *rng.choice([(0, 0), (65535, 65535), (1, 65535), (5000, 5000)]))
    if field in ("offset", "both"):
        struct.pack_into("<HH", b, at + 1, *rng.choice([(65535, 65535), (60000, 0), (1, 1)]))
    return bytes(b), field


def m_gif_lzw_min(d, rng, ctx):
    imgs = _gif_images(d)
    if not imgs:
        return None
    blk = rng.choice(imgs)
    b = bytearray(d)
    v = rng.choice([0, 1, 9, 11, 12, 13, 255])
    b[blk[4]] = v
    return bytes(b), f"min code size {v}"


def m_gif_block_len(d, rng, ctx):
    imgs = _gif_images(d)
    if not imgs:
        return None
    blk = rng.choice(imgs)
    b = bytearray(d)
    p, subs = blk[4] + 1, []
    while p < blk[5] - 1:
        subs.append(p)
        p += 1 + b[p]
    if not subs:
        return None
    s = rng.choice(subs)
    old = b[s]
    v = rng.choice([0, 1, 255, max(0, old - 1), min(255, old + 1)])
    b[s] = v
    return bytes(b), f"sub-block {old} -> {v}"


def m_gif_lzw_garbage(d, rng, ctx):
    imgs = _gif_images(d)
    if not imgs:
        return None
    blk = imgs[0]
    b = bytearray(d)
    p = blk[4] + 1
    while p < blk[5] - 1 and b[p]:
        n = b[p]
        for i in range(p + 1, p + 1 + n):
            if rng.random() < 0.3:
                b[i] = rng.randrange(256)
        p += 1 + n
    return bytes(b), ""


def m_gif_trailer(d, rng, ctx):
    g = gif_blocks(d)
    if not g or not g["blocks"]:
        return None
    how = rng.choice(["none", "early", "zero-sub"])
    if how == "none":
        return (d[:-1], how) if d.endswith(b";") else None
    if how == "early":
        return d[:13 + g["gct"][1]] + b";" + d[13 + g["gct"][1]:], how
    imgs = _gif_images(d)
    if not imgs:
        return None
    return d[:imgs[0][4] + 1] + b"\x00;", how


def m_gif_colour_table(d, rng, ctx):
    g = gif_blocks(d)
    if not g:
        return None
    b = bytearray(d)
    how = rng.choice(["gct-flag", "gct-size", "lct-missing", "no-tables"])
    if how == "gct-flag":
        b[10] ^= 0x80
    elif how == "gct-size":
        b[10] = (b[10] & 0xF8) | rng.choice([0, 7])
    elif how == "lct-missing":
        imgs = _gif_images(d)
        if not imgs:
            return None
        b[imgs[0][1] + 9] |= 0x87       # local table of 256 entries declared, none written
    else:
        b[10] &= 0x7F
        return bytes(b[:13]) + d[13 + g["gct"][1]:], how
    return bytes(b), how


def m_gif_ext(d, rng, ctx):
    g = gif_blocks(d)
    if not g:
        return None
    at = 13 + g["gct"][1]
    ext = rng.choice([b"\x21\xf9\x09\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00",          # GCE with block size 9
                      b"\x21\xff\x0bNETSCAPE2.0\x03\x01\xff\xff",                     # no terminator
                      b"\x21\xfe" + b"\xff" + b"c" * 255 + b"\x00",
                      b"\x21\x01\x0c" + bytes(12) + b"\x05hello\x00",                  # plain text ext
                      b"\x21\x99\x02ab\x00", b"\x21\xf9\x04\x01\x00\x00\xff"])
    return d[:at] + ext + d[at:], ext[:2].hex()


def m_gif_many_frames(d, rng, ctx):
    """Thousands of small frames after the first: only the first is needed, reading all costs time."""
    g = gif_blocks(d)
    if not g or not d.endswith(b";"):
        return None
    k = rng.choice([1000, 5000, 20000])
    fw, fh = rng.choice([(1, 1), (8, 8), (64, 64)])
    frame = b"\x21\xf9\x04\x04\x00\x00\x00\x00" + b"\x2c" + struct.pack("<HHHH", 0, 0, fw, fh) + b"\x00" + b"\x02\x02\x44\x01\x00"
    if len(d) + k * len(frame) > MAX_FILE:
        k = (MAX_FILE - len(d)) // len(frame)
    return d[:-1] + frame * k + b";", f"{k} frames {fw}x{fh}"


def m_gif_interlace_flag(d, rng, ctx):
    imgs = _gif_images(d)
    if not imgs:
        return None
    b = bytearray(d)
    b[imgs[0][1] + 9] ^= 0x40
    return bytes(b), ""


# -- BMP

def _bmp_ok(d):
    return len(d) >= 30 and d[:2] == b"BM"


def m_bmp_field(field):
    def f(d, rng, ctx):
        if not _bmp_ok(d):
            return None
        b = bytearray(d)
        hdr = struct.unpack_from("<I", b, 14)[0]
        core = hdr == 12
        if field == "bpp":
            v = rng.choice([0, 2, 3, 5, 7, 12, 33, 64, 0xFFFF])
            struct.pack_into("<H", b, 24 if core else 28, v)
        elif field == "hdrsize":
            v = rng.choice([0, 12, 13, 39, 41, 64, 108, 124, 200, 0xFFFFFFFF])
            struct.pack_into("<I", b, 14, v)
        elif field == "palette":
            if core:
                return None
            v = rng.choice([0xFFFFFFFF, 257, 65536, 1 << 30, 1000, 3])
            struct.pack_into("<I", b, 46, v)
        elif field == "width":
            v = rng.choice([0, -1, -64, 2 ** 31 - 1, -2 ** 31, 65536, 1 << 20])
            if core:
                struct.pack_into("<H", b, 18, v & 0xFFFF)
            else:
                struct.pack_into("<i", b, 18, v)
        elif field == "height":
            cur = struct.unpack_from("<h" if core else "<i", b, 20 if core else 22)[0]
            v = rng.choice([0, -cur, -2 ** 31, 2 ** 31 - 1, 1 << 20, 65535])
            if core:
                struct.pack_into("<H", b, 20, v & 0xFFFF)
            else:
                struct.pack_into("<i", b, 22, v)
        elif field == "offset":
            v = rng.choice([0, 14, 2, len(d), len(d) - 1, len(d) + 1000, 0xFFFFFFFF, 54])
            struct.pack_into("<I", b, 10, v)
        elif field == "compression":
            if core:
                return None
            v = rng.choice([1, 2, 3, 4, 5, 6, 11, 99, 0x80000000])
            struct.pack_into("<I", b, 30, v)
        elif field == "planes":
            v = rng.choice([0, 2, 0xFFFF])
            struct.pack_into("<H", b, 22 if core else 26, v)
        elif field == "masks":
            if core or len(b) < 66:
                return None
            v = rng.choice([(0, 0, 0), (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFF00FF, 0xFF00, 0xFF), (0xF0F0, 0x0F0F, 0x8001)])
            struct.pack_into("<I", b, 30, 3)
            struct.pack_into("<III", b, 54, *v)
            v = "/".join(f"{x:#x}" for x in v)
        elif field == "sizeimage":
            if core:
                return None
            v = rng.choice([0, 1, 0xFFFFFFFF, len(d) * 100])
            struct.pack_into("<I", b, 34, v)
        else:
            return None
        return bytes(b), f"{field}={v}"
    return f


def m_bmp_rle_garbage(d, rng, ctx):
    """An RLE stream with escapes that jump outside the image, runs past the row and no end marker."""
    if not _bmp_ok(d):
        return None
    hdr = struct.unpack_from("<I", d, 14)[0]
    if hdr == 12:
        return None
    comp = struct.unpack_from("<I", d, 30)[0]
    if comp not in (1, 2):
        return None
    off = struct.unpack_from("<I", d, 10)[0]
    ops = []
    for _ in range(rng.randint(1, 40)):
        ops.append(rng.choice([b"\x00\x02\xff\xff", b"\x00\x02\x10\x00", b"\xff\x01", b"\x00\xff" + bytes(10), b"\x00\x00",
                               b"\x00\x03\x01\x02", bytes([rng.randrange(256), rng.randrange(256)])]))
    body = b"".join(ops)
    if rng.random() < 0.5:
        body = d[off:off + rng.randrange(max(1, len(d) - off))] + body
    return d[:off] + body, f"{len(ops)} ops"


# -- TIFF

def _tiff_mut(d, rng, fn):
    bo, ifds = tiff_ifds(d)
    if not ifds:
        return None
    b = bytearray(d)
    r = fn(b, bo, ifds)
    if r is None:
        return None
    return bytes(b), r


def m_tiff_tag(tag, name, values):
    def f(d, rng, ctx):
        def change(b, bo, ifds):
            ifd = rng.choice(ifds)
            e = ifd["entries"].get(tag)
            if e is None:
                return None
            cur = tiff_values(d, bo, e)
            choices = [v(cur, len(d)) if callable(v) else v for v in values]
            v = rng.choice(choices)
            if rng.random() < 0.3 and e["count"] > 1:
                i = rng.randrange(e["count"])
                new = list(cur) if cur else [0] * e["count"]
                if i < len(new):
                    new[i] = v
                tiff_set_values(b, bo, e, new)
                return f"{name}[{i}]={v}"
            tiff_set_values(b, bo, e, [v] * e["count"])
            return f"{name}={v}"
        return _tiff_mut(d, rng, change)
    return f


def m_tiff_count(tag, name):
    """Change how many values an entry says it has (0, fewer, more, absurd), leaving the data alone."""
    def f(d, rng, ctx):
        def change(b, bo, ifds):
            e = ifds[0]["entries"].get(tag)
            if e is None:
                return None
            v = rng.choice([0, 1, max(0, e["count"] - 1), e["count"] + 1, 0x40000000, 0xFFFFFFFF])
            struct.pack_into(bo + "I", b, e["at"] + 4, v)
            return f"{name} count {e['count']}->{v}"
        return _tiff_mut(d, rng, change)
    return f


def m_tiff_ifd_loop(d, rng, ctx):
    def change(b, bo, ifds):
        how = rng.choice(["self", "first", "past-eof", "odd", "header-zero", "header-past-eof", "into-data"])
        last = ifds[-1]
        if how == "self":
            struct.pack_into(bo + "I", b, last["next_at"], last["offset"])
        elif how == "first":
            struct.pack_into(bo + "I", b, last["next_at"], ifds[0]["offset"])
        elif how == "past-eof":
            struct.pack_into(bo + "I", b, last["next_at"], len(d) + 1000)
        elif how == "odd":
            struct.pack_into(bo + "I", b, last["next_at"], 9)
        elif how == "header-zero":
            struct.pack_into(bo + "I", b, 4, 0)
        elif how == "header-past-eof":
            struct.pack_into(bo + "I", b, 4, 0xFFFFFFF0)
        else:
            struct.pack_into(bo + "I", b, 4, 8)
        return how
    return _tiff_mut(d, rng, change)


def m_tiff_entry_count(d, rng, ctx):
    def change(b, bo, ifds):
        ifd = rng.choice(ifds)
        v = rng.choice([0, 1, ifd["count"] + 1, 0xFFFF, 0x8000])
        struct.pack_into(bo + "H", b, ifd["offset"], v)
        return f"{ifd['count']}->{v}"
    return _tiff_mut(d, rng, change)


def m_tiff_tag_type(d, rng, ctx):
    def change(b, bo, ifds):
        e = rng.choice(list(ifds[0]["entries"].values()))
        v = rng.choice([0, 1, 2, 5, 11, 12, 13, 16, 255])
        struct.pack_into(bo + "H", b, e["at"] + 2, v)
        return f"tag {e['tag']} type {e['type']}->{v}"
    return _tiff_mut(d, rng, change)


def m_tiff_tag_drop(d, rng, ctx):
    """A required tag renamed to an unknown one (the entry stays, so offsets stay valid)."""
    def change(b, bo, ifds):
        present = [t for t in (256, 257, 258, 259, 262, 273, 277, 278, 279, 320, 324, 325) if t in ifds[0]["entries"]]
        if not present:
            return None
        t = rng.choice(present)
        struct.pack_into(bo + "H", b, ifds[0]["entries"][t]["at"], 65000)
        return f"tag {t} removed"
    return _tiff_mut(d, rng, change)


def m_tiff_tag_dup(d, rng, ctx):
    def change(b, bo, ifds):
        ents = sorted(ifds[0]["entries"].values(), key=lambda e: e["at"])
        if len(ents) < 2:
            return None
        i = rng.randrange(len(ents) - 1)
        b[ents[i + 1]["at"]:ents[i + 1]["at"] + 2] = b[ents[i]["at"]:ents[i]["at"] + 2]
        return f"tag {ents[i]['tag']} twice"
    return _tiff_mut(d, rng, change)


def m_tiff_compression_swap(d, rng, ctx):
    """The data of one compression labelled as another."""
    def change(b, bo, ifds):
        e = ifds[0]["entries"].get(259)
        if e is None:
            return None
        cur = tiff_values(d, bo, e)
        v = rng.choice([c for c in (1, 5, 7, 8, 32773, 32946, 2, 3, 4, 34712) if not cur or c != cur[0]])
        tiff_set_values(b, bo, e, [v])
        return f"{cur[0] if cur else '?'} labelled {v}"
    return _tiff_mut(d, rng, change)


TIFF_FIELDS = {
    "width": (256, [0, 1, 65535, 100000, 2 ** 31 - 1, 0xFFFFFFFF, lambda c, n: (c[0] + 1) if c else 2]),
    "height": (257, [0, 1, 65535, 100000, 2 ** 31 - 1, 0xFFFFFFFF, lambda c, n: (c[0] * 2) if c else 2]),
    "bps": (258, [0, 1, 2, 3, 7, 12, 17, 24, 32, 64, 0xFFFF]),
    "compression": (259, [0, 2, 3, 4, 6, 7, 9, 99, 32771, 34712, 65535]),
    "photometric": (262, [0, 3, 4, 5, 6, 8, 32844, 99]),
    "stripoffsets": (273, [0, lambda c, n: n, lambda c, n: n + 1000, 0xFFFFFFFF, lambda c, n: n - 1]),
    "spp": (277, [0, 1, 2, 4, 5, 255, 0xFFFF]),
    "rowsperstrip": (278, [0, 1, 0xFFFFFFFF, 2 ** 31, lambda c, n: max(1, c[0] // 2) if c else 1]),
    "stripcounts": (279, [0, 1, lambda c, n: n, lambda c, n: n * 4, 0xFFFFFFFF, 0x7FFFFFFF]),
    "planar": (284, [0, 2, 3]),
    "predictor": (317, [0, 2, 3, 99]),
    "tilewidth": (322, [0, 1, 15, 17, 0xFFFF]),
    "tilelength": (323, [0, 1, 15, 17, 0xFFFF]),
    "tileoffsets": (324, [0, lambda c, n: n, 0xFFFFFFFF]),
    "tilecounts": (325, [0, lambda c, n: n, 0xFFFFFFFF]),
    "colormap": (320, [0, 0xFFFF]),
    "extrasamples": (338, [0, 1, 2, 3, 99]),
}


# -- WebP

def m_webp_riff_size(d, rng, ctx):
    if len(d) < 12:
        return None
    b = bytearray(d)
    v = rng.choice([0, 4, len(d) - 9, len(d) - 7, len(d) + 1000, 0xFFFFFFFF, 0x7FFFFFFF])
    struct.pack_into("<I", b, 4, v)
    return bytes(b), f"{len(d) - 8}->{v}"


def m_webp_chunk_size(d, rng, ctx):
    ch = riff_chunks(d)
    if not ch:
        return None
    cc, at, size = rng.choice(ch)
    b = bytearray(d)
    v = rng.choice([0, 1, size - 1, size + 1, size + 1000, 0xFFFFFFFF, 0xFFFFFFF6])
    struct.pack_into("<I", b, at + 4, v & 0xFFFFFFFF)
    return bytes(b), f"{cc.decode('latin1')} {size}->{v}"


def m_webp_bitstream(d, rng, ctx):
    """VP8 frame header (start code, 14-bit sizes with scale bits, partition size) and VP8L header fields."""
    ch = riff_chunks(d)
    b = bytearray(d)
    for cc, at, size in ch:
        p = at + 8
        if cc == b"VP8 " and size >= 10:
            how = rng.choice(["size", "scale", "startcode", "partition", "keyframe"])
            if how == "size":
                struct.pack_into("<HH", b, p + 6, rng.choice([0, 1, 16383]), rng.choice([0, 1, 16383]))
            elif how == "scale":
                b[p + 7] |= 0xC0
                b[p + 9] |= 0xC0
            elif how == "startcode":
                b[p + 3] ^= 0xFF
            elif how == "partition":
                b[p], b[p + 1], b[p + 2] = (b[p] & 0x1F) | 0xE0, 0xFF, 0xFF
            else:
                b[p] |= 0x01
            return bytes(b), f"VP8 {how}"
        if cc == b"VP8L" and size >= 5:
            how = rng.choice(["signature", "size", "version", "transforms"])
            if how == "signature":
                b[p] = 0x2E
            elif how == "size":
                bits = (rng.choice([0, 16383]) | (rng.choice([0, 16383]) << 14) | (rng.randrange(2) << 28))
                struct.pack_into("<I", b, p + 1, bits)
            elif how == "version":
                b[p + 4] |= 0xE0
            else:
                for i in range(p + 5, min(p + 16, len(b))):
                    b[i] = rng.randrange(256)
            return bytes(b), f"VP8L {how}"
        if cc == b"VP8X" and size >= 10:
            how = rng.choice(["canvas", "flags"])
            if how == "canvas":
                b[p + 4:p + 10] = b"\xff\xff\xff\xff\xff\xff"
            else:
                b[p] = rng.choice([0x02, 0x10, 0xFF, 0x3E])
            return bytes(b), f"VP8X {how}"
    return None


def m_webp_alpha_anim(d, rng, ctx):
    ch = riff_chunks(d)
    b = bytearray(d)
    for cc, at, size in ch:
        p = at + 8
        if cc == b"ALPH" and size >= 1:
            b[p] = rng.choice([0xFF, 0x03, 0x30, 0x02])
            return bytes(b), "ALPH header"
        if cc == b"ANMF" and size >= 16:
            struct.pack_into("<I", b, p, 0xFFFFFF)          # frame x/y offsets, 24 bits each
            b[p + 6:p + 12] = b"\xff\xff\xff\xff\xff\xff"   # frame size 2^24 x 2^24
            return bytes(b), "ANMF frame outside the canvas"
    return None


def m_webp_chunk_drop(d, rng, ctx):
    ch = riff_chunks(d)
    if len(ch) < 2:
        return None
    cc, at, size = rng.choice(ch)
    end = at + 8 + size + (size & 1)
    out = bytearray(d[:at] + d[end:])
    struct.pack_into("<I", out, 4, len(out) - 8)
    return bytes(out), f"{cc.decode('latin1')} removed"


# ---------------------------------------------------------------------------------------------
# The catalogue: kind -> (formats it applies to, weight, function). A function may return
# (data, detail), (data, detail, ext) or (data, detail, ext, suffix): ext overrides the file's
# extension, suffix is appended to the kind in the name (crcok / crcbad, a bomb's size).

ALL = tuple(EXT)
KINDS = {
    "bitflip-few": (ALL, 6, m_bitflip_few),
    "bitflip-many": (ALL, 4, m_bitflip_many),
    "bytes-interesting": (ALL, 3, m_bytes_interesting),
    "int-interesting": (ALL, 4, m_int_interesting),
    "run-overwrite": (ALL, 3, m_run_overwrite),
    "insert": (ALL, 2, m_insert),
    "delete": (ALL, 2, m_delete),
    "duplicate": (ALL, 1, m_duplicate),
    "swap-blocks": (ALL, 1, m_swap_blocks),
    "zero-tail": (ALL, 1, m_zero_tail),
    "trunc-random": (ALL, 5, m_trunc_random),
    "trunc-1": (ALL, 2, m_trunc_1),
    "trunc-tail": (ALL, 2, m_trunc_tail),
    "trunc-header": (ALL, 2, m_trunc_header),
    "splice": (ALL, 2, m_splice),
    "splice-cross": (ALL, 1, m_splice_cross),
    "confuse-ext": (ALL, 1, m_confuse_ext),
    "header-swap": (ALL, 1, m_header_swap),
    "random-body": (ALL, 0.5, m_random_body),
    "magic-only": (ALL, 0.2, m_magic_only),
    "empty": (ALL, 0.05, m_empty),
    # PNG
    "ihdr-width": (("png",), 1.5, mk_png_ihdr("width")),
    "ihdr-height": (("png",), 1.5, mk_png_ihdr("height")),
    "ihdr-depth": (("png",), 1.5, mk_png_ihdr("depth")),
    "ihdr-colortype": (("png",), 1.5, mk_png_ihdr("colortype")),
    "ihdr-interlace": (("png",), 1.5, mk_png_ihdr("interlace")),
    "ihdr-method": (("png",), 0.5, mk_png_ihdr("method")),
    "chunk-len": (("png",), 1.5, m_png_chunk_len),
    "chunk-type": (("png",), 1, m_png_chunk_type),
    "idat-split": (("png",), 1, m_png_idat_split),
    "idat-dup": (("png",), 1, m_png_idat_dup),
    "idat-drop": (("png",), 1, m_png_idat_drop),
    "idat-trunc": (("png",), 2, m_png_idat_trunc),
    "raw-short": (("png",), 2, m_png_raw_short),
    "raw-long": (("png",), 1, m_png_raw_long),
    "filter-bad": (("png",), 1, m_png_filter_bad),
    "zlib-bad": (("png",), 1, m_png_zlib_bad),
    "chunk-order": (("png",), 1, m_png_chunk_order),
    "chunk-drop": (("png",), 1, m_png_chunk_drop),
    "ihdr-twice": (("png",), 0.5, m_png_ihdr_twice),
    "plte-bad": (("png",), 1, m_png_plte_bad),
    "trns-bad": (("png",), 0.5, m_png_trns_bad),
    "critical-unknown": (("png",), 0.5, m_png_critical_unknown),
    "text-bad": (("png",), 1, m_png_text_bad),
    "apng": (("png",), 0.5, m_png_apng),
    "bomb-text": (("png",), 0.25, m_png_bomb_text),
    "bomb-idat": (("png",), 0.3, m_png_bomb_idat),
    # JPEG
    "sof-dims": (("jpeg",), 2, m_jpeg_sof("dims")),
    "sof-ncomp": (("jpeg",), 1.5, m_jpeg_sof("ncomp")),
    "sof-sampling": (("jpeg",), 2, m_jpeg_sof("sampling")),
    "sof-qtable": (("jpeg",), 1, m_jpeg_sof("qtable")),
    "sof-precision": (("jpeg",), 1, m_jpeg_sof("precision")),
    "sof-type": (("jpeg",), 1, m_jpeg_sof("type")),
    "sof-compid": (("jpeg",), 0.5, m_jpeg_sof("compid")),
    "dqt": (("jpeg",), 1.5, m_jpeg_dqt),
    "dht": (("jpeg",), 2, m_jpeg_dht),
    "sos": (("jpeg",), 2, m_jpeg_sos),
    "no-eoi": (("jpeg",), 1.5, m_jpeg_noeoi),
    "after-eoi": (("jpeg",), 0.5, m_jpeg_after_eoi),
    "dri": (("jpeg",), 1.5, m_jpeg_dri),
    "marker-len": (("jpeg",), 1.5, m_jpeg_marker_len),
    "marker-insert": (("jpeg",), 1, m_jpeg_marker_insert),
    "entropy": (("jpeg",), 2, m_jpeg_entropy),
    "app": (("jpeg",), 1, m_jpeg_app),
    "scan-bomb": (("jpeg",), 0.15, m_jpeg_scan_bomb),
    "scans-repeated": (("jpeg",), 0.3, m_jpeg_scans_repeated),
    # GIF
    "screen": (("gif",), 1, m_gif_screen),
    "frame-dims": (("gif",), 1.5, m_gif_frame_dims),
    "lzw-min": (("gif",), 1.5, m_gif_lzw_min),
    "block-len": (("gif",), 1.5, m_gif_block_len),
    "lzw-garbage": (("gif",), 1.5, m_gif_lzw_garbage),
    "trailer": (("gif",), 1, m_gif_trailer),
    "colour-table": (("gif",), 1.5, m_gif_colour_table),
    "ext": (("gif",), 1, m_gif_ext),
    "many-frames": (("gif",), 0.3, m_gif_many_frames),
    "interlace-flag": (("gif",), 0.5, m_gif_interlace_flag),
    # BMP
    **{f"hdr-{k}": (("bmp",), w, m_bmp_field(k)) for k, w in [("bpp", 2), ("hdrsize", 2), ("palette", 1.5), ("width", 1.5),
                                                                 ("height", 1.5), ("offset", 1.5), ("compression", 1.5),
                                                                 ("planes", 0.5), ("masks", 1), ("sizeimage", 0.5)]},
    "rle-garbage": (("bmp",), 1.5, m_bmp_rle_garbage),
    # TIFF
    **{f"tag-{k}": (("tiff",), 1.5 if k in ("rowsperstrip", "stripcounts", "stripoffsets", "width", "bps") else 1,
                    m_tiff_tag(t, k, v)) for k, (t, v) in TIFF_FIELDS.items()},
    "count-stripoffsets": (("tiff",), 1, m_tiff_count(273, "StripOffsets")),
    "count-stripcounts": (("tiff",), 1, m_tiff_count(279, "StripByteCounts")),
    "count-bps": (("tiff",), 0.5, m_tiff_count(258, "BitsPerSample")),
    "count-colormap": (("tiff",), 0.5, m_tiff_count(320, "ColorMap")),
    "ifd-loop": (("tiff",), 1.5, m_tiff_ifd_loop),
    "entry-count": (("tiff",), 1, m_tiff_entry_count),
    "tag-type": (("tiff",), 1, m_tiff_tag_type),
    "tag-drop": (("tiff",), 1, m_tiff_tag_drop),
    "tag-dup": (("tiff",), 0.5, m_tiff_tag_dup),
    "compression-swap": (("tiff",), 1, m_tiff_compression_swap),
    # WebP
    "riff-size": (("webp",), 2, m_webp_riff_size),
    "chunk-size": (("webp",), 2, m_webp_chunk_size),
    "bitstream": (("webp",), 3, m_webp_bitstream),
    "alpha-anim": (("webp",), 1, m_webp_alpha_anim),
    "webp-chunk-drop": (("webp",), 1, m_webp_chunk_drop),
}

# How often each format is the base of a mutation.
FORMAT_WEIGHT = {"jpeg": 22, "png": 24, "gif": 12, "bmp": 13, "webp": 11, "tiff": 18}


def kind_allowed(fmt, kind, only, skip):
    labels = [kind, f"{fmt}_{kind}"]
    if only and not any(fnmatch.fnmatch(l, p) for l in labels for p in only):
        return False
    return not (skip and any(fnmatch.fnmatch(l, p) for l in labels for p in skip))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("out", nargs="?")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only-kinds", default="", help="comma-separated patterns (kind or FORMAT_KIND)")
    ap.add_argument("--skip-kinds", default="", help="comma-separated patterns (kind or FORMAT_KIND)")
    ap.add_argument("--list-kinds", action="store_true")
    args = ap.parse_args()
    if args.list_kinds:
        for k, (fmts, w, _) in KINDS.items():
            print(f"{k:22} weight {w:<5} {','.join(fmts) if fmts != ALL else 'all formats'}")
        return 0
    if not args.out:
        ap.error("OUT_DIR is required")
    only = [p for p in args.only_kinds.split(",") if p]
    skip = [p for p in args.skip_kinds.split(",") if p]

    out = os.path.abspath(args.out)
    for sub in ("seeds", "good", "mut"):
        if os.path.isdir(os.path.join(out, sub)):
            shutil.rmtree(os.path.join(out, sub))
        os.makedirs(os.path.join(out, sub))

    seeds = make_seeds(args.seed)
    manifest = dict(seed=args.seed, count=args.count, only_kinds=only, skip_kinds=skip, seeds=[], good=[], files=[])
    by_fmt = {}
    for s in seeds:
        if len(s.data) > MAX_FILE:
            print(f"seed {s.name} is {len(s.data)} bytes, over the limit: left out", file=sys.stderr)
            continue
        check_seed(s)
        ext = ALT_EXT[s.fmt] if s.fmt in ALT_EXT and zlib.crc32(s.name.encode()) % 5 == 0 else EXT[s.fmt]
        path = os.path.join(out, "seeds", s.name + ext)
        with open(path, "wb") as f:
            f.write(s.data)
        manifest["seeds"].append(dict(name=os.path.relpath(path, out), fmt=s.fmt, bytes=len(s.data)))
        if s.good:
            g = os.path.join(out, "good", s.name + ext)
            shutil.copyfile(path, g)
            manifest["good"].append(os.path.relpath(g, out))
        by_fmt.setdefault(s.fmt, []).append(s)

    fmts = [f for f in FORMAT_WEIGHT if f in by_fmt]
    # Small seeds are the usual base so that most files stay small; large ones appear now and then.
    def seed_weight(s):
        return 1.0 if len(s.data) <= SMALL_FILE else 0.15 if len(s.data) <= 600 * 1024 else 0.02

    def pick_seed(rng, fmt):
        pool = by_fmt.get(fmt)
        if not pool:
            return None
        return rng.choices(pool, weights=[seed_weight(s) for s in pool])[0]

    total = 0
    counts = {}
    for i in range(args.count):
        rng = random.Random(f"{args.seed}:{i}")
        for attempt in range(200):
            fmt = rng.choices(fmts, weights=[FORMAT_WEIGHT[f] for f in fmts])[0]
            kinds = [k for k, (fs, w, _) in KINDS.items() if fmt in fs and kind_allowed(fmt, k, only, skip)]
            if not kinds:
                continue
            kind = rng.choices(kinds, weights=[KINDS[k][1] for k in kinds])[0]
            base = pick_seed(rng, fmt)
            ctx = dict(fmt=fmt, pick=lambda f, rng=rng: (lambda s: s.data if s else None)(pick_seed(rng, f)))
            r = KINDS[kind][2](base.data, rng, ctx)
            if r is None:
                continue
            data, detail = r[0], r[1]
            ext = r[2] if len(r) > 2 and r[2] else EXT[fmt]
            suffix = r[3] if len(r) > 3 and r[3] else ""
            if len(data) > MAX_FILE:
                continue
            break
        else:
            raise SystemExit(f"no mutation applies for file {i} with these kind filters")
        label = f"{kind}-{suffix}" if suffix else kind
        name = f"m{i:05d}_{fmt}_{label}{ext}"
        with open(os.path.join(out, "mut", name), "wb") as f:
            f.write(data)
        total += len(data)
        counts[f"{fmt}_{kind}"] = counts.get(f"{fmt}_{kind}", 0) + 1
        manifest["files"].append(dict(name=f"mut/{name}", fmt=fmt, kind=label, base=base.name, detail=detail, bytes=len(data)))
        if (i + 1) % 1000 == 0:
            print(f"{i + 1} files, {total / 2 ** 20:.0f} MiB", file=sys.stderr)
    manifest["kind_counts"] = dict(sorted(counts.items()))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    seed_bytes = sum(s["bytes"] for s in manifest["seeds"])
    print(f"{out}: {len(manifest['seeds'])} seeds ({seed_bytes / 2 ** 20:.1f} MiB), {len(manifest['good'])} good, "
          f"{args.count} mutated ({total / 2 ** 20:.1f} MiB), {len(counts)} format/kind pairs", file=sys.stderr)
    return 0


def check_seed(s):
    """Every seed must be a valid image; PIL reads them all (it reads 16-bit RGB PNGs and planar TIFFs its own way)."""
    try:
        with Image.open(io.BytesIO(s.data)) as im:
            im.load()
    except Exception as e:
        raise SystemExit(f"seed {s.name} does not decode with PIL: {e}")


if __name__ == "__main__":
    sys.exit(main())
