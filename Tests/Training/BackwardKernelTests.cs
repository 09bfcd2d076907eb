using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Training;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Training;

/// <summary>
/// The backward kernels: every <see cref="BackwardChecks"/> check on the OpenCL device (PoCL in CI), the same
/// list <c>alexnet check</c> runs on a GPU; the double references against central finite differences of the
/// forward functions they differentiate; the dropout gradient's mask against the forward kernel's, element for
/// element; and <see cref="BackwardKernels"/> refusing bad sizes and buffers with one line.
/// </summary>
[Collection(OpenClCollection.Name)]
public class BackwardKernelTests(OpenClFixture fixture, ITestOutputHelper output)
{
    public static TheoryData<string> CheckNames() => new(BackwardChecks.All().Select(c => c.Name));

    [SkippableTheory]
    [MemberData(nameof(CheckNames))]
    public void KernelMatchesTheReference(string name)
    {
        ComputeDevice device = fixture.Device;
        if (name.StartsWith("fc backward", StringComparison.Ordinal)) TestNative.Require(NativeLibraryId.ClBlast);
        ComparisonResult result = BackwardChecks.All().Single(c => c.Name == name).Run(device);
        output.WriteLine(result.Detail); // the largest error and its bound, for the record
        Assert.True(result.Passed, $"{name} on {device.Description}: {result.Detail}");
    }

    [Fact]
    public void TheChecksAreRunByAlexnetCheckAndTheirNamesAreUnique()
    {
        string[] names = [.. BackwardChecks.All().Select(c => c.Name)];
        Assert.Equal(names.Length, names.Distinct().Count());
        Assert.Subset(KernelChecks.All().Select(c => c.Name).ToHashSet(), names.ToHashSet());
        // Every kernel the class launches is checked by name.
        foreach (NetworkKernelInfo kernel in BackwardKernels.Kernels)
            Assert.Contains(names, n => n.Contains(kernel.EntryPoint, StringComparison.Ordinal));
    }

    // ---- the references against central finite differences of the forward functions ----

    /// <summary>Central differences of <paramref name="f"/> at <paramref name="x"/>, one coordinate at a time:
    /// (f(x + h·e_i) − f(x − h·e_i)) / 2h, whose error is O(h²·f''') plus the rounding of f over 2h.</summary>
    private static double[] CentralDifferences(Func<double[], double> f, double[] x, double h = 1e-5)
    {
        var gradient = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double[] plus = (double[])x.Clone(), minus = (double[])x.Clone();
            plus[i] += h;
            minus[i] -= h;
            gradient[i] = (f(plus) - f(minus)) / (2 * h);
        }
        return gradient;
    }

    /// <summary>|analytic − numeric| ≤ 1e-7·(1 + |numeric|) for every element: far below any mistake of a term or
    /// a factor, far above the finite differences' own error at h = 1e-5 on values of order 1.</summary>
    private static void Close(double[] numeric, double[] analytic, string what)
    {
        Assert.Equal(numeric.Length, analytic.Length);
        for (int i = 0; i < numeric.Length; i++)
            Assert.True(Math.Abs(numeric[i] - analytic[i]) <= 1e-7 * (1 + Math.Abs(numeric[i])),
                $"{what}[{i}]: finite differences {numeric[i]:R}, reference {analytic[i]:R}");
    }

    /// <summary>Values in [lo, hi), deterministic.</summary>
    private static double[] Uniform(int count, int seed, double lo = -1, double hi = 1)
    {
        var random = new Random(seed);
        var values = new double[count];
        for (int i = 0; i < count; i++) values[i] = lo + (hi - lo) * random.NextDouble();
        return values;
    }

    /// <summary>Σ upstream[i]·y[i]: a scalar whose gradient with respect to y is the upstream gradient.</summary>
    private static double Dot(double[] upstream, double[] y)
    {
        double sum = 0;
        for (int i = 0; i < y.Length; i++) sum += upstream[i] * y[i];
        return sum;
    }

    [Theory]
    [InlineData(3, 7, 0.37)]
    [InlineData(1, 1, 1.0)]
    [InlineData(2, 13, -2.0)]
    public void SoftmaxCrossEntropyGradientIsTheDerivativeOfTheLoss(int rows, int classes, double scale)
    {
        double[] logits = Uniform(rows * classes, seed: rows * 10 + classes, -4, 4);
        if (classes > 2) logits[1] = 30; // a dominant logit: the max subtraction matters
        int[] labels = [.. Enumerable.Range(0, rows).Select(r => (5 * r + 1) % classes)];
        double Loss(double[] z) => scale * BackwardReference.SoftmaxCrossEntropyLoss(z, labels, rows, classes).Sum();
        Close(CentralDifferences(Loss, logits), BackwardReference.SoftmaxCrossEntropyGradient(logits, labels, rows, classes, scale),
            "dLoss/dlogits");
    }

    [Fact]
    public void SoftmaxCrossEntropyReferenceMatchesAHandWorkedExampleAndAnOutOfRangeLabel()
    {
        // Logits 0 and ln 3: probabilities 1/4, 3/4. Label 1: loss −ln(3/4), gradient (1/4, 3/4 − 1)·scale.
        double[] z = [0, Math.Log(3), 0, Math.Log(3), 1, 2];
        int[] labels = [1, 0, 2];
        double[] loss = BackwardReference.SoftmaxCrossEntropyLoss(z, labels, 3, 2);
        Assert.Equal(Math.Log(4.0 / 3), loss[0], 14);
        Assert.Equal(Math.Log(4), loss[1], 14);
        Assert.True(double.IsNaN(loss[2])); // label 2 of 2 classes
        double[] grad = BackwardReference.SoftmaxCrossEntropyGradient(z, labels, 3, 2, scale: 0.5);
        Assert.Equal(0.125, grad[0], 14);
        Assert.Equal(-0.125, grad[1], 14);
        Assert.Equal(-0.375, grad[2], 14);
        Assert.Equal(0.375, grad[3], 14);
        double[] zeroRow = [0, 0];
        Assert.Equal(zeroRow, grad[4..]);
        // Huge logits do not overflow.
        Assert.Equal(Math.Log(2), BackwardReference.SoftmaxCrossEntropyLoss([1e300, 1e300], [0], 1, 2)[0], 14);
    }

    [Fact]
    public void ReluBackwardIsTheDerivativeOfRelu()
    {
        // Inputs at least 0.01 away from the kink, so that x ± h stays on one side.
        double[] x = Uniform(41, seed: 5);
        for (int i = 0; i < x.Length; i++) x[i] = x[i] < 0 ? x[i] - 0.01 : x[i] + 0.01;
        double[] upstream = Uniform(x.Length, seed: 6);
        double[] numeric = CentralDifferences(v => Dot(upstream, BackwardReference.Relu(v)), x);
        Close(numeric, BackwardReference.ReluBackward(upstream, BackwardReference.Relu(x)), "dL/dx");
        // At the kink, and for a NaN output, the gradient is taken as 0.
        double[] atKink = [0, 0, 2];
        Assert.Equal(atKink, BackwardReference.ReluBackward([1, 1, 2], BackwardReference.Relu([0, double.NaN, 3])));
    }

    [Fact]
    public void DropoutBackwardIsTheDerivativeOfDropout()
    {
        const float keepProb = 0.6f;
        const ulong seed = 0xABCD_0123;
        const uint offset = 5;
        double[] x = Uniform(37, seed: 7);
        double[] upstream = Uniform(x.Length, seed: 8);
        double[] numeric = CentralDifferences(v => Dot(upstream, BackwardReference.Dropout(v, keepProb, seed, offset)), x);
        double[] analytic = BackwardReference.DropoutBackward(upstream, keepProb, seed, offset);
        Close(numeric, analytic, "dL/dx");
        // Not trivially: some elements are kept, some dropped.
        Assert.Contains(analytic, g => g == 0);
        Assert.Contains(analytic, g => g != 0);
    }

    [Theory]
    [InlineData(3, 4, 1)]
    [InlineData(1, 3, 5)]
    [InlineData(2, 3, 4)]
    public void BiasGradientIsTheDerivativeOfTheBiasAddition(int outer, int channels, int inner)
    {
        double[] x = Uniform(outer * channels * inner, seed: 9);
        double[] bias = Uniform(channels, seed: 10);
        double[] upstream = Uniform(x.Length, seed: 11);
        double[] numeric = CentralDifferences(b => Dot(upstream, BackwardReference.BiasAdd(x, b, outer, channels, inner)), bias);
        Close(numeric, BackwardReference.BiasGradient(upstream, outer, channels, inner), "dL/dbias");
    }

    [Theory]
    [InlineData(3, 5, 4)]
    [InlineData(1, 1, 1)]
    [InlineData(2, 7, 3)]
    public void FullyConnectedBackwardIsTheDerivativeOfTheLayer(int batch, int inputs, int outputs)
    {
        double[] x = Uniform(batch * inputs, seed: 12);
        double[] w = Uniform(inputs * outputs, seed: 13);
        double[] b = Uniform(outputs, seed: 14);
        double[] upstream = Uniform(batch * outputs, seed: 15);
        (double[] dx, double[] dw, double[] db) = BackwardReference.FullyConnectedBackward(x, w, upstream, batch, inputs, outputs);
        Close(CentralDifferences(v => Dot(upstream, BackwardReference.FullyConnected(v, w, b, batch, inputs, outputs)), x), dx, "dL/dX");
        Close(CentralDifferences(v => Dot(upstream, BackwardReference.FullyConnected(x, v, b, batch, inputs, outputs)), w), dw, "dL/dW");
        Close(CentralDifferences(v => Dot(upstream, BackwardReference.FullyConnected(x, w, v, batch, inputs, outputs)), b), db, "dL/dB");
    }

    [Fact]
    public void SgdReferenceMatchesAHandWorkedStep()
    {
        // w 1, v 0.5, grad 0.2, lr 0.1, momentum 0.9, decay 0.01: g = 0.2 + 0.01 = 0.21, v = 0.45 + 0.21 = 0.66,
        // w = 1 − 0.066 = 0.934. A second element without momentum or decay is plain SGD: 2 − 0.1·4 = 1.6.
        (double[] w, double[] v) = BackwardReference.SgdMomentum([1, 2], [0.5, 0], [0.2, 4], 0.1, 0.9, 0.01);
        Assert.Equal(0.66, v[0], 14);
        Assert.Equal(0.934, w[0], 14);
        (w, v) = BackwardReference.SgdMomentum([2], [3], [4], 0.1, 0, 0);
        Assert.Equal(4, v[0], 14);
        Assert.Equal(1.6, w[0], 14);
    }

    // ---- dropout's mask, forward and backward ----

    [SkippableTheory]
    [InlineData(0u)]
    [InlineData(1u)]
    [InlineData(2u)]
    [InlineData(3u)]
    [InlineData(4097u)]
    [InlineData(0xFFFF_FFF0u)]
    public void TheDropoutGradientsMaskIsTheForwardMaskElementForElement(uint offset)
    {
        const int count = 1003;
        const float keepProb = 0.55f;
        const ulong seed = 0x0DD_BA11_CAFE;
        ComputeDevice device = fixture.Device;
        using var forwardKernels = new NetworkKernels(device);
        using var backwardKernels = new BackwardKernels(device);
        // Positive values, and fc6's fused form (bias + ReLU + dropout) with a positive bias, so that the ReLU
        // passes everything and a zero can only be the mask's.
        float[] x = [.. Enumerable.Range(0, count).Select(i => 1f + i % 100 / 100f)];
        const int features = 17;
        float[] bias = [.. Enumerable.Range(0, features).Select(i => 0.5f + i / 64f)];
        using DeviceBuffer<float> plain = device.Upload<float>(x);
        using DeviceBuffer<float> fused = device.Upload<float>(x.AsSpan(0, count / features * features));
        using DeviceBuffer<float> dBias = device.Upload<float>(bias);
        using DeviceBuffer<float> grad = device.Upload<float>([.. Enumerable.Repeat(1f, count)]);
        forwardKernels.Dropout(device.DefaultStream, plain, count, keepProb, seed, offset);
        forwardKernels.Dropout(device.DefaultStream, fused, count / features * features, keepProb, seed, offset, dBias, features);
        backwardKernels.DropoutBackward(device.DefaultStream, grad, count, keepProb, seed, offset);
        float[] y = device.Download(plain), yFused = device.Download(fused), g = device.Download(grad);

        float scale = 1f / keepProb;
        int kept = 0;
        for (int i = 0; i < count; i++)
        {
            bool keptForward = y[i] != 0;
            Assert.True(keptForward == (g[i] != 0), $"element {i} at offset {offset}: forward {y[i]}, backward {g[i]}");
            if (i < yFused.Length) Assert.True(keptForward == (yFused[i] != 0), $"element {i} at offset {offset}: fused forward {yFused[i]}");
            // Both are the reference's decision, and the backward factor is the forward's float 1/keepProb.
            Assert.Equal(LayerReference.DropoutUniform(seed, (ulong)offset + (ulong)i) < keepProb, keptForward);
            if (keptForward)
            {
                kept++;
                Assert.Equal(scale, g[i]);
            }
        }
        Assert.InRange((double)kept, count * 0.45, count * 0.65);
    }

    [SkippableFact]
    public void AGradientDroppedInTwoPiecesGetsTheMaskOfOnePiece()
    {
        const int count = 5_003, split = 1_234; // the piece boundary falls inside a Philox block of four
        ComputeDevice device = fixture.Device;
        using var kernels = new BackwardKernels(device);
        float[] grad = KernelChecks.TestData(count, seed: 21);
        using DeviceBuffer<float> whole = device.Upload<float>(grad);
        using DeviceBuffer<float> head = device.Upload<float>(grad.AsSpan(0, split));
        using DeviceBuffer<float> tail = device.Upload<float>(grad.AsSpan(split));
        kernels.DropoutBackward(device.DefaultStream, whole, count, 0.6f, 77, 0);
        kernels.DropoutBackward(device.DefaultStream, head, split, 0.6f, 77, 0);
        kernels.DropoutBackward(device.DefaultStream, tail, count - split, 0.6f, 77, split);
        float[] joined = [.. device.Download(head), .. device.Download(tail)];
        Assert.Equal(device.Download(whole), joined);
    }

    // ---- in place ----

    [SkippableFact]
    public void SoftmaxCrossEntropyInPlaceGivesTheSameBitsAsIntoAnotherBuffer()
    {
        const int rows = 3, classes = 1000;
        ComputeDevice device = fixture.Device;
        using var kernels = new BackwardKernels(device);
        float[] logits = KernelChecks.TestData(rows * classes, seed: 22);
        using DeviceBuffer<float> inPlace = device.Upload<float>(logits);
        using DeviceBuffer<float> source = device.Upload<float>(logits);
        using DeviceBuffer<float> separate = device.Allocate<float>(rows * classes);
        using DeviceBuffer<int> labels = device.Upload<int>([5, 999, 0]);
        using DeviceBuffer<float> lossA = device.Allocate<float>(rows);
        using DeviceBuffer<float> lossB = device.Allocate<float>(rows);
        kernels.SoftmaxCrossEntropyBackward(device.DefaultStream, inPlace, lossA, inPlace, labels, rows, classes, 1f / rows);
        kernels.SoftmaxCrossEntropyBackward(device.DefaultStream, separate, lossB, source, labels, rows, classes, 1f / rows);
        Assert.Equal(device.Download(separate), device.Download(inPlace));
        Assert.Equal(device.Download(lossB), device.Download(lossA));
        Assert.Equal(logits, device.Download(source));
    }

    // ---- bad input ----

    [SkippableFact]
    public void BadSizesAndBuffersAreRefusedWithOneLineNamingTheOperation()
    {
        ComputeDevice device = fixture.Device;
        using var kernels = new BackwardKernels(device);
        ComputeStream s = device.DefaultStream;
        using DeviceBuffer<float> a = device.Allocate<float>(1000);
        using DeviceBuffer<float> b = device.Allocate<float>(1000);
        using DeviceBuffer<float> c = device.Allocate<float>(1000);
        using DeviceBuffer<float> small = device.Allocate<float>(10);
        using DeviceBuffer<int> labels = device.Allocate<int>(10);

        Refused("SoftmaxCrossEntropyBackward: rows must be positive, not 0", () => kernels.SoftmaxCrossEntropyBackward(s, a, b, c, labels, 0, 10, 1f));
        Refused("SoftmaxCrossEntropyBackward: classes must be positive, not -1", () => kernels.SoftmaxCrossEntropyBackward(s, a, b, c, labels, 2, -1, 1f));
        Refused("SoftmaxCrossEntropyBackward: rows·classes = 4294967296 elements exceeds",
            () => kernels.SoftmaxCrossEntropyBackward(s, a, b, c, labels, 65536, 65536, 1f));
        Refused("SoftmaxCrossEntropyBackward: scale must be a finite number, not NaN",
            () => kernels.SoftmaxCrossEntropyBackward(s, a, b, c, labels, 2, 10, float.NaN));
        Refused("SoftmaxCrossEntropyBackward: gradLogits holds 10 floats but the operation needs 20",
            () => kernels.SoftmaxCrossEntropyBackward(s, small, b, c, labels, 2, 10, 1f));
        Refused("SoftmaxCrossEntropyBackward: labels holds 10 values but the operation needs 11",
            () => kernels.SoftmaxCrossEntropyBackward(s, a, b, c, labels, 11, 10, 1f));
        Refused("SoftmaxCrossEntropyBackward: the loss must be a buffer of its own",
            () => kernels.SoftmaxCrossEntropyBackward(s, a, a, c, labels, 2, 10, 1f));
        Refused("SoftmaxCrossEntropyBackward: the loss must be a buffer of its own",
            () => kernels.SoftmaxCrossEntropyBackward(s, a, c, c, labels, 2, 10, 1f));

        Refused("ReluBackward: count must be positive, not 0", () => kernels.ReluBackward(s, a, b, 0));
        Refused("ReluBackward: output holds 10 floats but the operation needs 11", () => kernels.ReluBackward(s, a, small, 11));
        Refused("ReluBackward: grad must not be the ReLU's output buffer", () => kernels.ReluBackward(s, a, a, 10));

        Refused("DropoutBackward: keepProb must be in (0, 1], not 0", () => kernels.DropoutBackward(s, a, 10, 0f, 1, 0));
        Refused("DropoutBackward: keepProb must be in (0, 1], not NaN", () => kernels.DropoutBackward(s, a, 10, float.NaN, 1, 0));
        Refused("DropoutBackward: keepProb must be in (0, 1], not 1.5", () => kernels.DropoutBackward(s, a, 10, 1.5f, 1, 0));
        Refused("DropoutBackward: grad holds 10 floats but the operation needs 11", () => kernels.DropoutBackward(s, small, 11, 0.5f, 1, 0));
        Refused("DropoutBackward: count must be positive, not -5", () => kernels.DropoutBackward(s, a, -5, 0.5f, 1, 0));

        Refused("BiasGradient: inner must be positive, not 0", () => kernels.BiasGradient(s, a, b, 1, 10, 0));
        Refused("BiasGradient: gradBias holds 10 floats but the operation needs 20", () => kernels.BiasGradient(s, small, b, 1, 20, 5));
        Refused("BiasGradient: grad holds 1000 floats but the operation needs 1010", () => kernels.BiasGradient(s, small, b, 101, 10, 1));
        Refused("BiasGradient: the output must not be one of the inputs", () => kernels.BiasGradient(s, a, a, 1, 10, 10));
        Refused("BiasGradient: outer·channels·inner = 3221225472 elements exceeds", () => kernels.BiasGradient(s, a, b, 3, 1 << 30, 1));

        Refused("SgdMomentum: count must be positive, not 0", () => kernels.SgdMomentum(s, a, b, c, 0, 0.01f, 0.9f, 0f));
        Refused("SgdMomentum: learningRate must be a finite number of 0 or more, not -0.01", () => kernels.SgdMomentum(s, a, b, c, 10, -0.01f, 0.9f, 0f));
        Refused("SgdMomentum: learningRate must be a finite number of 0 or more, not Infinity", () => kernels.SgdMomentum(s, a, b, c, 10, float.PositiveInfinity, 0.9f, 0f));
        Refused("SgdMomentum: weightDecay must be a finite number of 0 or more, not NaN", () => kernels.SgdMomentum(s, a, b, c, 10, 0.01f, 0.9f, float.NaN));
        Refused("SgdMomentum: momentum must be in [0, 1), not 1", () => kernels.SgdMomentum(s, a, b, c, 10, 0.01f, 1f, 0f));
        Refused("SgdMomentum: momentum must be in [0, 1), not -0.5", () => kernels.SgdMomentum(s, a, b, c, 10, 0.01f, -0.5f, 0f));
        Refused("SgdMomentum: velocity holds 10 floats but the operation needs 11", () => kernels.SgdMomentum(s, a, small, c, 11, 0.01f, 0.9f, 0f));
        Refused("SgdMomentum: weights, velocity and grad must be three separate buffers", () => kernels.SgdMomentum(s, a, a, c, 10, 0.01f, 0.9f, 0f));
        Refused("SgdMomentum: weights, velocity and grad must be three separate buffers", () => kernels.SgdMomentum(s, a, b, b, 10, 0.01f, 0.9f, 0f));
    }

    [SkippableFact]
    public void AStreamOrBufferOfAnotherDeviceIsRefusedAndADisposedInstanceThrows()
    {
        ComputeDevice device = fixture.Device;
        var kernels = new BackwardKernels(device);
        using OpenClDevice other = OpenClDevice.Open(null, TestCache.Shared);
        using DeviceBuffer<float> mine = device.Allocate<float>(100);
        using DeviceBuffer<float> mine2 = device.Allocate<float>(100);
        using DeviceBuffer<float> theirs = other.Allocate<float>(100);
        Refused("ReluBackward: the stream belongs to another device", () => kernels.ReluBackward(other.DefaultStream, mine, mine2, 10));
        Refused("SgdMomentum: grad belongs to another device", () => kernels.SgdMomentum(device.DefaultStream, mine, mine2, theirs, 10, 0.1f, 0.9f, 0f));
        kernels.Dispose();
        kernels.Dispose(); // a second release is harmless
        Assert.Throws<ObjectDisposedException>(() => kernels.ReluBackward(device.DefaultStream, mine, mine2, 10));
    }

    [SkippableFact]
    public void LaunchesAllocateNothing()
    {
        ComputeDevice device = fixture.Device;
        using var kernels = new BackwardKernels(device);
        ComputeStream s = device.DefaultStream;
        using DeviceBuffer<float> a = device.Allocate<float>(4096);
        using DeviceBuffer<float> b = device.Allocate<float>(4096);
        using DeviceBuffer<float> c = device.Allocate<float>(4096);
        using DeviceBuffer<float> loss = device.Allocate<float>(4);
        using DeviceBuffer<int> labels = device.Upload<int>([1, 2, 3, 4]);
        device.Fill(a, 0.5f);
        device.Fill(b, 0.25f);
        device.Fill(c, 0.125f);
        void LaunchAll()
        {
            kernels.SoftmaxCrossEntropyBackward(s, a, loss, a, labels, 4, 1000, 0.25f);
            kernels.ReluBackward(s, a, b, 4096);
            kernels.DropoutBackward(s, a, 4096, 0.5f, 3, 0);
            kernels.BiasGradient(s, c, a, 4, 1000, 1);
            kernels.BiasGradient(s, c, a, 1, 16, 256, accumulate: true);
            kernels.SgdMomentum(s, a, b, c, 4096, 0.01f, 0.9f, 5e-4f);
        }
        LaunchAll(); // first launches: PoCL compiles each kernel for the local size
        device.Synchronize();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++) LaunchAll();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        device.Synchronize();
        Assert.Equal(0, allocated);
    }

    private static void Refused(string expectedStart, Action action)
    {
        var e = Assert.ThrowsAny<AlexNetException>(action);
        Assert.StartsWith(expectedStart, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
