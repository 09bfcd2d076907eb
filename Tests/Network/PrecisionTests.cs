using System.Text.Json;
using AlexNet.Cli;
using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>
/// The reduced precisions as a user meets them: names, the plan's memory, the refusal of a device that lacks a
/// precision, the kernels' refusal of a buffer of the wrong format, TF32 rounding, and `--precision` on the
/// commands. The numbers themselves are checked per precision by <see cref="PrecisionNetworkChecks"/> and
/// <see cref="GemmPrecisionChecks"/> (every check of <c>alexnet check</c> is a test too).
/// </summary>
[Collection(OpenClCollection.Name)]
public class PrecisionTests(OpenClFixture fixture)
{
    [Fact]
    public void EveryPrecisionHasOneNameAndUnknownNamesAreRefused()
    {
        foreach (Precision p in Precisions.All) Assert.Equal(p, Precisions.Parse(Precisions.Name(p)));
        Assert.Equal(Precision.Bf16, Precisions.Parse("BF16"));
        Assert.Null(Precisions.Parse("fp8"));
        Assert.Null(Precisions.Parse(""));
        Assert.Equal(ElementFormat.Float32, Precisions.Storage(Precision.Tf32));
        Assert.Equal(GemmMath.Tf32, Precisions.Math(Precision.Tf32));
        Assert.Equal(GemmMath.Default, Precisions.Math(Precision.Bf16));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(45)]
    public void SixteenBitPlansHalveTheActivationsWorkspaceAndWeights(int batch)
    {
        NetworkPlan fp32 = NetworkPlan.Create(AlexNetArchitecture.Default, batch, 64L << 20);
        NetworkPlan half = NetworkPlan.Create(AlexNetArchitecture.Default, batch, 64L << 20, elementBytes: 2);
        Assert.Equal(fp32.ArenaFloats, half.ArenaFloats);
        // The same workspace bytes hold twice the images' lowering, and the weights take half the bytes.
        Assert.All(half.Convolutions.Zip(fp32.Convolutions), p => Assert.InRange(p.First.WorkspaceImages, 2 * p.Second.WorkspaceImages, 2 * p.Second.WorkspaceImages + 1));
        Assert.Equal(fp32.PeakBytes - fp32.ActivationBytes, 2 * (half.PeakBytes - half.ActivationBytes));
        // Only the user's images, the logits and the probabilities stay FP32 (a 16-bit plan's last two in buffers of their own).
        long expected = (half.ArenaFloats[0] + half.ArenaFloats[1] + half.WorkspaceFloats) * 2 + half.StagingFloats * 4 + 2L * batch * 1000 * 4;
        Assert.Equal(expected, half.ActivationBytes);
        Assert.Equal(0, fp32.ProbabilityFloats);
        // Every step but those edges moves half the bytes; the FLOPs do not change.
        IReadOnlyList<StepCost> a = fp32.StepCosts(batch), b = half.StepCosts(batch);
        Assert.Equal(a.Select(s => s.Name), b.Select(s => s.Name));
        Assert.Equal(a.Sum(s => s.Flops), b.Sum(s => s.Flops));
        Assert.InRange(b.Sum(s => s.Bytes) / a.Sum(s => s.Bytes), 0.5, 0.56);
    }

    [Theory]
    [InlineData(3025, 4, 4)] // conv1's 55×55: odd, so 4 images make 16 bytes of floats, 8 of 16-bit values
    [InlineData(3025, 2, 8)]
    [InlineData(169, 2, 8)]
    [InlineData(6, 2, 4)]    // 6·4 = 24 values, 48 bytes
    [InlineData(8, 2, 1)]
    [InlineData(2, 4, 2)]
    public void ChunksAreAlignedTo16BytesOfTheirOwnElements(int pixels, int elementBytes, int granule)
    {
        Assert.Equal(granule, ConvolutionPlan.AlignmentGranule(pixels, elementBytes));
        Assert.Equal(0, (long)pixels * granule * elementBytes % 16);
    }

    [Fact]
    public void Tf32RoundingIsToNearestEvenOnTheTenthMantissaBit()
    {
        // An independent reference in double: the nearest multiple of 2^(exponent − 10), ties to an even multiple.
        var random = new Random(7);
        for (int i = 0; i < 20000; i++)
        {
            float x = i < 8 ? new[] { 1f, -1.5f, 1.00048828125f, 1.000732421875f, 3.4e38f, 1e-39f, 0f, -0f }[i]
                : BitConverter.Int32BitsToSingle(random.Next()) * (random.Next(2) == 0 ? 1 : -1);
            if (!float.IsFinite(x)) continue;
            int exponent = x == 0 ? -126 : Math.Max(-126, Math.ILogB((double)x));
            double step = Math.Pow(2, exponent - 10);
            double q = (double)x / step, lower = Math.Floor(q);
            double rounded = q - lower > 0.5 || (q - lower == 0.5 && lower % 2 != 0) ? lower + 1 : lower;
            float expected = (float)(rounded * step);
            Assert.Equal(expected, ElementFormats.RoundToTf32(x));
        }
        Assert.True(float.IsNaN(ElementFormats.RoundToTf32(float.NaN)));
        Assert.Equal(float.NegativeInfinity, ElementFormats.RoundToTf32(float.NegativeInfinity));
    }

    [SkippableFact]
    public void ADeviceWithoutTheGemmRefusesThePrecisionInOneLineNamingWhy()
    {
        _ = fixture.Device;
        TestNative.Require(NativeLibraryId.ClBlast);
        using OpenClDevice clblast = OpenClDevice.Open(null, TestCache.Shared, OpenClGemmProvider.ClBlast);
        Assert.True(Precisions.IsSupported(clblast, Precision.Fp32, out _));
        Assert.Equal([Precision.Fp32], Precisions.SupportedBy(clblast));
        var e = Assert.Throws<AlexNetException>(() => AlexNetModel.Create(clblast, SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 1),
            new AlexNetOptions { MaxBatch = 1, Precision = Precision.Fp16 }));
        Assert.Equal($"precision fp16 is not available on {clblast.Name}: CLBlast on {clblast.Name} runs FP32 GEMMs only; `alexnet info` lists each device's precisions", e.Message);
        // The GEMM itself refuses too, before any native call.
        using DeviceBuffer<ushort> x = clblast.Allocate<ushort>(16);
        var gemm = Assert.Throws<AlexNetException>(() => clblast.DefaultStream.Gemm(MatrixView.ColumnMajor(x, ElementFormat.Half, 4, 4),
            MatrixView.ColumnMajor(x, ElementFormat.Half, 4, 4), MatrixView.ColumnMajor(x, ElementFormat.Half, 4, 4)));
        Assert.StartsWith("GEMM in fp16: CLBlast on", gemm.Message);
        // And the OpenBLAS device (the default on PoCL) has them all.
        Assert.Equal(Precisions.All, Precisions.SupportedBy(fixture.Device));
    }

    [SkippableFact]
    public void SixteenBitKernelsRefuseAFloatBufferAndMixedGemmOperandsAreRefused()
    {
        ComputeDevice device = fixture.Device;
        using var kernels = new NetworkKernels(device, null, ElementFormat.BFloat16);
        using DeviceBuffer<float> floats = device.Allocate<float>(64);
        using DeviceBuffer<ushort> halves = device.Allocate<ushort>(64);
        using DeviceBuffer<float> bias = device.Upload<float>(new float[4]);
        var e = Assert.Throws<AlexNetException>(() => kernels.BiasRelu(device.DefaultStream, floats, bias, 1, 4, 16, relu: true));
        Assert.Equal("BiasRelu: x has 4-byte elements but these kernels store bf16 activations (2 bytes); allocate it for that format", e.Message);
        kernels.BiasRelu(device.DefaultStream, halves, bias, 1, 4, 16, relu: true); // the right format is taken
        Assert.Throws<ArgumentException>(() => MatrixView.ColumnMajor(floats, ElementFormat.Half, 4, 4));
        var mixed = Assert.Throws<ArgumentException>(() => device.DefaultStream.Gemm(MatrixView.ColumnMajor(halves, ElementFormat.Half, 4, 4),
            MatrixView.ColumnMajor(halves, ElementFormat.BFloat16, 4, 4), MatrixView.ColumnMajor(halves, ElementFormat.Half, 4, 4)));
        Assert.StartsWith("GEMM operands differ in format", mixed.Message);
        Assert.Throws<ArgumentException>(() => device.DefaultStream.Gemm(MatrixView.ColumnMajor(halves, ElementFormat.Half, 4, 4),
            MatrixView.ColumnMajor(halves, ElementFormat.Half, 4, 4), MatrixView.ColumnMajor(halves, ElementFormat.Half, 4, 4), math: GemmMath.Tf32));
    }

    [SkippableFact]
    public void TheToleranceCheckFailsWhenAPrecisionIsTooFarFromFp32()
    {
        // The accuracy record is what the checks pass or fail on: an error past the bound, or a top-1 disagreement
        // past 1 %, fails.
        var fine = new PrecisionAccuracy(Precision.Fp16, 256, 0.009, 0.996, 0.9, new Dictionary<string, double>());
        Assert.True(fine.WithinTolerance);
        Assert.False((fine with { MaxProbabilityError = 0.011 }).WithinTolerance);
        Assert.False((fine with { TopOneAgreement = 0.985 }).WithinTolerance);
        Assert.False((fine with { Precision = Precision.Tf32 }).WithinTolerance); // 0.009 is past TF32's 3e-3
    }

    [SkippableTheory]
    [InlineData("fp32")]
    [InlineData("bf16")]
    public void BenchRunsThePrecisionAskedForAndSaysSo(string precision)
    {
        _ = fixture.Device;
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--batch", "2", "--iterations", "1", "--warmup", "1", "--format", "json",
            "--precision", precision], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        using JsonDocument doc = JsonDocument.Parse(stdout.ToString());
        Assert.Equal(precision, doc.RootElement.GetProperty("precision").GetString());
        JsonElement result = Assert.Single(doc.RootElement.GetProperty("results").EnumerateArray());
        // Weights are most of a batch-2 model: 16-bit storage takes a little over half of FP32's bytes.
        long bytes = result.GetProperty("memory_bytes").GetInt64();
        NetworkPlan plan = NetworkPlan.Create(AlexNetArchitecture.Default, 2, AlexNetOptions.DefaultWorkspaceBytes, precision == "bf16" ? 2 : 4);
        Assert.Equal(plan.PeakBytes, bytes, (double)plan.PeakBytes * 0.02);
        // TorchSharp's FP32 network on the same images is the independent reference: bf16 stays within its bound.
        if (result.TryGetProperty("peer", out JsonElement peer))
        {
            Assert.InRange(peer.GetProperty("max_probability_difference").GetDouble(), 0, Precisions.Tolerance(Precisions.Parse(precision)!.Value).MaxProbabilityError + 1e-4);
            Assert.Equal(2, peer.GetProperty("top1_agreements").GetInt32());
        }
    }

    [Fact]
    public void AnUnknownPrecisionIsAUsageError()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["classify", "--weights", "w.npy", "--precision", "int8", "x.png"], stdout, stderr);
        Assert.Equal(2, code);
        Assert.Contains("--precision takes fp32, tf32, fp16 or bf16, not 'int8'", stderr.ToString());
    }

    [SkippableFact]
    public void CheckWithAPrecisionRunsThatPrecisionsNetworkChecksOnly()
    {
        _ = fixture.Device;
        string[] all = [.. KernelChecks.All().Select(c => c.Name)];
        string[] fp16 = [.. KernelChecks.All([Precision.Fp16]).Select(c => c.Name)];
        Assert.Contains(fp16, n => n.StartsWith("network fp16:", StringComparison.Ordinal));
        Assert.DoesNotContain(fp16, n => n.StartsWith("network bf16:", StringComparison.Ordinal) || n.StartsWith("network tf32:", StringComparison.Ordinal));
        Assert.Equal(all.Length - 6, fp16.Length);
    }
}

/// <summary>
/// Each reduced precision over the full-size network with synthetic weights against FP32, images in batches of
/// 32: within <see cref="Precisions.Tolerance"/>, with every layer's error printed. CI runs 32 images; set
/// ALEXNET_ACCURACY_IMAGES=256 for the measurement docs/performance.md records.
/// </summary>
[Collection(OpenClCollection.Name)]
public class PrecisionAccuracyTests(OpenClFixture fixture, Xunit.Abstractions.ITestOutputHelper output)
{
    [SkippableTheory]
    [InlineData("tf32")]
    [InlineData("fp16")]
    [InlineData("bf16")]
    public void TheFullNetworkInAReducedPrecisionStaysWithinItsToleranceOfFp32(string name)
    {
        Precision precision = Precisions.Parse(name)!.Value;
        int images = int.TryParse(Environment.GetEnvironmentVariable("ALEXNET_ACCURACY_IMAGES"), out int n) && n > 0 ? n : 32;
        PrecisionAccuracy accuracy = PrecisionNetworkChecks.Measure(fixture.Device, precision, images, layers: true);
        output.WriteLine($"{name}: {accuracy}");
        Assert.True(accuracy.WithinTolerance, accuracy.ToString());
        Assert.Equal(AlexNetModel.LayerNames.Count, accuracy.LayerErrors.Count);
        // Not FP32 in disguise: every layer differs from FP32 by at least a rounding of the format's inputs.
        Assert.All(accuracy.LayerErrors, e => Assert.True(e.Value > 1e-6, $"{e.Key}: {e.Value}"));
    }
}
