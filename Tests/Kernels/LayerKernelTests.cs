using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Kernels;

/// <summary>
/// What the layer checks (<see cref="LayerChecks"/>, run by <see cref="OpenClKernelTests"/>) do not cover:
/// dropout's statistics and invariances, Philox against its published known answers, the references
/// against hand-worked examples, and <see cref="NetworkKernels"/> refusing bad sizes with one line.
/// </summary>
[Collection(OpenClCollection.Name)]
public class LayerKernelTests(OpenClFixture fixture)
{
    // ---- Philox-4x32-10 ----

    /// <summary>
    /// The three philox4x32 10 lines of Random123's known-answer file (tests/kat_vectors in the Random123
    /// distribution by D. E. Shaw Research): counter 0 / key 0, counter and key all ones, and the
    /// digits of pi. Columns there: counter (4 words), key (2 words), expected output (4 words).
    /// </summary>
    public static TheoryData<uint[], uint[], uint[]> PhiloxKnownAnswers() => new()
    {
        { [0x00000000, 0x00000000, 0x00000000, 0x00000000], [0x00000000, 0x00000000], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8] },
        { [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd] },
        { [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1] },
    };

    [Theory]
    [MemberData(nameof(PhiloxKnownAnswers))]
    public void PhiloxReferenceGivesThePublishedKnownAnswers(uint[] counter, uint[] key, uint[] expected)
    {
        (uint x0, uint x1, uint x2, uint x3) = LayerReference.Philox4x32_10((counter[0], counter[1], counter[2], counter[3]), (key[0], key[1]));
        uint[] got = [x0, x1, x2, x3];
        Assert.Equal(expected, got);
    }

    [SkippableFact]
    public void TheDropoutKernelsPhiloxGivesTheKnownAnswerForCounterZeroKeyZero()
    {
        // Elements 0-3 of offset 0 use counter (0, 0, 0, 0); with keepProb 1 every element is kept and
        // shows nothing, so compare the decisions at a keepProb between neighbouring uniforms instead:
        // u = (word >> 8)·2^-24 for the words 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
        float[] u = [0x6627e8d5 >> 8, 0xe169c58d >> 8, 0xbc57ac4c >> 8, 0x9b00dbd8 >> 8];
        for (int i = 0; i < 4; i++) u[i] /= 1 << 24;
        Assert.Equal(u[0], LayerReference.DropoutUniform(0, 0));
        Assert.Equal(u[3], LayerReference.DropoutUniform(0, 3));
        // keepProb just above word 0's uniform keeps element 0 and drops the three larger ones.
        float keep = MathF.BitIncrement(u[0]);
        float[] result = RunDropout(fixture.Device, [1f, 1f, 1f, 1f], keep, seed: 0, offset: 0);
        float[] expected = [1f / keep, 0f, 0f, 0f];
        Assert.Equal(expected, result);
    }

    // ---- dropout ----

    [SkippableTheory]
    [InlineData(0.5f)]
    [InlineData(0.1f)]
    [InlineData(0.9f)]
    public void DropoutKeepsTheRightFractionAndScalesKeptValuesExactly(float keepProb)
    {
        const int count = 1_000_000;
        float[] x = Positive(count);
        float[] result = RunDropout(fixture.Device, x, keepProb, seed: 0x5EED_0000_0000_0001, offset: 0);
        float scale = 1f / keepProb;
        int kept = 0;
        var keptPerWord = new int[4];
        for (int i = 0; i < count; i++)
        {
            if (result[i] == 0f) continue;
            kept++;
            keptPerWord[i % 4]++;
            // x·(1/keepProb), the float reciprocal as TensorFlow computes it: exactly that value.
            Assert.Equal(x[i] * scale, result[i]);
        }
        Assert.InRange((double)kept / count, keepProb * 0.99, keepProb * 1.01);
        // Each of Philox's four output words is used for every fourth element: none may be biased.
        foreach (int k in keptPerWord) Assert.InRange(4.0 * k / count, keepProb * 0.98, keepProb * 1.02);
    }

    [SkippableFact]
    public void DropoutWithHalfKeepsValuesExactlyDividedByKeepProb()
    {
        float[] x = KernelChecks.TestData(10_001, seed: 3);
        float[] result = RunDropout(fixture.Device, x, 0.5f, seed: 99, offset: 0);
        for (int i = 0; i < x.Length; i++)
            if (result[i] != 0f || x[i] == 0f) Assert.Equal(x[i] / 0.5f, result[i]);
    }

    [SkippableFact]
    public void TheMaskIsAFunctionOfTheSeedAlone()
    {
        const int count = 100_003;
        float[] x = Positive(count);
        float[] first = RunDropout(fixture.Device, x, 0.5f, seed: 12345, offset: 0);
        float[] again = RunDropout(fixture.Device, x, 0.5f, seed: 12345, offset: 0);
        Assert.Equal(first, again);
        // Another seed, and a seed differing only in its high 32 bits (the key's second word), give other masks.
        foreach (ulong other in new ulong[] { 12346, 12345 + (1UL << 32) })
        {
            float[] different = RunDropout(fixture.Device, x, 0.5f, other, offset: 0);
            int differing = 0;
            for (int i = 0; i < count; i++) if ((first[i] == 0) != (different[i] == 0)) differing++;
            // Independent masks at keepProb 0.5 disagree on half of the elements.
            Assert.InRange((double)differing / count, 0.48, 0.52);
        }
    }

    [SkippableFact]
    public void TheMaskDoesNotDependOnTheLaunchGeometry()
    {
        const int count = 10_007;
        const float keepProb = 0.7f;
        const ulong seed = 0xDEAD_BEEF_0BAD_F00D;
        const uint offset = 5;
        ComputeDevice device = fixture.Device;
        float[] x = KernelChecks.TestData(count, seed: 8);
        float[] viaNetworkKernels = RunDropout(device, x, keepProb, seed, offset);

        // The same kernel launched by hand with other block sizes, one of them not a power of two.
        using KernelModule module = device.LoadModule("dropout.cu");
        Kernel kernel = module.GetKernel("dropout_kernel1");
        foreach (uint block in new uint[] { 32, 100, 1024 })
        {
            using DeviceBuffer<float> buffer = device.Upload<float>(x);
            var args = new KernelArguments();
            args.Add(buffer);
            args.Add(buffer); // no bias: features 0
            args.Add(0);
            args.Add(count);
            args.Add(keepProb);
            args.Add(unchecked((uint)seed));
            args.Add((uint)(seed >> 32));
            args.Add(offset);
            long philoxBlocks = ((long)offset + count - 1) / 4 - offset / 4 + 1;
            device.Launch(kernel, new Dim3(Dim3.CeilDiv(philoxBlocks, block)), new Dim3(block), args);
            Assert.Equal(viaNetworkKernels, device.Download(buffer));
        }
        Assert.Equal(LayerReference.Dropout(x, keepProb, seed, offset), viaNetworkKernels);
    }

    [SkippableFact]
    public void ATensorDroppedInTwoPiecesGetsTheMaskOfOnePiece()
    {
        const int count = 5_003, split = 1_234; // the piece boundary falls inside a Philox block of four
        float[] x = Positive(count);
        float[] whole = RunDropout(fixture.Device, x, 0.6f, seed: 77, offset: 0);
        float[] head = RunDropout(fixture.Device, x[..split], 0.6f, seed: 77, offset: 0);
        float[] tail = RunDropout(fixture.Device, x[split..], 0.6f, seed: 77, offset: split);
        float[] joined = [.. head, .. tail];
        Assert.Equal(whole, joined);
    }

    // ---- the references, by hand ----

    [Fact]
    public void LrnReferenceMatchesAHandWorkedExample()
    {
        // Channels 1, 2, 3 at one position, radius 1, alpha 0.5, beta 1, bias 1:
        // c0: 1/(1 + 0.5·(1 + 4)) = 1/3.5; c1: 2/(1 + 0.5·14) = 2/8; c2: 3/(1 + 0.5·13) = 3/7.5.
        float[] result = LayerReference.Lrn([1f, 2f, 3f], 3, 1, new LrnParameters(1, 0.5f, 1f, 1f));
        Assert.Equal([1f / 3.5f, 0.25f, 0.4f], result);
        // beta 0.5: c1 = 2/sqrt(8).
        Assert.Equal((float)(2 / Math.Sqrt(8)), LayerReference.Lrn([1f, 2f, 3f], 3, 1, new LrnParameters(1, 0.5f, 0.5f, 1f))[1], 1e-7f);
    }

    [Fact]
    public void MaxPoolReferenceMatchesAHandWorkedExampleInBothLayouts()
    {
        // Two 3×3 planes, window 2, stride 1 -> 2×2 each. The second plane holds -inf (never the maximum
        // next to a number) and NaN (always the result of its window).
        float[] input = [1, 5, 2, 4, 3, 9, 0, 8, 7, /* plane 1 */ -1, -2, -3, -4, float.NegativeInfinity, -6, -7, -8, float.NaN];
        // As two channels of one image, [C][N][Ho][Wo].
        float[] cnhw = LayerReference.MaxPool(input, 2, 1, 3, 3, 2, 2, 2, 1, 4, 4, 8, fill: -99);
        float[] expected = [5, 9, 8, 9, -1, -2, -4, float.NaN];
        Assert.Equal(expected, cnhw);
        // As two images of one channel, with a gap of two elements between the images (outStrideN 6).
        float[] gapped = LayerReference.MaxPool(input, 1, 2, 3, 3, 2, 2, 2, 1, 0, 6, 10, fill: -99);
        float[] expectedGapped = [5, 9, 8, 9, -99, -99, -1, -2, -4, float.NaN];
        Assert.Equal(expectedGapped, gapped);
    }

    [Fact]
    public void Im2ColReferenceMatchesAHandWorkedExample()
    {
        // One channel, one image 2×3: 1 2 3 / 4 5 6; window 2×2, stride 1, pad 0 -> out 1×2.
        float[] col = LayerReference.Im2Col([1, 2, 3, 4, 5, 6], 1, 1, 2, 3, 0, 1, 2, 2, 1, 0, 1, 2);
        // Rows are the taps (0,0), (0,1), (1,0), (1,1); columns the two windows.
        float[] expected = [1, 2, 2, 3, 4, 5, 5, 6];
        Assert.Equal(expected, col);
        // Pad 1, stride 2 -> 2×2 windows whose top-left corners are (-1,-1), (-1,1), (1,-1), (1,1).
        float[] padded = LayerReference.Im2Col([1, 2, 3, 4, 5, 6], 1, 1, 2, 3, 0, 1, 2, 2, 2, 1, 2, 2);
        float[] expectedPadded =
        [
            0, 0, 0, 5, // tap (0,0)
            0, 0, 4, 6, // tap (0,1)
            0, 2, 0, 0, // tap (1,0)
            1, 3, 0, 0, // tap (1,1)
        ];
        Assert.Equal(expectedPadded, padded);
    }

    [Fact]
    public void SoftmaxAndInputReferencesMatchHandWorkedExamples()
    {
        // Logits 0 and ln 3 with bias 0 -> probabilities 1/4, 3/4.
        (float[] z, float[] p) = LayerReference.Softmax([0f, (float)Math.Log(3)], [0f, 0f], 1, 2);
        Assert.Equal(0f, z[0]);
        Assert.Equal(0.25f, p[0], 6);
        Assert.Equal(0.75f, p[1], 6);
        // Huge logits do not overflow: the maximum is subtracted first.
        (_, float[] big) = LayerReference.Softmax([1e30f, 1e30f], [0f, 0f], 1, 2);
        float[] halves = [0.5f, 0.5f];
        Assert.Equal(halves, big);
        // [n][p][c] -> [c][n][p] for 2 images of 2 pixels of 3 channels.
        float[] cnhw = LayerReference.ConvertInput([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 2, 2, 3);
        float[] expectedCnhw = [1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12];
        Assert.Equal(expectedCnhw, cnhw);
    }

    // ---- NetworkKernels refusing bad input ----

    [SkippableFact]
    public void BadSizesAreRefusedWithOneLineNamingTheOperation()
    {
        ComputeDevice device = fixture.Device;
        using var kernels = new NetworkKernels(device);
        ComputeStream s = device.DefaultStream;
        using DeviceBuffer<float> a = device.Allocate<float>(1000);
        using DeviceBuffer<float> b = device.Allocate<float>(1000);
        using DeviceBuffer<float> small = device.Allocate<float>(10);

        Refused("ConvertInput: images must be positive, not 0", () => kernels.ConvertInput(s, a, b, 0, 10, 3));
        Refused("ConvertInput: output holds 10 floats but the operation needs 30", () => kernels.ConvertInput(s, small, b, 1, 10, 3));
        Refused("ConvertInput: images·pixels·channels = 6442450941 elements exceeds", () => kernels.ConvertInput(s, a, b, 3, int.MaxValue, 1));
        Refused("ConvertInput: the output must not be one of the inputs", () => kernels.ConvertInput(s, a, a, 1, 10, 3));

        Refused("Im2Col: outH is 4 but windows of 3 with stride 1 over a height of 7 give 5",
            () => kernels.Im2Col(s, a, b, 1, 1, 7, 7, 0, 1, 3, 3, 1, 0, 4, 5));
        Refused("Im2Col: a window of 9 does not fit in the width of 5 padded by 1",
            () => kernels.Im2Col(s, a, b, 1, 1, 7, 5, 0, 1, 3, 9, 1, 1, 7, 1));
        Refused("Im2Col: images [1, 3) are not all inside the batch of 2",
            () => kernels.Im2Col(s, a, b, 1, 2, 3, 3, 1, 2, 1, 1, 1, 0, 3, 3));
        Refused("Im2Col: pad must be 0 or more, not -1", () => kernels.Im2Col(s, a, b, 1, 1, 3, 3, 0, 1, 1, 1, 1, -1, 3, 3));
        Refused("Im2Col: channels·kernelH·kernelW = 65536 exceeds 65535 rows",
            () => kernels.Im2Col(s, a, b, 65536, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1));
        Refused("Im2Col: col holds 1000 floats but the operation needs 1521",
            () => kernels.Im2Col(s, a, b, 1, 1, 13, 13, 0, 1, 3, 3, 1, 1, 13, 13));

        Refused("BiasRelu: channels must be positive, not -3", () => kernels.BiasRelu(s, a, b, 1, -3, 5, true));
        // Sizes the launch puts in the grid's y or z dimension.
        Refused("BiasRelu: outer = 70000 exceeds 65535", () => kernels.BiasRelu(s, a, b, 70000, 1, 1, false));
        Refused("BiasRelu: channels = 70000 exceeds 65535", () => kernels.BiasRelu(s, a, b, 1, 70000, 2, false));
        Refused("Lrn: channels = 70000 exceeds 65535", () => kernels.Lrn(s, a, b, 70000, 1, LrnParameters.Default));
        Refused("Im2Col: images = 70000 exceeds 65535", () => kernels.Im2Col(s, a, b, 1, 70000, 1, 1, 0, 70000, 1, 1, 1, 0, 1, 1));
        Refused("MaxPool: channels = 70000 exceeds 65535", () => kernels.MaxPool(s, a, b, 70000, 1, 1, 1, 1, 1, 1, 1, 1, 70000));
        Refused("BiasRelu: bias holds 10 floats but the operation needs 20", () => kernels.BiasRelu(s, a, small, 1, 20, 5, true));

        Refused("LRN bias must be greater than 0, not 0", () => kernels.Lrn(s, a, b, 10, 10, LrnParameters.Default with { Bias = 0 }));
        Refused("Lrn: the output must not be one of the inputs", () => kernels.Lrn(s, a, a, 10, 10, LrnParameters.Default));
        Refused("Lrn: input holds 10 floats but the operation needs 100", () => kernels.Lrn(s, a, small, 10, 10, LrnParameters.Default));

        Refused("MaxPool: outW is 3 but windows of 3 with stride 2 over a width of 9 give 4",
            () => kernels.MaxPool(s, a, b, 1, 1, 9, 9, 4, 3, 3, 2, 12, 12));
        Refused("MaxPool: a window of 5 does not fit in the height of 4", () => kernels.MaxPool(s, a, b, 1, 1, 4, 9, 1, 3, 5, 2, 3, 3));
        Refused("MaxPool: output strides outStrideC 4 and outStrideN 9 make the 9-float planes",
            () => kernels.MaxPool(s, a, b, 2, 2, 7, 7, 3, 3, 3, 2, 4, 9));
        Refused("MaxPool: output strides must not be negative", () => kernels.MaxPool(s, a, b, 2, 1, 7, 7, 3, 3, 3, 2, -9, 9));

        Refused("Dropout: keepProb must be in (0, 1], not 0; use 1", () => kernels.Dropout(s, a, 10, 0f, 1, 0));
        Refused("Dropout: keepProb must be in (0, 1], not 1.5", () => kernels.Dropout(s, a, 10, 1.5f, 1, 0));
        Refused("Dropout: keepProb must be in (0, 1], not NaN", () => kernels.Dropout(s, a, 10, float.NaN, 1, 0));
        Refused("Dropout: x holds 10 floats but the operation needs 11", () => kernels.Dropout(s, small, 11, 0.5f, 1, 0));

        Refused("Softmax: classes must be positive, not 0", () => kernels.Softmax(s, a, b, small, 2, 0));
        Refused("Softmax: bias holds 10 floats but the operation needs 11", () => kernels.Softmax(s, a, b, small, 2, 11));
        Refused("Softmax: the output must not be one of the inputs", () => kernels.Softmax(s, a, a, small, 2, 10));
    }

    [SkippableFact]
    public void AStreamOrBufferOfAnotherDeviceIsRefused()
    {
        ComputeDevice device = fixture.Device;
        using var kernels = new NetworkKernels(device);
        using OpenClDevice other = OpenClDevice.Open(null, TestCache.Shared);
        using DeviceBuffer<float> mine = device.Allocate<float>(100);
        using DeviceBuffer<float> theirs = other.Allocate<float>(100);
        Refused("BiasRelu: the stream belongs to another device", () => kernels.BiasRelu(other.DefaultStream, mine, mine, 1, 1, 1, false));
        Refused("Lrn: input belongs to another device", () => kernels.Lrn(device.DefaultStream, mine, theirs, 10, 10, LrnParameters.Default));
    }

    [Fact]
    public void LrnParametersDefaultToAlexNetsAndRefuseAnUnusableDomain()
    {
        LrnParameters p = LrnParameters.Default;
        Assert.Equal((2, 2e-5f, 0.75f, 1f), (p.Radius, p.Alpha, p.Beta, p.Bias));
        Assert.Equal(p, new LrnParameters());
        p.Validate();
        Refused("LRN radius must be 0 or more, not -1", () => (p with { Radius = -1 }).Validate());
        Refused("LRN alpha, beta and bias must be finite numbers", () => (p with { Beta = float.PositiveInfinity }).Validate());
        Refused("LRN alpha, beta and bias must be finite numbers", () => (p with { Alpha = float.NaN }).Validate());
        Refused("LRN bias must be greater than 0, not -1", () => (p with { Bias = -1 }).Validate());
        Refused("LRN alpha must be 0 or more, not -0.5", () => (p with { Alpha = -0.5f }).Validate());
        // The zeroed struct (default) is not silently usable.
        Refused("LRN bias must be greater than 0, not 0", () => default(LrnParameters).Validate());
    }

    [SkippableFact]
    public void AnOpenClCpuDeviceGetsTheCpuVariantsByDefaultAndEitherTargetCanBeAskedFor()
    {
        OpenClDevice device = fixture.Device;
        NetworkKernelTarget expected = device.Info.IsCpu ? NetworkKernelTarget.Cpu : NetworkKernelTarget.Gpu;
        Assert.Equal(expected, NetworkKernels.TargetOf(device));
        using var byDefault = new NetworkKernels(device);
        Assert.Equal(expected, byDefault.Target);
        using var gpu = new NetworkKernels(device, NetworkKernelTarget.Gpu);
        Assert.Equal(NetworkKernelTarget.Gpu, gpu.Target);
    }

    [SkippableTheory]
    [InlineData(NetworkKernelTarget.Gpu)]
    [InlineData(NetworkKernelTarget.Cpu)]
    public void LaunchesAllocateNothing(NetworkKernelTarget target)
    {
        ComputeDevice device = fixture.Device;
        using var kernels = new NetworkKernels(device, target);
        ComputeStream s = device.DefaultStream;
        using DeviceBuffer<float> a = device.Allocate<float>(4096);
        using DeviceBuffer<float> b = device.Allocate<float>(4096);
        using DeviceBuffer<float> c = device.Allocate<float>(64);
        device.Fill(a, 0.5f);
        device.Fill(b, 0.25f);
        device.Fill(c, 0.125f);
        void LaunchAll()
        {
            kernels.ConvertInput(s, a, b, 2, 64, 3);
            kernels.Im2Col(s, a, b, 2, 2, 8, 8, 0, 2, 3, 3, 1, 1, 8, 8);
            kernels.BiasRelu(s, a, c, 4, 16, 8, true);
            kernels.Lrn(s, a, b, 16, 64, LrnParameters.Default);
            kernels.MaxPool(s, a, b, 4, 2, 9, 9, 4, 4, 3, 2, 32, 16);
            kernels.Dropout(s, a, 1000, 0.5f, 3, 0);
            kernels.Softmax(s, a, b, c, 4, 64);
        }
        LaunchAll(); // first launches: PoCL compiles each kernel for the local size
        device.Synchronize();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10; i++) LaunchAll();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        device.Synchronize();
        Assert.Equal(0, allocated);
    }

    // ---- shared pieces ----

    private static void Refused(string expectedStart, Action action)
    {
        var e = Assert.ThrowsAny<AlexNetException>(action);
        Assert.StartsWith(expectedStart, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    /// <summary>Values in [1, 2): a dropped element (0) can never be mistaken for a kept one.</summary>
    private static float[] Positive(int count)
    {
        var x = new float[count];
        for (int i = 0; i < count; i++) x[i] = 1f + i % 1000 / 1000f;
        return x;
    }

    private static float[] RunDropout(ComputeDevice device, float[] x, float keepProb, ulong seed, uint offset)
    {
        using var kernels = new NetworkKernels(device);
        using DeviceBuffer<float> buffer = device.Upload<float>(x);
        kernels.Dropout(device.DefaultStream, buffer, x.Length, keepProb, seed, offset);
        return device.Download(buffer);
    }
}
