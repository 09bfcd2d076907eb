using System.Buffers.Binary;

namespace AlexNet.Imaging;

/// <summary>
/// Whether a file's first image is complete, from its structure alone, for the formats whose truncation
/// ImageSharp 2.1 does not report. A structure the checks cannot follow is left to the decoder to judge.
/// </summary>
internal static class TruncatedFiles
{
    /// <summary>Why the file is cut short, or null when it is whole (or not one of the checked formats).</summary>
    public static string? Reason(string format, ReadOnlySpan<byte> data) => format.ToUpperInvariant() switch
    {
        "JPEG" => JpegEnds(data) ? null : "the data ends before the end-of-image marker",
        "GIF" => GifFirstFrameEnds(data) ? null : "the data ends inside the first frame",
        "BMP" => BmpPixelsFit(data) ? null : "the file is shorter than its pixel rows",
        "WEBP" => WebpRiffFits(data) ? null : "the file is shorter than its RIFF header says",
        _ => null,
    };

    /// <summary>
    /// Whether a JPEG's end-of-image marker (FF D9) follows its first scan. Entropy-coded data never holds
    /// FF D9 (an FF there is always followed by 00 or a restart marker), so a stream cut anywhere after the
    /// headers has none. Headers it cannot walk are left to the decoder to judge.
    /// </summary>
    private static bool JpegEnds(ReadOnlySpan<byte> data)
    {
        int at = 2; // after SOI
        while (true)
        {
            if (at + 4 > data.Length) return false;
            if (data[at] != 0xFF) return true;
            byte marker = data[at + 1];
            if (marker == 0xFF) { at++; continue; }                       // fill byte
            if (marker == 0xDA) break;                                     // start of scan
            if (marker is 0x01 or (>= 0xD0 and <= 0xD7)) { at += 2; continue; } // no length
            at += 2 + (data[at + 2] << 8 | data[at + 3]);
        }
        return data[at..].LastIndexOf((ReadOnlySpan<byte>)[0xFF, 0xD9]) >= 0;
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

    /// <summary>For uncompressed and bit-field BMPs: the pixel rows the header declares fit in the file.</summary>
    private static bool BmpPixelsFit(ReadOnlySpan<byte> data)
    {
        if (data.Length < 26) return false;
        long offset = BinaryPrimitives.ReadUInt32LittleEndian(data[10..]);
        uint header = BinaryPrimitives.ReadUInt32LittleEndian(data[14..]);
        long width, height;
        int bits;
        uint compression = 0;
        if (header == 12)
        {
            width = BinaryPrimitives.ReadUInt16LittleEndian(data[18..]);
            height = BinaryPrimitives.ReadUInt16LittleEndian(data[20..]);
            bits = BinaryPrimitives.ReadUInt16LittleEndian(data[24..]);
        }
        else
        {
            if (data.Length < 34) return false;
            width = BinaryPrimitives.ReadInt32LittleEndian(data[18..]);
            height = Math.Abs((long)BinaryPrimitives.ReadInt32LittleEndian(data[22..]));
            bits = BinaryPrimitives.ReadUInt16LittleEndian(data[28..]);
            compression = BinaryPrimitives.ReadUInt32LittleEndian(data[30..]);
        }
        if (compression is not (0 or 3 or 6)) return true; // run-length and embedded JPEG/PNG: the decoder judges
        long stride = (width * bits + 31) / 32 * 4;
        return offset + stride * height <= data.Length;
    }

    /// <summary>A WebP file is one RIFF chunk whose declared size covers the rest of the file.</summary>
    private static bool WebpRiffFits(ReadOnlySpan<byte> data) =>
        data.Length >= 12 && 8L + BinaryPrimitives.ReadUInt32LittleEndian(data[4..]) <= data.Length;
}
