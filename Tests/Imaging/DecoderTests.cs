using System.Reflection;
using AlexNet.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using SixLabors.ImageSharp.Processing.Processors.Quantization;
using SkiaSharp;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Imaging;

/// <summary>
/// Both decoders on files written in the test by ImageSharp's and Skia's encoders: lossless formats must
/// give back the written pixels exactly, JPEG within a stated tolerance; grey, alpha, 16-bit and EXIF
/// orientation handled as OpenCV does; hostile files refused with one line naming the file.
/// </summary>
public sealed class DecoderTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempFolder _folder = new();
    private static readonly ImageDecodeOptions Defaults = new();

    public static TheoryData<string> DecoderNames => new(ImageDecoders.Names);

    public void Dispose() => _folder.Dispose();

    private static DecodedImage Decode(string decoder, string path, ImageDecodeOptions? options = null) =>
        ImageDecoders.Create(decoder).Decode(path, options ?? Defaults);

    private static void AssertSamePixels(byte[] expected, DecodedImage got, int width, int height, string what)
    {
        Assert.True(got.Width == width && got.Height == height, $"{what}: {got.Width}×{got.Height}, expected {width}×{height}");
        ReadOnlySpan<byte> pixels = got.Pixels;
        for (int i = 0; i < expected.Length; i++)
            Assert.True(pixels[i] == expected[i], $"{what}: pixel ({i / 3 % width}, {i / 3 / width}) channel {i % 3} is {pixels[i]}, expected {expected[i]}");
    }

    // ---- lossless formats: exactly the written pixels ----

    [Theory]
    [InlineData("png", "skiasharp")]
    [InlineData("png", "imagesharp")]
    [InlineData("png-interlaced", "skiasharp")]
    [InlineData("png-interlaced", "imagesharp")]
    [InlineData("bmp", "skiasharp")]
    [InlineData("bmp", "imagesharp")]
    [InlineData("tiff", "imagesharp")]
    [InlineData("webp-lossless", "skiasharp")]
    [InlineData("webp-lossless", "imagesharp")]
    public void LosslessFormatsGiveBackTheWrittenPixels(string format, string decoder)
    {
        using Image<Rgb24> source = TestImages.Synthetic(61, 37);
        string path = _folder.File("lossless." + format);
        switch (format)
        {
            case "png": source.SaveAsPng(path); break;
            case "png-interlaced": source.Save(path, new PngEncoder { InterlaceMethod = PngInterlaceMode.Adam7 }); break;
            case "bmp": source.Save(path, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 }); break;
            case "tiff": source.Save(path, new TiffEncoder { Compression = SixLabors.ImageSharp.Formats.Tiff.Constants.TiffCompression.Deflate }); break;
            case "webp-lossless": source.Save(path, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }); break;
        }
        using DecodedImage image = Decode(decoder, path);
        AssertSamePixels(TestImages.Rgb(source), image, 61, 37, $"{format} by {decoder}");
    }

    [Theory]
    [MemberData(nameof(DecoderNames))]
    public void SkiaWrittenLosslessWebpIsExact(string decoder)
    {
        using Image<Rgb24> source = TestImages.Synthetic(45, 29, seed: 4);
        byte[] rgb = TestImages.Rgb(source);
        var rgba = new byte[45 * 29 * 4];
        for (int i = 0; i < 45 * 29; i++) (rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2], rgba[4 * i + 3]) = (rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255);
        string path = _folder.File("skia.webp");
        unsafe
        {
            fixed (byte* p = rgba)
            {
                using var pixmap = new SKPixmap(new SKImageInfo(45, 29, SKColorType.Rgba8888, SKAlphaType.Unpremul), (IntPtr)p);
                using SKData data = pixmap.Encode(new SKWebpEncoderOptions(SKWebpEncoderCompression.Lossless, 100)) ?? throw new InvalidOperationException("Skia wrote no WebP");
                File.WriteAllBytes(path, data.ToArray());
            }
        }
        using DecodedImage image = Decode(decoder, path);
        AssertSamePixels(rgb, image, 45, 29, $"Skia's lossless WebP by {decoder}");
    }

    [Theory]
    [MemberData(nameof(DecoderNames))]
    public void GifGivesItsFirstFrame(string decoder)
    {
        // Colours of the 6×6×6 cube only, the palette written, so it holds them exactly; the second frame differs everywhere.
        static Rgb24 Cube(int x, int y, int frame) => new((byte)(51 * ((x + frame * 3) % 6)), (byte)(51 * ((y + frame) % 6)), (byte)(51 * ((x * y + 2 * frame) % 6)));
        using var gif = new Image<Rgb24>(23, 17);
        for (int y = 0; y < 17; y++) for (int x = 0; x < 23; x++) gif[x, y] = Cube(x, y, 0);
        using var second = new Image<Rgb24>(23, 17);
        for (int y = 0; y < 17; y++) for (int x = 0; x < 23; x++) second[x, y] = Cube(x, y, 1);
        gif.Frames.AddFrame(second.Frames.RootFrame);
        string path = _folder.File("two-frames.gif");
        var cube = new Color[216];
        for (int i = 0; i < 216; i++) cube[i] = Color.FromRgb((byte)(51 * (i / 36)), (byte)(51 * (i / 6 % 6)), (byte)(51 * (i % 6)));
        gif.Save(path, new GifEncoder { Quantizer = new PaletteQuantizer(cube, new QuantizerOptions { Dither = null }) });

        using Image<Rgb24> first = gif.Frames.CloneFrame(0);
        using DecodedImage image = Decode(decoder, path);
        AssertSamePixels(TestImages.Rgb(first), image, 23, 17, $"GIF by {decoder}");
    }

    [Theory]
    [MemberData(nameof(DecoderNames))]
    public void SkiaCannotReadTiffAndSaysWhichDecoderCan(string decoder)
    {
        using Image<Rgb24> source = TestImages.Synthetic(8, 8);
        string path = _folder.File("image.tiff");
        source.SaveAsTiff(path);
        if (decoder == "imagesharp")
        {
            using DecodedImage image = Decode(decoder, path);
            AssertSamePixels(TestImages.Rgb(source), image, 8, 8, "TIFF by imagesharp");
            return;
        }
        var e = Assert.Throws<ImageDecodeException>(() => Decode(decoder, path));
        Assert.Equal($"{path}: TIFF is not read by the skiasharp decoder (the imagesharp decoder reads it)", e.Message);
    }

    /// <summary>A 16×16 RGB TIFF stored as one 16×16 tile, little-endian, uncompressed.</summary>
    private static byte[] TiledTiff()
    {
        const int Side = 16, Entries = 11, IfdOffset = 8;
        int bitsOffset = IfdOffset + 2 + Entries * 12 + 4, tileOffset = bitsOffset + 6, tileBytes = Side * Side * 3;
        var file = new byte[tileOffset + tileBytes];
        var w = new BinaryWriter(new MemoryStream(file));
        w.Write("II"u8); w.Write((ushort)42); w.Write(IfdOffset);
        w.Write((ushort)Entries);
        void Entry(ushort tag, ushort type, int count, int value)
        {
            w.Write(tag); w.Write(type); w.Write(count);
            if (type == 3 && count == 1) { w.Write((ushort)value); w.Write((ushort)0); } else w.Write(value);
        }
        Entry(256, 3, 1, Side);            // ImageWidth
        Entry(257, 3, 1, Side);            // ImageLength
        Entry(258, 3, 3, bitsOffset);      // BitsPerSample 8,8,8
        Entry(259, 3, 1, 1);               // Compression: none
        Entry(262, 3, 1, 2);               // PhotometricInterpretation: RGB
        Entry(277, 3, 1, 3);               // SamplesPerPixel
        Entry(284, 3, 1, 1);               // PlanarConfiguration: chunky
        Entry(322, 3, 1, Side);            // TileWidth
        Entry(323, 3, 1, Side);            // TileLength
        Entry(324, 4, 1, tileOffset);      // TileOffsets
        Entry(325, 4, 1, tileBytes);       // TileByteCounts
        w.Write(0);
        w.Write((ushort)8); w.Write((ushort)8); w.Write((ushort)8);
        for (int i = 0; i < tileBytes; i++)
            file[tileOffset + i] = (byte)(i * 7);
        return file;
    }

    [Fact]
    public void TiledTiffGetsImageSharpsOwnReasonWhereverItsExceptionSourceComesFrom()
    {
        string path = _folder.File("tiled.tiff");
        File.WriteAllBytes(path, TiledTiff());
        var e = Assert.Throws<ImageDecodeException>(() => Decode("imagesharp", path));
        Assert.Equal($"{path}: cannot be decoded as TIFF (Tiled images are not supported)", e.Message);

        // A NativeAOT binary does not fill Source with the assembly's name; the first stack frame still names
        // the thrower.
        var thrown = Assert.IsType<NotSupportedException>(e.InnerException);
        thrown.Source = "not the library";
        Assert.True(ImageSharpDecoder.ThrownByImageSharp(thrown));

        // The runtime's own "not supported" (here thrown by this test) is not taken for the library's.
        static void RuntimeRefuses() => throw new NotSupportedException("Specified method is not supported.");
        NotSupportedException own = Assert.Throws<NotSupportedException>(RuntimeRefuses);
        Assert.False(ImageSharpDecoder.ThrownByImageSharp(own));
        own.Source = null;
        Assert.False(ImageSharpDecoder.ThrownByImageSharp(own));
    }

    // ---- what OpenCV's imread does to grey, alpha and 16-bit ----

    [Theory]
    [MemberData(nameof(DecoderNames))]
    public void GreyIsReplicatedToThreeChannels(string decoder)
    {
        using var grey = new Image<L8>(19, 11);
        var random = new Random(5);
        for (int y = 0; y < 11; y++) for (int x = 0; x < 19; x++) grey[x, y] = new L8((byte)random.Next(256));
        string path = _folder.File("grey.png");
        grey.Save(path, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8 });
        var expected = new byte[19 * 11 * 3];
        for (int y = 0; y < 11; y++) for (int x = 0; x < 19; x++) expected.AsSpan((y * 19 + x) * 3, 3).Fill(grey[x, y].PackedValue);
        using DecodedImage image = Decode(decoder, path);
        AssertSamePixels(expected, image, 19, 11, $"grey PNG by {decoder}");
    }

    [Theory]
    [MemberData(nameof(DecoderNames))]
    public void AlphaIsDroppedNotComposited(string decoder)
    {
        // Colours under alpha 0 and 1 must come back as written: not premultiplied, not blended on a background.
        using var rgba = new Image<Rgba32>(21, 13);
        var random = new Random(6);
        var expected = new byte[21 * 13 * 3];
        for (int y = 0; y < 13; y++)
            for (int x = 0; x < 21; x++)
            {
                var p = new Rgba32((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256), (byte)((x + y) % 4 == 0 ? 0 : random.Next(256)));
                rgba[x, y] = p;
                (expected[(y * 21 + x) * 3], expected[(y * 21 + x) * 3 + 1], expected[(y * 21 + x) * 3 + 2]) = (p.R, p.G, p.B);
            }
        string path = _folder.File("rgba.png");
        rgba.Save(path, new PngEncoder { ColorType = PngColorType.RgbWithAlpha, TransparentColorMode = PngTransparentColorMode.Preserve });
        using DecodedImage image = Decode(decoder, path);
        AssertSamePixels(expected, image, 21, 13, $"RGBA PNG by {decoder}");
    }

    [Theory]
    [InlineData("skiasharp", "rgb")]
    [InlineData("imagesharp", "rgb")]
    [InlineData("skiasharp", "rgba")]
    [InlineData("imagesharp", "rgba")]
    [InlineData("skiasharp", "grey")]
    [InlineData("imagesharp", "grey")]
    public void SixteenBitSamplesAreShiftedRightByEight(string decoder, string layout)
    {
        // Low bytes of 0x80 and above are where truncating (OpenCV) and rounding (v·255/65535) differ.
        const int w = 17, h = 9;
        var random = new Random(7);
        var samples = new ushort[w * h * 4];
        for (int i = 0; i < samples.Length; i++) samples[i] = (ushort)(random.Next(256) << 8 | (i % 2 == 0 ? 0xFF : random.Next(256)));
        string path = _folder.File($"sixteen-{layout}.png");
        var expected = new byte[w * h * 3];
        for (int i = 0; i < w * h; i++)
        {
            if (layout == "grey") expected.AsSpan(3 * i, 3).Fill((byte)(samples[4 * i] >> 8));
            else for (int c = 0; c < 3; c++) expected[3 * i + c] = (byte)(samples[4 * i + c] >> 8);
        }
        switch (layout)
        {
            case "rgb":
                using (var img = new Image<Rgb48>(w, h))
                {
                    for (int i = 0; i < w * h; i++) img[i % w, i / w] = new Rgb48(samples[4 * i], samples[4 * i + 1], samples[4 * i + 2]);
                    img.Save(path, new PngEncoder { ColorType = PngColorType.Rgb, BitDepth = PngBitDepth.Bit16 });
                }
                break;
            case "rgba":
                using (var img = new Image<Rgba64>(w, h))
                {
                    for (int i = 0; i < w * h; i++) img[i % w, i / w] = new Rgba64(samples[4 * i], samples[4 * i + 1], samples[4 * i + 2], samples[4 * i + 3]);
                    img.Save(path, new PngEncoder { ColorType = PngColorType.RgbWithAlpha, BitDepth = PngBitDepth.Bit16, TransparentColorMode = PngTransparentColorMode.Preserve });
                }
                break;
            default:
                using (var img = new Image<L16>(w, h))
                {
                    for (int i = 0; i < w * h; i++) img[i % w, i / w] = new L16(samples[4 * i]);
                    img.Save(path, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit16 });
                }
                break;
        }
        using DecodedImage image = Decode(decoder, path);
        AssertSamePixels(expected, image, w, h, $"16-bit {layout} PNG by {decoder}");
    }

    // ---- JPEG: decoders differ in IDCT and chroma upsampling, so a tolerance ----

    [Theory]
    [InlineData("imagesharp-q90-420", true, 255)]
    [InlineData("imagesharp-q90-420", false, 8)]
    [InlineData("imagesharp-q90-444", true, 3)]
    [InlineData("imagesharp-q75-420", true, 255)]
    [InlineData("skia-q90-420", true, 255)]
    [InlineData("skia-q90-420", false, 8)]
    public void JpegDecodersAgreeWithinTolerance(string writer, bool edges, int maxDifference)
    {
        const int width = 333, height = 251;
        using Image<Rgb24> source = TestImages.Synthetic(width, height, seed: 9, edges);
        string path = _folder.File(writer + ".jpg");
        if (writer.StartsWith("imagesharp", StringComparison.Ordinal))
            source.Save(path, new JpegEncoder
            {
                Quality = writer.Contains("q90") ? 90 : 75,
                ColorType = writer.EndsWith("444", StringComparison.Ordinal) ? JpegColorType.YCbCrRatio444 : JpegColorType.YCbCrRatio420,
            });
        else
            File.WriteAllBytes(path, EncodeWithSkia(source, SKEncodedImageFormat.Jpeg, 90));
        using DecodedImage skia = Decode("skiasharp", path);
        using DecodedImage sharp = Decode("imagesharp", path);
        Assert.True(skia.Width == width && skia.Height == height && sharp.Width == width && sharp.Height == height);
        JpegDifference between = JpegDifference.Of(skia.Pixels, sharp.Pixels);
        JpegDifference skiaError = JpegDifference.Of(skia.Pixels, TestImages.Rgb(source));
        JpegDifference sharpError = JpegDifference.Of(sharp.Pixels, TestImages.Rgb(source));
        output.WriteLine($"{writer} edges={edges}: between decoders {between}; from the source skia {skiaError}, imagesharp {sharpError}");
        Assert.True(between.Mean <= JpegDifference.MeanLimit && between.Within4 >= JpegDifference.Within4Limit && between.Max <= maxDifference,
            $"{writer}: the decoders differ by {between}");
        Assert.True(skiaError.Mean < 3 && sharpError.Mean < 3, $"{writer}: from the source skia {skiaError}, imagesharp {sharpError}");
    }

    internal static (double Mean, int Max) Difference(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        Assert.Equal(a.Length, b.Length);
        long sum = 0;
        int max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            int d = Math.Abs(a[i] - b[i]);
            sum += d;
            max = Math.Max(max, d);
        }
        return ((double)sum / a.Length, max);
    }

    /// <summary>How two decodes of one JPEG differ: mean, largest, and the share of samples within 4 levels.</summary>
    internal readonly record struct JpegDifference(double Mean, int Max, double Within4)
    {
        // Measured on the synthetic pictures (docs/decoding.md): means up to 0.94, at least 98% of samples
        // within 4. Without chroma subsampling (4:4:4) only the IDCTs differ: at most 3. With 4:2:0 the
        // decoders upsample chroma differently: at most 7 on smooth content, but up to ~100 on single
        // samples at sharp colour edges (each decode is that far from the source there too), so there the
        // maximum is not bounded and the share within 4 is.
        public const double MeanLimit = 1.2;
        public const double Within4Limit = 0.97;

        public static JpegDifference Of(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
        {
            Assert.Equal(a.Length, b.Length);
            long sum = 0, within = 0;
            int max = 0;
            for (int i = 0; i < a.Length; i++)
            {
                int d = Math.Abs(a[i] - b[i]);
                sum += d;
                max = Math.Max(max, d);
                if (d <= 4) within++;
            }
            return new JpegDifference((double)sum / a.Length, max, (double)within / a.Length);
        }

        public override string ToString() => $"mean {Mean:F3}, max {Max}, {100 * Within4:F2}% within 4";
    }

    internal static byte[] EncodeWithSkia(Image<Rgb24> source, SKEncodedImageFormat format, int quality)
    {
        byte[] rgb = TestImages.Rgb(source);
        var rgba = new byte[source.Width * source.Height * 4];
        for (int i = 0; i < source.Width * source.Height; i++) (rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2], rgba[4 * i + 3]) = (rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255);
        unsafe
        {
            fixed (byte* p = rgba)
            {
                using var pixmap = new SKPixmap(new SKImageInfo(source.Width, source.Height, SKColorType.Rgba8888, SKAlphaType.Opaque), (IntPtr)p);
                using SKData data = pixmap.Encode(format, quality) ?? throw new InvalidOperationException($"Skia wrote no {format}");
                return data.ToArray();
            }
        }
    }

    // ---- EXIF orientation ----

    [Theory]
    [InlineData("skiasharp", "jpg", 6)]
    [InlineData("imagesharp", "jpg", 6)]
    [InlineData("skiasharp", "jpg", 3)]
    [InlineData("imagesharp", "jpg", 3)]
    [InlineData("skiasharp", "jpg", 8)]
    [InlineData("imagesharp", "jpg", 8)]
    [InlineData("skiasharp", "jpg", 5)]
    [InlineData("imagesharp", "jpg", 5)]
    [InlineData("skiasharp", "webp", 6)]
    [InlineData("imagesharp", "webp", 6)]
    [InlineData("skiasharp", "png", 6)]
    [InlineData("imagesharp", "png", 6)]
    public void ExifOrientationIsApplied(string decoder, string format, ushort orientation)
    {
        // Four flat quadrants on 16-pixel boundaries, so JPEG keeps each colour within a few levels.
        using var source = new Image<Rgb24>(64, 32);
        Rgb24[] colours = [new(230, 20, 20), new(20, 230, 20), new(20, 20, 230), new(230, 230, 20)];
        for (int y = 0; y < 32; y++) for (int x = 0; x < 64; x++) source[x, y] = colours[(y / 16) * 2 + x / 32];
        source.Metadata.ExifProfile = new ExifProfile();
        source.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);
        string path = _folder.File($"orientation-{orientation}.{format}");
        if (format == "jpg") source.Save(path, new JpegEncoder { Quality = 95 });
        else if (format == "webp") source.Save(path, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless });
        else source.SaveAsPng(path); // the orientation travels in an eXIf chunk, which Skia does not read: both ignore it

        // ImageSharp's own AutoOrient is the independent statement of what each orientation means.
        using Image<Rgb24> expected = format == "png" ? source.Clone() : source.Clone(x => x.AutoOrient());
        using DecodedImage image = Decode(decoder, path);
        Assert.True(image.Width == expected.Width && image.Height == expected.Height,
            $"orientation {orientation} by {decoder}: {image.Width}×{image.Height}, expected {expected.Width}×{expected.Height}");
        (double mean, int max) = Difference(image.Pixels, TestImages.Rgb(expected));
        Assert.True(max <= (format == "jpg" ? 12 : 0), $"orientation {orientation} by {decoder}: differs from the turned source by mean {mean:F2}, max {max}");
    }

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)] [InlineData(4)]
    [InlineData(5)] [InlineData(6)] [InlineData(7)] [InlineData(8)] [InlineData(0)] [InlineData(9)]
    public void OrientedWriterAgreesWithImageSharpsAutoOrient(ushort orientation)
    {
        using Image<Rgb24> source = TestImages.Synthetic(7, 4, seed: 2);
        byte[] rgb = TestImages.Rgb(source);
        var writer = new OrientedWriter(7, 4, orientation);
        for (int y = 0; y < 4; y++)
        {
            rgb.AsSpan(y * 21, 21).CopyTo(writer.Row(y));
            writer.Commit(y);
        }
        source.Metadata.ExifProfile = new ExifProfile();
        source.Metadata.ExifProfile.SetValue(ExifTag.Orientation, orientation);
        using Image<Rgb24> expected = source.Clone(x => x.AutoOrient());
        using DecodedImage image = writer.Image;
        AssertSamePixels(TestImages.Rgb(expected), image, expected.Width, expected.Height, $"orientation {orientation}");
    }

    // ---- fast JPEG decode ----

    [Theory]
    [InlineData(227, 400, 300)]
    [InlineData(100, 200, 150)]
    [InlineData(1200, 1600, 1200)]
    public void FastDecodeScalesJpegNoFurtherThanTheTarget(int target, int width, int height)
    {
        using Image<Rgb24> source = TestImages.Synthetic(1600, 1200, seed: 3);
        string path = _folder.File("big.jpg");
        source.Save(path, new JpegEncoder { Quality = 90 });
        var options = new ImageDecodeOptions { FastDecode = true, TargetShortSide = target };
        using DecodedImage fast = Decode("skiasharp", path, options);
        Assert.Equal((width, height), (fast.Width, fast.Height));
        using DecodedImage sharp = Decode("imagesharp", path, options);
        Assert.Equal((1600, 1200), (sharp.Width, sharp.Height)); // ImageSharp 2.1 has no scaled decode

        // The scaled decode is the block average: close to the full image averaged over the same blocks.
        int factor = 1600 / width;
        using Image<Rgb24> reduced = source.Clone(x => x.Resize(width, height, KnownResamplers.Box));
        (double mean, _) = Difference(fast.Pixels, TestImages.Rgb(reduced));
        Assert.True(mean < 4, $"1/{factor} decode differs from the box-reduced source by mean {mean:F2}");

        string png = _folder.File("big.png");
        source.SaveAsPng(png);
        using DecodedImage notJpeg = Decode("skiasharp", png, options);
        Assert.Equal((1600, 1200), (notJpeg.Width, notJpeg.Height));
    }

    // ---- hostile and broken files ----

    [Theory]
    [MemberData(nameof(DecoderNames))]
    public void HugeDeclaredSizeIsRefusedFromTheHeader(string decoder)
    {
        string path = _folder.File("huge.png");
        File.WriteAllBytes(path, TestImages.PngHeaderOnly(50000, 50000));
        IImageDecoder d = ImageDecoders.Create(decoder);
        Assert.Throws<ImageDecodeException>(() => d.Decode(path, Defaults)); // warm: code paths loaded
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<ImageDecodeException>(() => d.Decode(path, Defaults));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal($"{path}: 50000×50000 is 2500000000 pixels, above the limit of 100000000 (raise it with --max-pixels)", e.Message);
        output.WriteLine($"{decoder}: {allocated} bytes allocated refusing it");
        Assert.True(allocated < 1 << 20, $"{decoder} allocated {allocated} bytes before refusing a 50000×50000 header");
    }

    [Theory]
    [MemberData(nameof(DecoderNames))]
    public void PixelLimitIsInclusive(string decoder)
    {
        using Image<Rgb24> source = TestImages.Synthetic(100, 100);
        string path = _folder.File("hundred.png");
        source.SaveAsPng(path);
        var e = Assert.Throws<ImageDecodeException>(() => Decode(decoder, path, new ImageDecodeOptions { MaxPixels = 9_999 }));
        Assert.Equal($"{path}: 100×100 is 10000 pixels, above the limit of 9999 (raise it with --max-pixels)", e.Message);
        using DecodedImage image = Decode(decoder, path, new ImageDecodeOptions { MaxPixels = 10_000 });
        Assert.Equal(100, image.Width);
    }

    [Theory]
    [InlineData("skiasharp", "jpg")]
    [InlineData("imagesharp", "jpg")]
    [InlineData("skiasharp", "progressive.jpg")]
    [InlineData("imagesharp", "progressive.jpg")]
    [InlineData("skiasharp", "png")]
    [InlineData("imagesharp", "png")]
    [InlineData("skiasharp", "gif")]
    [InlineData("imagesharp", "gif")]
    [InlineData("skiasharp", "bmp")]
    [InlineData("imagesharp", "bmp")]
    [InlineData("skiasharp", "webp")]
    [InlineData("imagesharp", "webp")]
    [InlineData("imagesharp", "tiff")]
    public void TruncatedFilesAreRefused(string decoder, string format)
    {
        using Image<Rgb24> source = TestImages.Synthetic(300, 200, seed: 8);
        string whole = _folder.File("whole." + format);
        switch (format)
        {
            case "jpg": source.SaveAsJpeg(whole); break;
            case "progressive.jpg": File.WriteAllBytes(whole, EncodeWithSkia(source, SKEncodedImageFormat.Jpeg, 90)); break;
            case "png": source.SaveAsPng(whole); break;
            case "gif": source.SaveAsGif(whole); break;
            case "bmp": source.SaveAsBmp(whole); break;
            case "webp": source.Save(whole, new WebpEncoder { FileFormat = WebpFileFormatType.Lossy }); break;
            case "tiff": source.SaveAsTiff(whole); break;
        }
        byte[] bytes = File.ReadAllBytes(whole);
        string path = _folder.File("truncated." + format);
        File.WriteAllBytes(path, bytes[..(bytes.Length * 6 / 10)]);
        var e = Assert.Throws<ImageDecodeException>(() => Decode(decoder, path));
        output.WriteLine(e.Message);
        Assert.StartsWith($"{path}: truncated or corrupt ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [MemberData(nameof(DecoderNames))]
    public void RandomBytesAreNotAnImage(string decoder)
    {
        var bytes = new byte[4096];
        new Random(10).NextBytes(bytes);
        bytes[0] = 0x42; // not the first byte of any image signature
        string path = _folder.File("random.jpg");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<ImageDecodeException>(() => Decode(decoder, path));
        Assert.Equal($"{path}: not an image (unknown format)", e.Message);
    }

    [Theory]
    [MemberData(nameof(DecoderNames))]
    public void EmptyMissingAndUnreadableFilesAreNamed(string decoder)
    {
        string empty = _folder.File("empty.png");
        File.WriteAllBytes(empty, []);
        Assert.Equal($"{empty}: not an image (empty file)", Assert.Throws<ImageDecodeException>(() => Decode(decoder, empty)).Message);

        string missing = _folder.File("missing.png");
        Assert.Equal($"{missing}: cannot be read: no such file", Assert.Throws<ImageDecodeException>(() => Decode(decoder, missing)).Message);

        string folder = _folder.File("a-folder.png");
        Directory.CreateDirectory(folder);
        Assert.StartsWith($"{folder}: cannot be read: ", Assert.Throws<ImageDecodeException>(() => Decode(decoder, folder)).Message);
    }

    // ---- the decoders as a service ----

    [Fact]
    public void ManyThreadsDecodeTheSameAsOne()
    {
        var paths = new List<string>();
        for (int i = 0; i < 6; i++)
        {
            using Image<Rgb24> source = TestImages.Synthetic(120 + 7 * i, 90 + 5 * i, seed: i);
            string path = _folder.File($"many-{i}." + (i % 2 == 0 ? "jpg" : "png"));
            source.Save(path, i % 2 == 0 ? new JpegEncoder { Quality = 85 } : new PngEncoder());
            paths.Add(path);
        }
        foreach (string decoder in ImageDecoders.Names)
        {
            var serial = paths.Select(p => { using DecodedImage d = Decode(decoder, p); return TestImages.Pixels(d); }).ToArray();
            var parallel = new byte[paths.Count * 8][];
            Parallel.For(0, parallel.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, k =>
            {
                using DecodedImage d = Decode(decoder, paths[k % paths.Count]);
                parallel[k] = TestImages.Pixels(d);
            });
            for (int k = 0; k < parallel.Length; k++)
                Assert.True(parallel[k].AsSpan().SequenceEqual(serial[k % paths.Count]), $"{decoder}: {paths[k % paths.Count]} decoded differently on another thread");
        }
    }

    [Fact]
    public void DecodersAreFoundByNameAndNameTheirPackageVersion()
    {
        Assert.Equal(["skiasharp", "imagesharp"], ImageDecoders.Names);
        Assert.Contains(ImageDecoders.DefaultName, ImageDecoders.Names);
        Assert.Same(ImageDecoders.Create("skiasharp"), ImageDecoders.Create(" SkiaSharp "));
        var e = Assert.Throws<AlexNetException>(() => ImageDecoders.Create("libpng"));
        Assert.Equal("unknown image decoder 'libpng' (choose skiasharp or imagesharp)", e.Message);

        // The names carry the versions the project references; a package update must update them too.
        Assert.Equal("skiasharp " + Informational(typeof(SKCodec)), ImageDecoders.Create("skiasharp").Name);
        Assert.Equal("imagesharp " + Informational(typeof(Image)), ImageDecoders.Create("imagesharp").Name);
    }

    private static string Informational(Type type) =>
        type.Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion.Split('+', '-')[0];

    [Fact]
    public void DisposedImageRefusesItsPixels()
    {
        var image = DecodedImage.FromRgb(2, 1, [1, 2, 3, 4, 5, 6]);
        Assert.Equal([1, 2, 3, 4, 5, 6], image.Pixels.ToArray());
        image.Dispose();
        image.Dispose();
        Assert.Throws<ObjectDisposedException>(() => image.Pixels.Length);
    }
}
