using System.Text.RegularExpressions;
using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Devices;

/// <summary>The OpenCL device with each GEMM provider forced, so both stay correct whichever the default is.</summary>
public sealed class GemmProviderDevices : IDisposable
{
    private readonly Dictionary<OpenClGemmProvider, OpenClDevice> _devices = [];
    private readonly Lock _gate = new();

    public OpenClDevice Get(OpenClGemmProvider provider)
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        TestNative.Require(provider switch
        {
            OpenClGemmProvider.OpenBlas => NativeLibraryId.OpenBlas,
            OpenClGemmProvider.OneDnn => NativeLibraryId.OneDnn,
            _ => NativeLibraryId.ClBlast,
        });
        lock (_gate)
        {
            if (!_devices.TryGetValue(provider, out OpenClDevice? device))
                _devices[provider] = device = OpenClDevice.Open(null, TestCache.Shared, provider);
            return device;
        }
    }

    public void Dispose()
    {
        foreach (OpenClDevice device in _devices.Values) device.Dispose();
    }
}

[Collection(OpenClCollection.Name)]
public partial class GemmProviderTests(GemmProviderDevices devices) : IClassFixture<GemmProviderDevices>
{
    public static TheoryData<OpenClGemmProvider> Providers() => new(OpenClGemmProvider.ClBlast, OpenClGemmProvider.OpenBlas, OpenClGemmProvider.OneDnn);

    [GeneratedRegex(@"^OpenBLAS \d+\.\d+\.\d+ on mapped buffers$")]
    private static partial Regex OpenBlasName();

    [GeneratedRegex(@"^oneDNN \d+\.\d+\.\d+ on mapped buffers$")]
    private static partial Regex OneDnnName();

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public void TheForcedProviderIsUsedAndNamed(OpenClGemmProvider provider)
    {
        OpenClDevice device = devices.Get(provider);
        Assert.Equal(provider, device.GemmProviderKind);
        if (provider == OpenClGemmProvider.ClBlast) Assert.Equal("CLBlast", device.GemmProvider);
        else Assert.Matches(provider == OpenClGemmProvider.OneDnn ? OneDnnName() : OpenBlasName(), device.GemmProvider);
    }

    [SkippableFact]
    public void TheDefaultIsOneDnnWhereBuffersLiveInHostMemoryAndClBlastElsewhere()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        TestNative.Require(NativeLibraryId.OpenBlas);
        TestNative.Require(NativeLibraryId.OneDnn);
        OpenClDeviceInfo? cpu = OpenClDevice.Enumerate().FirstOrDefault(d => d.IsCpu);
        Skip.If(cpu is null, "no OpenCL CPU device");
        Assert.True(cpu!.BuffersInHostMemory);
        Assert.Equal(OpenClGemmProvider.OneDnn, OpenClDevice.ChooseGemmProvider(cpu, OpenClGemmProvider.Auto).Provider);
        Assert.Equal(OpenClGemmProvider.OpenBlas, OpenClDevice.ChooseGemmProvider(cpu, OpenClGemmProvider.OpenBlas).Provider);
        Assert.Equal((OpenClGemmProvider.ClBlast, "CLBlast"), OpenClDevice.ChooseGemmProvider(cpu, OpenClGemmProvider.ClBlast));
        OpenClDeviceInfo discrete = cpu with { IsCpu = false, IsGpu = true, HostUnifiedMemory = false };
        Assert.False(discrete.BuffersInHostMemory);
        Assert.Equal((OpenClGemmProvider.ClBlast, "CLBlast"), OpenClDevice.ChooseGemmProvider(discrete, OpenClGemmProvider.Auto));
        OpenClDeviceInfo integrated = discrete with { HostUnifiedMemory = true };
        Assert.Equal(OpenClGemmProvider.OneDnn, OpenClDevice.ChooseGemmProvider(integrated, OpenClGemmProvider.Auto).Provider);
    }

    [Theory]
    [InlineData(null, OpenClGemmProvider.Auto)]
    [InlineData("", OpenClGemmProvider.Auto)]
    [InlineData("auto", OpenClGemmProvider.Auto)]
    [InlineData("CLBlast", OpenClGemmProvider.ClBlast)]
    [InlineData(" openblas ", OpenClGemmProvider.OpenBlas)]
    [InlineData("oneDNN", OpenClGemmProvider.OneDnn)]
    [InlineData("dnnl", OpenClGemmProvider.OneDnn)]
    public void TheVariableNamesTheProvider(string? value, OpenClGemmProvider expected) =>
        Assert.Equal(expected, OpenClDevice.ParseGemmProvider(value));

    [Fact]
    public void AnUnknownProviderIsRefusedNamingTheChoices()
    {
        var e = Assert.Throws<AlexNetException>(() => OpenClDevice.ParseGemmProvider("mkl"));
        Assert.Equal("ALEXNET_OPENCL_GEMM='mkl' is not a GEMM provider: use clblast, openblas or onednn, or unset it to choose by device", e.Message);
    }

    public static TheoryData<OpenClGemmProvider, string> ProviderChecks()
    {
        var data = new TheoryData<OpenClGemmProvider, string>();
        foreach (OpenClGemmProvider provider in new[] { OpenClGemmProvider.ClBlast, OpenClGemmProvider.OpenBlas, OpenClGemmProvider.OneDnn })
        foreach (string check in new[] { "NN", "NT", "TN", "TT", "NN batch", "TT batch", "TN large", "row-major groups", "row-major fc" })
            data.Add(provider, check);
        return data;
    }

    [SkippableTheory]
    [MemberData(nameof(ProviderChecks))]
    public void GemmMatchesTheReference(OpenClGemmProvider provider, string check)
    {
        OpenClDevice device = devices.Get(provider);
        MatrixOp N = MatrixOp.None, T = MatrixOp.Transpose;
        ComparisonResult result = check switch
        {
            "NN" => KernelChecks.Gemm(device, N, N, 37, 29, 53, batch: 1),
            "NT" => KernelChecks.Gemm(device, N, T, 37, 29, 53, batch: 1),
            "TN" => KernelChecks.Gemm(device, T, N, 37, 29, 53, batch: 1),
            "TT" => KernelChecks.Gemm(device, T, T, 37, 29, 53, batch: 1),
            "NN batch" => KernelChecks.Gemm(device, N, N, 19, 23, 31, batch: 3),
            "TT batch" => KernelChecks.Gemm(device, T, T, 19, 23, 31, batch: 2),
            // Large enough for OpenBLAS to block and split the work across threads; no size a multiple of 8.
            "TN large" => KernelChecks.Gemm(device, T, N, 131, 203, 301, batch: 1),
            "row-major groups" => KernelChecks.GemmRowMajor(device, 13, 37, 29, batch: 2),
            "row-major fc" => KernelChecks.GemmRowMajor(device, 10, 3, 50, batch: 1),
            _ => throw new ArgumentOutOfRangeException(nameof(check)),
        };
        Assert.True(result.Passed, $"{check} with {device.GemmProvider}: {result.Detail}");
    }

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public void OneBufferAsBothInputsGivesTheGramMatrix(OpenClGemmProvider provider)
    {
        // C = 1.5·Aᵀ·A − 0.25·C with A and B the same buffer (one mapping where the buffer is mapped).
        OpenClDevice device = devices.Get(provider);
        const int rows = 41, cols = 27, lda = 44, ldc = 30;
        const long offset = 6;
        float[] a = KernelChecks.TestData((int)offset + lda * cols, seed: 5);
        float[] c = KernelChecks.TestData(ldc * cols + 2, seed: 6);
        float[] expected = (float[])c.Clone();
        var magnitude = new double[c.Length];
        CpuReference.Gemm(MatrixOp.Transpose, MatrixOp.None, cols, cols, rows, 1.5, a, offset, lda, a, offset, lda, -0.25, expected, 1, ldc, magnitude);

        using DeviceBuffer<float> da = device.Upload<float>(a);
        using DeviceBuffer<float> dc = device.Upload<float>(c);
        MatrixView va = MatrixView.ColumnMajor(da, rows, cols, offset, lda);
        device.Gemm(va.T, va, MatrixView.ColumnMajor(dc, cols, cols, 1, ldc), 1.5f, -0.25f);
        ComparisonResult result = Comparison.AgainstMagnitude(device.Download(dc), expected, magnitude, Tolerances.GemmAtol, Tolerances.GemmRtol(rows));
        Assert.True(result.Passed, $"{device.GemmProvider}: {result.Detail}");
    }

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public void OneBufferAsInputAndOutputKeepsTheInput(OpenClGemmProvider provider)
    {
        // A, B and C in one buffer, in disjoint regions: A at 3, B after it, C after B. The buffer is both
        // read and written; the elements around C must come back unchanged.
        OpenClDevice device = devices.Get(provider);
        const int m = 23, n = 17, k = 35;
        long aOffset = 3, bOffset = aOffset + (long)m * k + 4, cOffset = bOffset + (long)k * n + 5;
        float[] data = KernelChecks.TestData((int)cOffset + m * n + 7, seed: 9);
        float[] expected = (float[])data.Clone();
        var magnitude = new double[data.Length];
        CpuReference.Gemm(MatrixOp.None, MatrixOp.None, m, n, k, 0.5, data, aOffset, m, data, bOffset, k, 2.0, expected, cOffset, m, magnitude);

        using DeviceBuffer<float> buffer = device.Upload<float>(data);
        device.Gemm(MatrixView.ColumnMajor(buffer, m, k, aOffset, m), MatrixView.ColumnMajor(buffer, k, n, bOffset, k),
            MatrixView.ColumnMajor(buffer, m, n, cOffset, m), 0.5f, 2f);
        ComparisonResult result = Comparison.AgainstMagnitude(device.Download(buffer), expected, magnitude, Tolerances.GemmAtol, Tolerances.GemmRtol(k));
        Assert.True(result.Passed, $"{device.GemmProvider}: {result.Detail}");
    }

    /// <summary>Writes out[i] = in[i]·scale + (h mod 7), h an integer recurrence run <c>spins</c> steps from i:
    /// a deliberate delay whose result is used, so it cannot be optimised away. A GEMM that ran before it
    /// finished would read the NaN its output buffer starts with.</summary>
    private static readonly KernelSource SlowScale = KernelSource.FromText("slow_scale.cu", """
        #include "prelude.h"
        KERNEL void slow_scale(GLOBAL float* out, const GLOBAL float* in, int count, float scale, int spins)
        {
            int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
            if (i >= count) return;
            uint h = (uint)i;
            for (int s = 0; s < spins; s++) h = h * 1664525u + 1013904223u;
            out[i] = in[i] * scale + (float)(h % 7u);
        }
        """);

    [SkippableTheory]
    [MemberData(nameof(Providers))]
    public void TheGemmRunsInQueueOrder(OpenClGemmProvider provider)
    {
        // On a second stream: a slow kernel produces B into a NaN-filled buffer, the GEMM reads it and writes
        // C (NaN-filled), a kernel queued after the GEMM reads C into D. Only a GEMM that waits for the work
        // queued before it, and finishes before the work queued after it, gives D without NaN.
        OpenClDevice device = devices.Get(provider);
        const int m = 33, n = 21, k = 45;
        float[] a = KernelChecks.TestData(m * k, seed: 21);
        float[] source = KernelChecks.TestData(k * n, seed: 22);
        float[] b = new float[k * n];
        const int spins = 200_000;
        for (int i = 0; i < b.Length; i++) b[i] = source[i] * 2f + Addend(i, spins);
        float[] c = new float[m * n];
        var magnitude = new double[m * n];
        CpuReference.Gemm(MatrixOp.None, MatrixOp.None, m, n, k, 1.0, a, 0, m, b, 0, k, 0.0, c, 0, m, magnitude);
        float[] expected = new float[m * n];
        var expectedMagnitude = new double[m * n];
        for (int i = 0; i < c.Length; i++)
        {
            expected[i] = c[i] * -1f + Addend(i, 0);
            expectedMagnitude[i] = magnitude[i] + Math.Abs(expected[i]);
        }

        using KernelModule module = device.LoadModule(SlowScale);
        Kernel kernel = module.GetKernel("slow_scale");
        using DeviceBuffer<float> da = device.Upload<float>(a);
        using DeviceBuffer<float> dsource = device.Upload<float>(source);
        using DeviceBuffer<float> db = device.Allocate<float>(k * n);
        using DeviceBuffer<float> dc = device.Allocate<float>(m * n);
        using DeviceBuffer<float> dd = device.Allocate<float>(m * n);
        device.Fill(db, float.NaN);
        device.Fill(dc, float.NaN);
        device.Fill(dd, float.NaN);
        device.Synchronize();

        using ComputeStream stream = device.CreateStream();
        stream.Launch(kernel, new Dim3(Dim3.CeilDiv(k * n, 64)), new Dim3(64), Arguments(db, dsource, k * n, 2f, spins));
        stream.Gemm(MatrixView.ColumnMajor(da, m, k), MatrixView.ColumnMajor(db, k, n), MatrixView.ColumnMajor(dc, m, n));
        stream.Launch(kernel, new Dim3(Dim3.CeilDiv(m * n, 64)), new Dim3(64), Arguments(dd, dc, m * n, -1f, 0));
        var got = new float[m * n];
        stream.CopyToHost(dd, got);
        ComparisonResult result = Comparison.AgainstMagnitude(got, expected, expectedMagnitude, Tolerances.GemmAtol, Tolerances.GemmRtol(k));
        Assert.True(result.Passed, $"{device.GemmProvider}: {result.Detail}");
    }

    private static float Addend(int i, int spins)
    {
        uint h = (uint)i;
        for (int s = 0; s < spins; s++) h = unchecked(h * 1664525u + 1013904223u);
        return h % 7u;
    }

    private static KernelArguments Arguments(DeviceBuffer<float> output, DeviceBuffer<float> input, int count, float scale, int spins)
    {
        var args = new KernelArguments();
        args.Add(output);
        args.Add(input);
        args.Add(count);
        args.Add(scale);
        args.Add(spins);
        return args;
    }
}
