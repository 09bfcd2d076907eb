namespace AlexNet.Imaging;

/// <summary>What both decoders do the same way: opening the file with a clear error, and naming its format.</summary>
internal static class ImageFiles
{
    /// <summary>Opens <paramref name="path"/> for reading, or throws "PATH: cannot be read: reason".</summary>
    public static FileStream Open(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ImageDecodeException(path, $"cannot be read: {Reason(e)}", e);
        }
    }

    private static string Reason(Exception e) => e switch
    {
        FileNotFoundException => "no such file",
        DirectoryNotFoundException => "no such directory",
        UnauthorizedAccessException => "permission denied",
        ArgumentException => "not a usable path",
        _ => e.Message.ReplaceLineEndings(" "),
    };

    /// <summary>The format a file's first bytes announce, or null; used to name what failed to decode.</summary>
    public static string? Sniff(string path)
    {
        Span<byte> head = stackalloc byte[12];
        int n;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        return Sniff(head[..n]);
    }

    public static string? Sniff(ReadOnlySpan<byte> head)
    {
        if (head.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF])) return "JPEG";
        if (head.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G'])) return "PNG";
        if (head.StartsWith("GIF8"u8)) return "GIF";
        if (head.StartsWith("BM"u8)) return "BMP";
        if (head.StartsWith("II*\0"u8) || head.StartsWith("MM\0*"u8)) return "TIFF";
        if (head.Length >= 12 && head.StartsWith("RIFF"u8) && head[8..12].SequenceEqual("WEBP"u8)) return "WebP";
        return null;
    }
}
