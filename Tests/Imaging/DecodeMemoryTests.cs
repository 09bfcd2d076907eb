using AlexNet.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using System.Buffers.Binary;
using System.IO.Compression;

namespace AlexNet.Cuda.Tests.Imaging;

/// <summary>
/// The decode memory budget (first come, first served; a request larger than the whole refused; every grant
/// given back), both decoders asking it before they allocate, and the PNG row arithmetic the structure
/// check rests on, against files the encoders wrote.
/// </summary>
public sealed class DecodeMemoryTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void ARequestLargerThanTheWholeBudgetIsRefusedWithTheSizes()
    {
        var budget = new DecodeMemoryBudget(100L << 20);
        var e = Assert.Throws<ImageDecodeException>(() => budget.Reserve("x.gif", 700L << 20));
        Assert.Equal("x.gif: needs 700 MiB to decode, more than the decode memory budget of 100 MiB (raise it with --decode-memory)", e.Message);
        Assert.Equal(0, budget.GrantedBytes);
    }

    [Fact]
    public void RequestsAreGrantedInOrderAndWaitUntilTheyFit()
    {
        var budget = new DecodeMemoryBudget(100);
        IDisposable first = budget.Reserve("a", 60);
        var order = new System.Collections.Concurrent.ConcurrentQueue<string>();
        IDisposable? big = null, small = null;
        var bigThread = new Thread(() => { big = budget.Reserve("b", 50); order.Enqueue("b"); });
        var smallThread = new Thread(() => { small = budget.Reserve("c", 10); order.Enqueue("c"); });
        bigThread.Start();
        Thread.Sleep(200); // b is waiting
        smallThread.Start();
        // c would fit beside a, but b came first: neither may be granted while a holds 60.
        Assert.False(smallThread.Join(300));
        Assert.Empty(order);
        first.Dispose();
        Assert.True(bigThread.Join(10_000) && smallThread.Join(10_000));
        Assert.Equal(["b", "c"], order.Order());
        Assert.Equal(60, budget.GrantedBytes);
        Assert.Equal(60, budget.PeakBytes);
        big!.Dispose();
        big.Dispose(); // twice: given back once
        small!.Dispose();
        Assert.Equal(0, budget.GrantedBytes);
    }

    [Fact]
    public void LargeBuffersComeFromTheSystemAndSmallOnesFromThePool()
    {
        foreach (int length in new[] { 0, 1, 1000, ImageMemory.PooledLimit, ImageMemory.PooledLimit + 1, 40 << 20 })
        {
            var memory = ImageMemory.Allocate(length);
            Span<byte> span = memory.Span;
            Assert.Equal(length, span.Length);
            span.Fill(0xA5);
            using (Stream stream = memory.AsStream())
            {
                Assert.Equal(length, stream.Length);
                if (length > 0) Assert.Equal(0xA5, stream.ReadByte());
            }
            memory.Dispose();
            memory.Dispose();
            Assert.Throws<ObjectDisposedException>(() => memory.Span.Length);
        }
    }

    /// <summary>
    /// A GIF of 35 bytes that declares a 6000×6000 screen, decoded on four threads at once under a budget that
    /// holds one such decode: they take turns, every one decodes, and the budget is never exceeded.
    /// </summary>
    [Fact]
    public void ConcurrentDecodesOfHugeDeclaredImagesTakeTurnsWithinTheBudget()
    {
        byte[] gif = File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Fixtures", "hostile-images", "gif_screen_10000x10000.gif"));
        BinaryPrimitives.WriteUInt16LittleEndian(gif.AsSpan(6), 6000);
        BinaryPrimitives.WriteUInt16LittleEndian(gif.AsSpan(8), 6000);
        string path = _folder.File("screen-6000.gif");
        File.WriteAllBytes(path, gif);
        IImageDecoder skia = ImageDecoders.Create("skiasharp");
        long one;
        var probe = new DecodeMemoryBudget(1L << 34);
        using (skia.Decode(path, new ImageDecodeOptions { Memory = probe })) one = probe.GrantedBytes;
        Assert.InRange(one, 6000L * 6000 * 7, 6000L * 6000 * 8); // the RGB result and Skia's RGBA frame

        var budget = new DecodeMemoryBudget(one + one / 2);
        var errors = new string?[4];
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            try
            {
                using DecodedImage image = skia.Decode(path, new ImageDecodeOptions { Memory = budget });
            }
            catch (ImageDecodeException e)
            {
                errors[i] = e.Message;
            }
        });
        Assert.All(errors, Assert.Null);
        Assert.Equal(one, budget.PeakBytes);
        Assert.Equal(0, budget.GrantedBytes);
    }

    [Theory]
    [InlineData("skiasharp")]
    [InlineData("imagesharp")]
    public void BothDecodersAskBeforeTheyAllocateAndTheImageHoldsTheGrant(string name)
    {
        using Image<Rgb24> picture = TestImages.Synthetic(300, 200);
        string path = _folder.File($"p-{name}.png");
        picture.SaveAsPng(path);
        IImageDecoder decoder = ImageDecoders.Create(name);

        var tiny = new DecodeMemoryBudget(300 * 200 * 3 - 1); // less than the result alone
        var e = Assert.Throws<ImageDecodeException>(() => decoder.Decode(path, new ImageDecodeOptions { Memory = tiny }));
        Assert.Contains("more than the decode memory budget", e.Message);

        var budget = new DecodeMemoryBudget(1L << 30);
        DecodedImage image = decoder.Decode(path, new ImageDecodeOptions { Memory = budget });
        Assert.InRange(budget.GrantedBytes, 300 * 200 * 3, 300L * 200 * 40);
        image.Dispose();
        Assert.Equal(0, budget.GrantedBytes);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(3, 5)]
    [InlineData(9, 9)]
    [InlineData(17, 3)]
    [InlineData(1, 17)]
    [InlineData(64, 33)]
    public void PngImageDataIsAsLongAsTheRowsNeed(int width, int height)
    {
        foreach (PngInterlaceMode interlace in new[] { PngInterlaceMode.None, PngInterlaceMode.Adam7 })
        foreach ((PngColorType color, PngBitDepth depth) in new[]
        {
            (PngColorType.Rgb, PngBitDepth.Bit8), (PngColorType.RgbWithAlpha, PngBitDepth.Bit16),
            (PngColorType.Grayscale, PngBitDepth.Bit1), (PngColorType.Palette, PngBitDepth.Bit4),
        })
        {
            using Image<Rgba32> picture = new(width, height);
            for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                picture[x, y] = new Rgba32((byte)(x * 37), (byte)(y * 11), (byte)(x ^ y), 255);
            using var file = new MemoryStream();
            picture.SaveAsPng(file, new PngEncoder { ColorType = color, BitDepth = depth, InterlaceMethod = interlace });
            byte[] png = file.ToArray();
            // The encoder may choose another layout than asked (a palette for few colours): read what it wrote.
            int bits = png[24] * png[25] switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
            bool interlaced = png[28] == 1;
            Assert.Equal(interlace == PngInterlaceMode.Adam7, interlaced);
            long computed = AlexNet.Imaging.StructureChecks.ImageDataBytes(width, height, bits, interlaced);
            Assert.Equal(Adam7Bytes(width, height, bits, interlaced), computed);
            long written = InflatedImageData(png);
            // ImageSharp's encoder also writes a filter byte for each row of a pass that is 0 pixels wide
            // (the specification has none), so its interlaced files hold a few bytes more than needed.
            if (interlaced) Assert.InRange(written, computed, computed + 3 * height);
            else Assert.Equal(computed, written);
        }
    }

    /// <summary>
    /// The image data of a PNG, from the Adam7 pattern itself rather than its start-and-step form: every
    /// pixel is put in its pass, and each pass has a row (a filter byte and its packed pixels) for every y
    /// it has pixels on.
    /// </summary>
    private static long Adam7Bytes(int width, int height, int bits, bool interlaced)
    {
        int[,] pattern =
        {
            { 1, 6, 4, 6, 2, 6, 4, 6 }, { 7, 7, 7, 7, 7, 7, 7, 7 }, { 5, 6, 5, 6, 5, 6, 5, 6 }, { 7, 7, 7, 7, 7, 7, 7, 7 },
            { 3, 6, 4, 6, 3, 6, 4, 6 }, { 7, 7, 7, 7, 7, 7, 7, 7 }, { 5, 6, 5, 6, 5, 6, 5, 6 }, { 7, 7, 7, 7, 7, 7, 7, 7 },
        };
        long total = 0;
        for (int pass = 1; pass <= (interlaced ? 7 : 1); pass++)
        for (int y = 0; y < height; y++)
        {
            int pixels = 0;
            for (int x = 0; x < width; x++)
                if (!interlaced || pattern[y % 8, x % 8] == pass) pixels++;
            if (pixels > 0) total += 1 + (pixels * bits + 7) / 8;
        }
        return total;
    }

    /// <summary>The IDAT chunks' contents inflated, counted: what the encoder wrote, read independently of the check.</summary>
    private static long InflatedImageData(byte[] png)
    {
        var compressed = new MemoryStream();
        for (int at = 8; at + 8 <= png.Length;)
        {
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(at));
            if (png.AsSpan(at + 4, 4).SequenceEqual("IDAT"u8)) compressed.Write(png, at + 8, length);
            at += 12 + length;
        }
        compressed.Position = 0;
        using var zlib = new ZLibStream(compressed, CompressionMode.Decompress);
        var sink = new MemoryStream();
        zlib.CopyTo(sink);
        return sink.Length;
    }
}
