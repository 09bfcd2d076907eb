using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>
/// fc6's and fc7's bias and ReLU in the GEMM's epilogue (<see cref="AlexNetOptions.GemmEpilogue"/>,
/// <see cref="ComputeStream.GemmBias"/>), on a <see cref="RecordingDevice"/> that has such a GEMM and records each call
/// as the CUDA backend receives it: which layers are routed there and only when asked, with which operands, and what
/// GemmBias refuses. The numbers themselves are <c>alexnet check --device cuda</c>'s (EpilogueChecks).
/// </summary>
public class GemmEpilogueTests
{
    private static AlexNetModel Model(RecordingDevice device, GemmEpilogue epilogue, float keep = 1f, int maxBatch = 4) =>
        AlexNetModel.Create(device, SyntheticNetwork.Weights(SyntheticNetwork.Narrow, seed: 1),
            new AlexNetOptions { MaxBatch = maxBatch, GemmEpilogue = epilogue, KeepProbability = keep, UseGraphs = false });

    /// <summary>Launches and GEMM calls of one pass over <paramref name="n"/> images.</summary>
    private static (long Launches, long Gemms) Pass(AlexNetModel model, int n)
    {
        ComputeStream s = model.Stream;
        long l0 = s.Launches, g0 = s.Gemms;
        model.Run(n);
        return (s.Launches - l0, s.Gemms - g0);
    }

    [Theory]
    [InlineData(GemmEpilogue.Auto)]
    [InlineData(GemmEpilogue.Kernel)]
    public void UnlessAskedForTheBiasAndReluStayKernels(GemmEpilogue epilogue)
    {
        // Auto is the kernel until a GPU run measures cuBLASLt faster: even a device that has the epilogue gets no call.
        using var device = new RecordingDevice { HasGemmBias = true };
        using AlexNetModel model = Model(device, epilogue);
        Assert.False(model.UsesGemmEpilogue);
        device.Gemms.Clear();
        // The GPU's pass (the convolutions' bias+ReLU fused into the next kernels): 12 launches, fc6's and fc7's bias+ReLU among them.
        Assert.Equal((12L, 8L), Pass(model, 3));
        Assert.Empty(device.GemmBiases);
        Assert.Equal(8, device.Gemms.Count);
        Assert.Contains(model.StepCosts(3), c => c.Name == "fc6 bias+relu");
    }

    [Fact]
    public void AskedForFc6AndFc7GoToTheEpilogueAndFc8DoesNot()
    {
        using var device = new RecordingDevice { HasGemmBias = true };
        using AlexNetModel model = Model(device, GemmEpilogue.CublasLt);
        Assert.True(model.UsesGemmEpilogue);
        device.Gemms.Clear();
        // Two bias_relu launches fewer; as many GEMM calls, two of them with the epilogue.
        Assert.Equal((10L, 8L), Pass(model, 3));
        Assert.Equal(6, device.Gemms.Count); // five convolutions and fc8
        Assert.Equal(2, device.GemmBiases.Count);

        // fc6: [3][432]·[432][40] + bias[40], as cuBLASLt takes it: D (40×3) = W'(40×432)·X'(432×3), 40 rows of D, one
        // bias per row (per output feature) from the model's own FP32 bias, then ReLU. fc7 reads fc6's output.
        (int fc6In, int fc6Out) = (12 * 36, 40);
        RecordedGemmBias fc6 = device.GemmBiases[0], fc7 = device.GemmBiases[1];
        Assert.Equal((fc6Out, 3, fc6In, fc6Out, fc6In, fc6Out), (fc6.Call.M, fc6.Call.N, fc6.Call.K, fc6.Call.Lda, fc6.Call.Ldb, fc6.Call.Ldc));
        Assert.Equal((MatrixOp.None, MatrixOp.None, 1f, 0f, 1), (fc6.Call.TransA, fc6.Call.TransB, fc6.Call.Alpha, fc6.Call.Beta, fc6.Call.BatchCount));
        Assert.Same(model.WeightBuffer(5), fc6.Call.A);
        Assert.Same(model.BiasBuffer(5), fc6.Bias);
        Assert.True(fc6.Relu);
        Assert.Equal((ElementFormat.Float32, ElementFormat.Float32, GemmMath.Default), (fc6.Call.Format, fc6.Call.CFormat, fc6.Call.Math));
        Assert.Same(model.WeightBuffer(6), fc7.Call.A);
        Assert.Same(model.BiasBuffer(6), fc7.Bias);
        Assert.Same(fc6.Call.C, fc7.Call.B);
        Assert.Equal((40, 3, 40), (fc7.Call.M, fc7.Call.N, fc7.Call.K));
        Assert.True(fc7.Relu);
        // fc8's bias stays with the softmax kernel: its GEMM is a plain one.
        Assert.Equal(model.NumClasses, device.Gemms[^1].M);
    }

    [Fact]
    public void APassWithTheEpilogueAllocatesNothingAfterWarmUp()
    {
        using var device = new RecordingDevice { HasGemmBias = true };
        using AlexNetModel model = Model(device, GemmEpilogue.CublasLt);
        model.Run(3);
        device.GemmBiases.Clear();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 3; i++) model.Run(3);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(6, device.GemmBiases.Count);
    }

    [Fact]
    public void WithDropoutTheDropoutKernelKeepsTheBias()
    {
        using var device = new RecordingDevice { HasGemmBias = true };
        using AlexNetModel model = Model(device, GemmEpilogue.CublasLt, keep: 0.6f);
        Assert.False(model.UsesGemmEpilogue);
        Assert.Equal((12L, 8L), Pass(model, 2));
        Assert.Empty(device.GemmBiases);
    }

    [Fact]
    public void ADeviceWithoutTheEpilogueRefusesToBuildTheModelAndSaysWhy()
    {
        using var device = new RecordingDevice();
        var e = Assert.Throws<AlexNetException>(() => Model(device, GemmEpilogue.CublasLt));
        Assert.Equal("cuBLASLt's bias epilogue was asked for (GemmEpilogue = CublasLt), but recorded on recording device has no GEMM with a bias epilogue " +
            "(cuBLASLt's, on CUDA, is the engine's only one)", e.Message);
        Assert.Equal(0, device.LiveResources);
    }

    [Fact]
    public void TheStepCostsDropTheFcBiasPassesAndNameEveryProfiledStep()
    {
        using var device = new RecordingDevice { HasGemmBias = true };
        using AlexNetModel fused = Model(device, GemmEpilogue.CublasLt), plain = Model(device, GemmEpilogue.Kernel);
        IReadOnlyList<StepCost> withEpilogue = fused.StepCosts(3), without = plain.StepCosts(3);
        Assert.Equal(without.Count - 2, withEpilogue.Count);
        Assert.DoesNotContain(withEpilogue, c => c.Name.StartsWith("fc", StringComparison.Ordinal) && c.Name.EndsWith("bias+relu", StringComparison.Ordinal));
        // The GEMM reads its 40 biases too; the FLOPs are the GEMM's.
        StepCost a = withEpilogue.Single(c => c.Name == "fc6 gemm"), b = without.Single(c => c.Name == "fc6 gemm");
        Assert.Equal((b.Flops, b.Bytes + 40 * sizeof(float)), (a.Flops, a.Bytes));

        using ForwardProfile profile = fused.CreateProfile();
        fused.Run(3, profile);
        Assert.Equal(withEpilogue.Select(c => c.Name), profile.Read().Select(s => s.Name).Distinct());
    }

    [Fact]
    public void ACapturedPassReplaysTheEpilogueWithoutCallingItAgain()
    {
        using var device = new RecordingDevice { HasGemmBias = true, CapturesGraphs = true };
        using AlexNetModel model = AlexNetModel.Create(device, SyntheticNetwork.Weights(SyntheticNetwork.Narrow, seed: 1),
            new AlexNetOptions { MaxBatch = 3, GemmEpilogue = GemmEpilogue.CublasLt });
        model.Run(3); // launch by launch, then captured
        Assert.Equal(4, device.GemmBiases.Count);
        Assert.True(model.HasGraph(3));
        model.Run(3);
        Assert.Equal(4, device.GemmBiases.Count);
        Assert.Equal(1, device.GraphLaunches);
    }

    // ---- what GemmBias takes ----

    [Fact]
    public void GemmBiasTurnsARowMajorProblemColumnMajorWithAnOffsetAndAPitch()
    {
        using var device = new RecordingDevice { HasGemmBias = true };
        using DeviceBuffer<float> x = device.Allocate<float>(3 + 7 * 9), w = device.Allocate<float>(9 * 5), y = device.Allocate<float>(6 * 8 + 5);
        using DeviceBuffer<float> bias = device.Allocate<float>(5);
        ComputeStream s = device.DefaultStream;
        long gemms = s.Gemms;
        s.GemmBias(MatrixView.RowMajor(x, 7, 9, offset: 3), MatrixView.RowMajor(w, 9, 5), MatrixView.RowMajor(y, 7, 5, 0, leadingDimension: 8), bias, relu: false);
        GemmCall call = Assert.Single(device.GemmBiases).Call;
        Assert.Equal((5, 7, 9), (call.M, call.N, call.K));
        Assert.Same(w, call.A);
        Assert.Equal((0L, 5), (call.AOffset, call.Lda));
        Assert.Same(x, call.B);
        Assert.Equal((3L, 9), (call.BOffset, call.Ldb));
        Assert.Same(y, call.C);
        Assert.Equal(8, call.Ldc);
        Assert.False(device.GemmBiases[0].Relu);
        Assert.Equal(gemms + 1, s.Gemms);
    }

    [Fact]
    public void GemmBiasRefusesWhatTheEpilogueCannotDoInOneLine()
    {
        using var device = new RecordingDevice { HasGemmBias = true };
        using DeviceBuffer<float> x = device.Allocate<float>(4 * 6), w = device.Allocate<float>(6 * 5), y = device.Allocate<float>(4 * 5);
        using DeviceBuffer<float> bias = device.Allocate<float>(5), shortBias = device.Allocate<float>(4);
        using DeviceBuffer<ushort> halfBias = device.Allocate<ushort>(5);
        ComputeStream s = device.DefaultStream;
        MatrixView a = MatrixView.RowMajor(x, 4, 6), b = MatrixView.RowMajor(w, 6, 5), c = MatrixView.RowMajor(y, 4, 5);

        var columnMajor = Assert.Throws<ArgumentException>(() => s.GemmBias(a, b, MatrixView.ColumnMajor(y, 4, 5), bias, relu: true));
        Assert.StartsWith("GemmBias adds one bias per column of a row-major C; C is a column-major 4×5 view", columnMajor.Message);
        var tooShort = Assert.Throws<ArgumentOutOfRangeException>(() => s.GemmBias(a, b, c, shortBias, relu: true));
        Assert.StartsWith("the bias holds 4 values, but C has 5 columns", tooShort.Message);
        var format = Assert.Throws<ArgumentException>(() => s.GemmBias(a, b, c, halfBias, relu: true));
        Assert.StartsWith("the bias must be stored as C is (fp32, 4-byte elements), not in 2-byte elements", format.Message);
        var aliased = Assert.Throws<ArgumentException>(() => s.GemmBias(a, b, c, y, relu: true));
        Assert.StartsWith("the bias and C are the same buffer", aliased.Message);
        var shapes = Assert.Throws<ArgumentException>(() => s.GemmBias(a, MatrixView.RowMajor(w, 5, 6), c, bias, relu: true));
        Assert.StartsWith("GEMM shapes do not chain", shapes.Message);
        Assert.Empty(device.GemmBiases);

        using var without = new RecordingDevice();
        using DeviceBuffer<float> x2 = without.Allocate<float>(4 * 6), w2 = without.Allocate<float>(6 * 5), y2 = without.Allocate<float>(4 * 5), bias2 = without.Allocate<float>(5);
        var none = Assert.Throws<AlexNetException>(() => without.DefaultStream.GemmBias(MatrixView.RowMajor(x2, 4, 6), MatrixView.RowMajor(w2, 6, 5),
            MatrixView.RowMajor(y2, 4, 5), bias2, relu: true));
        Assert.Equal("GEMM with a bias epilogue in fp32: recorded on recording device has no GEMM with a bias epilogue (cuBLASLt's, on CUDA, is the engine's only one)", none.Message);
        var otherDevice = Assert.Throws<ArgumentException>(() => s.GemmBias(a, b, c, bias2, relu: true));
        Assert.StartsWith("the bias belongs to another device", otherDevice.Message);
    }
}
