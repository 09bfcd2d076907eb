using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>
/// The epilogue checks of <c>alexnet check</c> are for a GPU; here their reference and bound are held against an
/// independent emulation of the epilogue on the OpenCL device: the device's GEMM into an FP32 C (FP32 accumulation,
/// as cuBLASLt's epilogue sees it), then on the host the bias added in float, the ReLU, and one rounding to C's
/// format. That passes every case, and each plausible fault of an epilogue (the bias one feature off, the ReLU
/// missing or extra, an element outside C written) fails it: the checks can tell a right GEMM from a wrong one.
/// </summary>
[Collection(OpenClCollection.Name)]
public class EpilogueCheckTests(OpenClFixture fixture)
{
    public static TheoryData<string> Cases() => new(EpilogueChecks.GemmCases.Select(c => c.Name));

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void TheCheckPassesAnEmulatedEpilogueAndFailsEachFault(string name)
    {
        ComputeDevice device = fixture.Device;
        TestNative.Require(NativeLibraryId.ClBlast);
        EpilogueChecks.GemmCase c = EpilogueChecks.GemmCases.Single(x => x.Name == name);
        EpilogueChecks.GemmProblem p = EpilogueChecks.Prepare(c);
        Skip.IfNot(device.SupportsGemm(p.Format, Precisions.Math(c.Precision), out string? reason), reason);

        float[] sums = ProductOnTheDevice(device, c, p);
        ComparisonResult right = EpilogueChecks.Judge(p, Epilogue(c, p, sums, biasShift: 0, relu: c.Relu));
        Assert.True(right.Passed, right.Detail);

        Assert.False(EpilogueChecks.Judge(p, Epilogue(c, p, sums, biasShift: 1, relu: c.Relu)).Passed, "the bias one feature off passed");
        Assert.False(EpilogueChecks.Judge(p, Epilogue(c, p, sums, biasShift: 0, relu: !c.Relu)).Passed, "a missing or extra ReLU passed");
        float[] guard = Epilogue(c, p, sums, biasShift: 0, relu: c.Relu);
        guard[^1] = 0f;
        Assert.False(EpilogueChecks.Judge(p, guard).Passed, "a write past C passed");
        if (p.Ldc > c.F)
        {
            float[] padding = Epilogue(c, p, sums, biasShift: 0, relu: c.Relu);
            padding[c.F] = 0f; // the first element of row 0's padding
            Assert.False(EpilogueChecks.Judge(p, padding).Passed, "a write into the pitch's padding passed");
        }
    }

    [SkippableFact]
    public void OnADeviceWithoutTheEpilogueEveryEpilogueCheckIsNotApplicableWithTheReason()
    {
        ComputeDevice device = fixture.Device;
        Assert.False(device.SupportsGemmBias(ElementFormat.Float32, GemmMath.Default, out string? reason));
        var checks = EpilogueChecks.All().ToList();
        Assert.Equal(EpilogueChecks.GemmCases.Count + 1 + 4, checks.Count);
        Assert.Contains(checks, x => x.Name.StartsWith("epilogue fp32: full-size AlexNet", StringComparison.Ordinal));
        foreach ((string name, Func<ComputeDevice, ComparisonResult> run) in checks)
        {
            var e = Assert.Throws<CheckNotApplicableException>(() => run(device));
            Assert.Equal(reason, e.Message);
        }
        Assert.Contains(KernelChecks.All(), x => x.Name == checks[0].Name);
    }

    /// <summary>The whole-model check's sequence, on a device that records instead of computing (so every value is 0 and
    /// the comparisons are trivial): the kernel model's layers, the epilogue model's layers and two passes, the second a
    /// replay; a capture that fails fails the check with the reason.</summary>
    [Fact]
    public void TheModelCheckComparesBothPathsAndReplaysTheEpilogue()
    {
        var narrow = new Lazy<AlexNet.Cuda.Weights.AlexNetWeights>(() => SyntheticNetwork.Weights(SyntheticNetwork.Narrow, seed: 17));
        using (var device = new RecordingDevice { HasGemmBias = true, CapturesGraphs = true })
        {
            ComparisonResult result = EpilogueChecks.ModelMatchesTheKernelPath(device, Precision.Fp32, narrow);
            Assert.True(result.Passed, result.Detail);
            // Features (fc6, fc7), the first pass, its capture; the replay calls nothing.
            Assert.Equal(6, device.GemmBiases.Count);
            Assert.Equal(1, device.GraphLaunches);
            Assert.EndsWith("the second pass bit-identical to the first; graphs on (a graph per batch size, at most 8): batch 3 captured, 1 replays", result.Detail);
        }
        using (var failing = new RecordingDevice { HasGemmBias = true, CapturesGraphs = true, CaptureFailure = "cuStreamEndCapture(stream, out graph) failed: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED (900)" })
        {
            ComparisonResult result = EpilogueChecks.ModelMatchesTheKernelPath(failing, Precision.Fp32, narrow);
            Assert.False(result.Passed);
            Assert.Contains("the pass with the epilogue was not captured: cuStreamEndCapture(stream, out graph) failed: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED (900);", result.Detail);
        }
    }

    /// <summary>x·w in FP32 on the device, [N][F] contiguous.</summary>
    private static float[] ProductOnTheDevice(ComputeDevice device, EpilogueChecks.GemmCase c, EpilogueChecks.GemmProblem p)
    {
        using DeviceBuffer x = device.Upload(p.X, p.Format), w = device.Upload(p.W, p.Format);
        using DeviceBuffer<float> y = device.Allocate<float>((long)c.N * c.F);
        device.DefaultStream.Gemm(MatrixView.RowMajor(x, p.Format, c.N, c.K, c.OffsetA), MatrixView.RowMajor(w, p.Format, c.K, c.F),
            MatrixView.RowMajor(y, c.N, c.F), math: Precisions.Math(c.Precision));
        return device.Download(y);
    }

    /// <summary>C as an epilogue writes it into its NaN-filled buffer: sum + bias[j + biasShift] in float, the ReLU when
    /// <paramref name="relu"/>, rounded once to C's format.</summary>
    private static float[] Epilogue(EpilogueChecks.GemmCase c, EpilogueChecks.GemmProblem p, float[] sums, int biasShift, bool relu)
    {
        var got = new float[p.Expected.Length];
        Array.Fill(got, float.NaN);
        for (int r = 0; r < c.N; r++)
        for (int j = 0; j < c.F; j++)
        {
            float v = sums[r * c.F + j] + p.Bias[j + biasShift];
            if (relu && v < 0) v = 0;
            got[(long)r * p.Ldc + j] = p.Format == ElementFormat.Float32 ? v : ElementFormats.ToFloat(ElementFormats.ToBits(v, p.Format), p.Format);
        }
        return got;
    }
}
