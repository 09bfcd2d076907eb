using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;

namespace AlexNet.Imaging;

/// <summary>
/// Whether a file's first image is whole and its header plausible, from its structure alone, for what
/// ImageSharp 2.1 does not report itself: files cut short (decoded without complaint, the missing part grey or
/// black), headers it crashes or loops on (a BMP with 0 bits per pixel, a TIFF with 0 rows per strip or no
/// strips, an interlaced PNG whose image data ends early or that is narrower than 5 pixels) and JPEGs with thousands of scans (a minute of CPU
/// each). A structure the checks cannot follow is left to the decoder to judge.
/// </summary>
internal static class StructureChecks
{
    /// <summary>The most scans a JPEG may have; a progressive JPEG has about ten.</summary>
    public const int MaxJpegScans = 256;

    /// <summary>
    /// Why ImageSharp cannot be given this file although it may be valid, or null. ImageSharp 2.1 never
    /// returns from an interlaced PNG narrower than 5 pixels (Adam7 passes with no columns): 1×1, 3×3, 4×4,
    /// 4×9 and 1×5 were seen to loop; 5×1 and wider decode.
    /// </summary>
    public static string? Unsupported(string format, ReadOnlySpan<byte> data) =>
        format.Equals("PNG", StringComparison.OrdinalIgnoreCase) && ImageHeaders.Png(data) is { Interlaced: true, Width: < 5 } png
            ? $"it is an interlaced PNG {png.Width} pixels wide, which the imagesharp decoder never finishes; the skiasharp decoder reads it"
            : null;

    /// <summary>Why the file cannot be decoded as it is, or null when its structure is sound (or unchecked).</summary>
    public static string? Problem(string format, ReadOnlySpan<byte> data) => format.ToUpperInvariant() switch
    {
        "JPEG" => Jpeg(data),
        "PNG" => Png(data),
        "GIF" => GifFirstFrameEnds(data) ? null : "the data ends inside the first frame",
        "BMP" => Bmp(data),
        "TIFF" => Tiff(data),
        "WEBP" => WebpRiffFits(data) ? null : "the file is shorter than its RIFF header says",
        _ => null,
    };

    /// <summary>
    /// A JPEG's end-of-image marker (FF D9) must follow its first scan: entropy-coded data never holds
    /// FF D9 (an FF there is always followed by 00 or a restart marker), so a stream cut anywhere after the
    /// headers has none. For the same reason every FF DA is a start-of-scan marker, which bounds the scans.
    /// </summary>
    private static string? Jpeg(ReadOnlySpan<byte> data)
    {
        int at = 2; // after SOI
        while (true)
        {
            if (at + 4 > data.Length) return "the data ends before the end-of-image marker";
            if (data[at] != 0xFF) return null; // headers it cannot walk: the decoder judges
            byte marker = data[at + 1];
            if (marker == 0xFF) { at++; continue; }                       // fill byte
            if (marker == 0xDA) break;                                     // start of scan
            if (marker is 0x01 or (>= 0xD0 and <= 0xD7)) { at += 2; continue; } // no length
            at += 2 + (data[at + 2] << 8 | data[at + 3]);
        }
        ReadOnlySpan<byte> rest = data[at..];
        if (rest.LastIndexOf((ReadOnlySpan<byte>)[0xFF, 0xD9]) < 0) return "the data ends before the end-of-image marker";
        int scans = 0;
        for (int i = rest.IndexOf((ReadOnlySpan<byte>)[0xFF, 0xDA]); i >= 0; i = NextScan(rest, i + 2))
            if (++scans > MaxJpegScans) return $"it has more than {MaxJpegScans} scans (a progressive JPEG has about 10), which would take minutes to decode";
        return null;

        static int NextScan(ReadOnlySpan<byte> s, int from)
        {
            int i = s[from..].IndexOf((ReadOnlySpan<byte>)[0xFF, 0xDA]);
            return i < 0 ? -1 : from + i;
        }
    }

    /// <summary>
    /// A PNG's header must be valid and its image data must inflate to at least the bytes its rows need
    /// (every pass of an interlaced image): ImageSharp decodes a short non-interlaced PNG silently and never
    /// returns from a short interlaced one.
    /// </summary>
    private static string? Png(ReadOnlySpan<byte> data)
    {
        if (ImageHeaders.Png(data) is not { } header) return data.Length < 33 ? "the file ends inside its header" : null;
        if (BinaryPrimitives.ReadUInt32BigEndian(data[8..]) != 13) return "invalid header (IHDR is not 13 bytes)";
        if (header.Width == 0 || header.Height == 0 || header.Width > int.MaxValue || header.Height > int.MaxValue)
            return $"invalid header (size {header.Width}×{header.Height})";
        int channels = header.ColorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => 0 };
        bool depthAllowed = header.ColorType switch
        {
            0 => header.BitDepth is 1 or 2 or 4 or 8 or 16,
            3 => header.BitDepth is 1 or 2 or 4 or 8,
            2 or 4 or 6 => header.BitDepth is 8 or 16,
            _ => false,
        };
        if (channels == 0 || !depthAllowed) return $"invalid header (colour type {header.ColorType} with bit depth {header.BitDepth})";
        if (data[28] > 1) return $"invalid header (interlace method {data[28]})";

        // The image data: the IDAT chunks' contents, in order.
        long idatBytes = 0;
        var idat = new List<(int Start, int Length)>();
        int at = 8;
        while (true)
        {
            if (at + 8 > data.Length)
            {
                if (idat.Count > 0) break; // ends after the image data, without IEND: the decoders accept that
                return "the data ends before the image data does";
            }
            long length = BinaryPrimitives.ReadUInt32BigEndian(data[at..]);
            ReadOnlySpan<byte> type = data.Slice(at + 4, 4);
            if (at + 12 + length > data.Length)
                return type.SequenceEqual("IDAT"u8) || idat.Count == 0 ? "the data ends inside a chunk" : null;
            // A second header would be read in place of the first (one that ImageSharp then never finishes).
            if (type.SequenceEqual("IHDR"u8) && at != 8) return "invalid (a second IHDR chunk)";
            if (type.SequenceEqual("IDAT"u8))
            {
                idat.Add((at + 8, (int)length));
                idatBytes += length;
            }
            else if (type.SequenceEqual("IEND"u8)) break;
            at += 12 + (int)length;
        }
        if (idat.Count == 0) return "it holds no image data";
        long needed = ImageDataBytes(header.Width, header.Height, channels * header.BitDepth, header.Interlaced);
        return InflatesTo(data, idat, idatBytes, needed) switch
        {
            true => null,
            false => "the image data ends before the image does",
            null => "its image data is not valid compressed data",
        };
    }

    /// <summary>The bytes of filtered rows a PNG of this size holds: per row a filter byte and the row's
    /// pixels, bit-packed to a whole byte; interlaced, the seven Adam7 passes' rows (an empty pass has none).</summary>
    internal static long ImageDataBytes(long width, long height, int bitsPerPixel, bool interlaced)
    {
        static long Rows(long w, long h, int bits) => w == 0 || h == 0 ? 0 : h * (1 + (w * bits + 7) / 8);
        if (!interlaced) return Rows(width, height, bitsPerPixel);
        ReadOnlySpan<int> startX = [0, 4, 0, 2, 0, 1, 0], startY = [0, 0, 4, 0, 2, 0, 1];
        ReadOnlySpan<int> stepX = [8, 8, 4, 4, 2, 2, 1], stepY = [8, 8, 8, 4, 4, 2, 2];
        long total = 0;
        for (int pass = 0; pass < 7; pass++)
        {
            long w = (width - startX[pass] + stepX[pass] - 1) / stepX[pass];
            long h = (height - startY[pass] + stepY[pass] - 1) / stepY[pass];
            total += Rows(Math.Max(0, w), Math.Max(0, h), bitsPerPixel);
        }
        return total;
    }

    /// <summary>Whether the zlib stream split over <paramref name="parts"/> inflates to at least
    /// <paramref name="needed"/> bytes (inflating no further than that); null when it is not valid zlib data.</summary>
    private static bool? InflatesTo(ReadOnlySpan<byte> data, List<(int Start, int Length)> parts, long total, long needed)
    {
        using ImageMemory compressed = ImageMemory.Allocate(total);
        byte[] scratch = ArrayPool<byte>.Shared.Rent(1 << 16);
        try
        {
            int length = 0;
            foreach ((int start, int count) in parts)
            {
                data.Slice(start, count).CopyTo(compressed.Span[length..]);
                length += count;
            }
            using var zlib = new ZLibStream(compressed.AsStream(), CompressionMode.Decompress);
            long produced = 0;
            while (produced < needed)
            {
                int n = zlib.Read(scratch, 0, (int)Math.Min(scratch.Length, needed - produced));
                if (n == 0) return false;
                produced += n;
            }
            return true;
        }
        catch (InvalidDataException)
        {
            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>Walks header, colour table and blocks up to the end of the first image's LZW data.</summary>
    private static bool GifFirstFrameEnds(ReadOnlySpan<byte> data)
    {
        if (data.Length < 13) return false;
        int at = 13;
        if ((data[10] & 0x80) != 0) at += 3 << ((data[10] & 7) + 1); // global colour table
        while (true)
        {
            if (at >= data.Length) return false;
            byte block = data[at];
            if (block == 0x21) // extension: label, then sub-blocks
            {
                at += 2;
                if (!SkipSubBlocks(data, ref at)) return false;
            }
            else if (block == 0x2C) // image descriptor, local colour table, LZW code size, sub-blocks
            {
                if (at + 10 > data.Length) return false;
                byte flags = data[at + 9];
                at += 10;
                if ((flags & 0x80) != 0) at += 3 << ((flags & 7) + 1);
                at += 1;
                return SkipSubBlocks(data, ref at);
            }
            else
            {
                return true; // the trailer before any image, or bytes the decoder will judge
            }
        }
    }

    private static bool SkipSubBlocks(ReadOnlySpan<byte> data, ref int at)
    {
        while (true)
        {
            if (at >= data.Length) return false;
            int size = data[at];
            at += 1 + size;
            if (size == 0) return at <= data.Length;
        }
    }

    /// <summary>
    /// A BMP's header must have a known size and bit count (ImageSharp reads past its buffers on 0 bits per
    /// pixel), its colour table must fit, and for uncompressed and bit-field BMPs the pixel rows must fit.
    /// </summary>
    private static string? Bmp(ReadOnlySpan<byte> data)
    {
        if (data.Length < 26) return "the file ends inside its header";
        long offset = BinaryPrimitives.ReadUInt32LittleEndian(data[10..]);
        uint header = BinaryPrimitives.ReadUInt32LittleEndian(data[14..]);
        long width, height;
        int bits;
        uint compression = 0, colours = 0;
        if (header == 12)
        {
            width = BinaryPrimitives.ReadUInt16LittleEndian(data[18..]);
            height = BinaryPrimitives.ReadUInt16LittleEndian(data[20..]);
            bits = BinaryPrimitives.ReadUInt16LittleEndian(data[24..]);
        }
        else if (header is 16 or 40 or 52 or 56 or 64 or 108 or 124)
        {
            if (data.Length < 14 + Math.Min(header, 40)) return "the file ends inside its header";
            width = BinaryPrimitives.ReadInt32LittleEndian(data[18..]);
            height = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(data[22..]));
            bits = BinaryPrimitives.ReadUInt16LittleEndian(data[28..]);
            if (header >= 40)
            {
                compression = BinaryPrimitives.ReadUInt32LittleEndian(data[30..]);
                colours = BinaryPrimitives.ReadUInt32LittleEndian(data[46..]);
            }
        }
        else
        {
            return $"invalid header (a {header}-byte information header)";
        }
        bool embedded = compression is 4 or 5; // a JPEG or PNG inside: the bit count is 0
        if (!embedded && bits is not (1 or 2 or 4 or 8 or 16 or 24 or 32)) return $"invalid header ({bits} bits per pixel)";
        if (width <= 0 || height == 0) return $"invalid header (size {width}×{height})";
        if (!embedded && bits <= 8)
        {
            long entries = colours == 0 ? 1L << bits : colours;
            if (entries > 1L << bits) return $"invalid header ({colours} colours for {bits} bits per pixel)";
            long table = 14 + header + entries * (header == 12 ? 3 : 4);
            if (table > data.Length) return "the file ends inside its colour table";
        }
        if (compression is not (0 or 3 or 6)) return null; // run-length and embedded JPEG/PNG: the decoder judges
        long stride = (width * bits + 31) / 32 * 4;
        return offset + stride * height <= data.Length ? null : "the file is shorter than its pixel rows";
    }

    /// <summary>
    /// A classic TIFF's first directory must give a size and whole strips or tiles inside the file
    /// (ImageSharp divides by the rows per strip, and decodes a file cut short without complaint). BigTIFF
    /// and anything the walk cannot follow is left to the decoder.
    /// </summary>
    private static string? Tiff(ReadOnlySpan<byte> data)
    {
        if (data.Length < 8) return "the file ends inside its header";
        var tiff = new TiffBytes(data, data[0] == (byte)'I');
        if (tiff.U16(2) != 42) return null; // BigTIFF (43) or not TIFF
        long ifd = tiff.U32(4);
        if (ifd < 8 || ifd + 2 > data.Length) return "the file ends before its first image directory";
        int entries = tiff.U16((int)ifd);
        if (ifd + 2 + 12L * entries > data.Length) return "the file ends inside its first image directory";

        long width = 0, height = 0, rowsPerStrip = uint.MaxValue, tileWidth = 0, tileLength = 0;
        long[]? stripOffsets = null, stripCounts = null, tileOffsets = null, tileCounts = null;
        for (int i = 0; i < entries; i++)
        {
            int entry = (int)ifd + 2 + 12 * i;
            ushort tag = tiff.U16(entry), type = tiff.U16(entry + 2);
            if (tag is not (256 or 257 or 273 or 278 or 279 or 322 or 323 or 324 or 325)) continue;
            uint count = tiff.U32(entry + 4);
            int size = type switch { 3 => 2, 4 => 4, _ => 0 }; // SHORT, LONG: the types these fields may have
            if (size == 0 || count == 0) return $"invalid directory (tag {tag} has type {type}, count {count})";
            long bytes = (long)size * count;
            long at = bytes <= 4 ? entry + 8 : tiff.U32(entry + 8);
            if (at + bytes > data.Length) return "the file ends before its image directory's values";
            var values = new long[count];
            for (int k = 0; k < values.Length; k++) values[k] = size == 2 ? tiff.U16((int)at + 2 * k) : tiff.U32((int)at + 4 * k);
            switch (tag)
            {
                case 256: width = values[0]; break;
                case 257: height = values[0]; break;
                case 273: stripOffsets = values; break;
                case 278: rowsPerStrip = values[0]; break;
                case 279: stripCounts = values; break;
                case 322: tileWidth = values[0]; break;
                case 323: tileLength = values[0]; break;
                case 324: tileOffsets = values; break;
                case 325: tileCounts = values; break;
            }
        }
        if (width == 0 || height == 0) return $"invalid header (size {width}×{height})";
        long[]? offsets, counts;
        long pieces;
        if (tileOffsets is not null || tileCounts is not null)
        {
            if (tileWidth == 0 || tileLength == 0) return $"invalid header (tiles of {tileWidth}×{tileLength})";
            (offsets, counts) = (tileOffsets, tileCounts);
            pieces = (width + tileWidth - 1) / tileWidth * ((height + tileLength - 1) / tileLength);
        }
        else
        {
            if (rowsPerStrip == 0) return "invalid header (0 rows per strip)";
            (offsets, counts) = (stripOffsets, stripCounts);
            long rows = Math.Min(rowsPerStrip, height);
            pieces = (height + rows - 1) / rows;
        }
        if (offsets is null || counts is null) return "it holds no image data (no strip or tile offsets and byte counts)";
        if (offsets.Length != counts.Length) return $"invalid header ({offsets.Length} offsets for {counts.Length} byte counts)";
        if (offsets.Length < pieces) return $"invalid header ({offsets.Length} strips or tiles where its size needs {pieces})";
        for (int k = 0; k < pieces; k++)
            if (offsets[k] + counts[k] > data.Length) return "the file ends before its image data does";
        return null;
    }

    private readonly ref struct TiffBytes(ReadOnlySpan<byte> data, bool little)
    {
        private readonly ReadOnlySpan<byte> _data = data;

        public ushort U16(int at) => little ? BinaryPrimitives.ReadUInt16LittleEndian(_data[at..]) : BinaryPrimitives.ReadUInt16BigEndian(_data[at..]);

        public uint U32(int at) => little ? BinaryPrimitives.ReadUInt32LittleEndian(_data[at..]) : BinaryPrimitives.ReadUInt32BigEndian(_data[at..]);
    }

    /// <summary>A WebP file is one RIFF chunk whose declared size covers the rest of the file.</summary>
    private static bool WebpRiffFits(ReadOnlySpan<byte> data) =>
        data.Length >= 12 && 8L + BinaryPrimitives.ReadUInt32LittleEndian(data[4..]) <= data.Length;
}
