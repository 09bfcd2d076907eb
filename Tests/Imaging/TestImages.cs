using System.Buffers.Binary;
using AlexNet.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace AlexNet.Cuda.Tests.Imaging;

/// <summary>Synthetic pictures (no photographs are available to the tests) and files written from them.</summary>
internal static class TestImages
{
    /// <summary>
    /// Smooth gradients and waves, like a photograph's low frequencies, with a few sharp-edged bars, like its
    /// edges; deterministic for a seed.
    /// </summary>
    public static Image<Rgb24> Synthetic(int width, int height, int seed = 1, bool edges = true)
    {
        var image = new Image<Rgb24>(width, height);
        double phase = seed * 0.7;
        image.ProcessPixelRows(rows =>
        {
            for (int y = 0; y < height; y++)
            {
                Span<Rgb24> row = rows.GetRowSpan(y);
                for (int x = 0; x < width; x++)
                {
                    double u = (double)x / width, v = (double)y / height;
                    double r = 128 + 90 * Math.Sin(6.3 * u + phase) * Math.Cos(3.1 * v);
                    double g = 40 + 170 * v + 20 * Math.Sin(40 * u * v + phase);
                    double b = 200 - 150 * u + 30 * Math.Cos(25 * (u + v));
                    if (edges && (x / Math.Max(1, width / 9)) % 4 == 1 && y > height / 3 && y < 2 * height / 3) (r, g, b) = (250, 250, 20);
                    row[x] = new Rgb24(Byte(r), Byte(g), Byte(b));
                }
            }
        });
        return image;
    }

    private static byte Byte(double v) => (byte)Math.Clamp(Math.Round(v), 0, 255);

    /// <summary>The RGB bytes of an 8-bit image, rows top to bottom.</summary>
    public static byte[] Rgb(Image<Rgb24> image)
    {
        var rgb = new byte[image.Width * image.Height * 3];
        image.CopyPixelDataTo(rgb);
        return rgb;
    }

    public static byte[] Pixels(DecodedImage image) => image.Pixels.ToArray();

    /// <summary>A PNG of any declared size holding one tiny IDAT, so a decoder that trusts the header would allocate it all.</summary>
    public static byte[] PngHeaderOnly(uint width, uint height)
    {
        using var stream = new MemoryStream();
        stream.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8;  // bit depth
        ihdr[9] = 2;  // RGB
        Chunk(stream, "IHDR", ihdr);
        Chunk(stream, "IDAT", [0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]); // zlib of one zero byte
        Chunk(stream, "IEND", []);
        return stream.ToArray();
    }

    /// <summary>
    /// An 8-bit RGB Adam7 PNG written to the letter of the specification (a pass with no columns has no rows,
    /// not even filter bytes, where ImageSharp's encoder writes some), every row unfiltered; the pixels are
    /// <c>(x·40, y·30, x·y)</c> modulo 256.
    /// </summary>
    public static byte[] InterlacedPng(int width, int height)
    {
        ReadOnlySpan<int> startX = [0, 4, 0, 2, 0, 1, 0], startY = [0, 0, 4, 0, 2, 0, 1];
        ReadOnlySpan<int> stepX = [8, 8, 4, 4, 2, 2, 1], stepY = [8, 8, 8, 4, 4, 2, 2];
        var raw = new MemoryStream();
        for (int pass = 0; pass < 7; pass++)
        {
            if (startX[pass] >= width) continue;
            for (int y = startY[pass]; y < height; y += stepY[pass])
            {
                raw.WriteByte(0);
                for (int x = startX[pass]; x < width; x += stepX[pass])
                    raw.Write([(byte)(x * 40), (byte)(y * 30), (byte)(x * y)]);
            }
        }
        var compressed = new MemoryStream();
        using (var zlib = new System.IO.Compression.ZLibStream(compressed, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            raw.WriteTo(zlib);
        using var stream = new MemoryStream();
        stream.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)height);
        ihdr[8] = 8;  // bit depth
        ihdr[9] = 2;  // RGB
        ihdr[12] = 1; // Adam7
        Chunk(stream, "IHDR", ihdr);
        Chunk(stream, "IDAT", compressed.ToArray());
        Chunk(stream, "IEND", []);
        return stream.ToArray();
    }

    private static void Chunk(Stream stream, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(word, (uint)data.Length);
        stream.Write(word);
        byte[] typeAndData = [.. System.Text.Encoding.ASCII.GetBytes(type), .. data];
        stream.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32(typeAndData));
        stream.Write(word);
    }

    /// <summary>PNG's CRC-32 (ISO 3309, reflected polynomial 0xEDB88320), bit by bit.</summary>
    internal static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return ~crc;
    }
}

/// <summary>A folder for the files a test writes; deleted on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public string Root { get; } = Directory.CreateTempSubdirectory("alexnet-imaging-").FullName;

    public string File(string name) => Path.Combine(Root, name);

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
