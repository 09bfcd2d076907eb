using AlexNet.Cuda.Network;
using AlexNet.Imaging;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Imaging;

/// <summary>
/// <see cref="Preprocessor"/> against <see cref="PreprocessorReference"/> (the INTER_LINEAR rule in double),
/// and the reference itself against values worked out by hand.
/// </summary>
public sealed class PreprocessorTests(ITestOutputHelper output)
{
    private const int N = AlexNetModel.InputSize;

    // The float path weights in float and sums in float: a few ulp of 255 (1.5e-5 each); the largest seen is 4.1e-5.
    private const double Tolerance = 1e-4;

    private static readonly float[] Mean = [104f, 117f, 124f];
    private static readonly double[] MeanDouble = [104, 117, 124];

    /// <summary>Random bytes with some 0/255 outliers: every neighbour differs, so a wrong tap or weight shows.</summary>
    internal static DecodedImage Noise(int width, int height, int seed)
    {
        var random = new Random(seed);
        var rgb = new byte[width * height * 3];
        random.NextBytes(rgb);
        for (int i = 0; i < rgb.Length / 50; i++) rgb[random.Next(rgb.Length)] = (byte)(random.Next(2) * 255);
        return DecodedImage.FromRgb(width, height, rgb);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 3)]
    [InlineData(3, 2)]
    [InlineData(4000, 3)]
    [InlineData(3, 4000)]
    [InlineData(227, 227)]
    [InlineData(228, 226)]
    [InlineData(226, 229)]
    [InlineData(100, 57)]
    [InlineData(256, 256)]
    [InlineData(454, 454)]
    [InlineData(500, 375)]
    [InlineData(1601, 1199)]
    public void FloatPathMatchesTheDoubleReference(int width, int height)
    {
        using DecodedImage image = Noise(width, height, seed: width * 7919 + height);
        foreach (ResizeMode mode in Enum.GetValues<ResizeMode>())
        {
            var got = new float[AlexNetModel.InputFloatsPerImage];
            Preprocessor.Write(image, mode, Mean, got);
            double[] expected = PreprocessorReference.Compute(image, mode, MeanDouble);
            AssertClose(expected, got, $"{width}×{height} {mode}");
        }
    }

    [Fact]
    public void NonIntegerMeanIsSubtractedPerChannel()
    {
        using DecodedImage image = Noise(640, 480, seed: 3);
        float[] mean = [103.939f, 116.779f, 123.68f];
        var got = new float[AlexNetModel.InputFloatsPerImage];
        Preprocessor.Write(image, ResizeMode.Crop, mean, got);
        AssertClose(PreprocessorReference.Compute(image, ResizeMode.Crop, [103.939f, 116.779f, 123.68f]), got, "640×480 Crop, ImageNet mean");
    }

    [Fact]
    public void At227TheStretchIsExactlyThePixelsInBgrLessTheMean()
    {
        using DecodedImage image = Noise(N, N, seed: 11);
        var got = new float[AlexNetModel.InputFloatsPerImage];
        Preprocessor.Write(image, ResizeMode.Stretch, Mean, got);
        double[] reference = PreprocessorReference.Compute(image, ResizeMode.Stretch, MeanDouble);
        ReadOnlySpan<byte> p = image.Pixels;
        for (int i = 0; i < N * N; i++)
        {
            for (int c = 0; c < 3; c++)
            {
                float expected = p[3 * i + 2 - c] - Mean[c];
                Assert.True(got[3 * i + c] == expected, $"pixel {i} channel {c}: {got[3 * i + c]} != {expected}");
                Assert.True(reference[3 * i + c] == expected, $"reference pixel {i} channel {c}: {reference[3 * i + c]} != {expected}");
            }
        }
    }

    [Fact]
    public void At256TheCropIsExactlyTheCentreWindow()
    {
        using DecodedImage image = Noise(256, 256, seed: 12);
        var got = new float[AlexNetModel.InputFloatsPerImage];
        Preprocessor.Write(image, ResizeMode.Crop, Mean, got);
        ReadOnlySpan<byte> p = image.Pixels;
        for (int y = 0; y < N; y++)
        {
            for (int x = 0; x < N; x++)
            {
                for (int c = 0; c < 3; c++)
                {
                    // (256 − 227) / 2 = 14 rounded down.
                    float expected = p[((y + 14) * 256 + x + 14) * 3 + 2 - c] - Mean[c];
                    Assert.True(got[(y * N + x) * 3 + c] == expected, $"({x}, {y}) channel {c}: {got[(y * N + x) * 3 + c]} != {expected}");
                }
            }
        }
    }

    [Fact]
    public void HalvingAveragesEachTwoByTwoBlock()
    {
        // From 454 to 227 the source coordinate is 2x + 0.5: the mean of pixels 2x and 2x + 1 in each axis.
        using DecodedImage image = Noise(454, 454, seed: 13);
        double[] reference = PreprocessorReference.Compute(image, ResizeMode.Stretch, [0, 0, 0]);
        var got = new float[AlexNetModel.InputFloatsPerImage];
        Preprocessor.Write(image, ResizeMode.Stretch, [0f, 0f, 0f], got);
        ReadOnlySpan<byte> p = image.Pixels;
        var expected = new double[reference.Length];
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++)
                for (int c = 0; c < 3; c++)
                {
                    int channel = 2 - c;
                    double sum = 0;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++)
                            sum += p[((2 * y + dy) * 454 + 2 * x + dx) * 3 + channel];
                    expected[(y * N + x) * 3 + c] = sum / 4;
                }
        AssertClose(expected, reference, "reference, 454 → 227");
        AssertClose(expected, got, "float path, 454 → 227");
    }

    [Fact]
    public void ARampIsReproducedAndItsEndsReplicated()
    {
        // Red = x on a 200-wide ramp (grey rows): linear interpolation of a linear ramp gives the source
        // coordinate itself, clamped to the first and last pixel where it falls outside.
        const int width = 200;
        var rgb = new byte[width * 5 * 3];
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < width; x++)
                rgb[(y * width + x) * 3] = (byte)x;
        using DecodedImage image = DecodedImage.FromRgb(width, 5, rgb);
        double[] reference = PreprocessorReference.Compute(image, ResizeMode.Stretch, [0, 0, 0]);
        var got = new float[AlexNetModel.InputFloatsPerImage];
        Preprocessor.Write(image, ResizeMode.Stretch, [0f, 0f, 0f], got);
        var expected = new double[reference.Length];
        for (int y = 0; y < N; y++)
            for (int x = 0; x < N; x++)
                expected[(y * N + x) * 3 + 2] = Math.Clamp((x + 0.5) * width / N - 0.5, 0, width - 1);
        AssertClose(expected, reference, "reference, ramp");
        AssertClose(expected, got, "float path, ramp");
    }

    [Fact]
    public void TwoPixelsMeetHalfwayInTheMiddleColumn()
    {
        // 2×1 → 227: column 113 maps to u = 113.5·2/227 − 0.5 = 0.5, halfway between the two pixels.
        using DecodedImage image = DecodedImage.FromRgb(2, 1, [0, 0, 0, 100, 200, 250]);
        var got = new float[AlexNetModel.InputFloatsPerImage];
        Preprocessor.Write(image, ResizeMode.Stretch, [0f, 0f, 0f], got);
        int at = (50 * N + 113) * 3;
        Assert.Equal(125f, got[at], 4);     // B
        Assert.Equal(100f, got[at + 1], 4); // G
        Assert.Equal(50f, got[at + 2], 4);  // R
        Assert.Equal(0f, got[(7 * N + 0) * 3 + 2], 4);
        Assert.Equal(100f, got[(7 * N + N - 1) * 3 + 2], 4);
    }

    [Theory]
    [InlineData(256, 256, 256, 256, 14, 14)]
    [InlineData(512, 300, 436, 256, 104, 14)]   // 256·512/300 = 436.9 → 436
    [InlineData(300, 512, 256, 436, 14, 104)]
    [InlineData(4000, 3, 341333, 256, 170553, 14)]
    [InlineData(1, 1, 256, 256, 14, 14)]
    [InlineData(257, 256, 257, 256, 15, 14)]
    public void CropWindowFollowsTheDefinition(int width, int height, int resizedWidth, int resizedHeight, int left, int top)
    {
        Assert.Equal(new ResizeWindow(resizedWidth, resizedHeight, left, top), ResizeWindow.Of(width, height, ResizeMode.Crop, N));
        Assert.Equal(new ResizeWindow(N, N, 0, 0), ResizeWindow.Of(width, height, ResizeMode.Stretch, N));
    }

    [Fact]
    public void WrongSizesAreRefusedWithTheSizeNamed()
    {
        using DecodedImage image = Noise(10, 10, seed: 1);
        var e = Assert.Throws<ArgumentException>(() => Preprocessor.Write(image, ResizeMode.Stretch, [1f, 2f], new float[AlexNetModel.InputFloatsPerImage]));
        Assert.Contains("not 2", e.Message);
        e = Assert.Throws<ArgumentException>(() => Preprocessor.Write(image, ResizeMode.Stretch, Mean, new float[AlexNetModel.InputFloatsPerImage - 1]));
        Assert.Contains("154586", e.Message);
        image.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Preprocessor.Write(image, ResizeMode.Stretch, Mean, new float[AlexNetModel.InputFloatsPerImage]));
    }

    private void AssertClose(double[] expected, ReadOnlySpan<float> got, string what) =>
        AssertClose(expected, got.ToArray().Select(v => (double)v).ToArray(), what);

    private void AssertClose(double[] expected, double[] got, string what)
    {
        Assert.Equal(expected.Length, got.Length);
        double worst = 0;
        int worstAt = -1, bad = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs(got[i] - expected[i]);
            if (!(d <= Tolerance))
            {
                if (bad < 5) output.WriteLine($"{what}: [{i / 3 / N}, {i / 3 % N}, {i % 3}] got {got[i]}, expected {expected[i]}");
                bad++;
            }
            if (!(d <= worst)) { worst = d; worstAt = i; }
        }
        output.WriteLine($"{what}: largest difference {worst:G3} at {worstAt}");
        Assert.True(bad == 0, $"{what}: {bad} values differ by more than {Tolerance}; largest {worst:G3} at index {worstAt}");
    }
}
