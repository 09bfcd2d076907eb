using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Training;
using static AlexNet.Cuda.Checks.LayerChecks;

namespace AlexNet.Cuda.Tests.Training;

/// <summary>
/// The backward kernels and convolution gradients of <see cref="ConvolutionBackward"/>: the checks
/// (<see cref="ConvolutionBackwardChecks"/>) on the OpenCL device against the double references; the references
/// themselves against central finite differences, in double, of the forward operations written out here from their
/// definitions (max pooling away from ties, LRN, convolution dW and dX with groups); hand-worked tie and NaN rules;
/// and the class refusing bad input with one line.
/// </summary>
[Collection(OpenClCollection.Name)]
public class ConvolutionBackwardTests(OpenClFixture fixture)
{
    public static TheoryData<string> CheckNames() => new(ConvolutionBackwardChecks.All().Select(c => c.Name));

    [SkippableTheory]
    [MemberData(nameof(CheckNames))]
    public void KernelMatchesTheReference(string name)
    {
        ComputeDevice device = fixture.Device;
        ComparisonResult result = ConvolutionBackwardChecks.All().Single(c => c.Name == name).Run(device);
        Assert.True(result.Passed, $"{name} on {device.Description}: {result.Detail}");
    }

    [Fact]
    public void TheChecksAreRegisteredWithKernelChecksUnderNamesOfTheirOwn()
    {
        string[] all = [.. KernelChecks.All().Select(c => c.Name)];
        string[] mine = [.. ConvolutionBackwardChecks.All().Select(c => c.Name)];
        Assert.All(mine, name => Assert.Single(all, name));
        Assert.Equal(mine.Length, mine.Distinct().Count());
    }

    // ---- the references against central finite differences of the forward operations, in double ----

    /// <summary>
    /// A reference against the finite differences: |reference − differences| ≤ DifferenceRtol·Σ|terms| + DifferenceAtol·max|differences|.
    /// The reference is rounded to float once (up to 6e-8 of its magnitude; the worst seen here is 5.8e-8); the differences'
    /// own error (the step's truncation, the loss's rounding divided by the step) stays below the atol for data in [-1, 1]
    /// and covers the elements whose terms are tiny (the test data's -1e-30). A term missing, doubled or sent to the wrong
    /// element misses by far more.
    /// </summary>
    private const double DifferenceRtol = 1e-6, DifferenceAtol = 1e-9;

    public static TheoryData<int, int, int, int, int, int, int> PoolShapesForDifferences() => new()
    {
        // channels, batch, height, width, size, stride, layout (0 [C][N][Ho][Wo], 1 flatten, 2 padded strides)
        { 2, 2, 7, 9, 3, 2, 0 },
        { 2, 2, 8, 7, 2, 1, 1 },
        { 3, 1, 11, 10, 2, 3, 2 },
        { 1, 3, 5, 5, 5, 1, 0 },
    };

    [Theory]
    [MemberData(nameof(PoolShapesForDifferences))]
    public void MaxPoolReferenceIsTheDerivativeOfMaxPoolingAwayFromTies(int channels, int batch, int height, int width, int size, int stride, int layout)
    {
        var s = new PoolShape(channels, batch, height, width, size, stride, (PoolLayout)layout);
        int count = channels * batch * height * width;
        // Distinct multiples of 1/64 in a shuffled order: every window has one maximum, 1/64 clear of the next value, so
        // steps of 1e-3 never change a pick and the differences of a piecewise linear function are exact.
        var random = new Random(5 + count);
        float[] input = [.. Enumerable.Range(-count / 2, count).Select(k => k / 64f).OrderBy(_ => random.Next())];
        (int strideC, int strideN) = s.OutputStrides;
        var gradOutput = new float[s.OutputExtent];
        Array.Fill(gradOutput, float.NaN); // the gaps of the padded layout must not be read
        float[] g = Data(channels * batch * s.Plane, seed: 7);
        for (int c = 0, v = 0; c < channels; c++)
        for (int n = 0; n < batch; n++)
        for (int p = 0; p < s.Plane; p++)
            gradOutput[c * strideC + n * strideN + p] = g[v++];

        ReferenceGradient reference = ConvolutionBackwardReference.MaxPoolBackward(gradOutput, input, channels, batch, height, width,
            s.OutH, s.OutW, size, stride, strideC, strideN);
        double Loss(double[] x)
        {
            double sum = 0;
            for (int c = 0; c < channels; c++)
            for (int n = 0; n < batch; n++)
            for (int y = 0; y < s.OutH; y++)
            for (int xo = 0; xo < s.OutW; xo++)
            {
                double m = double.NegativeInfinity;
                for (int i = 0; i < size; i++)
                for (int j = 0; j < size; j++)
                    m = Math.Max(m, x[((c * batch + n) * height + y * stride + i) * width + xo * stride + j]);
                sum += gradOutput[c * strideC + n * strideN + y * s.OutW + xo] * m;
            }
            return sum;
        }
        AssertAgrees(reference, Differences(ToDouble(input), Loss, 1e-3, relative: false), "max pool");
        // Rows and columns no window reads, and elements no window picked, get exactly 0.
        Assert.Contains(0f, reference.Values);
    }

    public static TheoryData<int, int, int, float, float, float, float> LrnCasesForDifferences() => new()
    {
        // channels, inner, radius, alpha, beta, bias, input scale
        { 7, 6, 2, 2e-5f, 0.75f, 1f, 50f },   // AlexNet's parameters on inputs of real activations' size
        { 7, 5, 1, 0.05f, 0.6f, 2f, 3f },
        { 3, 4, 5, 0.1f, 0.75f, 1f, 2f },     // a radius wider than the channels
        { 5, 3, 0, 0.5f, 0.75f, 1f, 2f },     // radius 0: the own channel only
        { 6, 4, 2, 0.02f, 1.5f, 0.5f, 4f },
        { 1, 7, 2, 0.1f, 0.75f, 1f, 2f },     // one channel
    };

    [Theory]
    [MemberData(nameof(LrnCasesForDifferences))]
    public void LrnReferenceIsTheDerivativeOfTheNormalisation(int channels, int inner, int radius, float alpha, float beta, float bias, float scale)
    {
        var p = new LrnParameters(radius, alpha, beta, bias);
        int count = channels * inner;
        float[] input = Data(count, seed: 11 + count);
        for (int i = 0; i < count; i++) input[i] *= scale;
        float[] gradOutput = Data(count, seed: 13 + count);
        ReferenceGradient reference = ConvolutionBackwardReference.LrnBackward(gradOutput, input, channels, inner, p);

        double Loss(double[] x)
        {
            double sum = 0;
            for (int c = 0; c < channels; c++)
            for (int s = 0; s < inner; s++)
            {
                double squares = 0;
                for (int cc = Math.Max(0, c - radius); cc <= Math.Min(channels - 1, c + radius); cc++)
                    squares += x[cc * inner + s] * x[cc * inner + s];
                sum += gradOutput[c * inner + s] * x[c * inner + s] / Math.Pow(bias + (double)alpha * squares, beta);
            }
            return sum;
        }
        double[] differences = Differences(ToDouble(input), Loss, 1e-4, relative: true);
        AssertAgrees(reference, differences, "LRN");

        // The cross-channel terms count: the own term alone, grad·base^-beta, misses by far more than the bound.
        if (channels > 1 && radius > 0 && alpha > 1e-4f)
        {
            double worst = 0;
            for (int c = 0; c < channels; c++)
            for (int s = 0; s < inner; s++)
            {
                double squares = 0;
                for (int cc = Math.Max(0, c - radius); cc <= Math.Min(channels - 1, c + radius); cc++)
                    squares += (double)input[cc * inner + s] * input[cc * inner + s];
                double own = gradOutput[c * inner + s] * Math.Pow(bias + (double)alpha * squares, -beta);
                worst = Math.Max(worst, Math.Abs(own - differences[c * inner + s]) / reference.Magnitudes[c * inner + s]);
            }
            Assert.True(worst > 1000 * DifferenceRtol, $"the cross terms change the gradient by only {worst:G3} of its magnitude");
        }
    }

    public static TheoryData<int, int, int, int, int, int, int, int, int> ConvolutionShapesForDifferences() => new()
    {
        // input channels, output channels, groups, batch, height, width, kernel, stride, pad
        { 3, 4, 1, 2, 15, 13, 5, 4, 0 },  // conv1's stride 4, scaled down; edge rows and columns no window reads
        { 4, 6, 2, 2, 7, 6, 3, 1, 1 },    // conv4/conv5's form: two groups, SAME padding
        { 4, 6, 2, 1, 9, 9, 4, 2, 2 },    // an even window, stride 2, padding 2
        { 6, 4, 2, 1, 5, 5, 5, 1, 2 },    // conv2's form: 5x5, pad 2, two groups
    };

    [Theory]
    [MemberData(nameof(ConvolutionShapesForDifferences))]
    public void ConvolutionReferenceIsTheDerivativeOfTheConvolution(int cin, int cout, int groups, int batch, int height, int width,
        int kernel, int stride, int pad)
    {
        int outH = (height + 2 * pad - kernel) / stride + 1, outW = (width + 2 * pad - kernel) / stride + 1;
        float[] input = Data(cin * batch * height * width, seed: 17 + cin);
        float[] weights = Data(cout * cin / groups * kernel * kernel, seed: 19 + cout);
        float[] gradOutput = Data(cout * batch * outH * outW, seed: 23 + height);
        (ReferenceGradient dw, ReferenceGradient dx) = ConvolutionBackwardReference.ConvolutionGradients(input, weights, gradOutput,
            cin, cout, groups, batch, height, width, kernel, stride, pad);

        double Loss(double[] x, double[] w)
        {
            double[] y = Convolution(x, w, cin, cout, groups, batch, height, width, kernel, stride, pad);
            double sum = 0;
            for (int i = 0; i < y.Length; i++) sum += gradOutput[i] * y[i];
            return sum;
        }
        double[] x0 = ToDouble(input), w0 = ToDouble(weights);
        // The loss is linear in each: steps of half an element's size are exact but for rounding.
        AssertAgrees(dw, Differences(w0, w => Loss(x0, w), 0.5, relative: true), "convolution dW");
        AssertAgrees(dx, Differences(x0, x => Loss(x, w0), 0.5, relative: true), "convolution dX");
    }

    /// <summary>out[co][n][y][x] = Σ over co's group's input channels and the taps of W·in (0 outside the image), in double.</summary>
    private static double[] Convolution(double[] x, double[] w, int cin, int cout, int groups, int batch, int height, int width,
        int kernel, int stride, int pad)
    {
        int outH = (height + 2 * pad - kernel) / stride + 1, outW = (width + 2 * pad - kernel) / stride + 1;
        int groupIn = cin / groups, groupOut = cout / groups;
        var y = new double[cout * batch * outH * outW];
        for (int co = 0; co < cout; co++)
        for (int n = 0; n < batch; n++)
        for (int oy = 0; oy < outH; oy++)
        for (int ox = 0; ox < outW; ox++)
        {
            double sum = 0;
            for (int cg = 0; cg < groupIn; cg++)
            for (int i = 0; i < kernel; i++)
            for (int j = 0; j < kernel; j++)
            {
                int h = oy * stride - pad + i, v = ox * stride - pad + j, ci = co / groupOut * groupIn + cg;
                if (h >= 0 && h < height && v >= 0 && v < width)
                    sum += w[((co * groupIn + cg) * kernel + i) * kernel + j] * x[((ci * batch + n) * height + h) * width + v];
            }
            y[((co * batch + n) * outH + oy) * outW + ox] = sum;
        }
        return y;
    }

    /// <summary>dLoss/dx_i by central differences, (L(x + h·e_i) − L(x − h·e_i)) / (the step actually taken), h = step
    /// (times max(1, |x_i|) when <paramref name="relative"/>).</summary>
    private static double[] Differences(double[] x, Func<double[], double> loss, double step, bool relative)
    {
        var result = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double keep = x[i], h = relative ? step * Math.Max(1, Math.Abs(keep)) : step;
            double up = keep + h, down = keep - h;
            x[i] = up;
            double plus = loss(x);
            x[i] = down;
            double minus = loss(x);
            x[i] = keep;
            result[i] = (plus - minus) / (up - down);
        }
        return result;
    }

    private static void AssertAgrees(ReferenceGradient reference, double[] differences, string what)
    {
        Assert.Equal(differences.Length, reference.Values.Length);
        double largest = differences.Max(Math.Abs);
        Assert.True(largest > 0, $"{what}: the finite differences are all 0, the test shows nothing");
        for (int i = 0; i < differences.Length; i++)
        {
            double bound = DifferenceRtol * reference.Magnitudes[i] + DifferenceAtol * largest;
            double error = Math.Abs(reference.Values[i] - differences[i]);
            Assert.True(error <= bound,
                $"{what}: element {i} of {differences.Length}: reference {reference.Values[i]:G9}, finite differences {differences[i]:G9}, bound {bound:G3}");
        }
    }

    private static double[] ToDouble(float[] values) => [.. values.Select(v => (double)v)];

    /// <summary><see cref="KernelChecks.TestData"/> clamped to [-1, 1]: the outliers test float arithmetic (the checks'
    /// business); here they would only let one term's rounding noise in the loss swamp the others' derivatives.
    /// The tiny value and the negative zero stay.</summary>
    private static float[] Data(int length, int seed)
    {
        float[] data = KernelChecks.TestData(length, seed);
        for (int i = 0; i < length; i++) data[i] = Math.Clamp(data[i], -1f, 1f);
        return data;
    }

    // ---- the references' rules, on hand-worked examples ----

    [SkippableFact]
    public void MaxPoolReferenceSendsTiesToTheFirstAndNaNWindowsToTheLastNaN()
    {
        // One 3x3 window (stride 1) per image: ties between 2 at (0, 1), (1, 0) and (2, 2); then NaN at (0, 2) and (2, 0);
        // then -0 and +0 only, which compare equal: the first, (0, 0), takes the gradient.
        float nan1 = BitConverter.UInt32BitsToSingle(0x7FC0_0001), nan2 = BitConverter.UInt32BitsToSingle(0x7FC0_0002);
        float[] input =
        [
            1, 2, 0, 2, -1, 0, 0, 0, 2,
            1, 5, nan1, 2, -1, 0, nan2, 9, 2,
            -0f, 0f, 0f, -0f, 0f, -0f, 0f, 0f, 0f,
        ];
        ReferenceGradient r = ConvolutionBackwardReference.MaxPoolBackward([3f, 4f, 5f], input, 1, 3, 3, 3, 1, 1, 3, 1, 3, 1);
        float[] expected =
        [
            0, 3, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 4, 0, 0,
            5, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        Assert.Equal(expected, r.Values);
        // And the kernel, on the device, agrees exactly.
        ComputeDevice device = fixture.Device;
        using var backward = new ConvolutionBackward(device);
        using DeviceBuffer<float> dIn = device.Upload<float>(input);
        using DeviceBuffer<float> dGrad = device.Upload<float>([3f, 4f, 5f]);
        using DeviceBuffer<float> dOut = NaNFilled(device, input.Length);
        backward.MaxPoolBackward(device.DefaultStream, dOut, dGrad, dIn, 1, 3, 3, 3, 1, 1, 3, 1, 3, 1);
        Assert.Equal(expected, device.Download(dOut));
    }

    [Fact]
    public void Col2ImReferenceIsTheAdjointOfIm2Col()
    {
        // <im2col(x), c> = <x, col2im(c)> for any x and c: the definition of the adjoint, on a strided, padded, partial batch.
        var s = new Im2ColShape(3, 3, 9, 7, 1, 2, 3, 2, 2, 1);
        float[] x = KernelChecks.TestData(s.Channels * s.Batch * s.Height * s.Width, seed: 29);
        float[] col = KernelChecks.TestData(s.Channels * s.KernelH * s.KernelW * s.Images * s.OutH * s.OutW, seed: 31);
        float[] lowered = LayerReference.Im2Col(x, s.Channels, s.Batch, s.Height, s.Width, s.Image0, s.Images, s.KernelH, s.KernelW,
            s.Stride, s.Pad, s.OutH, s.OutW);
        ReferenceGradient folded = ConvolutionBackwardReference.Col2Im(col, s.Channels, s.Batch, s.Height, s.Width, s.Image0, s.Images,
            s.KernelH, s.KernelW, s.Stride, s.Pad, s.OutH, s.OutW, 0f);
        double left = 0, right = 0, scale = 0;
        for (int i = 0; i < col.Length; i++)
        {
            left += (double)lowered[i] * col[i];
            scale += Math.Abs((double)lowered[i] * col[i]);
        }
        for (int i = 0; i < x.Length; i++) right += (double)x[i] * folded.Values[i];
        Assert.True(Math.Abs(left - right) <= 1e-6 * scale, $"<im2col(x), c> = {left:G9} but <x, col2im(c)> = {right:G9}");
    }

    // ---- ConvolutionBackward refusing bad input ----

    private static ConvolutionPlan Layer(int cin, int cout, int groups, int kernel, int stride, int pad, int size, int outSize, int chunk = 0) =>
        new("test", cin, cout, groups, kernel, stride, pad, size, outSize, chunk);

    [SkippableFact]
    public void BadSizesAreRefusedWithOneLineNamingTheOperation()
    {
        ComputeDevice device = fixture.Device;
        using var backward = new ConvolutionBackward(device);
        ComputeStream s = device.DefaultStream;
        using DeviceBuffer<float> a = device.Allocate<float>(1000);
        using DeviceBuffer<float> b = device.Allocate<float>(1000);
        using DeviceBuffer<float> c = device.Allocate<float>(1000);
        using DeviceBuffer<float> d = device.Allocate<float>(1000);
        using DeviceBuffer<float> e = device.Allocate<float>(1000);
        using DeviceBuffer<float> small = device.Allocate<float>(10);

        Refused("MaxPoolBackward: outH is 3 but windows of 3 with stride 2 over a height of 9 give 4",
            () => backward.MaxPoolBackward(s, a, b, c, 1, 1, 9, 9, 3, 4, 3, 2, 16, 16));
        Refused("MaxPoolBackward: a window of 5 does not fit in the height of 4", () => backward.MaxPoolBackward(s, a, b, c, 1, 1, 4, 9, 1, 3, 5, 2, 3, 3));
        Refused("MaxPoolBackward: gradInput holds 10 floats but the operation needs 81",
            () => backward.MaxPoolBackward(s, small, b, c, 1, 1, 9, 9, 4, 4, 3, 2, 16, 16));
        Refused("MaxPoolBackward: gradOutput holds 10 floats but the operation needs 32",
            () => backward.MaxPoolBackward(s, a, small, c, 2, 1, 9, 9, 4, 4, 3, 2, 16, 16));
        Refused("MaxPoolBackward: input holds 10 floats but the operation needs 162",
            () => backward.MaxPoolBackward(s, a, b, small, 2, 1, 9, 9, 4, 4, 3, 2, 16, 16));
        Refused("MaxPoolBackward: the output must not be one of the inputs", () => backward.MaxPoolBackward(s, a, a, c, 1, 1, 9, 9, 4, 4, 3, 2, 16, 16));
        Refused("MaxPoolBackward: the output must not be one of the inputs", () => backward.MaxPoolBackward(s, a, b, a, 1, 1, 9, 9, 4, 4, 3, 2, 16, 16));
        Refused("MaxPoolBackward: output strides outStrideC 4 and outStrideN 9 make the 9-float planes",
            () => backward.MaxPoolBackward(s, a, b, c, 2, 2, 7, 7, 3, 3, 3, 2, 4, 9));
        Refused("MaxPoolBackward: channels = 70000 exceeds 65535", () => backward.MaxPoolBackward(s, a, b, c, 70000, 1, 1, 1, 1, 1, 1, 1, 1, 70000));
        Refused("MaxPoolBackward: stride must be positive, not 0", () => backward.MaxPoolBackward(s, a, b, c, 1, 1, 9, 9, 4, 4, 3, 0, 16, 16));
        Refused("MaxPoolBackward: inputBias holds 10 floats but the operation needs 20",
            () => backward.MaxPoolBackward(s, a, b, c, 20, 1, 3, 3, 1, 1, 3, 2, 1, 20, small));

        Refused("LRN bias must be greater than 0, not 0", () => backward.LrnBackward(s, a, b, c, 10, 10, LrnParameters.Default with { Bias = 0 }));
        Refused("LrnBackward: inner must be positive, not 0", () => backward.LrnBackward(s, a, b, c, 10, 0, LrnParameters.Default));
        Refused("LrnBackward: input holds 10 floats but the operation needs 100", () => backward.LrnBackward(s, a, b, small, 10, 10, LrnParameters.Default));
        Refused("LrnBackward: gradOutput holds 10 floats but the operation needs 100", () => backward.LrnBackward(s, a, small, c, 10, 10, LrnParameters.Default));
        Refused("LrnBackward: the output must not be one of the inputs", () => backward.LrnBackward(s, a, b, a, 10, 10, LrnParameters.Default));
        Refused("LrnBackward: channels = 70000 exceeds 65535", () => backward.LrnBackward(s, a, b, c, 70000, 1, LrnParameters.Default));
        Refused("LrnBackward: the input bias must not be the output buffer", () => backward.LrnBackward(s, a, b, c, 10, 10, LrnParameters.Default, a));

        Refused("Col2Im: images [1, 3) are not all inside the batch of 2", () => backward.Col2Im(s, a, b, 1, 2, 3, 3, 1, 2, 1, 1, 1, 0, 3, 3));
        Refused("Col2Im: pad must be 0 or more, not -1", () => backward.Col2Im(s, a, b, 1, 1, 3, 3, 0, 1, 1, 1, 1, -1, 3, 3));
        Refused("Col2Im: outH is 4 but windows of 3 with stride 1 over a height of 7 give 5",
            () => backward.Col2Im(s, a, b, 1, 1, 7, 7, 0, 1, 3, 3, 1, 0, 4, 5));
        Refused("Col2Im: col holds 1000 floats but the operation needs 1521", () => backward.Col2Im(s, a, b, 1, 1, 13, 13, 0, 1, 3, 3, 1, 1, 13, 13));
        Refused("Col2Im: gradInput holds 10 floats but the operation needs 25", () => backward.Col2Im(s, small, b, 1, 1, 5, 5, 0, 1, 3, 3, 1, 1, 5, 5));
        Refused("Col2Im: the output must not be one of the inputs", () => backward.Col2Im(s, a, a, 1, 1, 5, 5, 0, 1, 3, 3, 1, 1, 5, 5));
        Refused("Col2Im: channels = 70000 exceeds 65535", () => backward.Col2Im(s, a, b, 70000, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1));

        // A 2-group layer, 4 -> 6 channels, 5x5 input, 3x3 window, pad 1: 18 rows per group, 2·18·25 = 900 floats of
        // lowering per image; input 100 floats per image, weights 108, output gradient 150 per image.
        ConvolutionPlan good = Layer(4, 6, 2, 3, 1, 1, 5, 5);
        void Gradients(ConvolutionPlan layer, int batch = 1, DeviceBuffer<float>? input = null, DeviceBuffer<float>? gradOutput = null,
            DeviceBuffer<float>? gradWeights = null, DeviceBuffer<float>? gradInput = null, DeviceBuffer<float>? workspace = null) =>
            backward.ConvolutionGradients(s, layer, batch, input ?? a, b, gradOutput ?? c, gradWeights ?? d, gradInput, workspace ?? e);
        Gradients(good); // the defaults are fine
        Refused("ConvolutionGradients: 6 input and 4 output channels do not both split into 4 groups", () => Gradients(Layer(6, 4, 4, 3, 1, 1, 5, 5)));
        Refused("ConvolutionGradients: OutputSize is 4 but windows of 3 with stride 1 and padding 1 over a height of 5 give 5",
            () => Gradients(Layer(4, 6, 2, 3, 1, 1, 5, 4)));
        Refused("ConvolutionGradients: a window of 9 does not fit in the height of 5 padded by 1", () => Gradients(Layer(4, 6, 2, 9, 1, 1, 5, 1)));
        Refused("ConvolutionGradients: batch must be positive, not 0", () => Gradients(good, batch: 0));
        Refused("ConvolutionGradients: groups must be positive, not 0", () => Gradients(Layer(4, 6, 0, 3, 1, 1, 5, 5)));
        Refused("ConvolutionGradients: pad must be 0 or more, not -1", () => Gradients(Layer(4, 6, 2, 3, 1, -1, 5, 3)));
        Refused("ConvolutionGradients: ChunkImages must be 0 (as many as the workspace holds) or more, not -1",
            () => Gradients(Layer(4, 6, 2, 3, 1, 1, 5, 5, chunk: -1)));
        Refused("ConvolutionGradients: the workspace holds 10 floats, less than one image's lowering (900); give a larger workspace",
            () => Gradients(good, workspace: small));
        Refused("ConvolutionGradients: the workspace holds 1000 floats, 1 image's lowering, but chunks of 2 images need 1800",
            () => Gradients(Layer(4, 6, 2, 3, 1, 1, 5, 5, chunk: 2), batch: 2));
        Refused("ConvolutionGradients: input holds 10 floats but the operation needs 100", () => Gradients(good, input: small));
        Refused("ConvolutionGradients: gradOutput holds 1000 floats but the operation needs 1050", () => Gradients(good, batch: 7));
        Refused("ConvolutionGradients: gradWeights holds 10 floats but the operation needs 108", () => Gradients(good, gradWeights: small));
        Refused("ConvolutionGradients: gradInput holds 10 floats but the operation needs 100", () => Gradients(good, gradInput: small));
        Refused("ConvolutionGradients: the output must not be one of the inputs", () => Gradients(good, gradInput: a));
        Refused("ConvolutionGradients: the output must not be one of the inputs", () => Gradients(good, gradWeights: e));
        Refused("ConvolutionGradients: the output must not be one of the inputs", () => Gradients(good, gradInput: d));
        Refused("ConvolutionGradients: the output must not be one of the inputs", () => Gradients(good, workspace: c));
    }

    [SkippableFact]
    public void AStreamOrBufferOfAnotherDeviceIsRefusedAndADisposedInstanceSaysSo()
    {
        ComputeDevice device = fixture.Device;
        var backward = new ConvolutionBackward(device);
        using OpenClDevice other = OpenClDevice.Open(null, TestCache.Shared);
        using DeviceBuffer<float> mine = device.Allocate<float>(100);
        using DeviceBuffer<float> mine2 = device.Allocate<float>(100);
        using DeviceBuffer<float> theirs = other.Allocate<float>(100);
        Refused("LrnBackward: the stream belongs to another device",
            () => backward.LrnBackward(other.DefaultStream, mine, mine2, mine2, 10, 10, LrnParameters.Default));
        Refused("LrnBackward: input belongs to another device", () => backward.LrnBackward(device.DefaultStream, mine, mine2, theirs, 10, 10, LrnParameters.Default));
        backward.Dispose();
        backward.Dispose(); // a second release is harmless
        Assert.Throws<ObjectDisposedException>(() => backward.Col2Im(device.DefaultStream, mine, mine2, 1, 1, 5, 5, 0, 1, 3, 3, 1, 1, 5, 5));
    }

    [SkippableFact]
    public void CallsAllocateNothing()
    {
        ComputeDevice device = fixture.Device;
        using var backward = new ConvolutionBackward(device);
        ComputeStream s = device.DefaultStream;
        DeviceBuffer<float>[] buffers = [.. Enumerable.Range(0, 7).Select(_ => device.Allocate<float>(4096))];
        try
        {
            foreach (DeviceBuffer<float> buffer in buffers) device.Fill(buffer, 0.25f);
            (DeviceBuffer<float> a, DeviceBuffer<float> b, DeviceBuffer<float> c, DeviceBuffer<float> d) = (buffers[0], buffers[1], buffers[2], buffers[3]);
            (DeviceBuffer<float> e, DeviceBuffer<float> workspace, DeviceBuffer<float> bias) = (buffers[4], buffers[5], buffers[6]);
            // Chunks of 2 of a batch of 3: two chunks, the second partial.
            ConvolutionPlan layer = Layer(4, 6, 2, 3, 1, 1, 5, 5, chunk: 2);
            void CallAll()
            {
                backward.MaxPoolBackward(s, a, b, c, 4, 2, 9, 9, 4, 4, 3, 2, 32, 16, bias);
                backward.LrnBackward(s, a, b, c, 16, 64, LrnParameters.Default, bias);
                backward.Col2Im(s, a, b, 2, 2, 8, 8, 0, 2, 3, 3, 1, 1, 8, 8);
                backward.ConvolutionGradients(s, layer, 3, a, b, c, d, e, workspace, bias);
                backward.ConvolutionGradients(s, layer, 3, a, b, c, d, null, workspace, accumulate: true);
            }
            CallAll(); // first calls: PoCL compiles each kernel for the local size
            device.Synchronize();
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 10; i++) CallAll();
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            device.Synchronize();
            Assert.Equal(0, allocated);
        }
        finally
        {
            foreach (DeviceBuffer<float> buffer in buffers) buffer.Dispose();
        }
    }

    private static void Refused(string expectedStart, Action action)
    {
        var e = Assert.ThrowsAny<AlexNetException>(action);
        Assert.True(e.Message.StartsWith(expectedStart, StringComparison.Ordinal), $"expected \"{expectedStart}\"…, got \"{e.Message}\"");
        Assert.DoesNotContain('\n', e.Message);
    }
}
