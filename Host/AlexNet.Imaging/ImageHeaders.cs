using System.Buffers.Binary;

namespace AlexNet.Imaging;

/// <summary>A PNG's IHDR fields, as stored (width and height up to 2³¹ − 1 by the format).</summary>
internal readonly record struct PngHeader(long Width, long Height, int BitDepth, int ColorType, bool Interlaced);

/// <summary>
/// What a decoder's size check and memory estimate need from a file's first bytes and cannot get from the
/// library: a PNG's IHDR as written (libpng refuses sides over 1,000,000 before reporting them) and whether a
/// JPEG is progressive (libjpeg then keeps every coefficient of the image). Bounds-checked reads of a few
/// bytes; anything unexpected is "don't know" (null), never an exception.
/// </summary>
internal static class ImageHeaders
{
    /// <summary>The PNG's IHDR when the data starts with the signature and an IHDR chunk; otherwise null.</summary>
    public static PngHeader? Png(ReadOnlySpan<byte> head)
    {
        if (head.Length < 29 || !head.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A])) return null;
        if (!head[12..16].SequenceEqual("IHDR"u8)) return null;
        return new PngHeader(
            BinaryPrimitives.ReadUInt32BigEndian(head[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(head[20..]),
            head[24], head[25], head[28] != 0);
    }

    /// <summary>The IHDR of the PNG at <paramref name="path"/>, or null (not a PNG, or unreadable).</summary>
    public static PngHeader? Png(string path)
    {
        Span<byte> head = stackalloc byte[29];
        return ReadHead(path, head) is int n ? Png(head[..n]) : null;
    }

    /// <summary>
    /// Whether the JPEG at <paramref name="path"/> is progressive (its frame header is SOF2, SOF6, SOF10 or
    /// SOF14); null when the markers cannot be followed to a frame header.
    /// </summary>
    public static bool? JpegProgressive(string path)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 4096);
            Span<byte> marker = stackalloc byte[4];
            if (stream.ReadAtLeast(marker[..2], 2, throwOnEndOfStream: false) < 2 || marker[0] != 0xFF || marker[1] != 0xD8) return null;
            // Segments before the frame header (APPn, DQT, DHT, COM …) are skipped by their lengths; a few
            // hundred at most in real files, so the walk is bounded.
            for (int segments = 0; segments < 1024; segments++)
            {
                if (stream.ReadAtLeast(marker, 4, throwOnEndOfStream: false) < 4 || marker[0] != 0xFF) return null;
                byte type = marker[1];
                if (type is 0xC2 or 0xC6 or 0xCA or 0xCE) return true;
                if (type is (>= 0xC0 and <= 0xCF) and not (0xC4 or 0xC8 or 0xCC)) return false;
                if (type == 0xDA || type == 0xD9) return null; // a scan or the end before any frame header
                int length = marker[2] << 8 | marker[3];
                if (length < 2) return null;
                stream.Seek(length - 2, SeekOrigin.Current);
            }
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static int? ReadHead(string path, Span<byte> head)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            return stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
