using AlexNet.Cli;
using AlexNet.Imaging;
using AlexNet.Imaging.Isolation;

namespace AlexNet.Cuda.Tests.Imaging;

/// <summary>The imagesharp decoder in worker processes, as the CLI runs it, started once for the tests.</summary>
public sealed class IsolatedImageSharpFixture : IDisposable
{
    private readonly Lazy<IsolatedImageDecoder> _decoder = new(() =>
        new IsolatedImageDecoder("imagesharp", WorkerCommand.ForThisProgram("imagesharp"), TimeSpan.FromSeconds(20)));

    public IsolatedImageDecoder Decoder => _decoder.Value;

    public void Dispose()
    {
        if (_decoder.IsValueCreated) _decoder.Value.Dispose();
    }
}

/// <summary>
/// The crafted and corrupt files that once crashed, hung or fooled a decoder (Tests/Fixtures/hostile-images,
/// README there): through every decoder the CLI offers, each gets its expected record, in bounded time.
/// </summary>
public sealed class HostileImageTests(IsolatedImageSharpFixture isolated) : IClassFixture<IsolatedImageSharpFixture>
{
    private static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "Fixtures", "hostile-images");

    private IImageDecoder Decoder(string name) => name == "imagesharp" ? isolated.Decoder : ImageDecoders.Create(name);

    /// <summary>Decodes on another thread so that a decoder that never returns fails the test instead of hanging it.</summary>
    private static (DecodedImage? Image, string? Error) DecodeBounded(IImageDecoder decoder, string path, ImageDecodeOptions options)
    {
        var task = Task.Run(() =>
        {
            try
            {
                return (decoder.Decode(path, options), (string?)null);
            }
            catch (ImageDecodeException e)
            {
                return ((DecodedImage?)null, e.Message);
            }
        });
        Assert.True(task.Wait(TimeSpan.FromSeconds(120)), $"{decoder.Name} did not return on {Path.GetFileName(path)}");
        return task.Result;
    }

    public static TheoryData<string, string, string?> Cases()
    {
        var data = new TheoryData<string, string, string?>();
        // file, decoder, expected error text (null: decoded)
        foreach (string decoder in ImageDecoders.Names)
        {
            bool skia = decoder == "skiasharp";
            data.Add("bmp_1x1_bpp0.bmp", decoder, skia ? "BMP" : "0 bits per pixel");
            data.Add("tiff_1x1_rowsperstrip0.tif", decoder, skia ? "TIFF is not read by the skiasharp decoder" : "0 rows per strip");
            data.Add("corpus_m08221_tiff_rowsperstrip_count0.tif", decoder, skia ? "TIFF is not read" : "truncated or corrupt TIFF");
            data.Add("png_adam7_8x8_idat_empty.png", decoder, "truncated or corrupt PNG");
            data.Add("png_adam7_8x8_idat_short.png", decoder, "truncated or corrupt PNG");
            data.Add("png_adam7_8x8_idat_1byte_short.png", decoder, "truncated or corrupt PNG");
            data.Add("png_adam7_8x8_complete.png", decoder, null);
            data.Add("png_plain_8x8_idat_short.png", decoder, "truncated or corrupt PNG");
            data.Add("corpus_m00596_tiff_truncated_half.tif", decoder, skia ? "TIFF is not read" : "the file ends before its image data does");
            data.Add("jpeg_scan_bomb_2048_x20000.jpg", decoder, skia ? "JPEG" : "more than 256 scans");
            data.Add("png_ztxt_512MiB.png", decoder, null);
            data.Add("png_valid_1000000x1_gray.png", decoder, null);
            data.Add("png_valid_1000001x1_gray.png", decoder, skia ? "over 1000000 pixels on a side" : null);
            data.Add("png_valid_1x1000001_gray.png", decoder, skia ? "over 1000000 pixels on a side" : null);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void EachReproducerGetsItsRecord(string file, string decoder, string? expectedError)
    {
        string path = Path.Combine(Folder, file);
        (DecodedImage? image, string? error) = DecodeBounded(Decoder(decoder), path, new ImageDecodeOptions());
        using (image)
        {
            if (expectedError is null)
            {
                Assert.True(error is null, $"{decoder} on {file}: {error}");
            }
            else
            {
                if (error is null) Assert.Fail($"{decoder} decoded {file} ({image!.Width}×{image.Height}) instead of refusing it");
                Assert.StartsWith(path + ": ", error);
                Assert.Contains(expectedError, error);
                Assert.DoesNotContain("\n", error);
            }
        }
    }

    /// <summary>ImageSharp never returns from a valid interlaced PNG narrower than 5 pixels: it is refused at
    /// once with the reason (not after the timeout), and Skia reads it.</summary>
    [Theory]
    [InlineData(1, 1)]
    [InlineData(4, 4)]
    [InlineData(3, 17)]
    public void NarrowInterlacedPngsAreRefusedByImageSharpAndReadBySkia(int width, int height)
    {
        using var folder = new TempFolder();
        string path = folder.File($"adam7-{width}x{height}.png");
        File.WriteAllBytes(path, TestImages.InterlacedPng(width, height));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        (DecodedImage? refused, string? error) = DecodeBounded(isolated.Decoder, path, new ImageDecodeOptions());
        Assert.Null(refused);
        Assert.Equal($"{path}: cannot be decoded: it is an interlaced PNG {width} pixels wide, which the imagesharp decoder never finishes; the skiasharp decoder reads it", error);
        Assert.True(clock.Elapsed < isolated.Decoder.Timeout, "refused only at the timeout");
        (DecodedImage? read, error) = DecodeBounded(ImageDecoders.Create("skiasharp"), path, new ImageDecodeOptions());
        using (read)
        {
            Assert.True(read is { } r && r.Width == width && r.Height == height, error);
            for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                Assert.Equal([(byte)(x * 40), (byte)(y * 30), (byte)(x * y)], read!.Pixels.Slice((y * width + x) * 3, 3).ToArray());
        }
    }

    /// <summary>A PNG with a second header (500×3, then 20000×1 interlaced) kept ImageSharp busy until its
    /// worker was stopped at the timeout; the structure check refuses it at once.</summary>
    [Fact]
    public void APngWithTwoHeadersIsRefusedByImageSharpAtOnce()
    {
        using var folder = new TempFolder();
        byte[] png = TestImages.InterlacedPng(500, 3);
        // The IHDR chunk (4 length, 4 type, 13 data, 4 CRC) again right after the first, with another width.
        byte[] second = png[8..33];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(second.AsSpan(8), 20000);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(second.AsSpan(21), TestImages.Crc32(second.AsSpan(4, 17)));
        string path = folder.File("two-headers.png");
        File.WriteAllBytes(path, [.. png[..33], .. second, .. png[33..]]);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        (DecodedImage? image, string? error) = DecodeBounded(isolated.Decoder, path, new ImageDecodeOptions());
        Assert.Null(image);
        Assert.Equal($"{path}: truncated or corrupt PNG (invalid (a second IHDR chunk))", error);
        Assert.True(clock.Elapsed < isolated.Decoder.Timeout, "refused only at the timeout");
    }

    [Fact]
    public void APngPastLibpngsSideLimitAndThePixelLimitIsRefusedForThePixelLimit()
    {
        string path = Path.Combine(Folder, "png_valid_1000001x1_gray.png");
        (DecodedImage? image, string? error) = DecodeBounded(ImageDecoders.Create("skiasharp"), path, new ImageDecodeOptions { MaxPixels = 1000 });
        Assert.Null(image);
        Assert.Equal($"{path}: 1000001×1 is 1000001 pixels, above the limit of 1000 (raise it with --max-pixels)", error);
    }
}
