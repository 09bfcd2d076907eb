using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Devices;

/// <summary>
/// The decisions of the CUDA path that need no GPU to test: which failures make a GPU "not usable" (so
/// <c>--device auto</c> falls back), when a cached image is rebuilt, how declared and compiled kernel
/// signatures are compared. On the GPU validation machine, which has no .NET, the same behaviour is
/// exercised end to end by <c>alexnet check --device cuda</c> (Checks/DeviceChecks.cs).
/// </summary>
public class DeviceLayerLogicTests
{
    private static NvrtcOutput Output(bool fromCache, byte tag) =>
        new([tag], NvrtcTarget.Sm(90), "", fromCache, TimeSpan.Zero);

    [Fact]
    public void ACachedImageThatFailsToLoadIsDiscardedAndRebuiltOnce()
    {
        int discarded = 0;
        var loads = new List<byte>();
        (byte module, bool fromCache) = CudaDevice.LoadThroughCache(
            () => Output(fromCache: true, tag: 1),
            () => { discarded++; return Output(fromCache: false, tag: 2); },
            o => { loads.Add(o.Image[0]); return o.Image[0] == 1 ? throw new AlexNetException("cuModuleLoadDataEx failed: CUDA_ERROR_INVALID_IMAGE (200)") : o.Image[0]; });
        Assert.Equal(2, module);
        Assert.False(fromCache);
        Assert.Equal(1, discarded);
        Assert.Equal([1, 2], loads);
    }

    [Fact]
    public void AFreshImageThatFailsToLoadIsARealError()
    {
        int discarded = 0;
        var e = Assert.Throws<AlexNetException>(() => CudaDevice.LoadThroughCache<int>(
            () => Output(fromCache: false, tag: 1),
            () => { discarded++; return Output(false, 2); },
            _ => throw new AlexNetException("cuModuleLoadDataEx failed: CUDA_ERROR_NO_BINARY_FOR_GPU (209)")));
        Assert.Contains("NO_BINARY_FOR_GPU", e.Message);
        Assert.Equal(0, discarded);
    }

    [Fact]
    public void AGoodCachedImageIsNotRebuilt()
    {
        (int module, bool fromCache) = CudaDevice.LoadThroughCache(() => Output(true, 7), () => throw new InvalidOperationException("rebuilt"), o => (int)o.Image[0]);
        Assert.Equal(7, module);
        Assert.True(fromCache);
    }

    [Fact]
    public void AGpuThatCannotBeUsedIsANoDeviceErrorSoAutoFallsBack()
    {
        // cuDevicePrimaryCtxRetain in exclusive-process mode, and NVRTC unable to build for the GPU.
        var exclusive = CudaDevice.Unusable("NVIDIA H100", CudaException.Create(CudaResult.DeviceUnavailable, "cuDevicePrimaryCtxRetain(out context, device)"));
        var nvrtc = CudaDevice.Unusable("NVIDIA B200", new AlexNetException("NVRTC 11.8 cannot compile for compute capability 10.0"));
        foreach (NoDeviceException e in new[] { exclusive, nvrtc })
        {
            Assert.StartsWith("no usable CUDA device: NVIDIA ", e.Message);
            Assert.DoesNotContain('\n', e.Message);
            Assert.Equal(DeviceBackend.Cuda, e.Backend);
        }
        Assert.Contains("cuDevicePrimaryCtxRetain", exclusive.Message);
        Assert.Contains("cannot compile for compute capability 10.0", nvrtc.Message);
    }

    [SkippableFact]
    public void AutoFallsBackWhenTheGpuIsUnusableAndExplicitCudaReportsIt()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        NoDeviceException unusable = CudaDevice.Unusable("NVIDIA H100", CudaException.Create(CudaResult.DeviceUnavailable, "cuDevicePrimaryCtxRetain"));
        using SelectedDevice picked = DeviceSelector.Open(DeviceChoice.Auto, TestCache.Shared, _ => throw unusable);
        Assert.Equal(DeviceBackend.OpenCl, picked.Device.Backend);
        Assert.StartsWith("auto: fell back to OpenCL because no usable CUDA device: NVIDIA H100 is present but cuDevicePrimaryCtxRetain", picked.Reason);
        var e = Assert.Throws<NoDeviceException>(() => DeviceSelector.Open(DeviceChoice.Cuda, TestCache.Shared, _ => throw unusable));
        Assert.Same(unusable, e);
    }

    [Fact]
    public void SignaturesAreReadFromTheKernelDeclarations()
    {
        KernelSource source = KernelSource.FromText("sig.cu", """
            #include "prelude.h"
            // KERNEL void commented_out(int x)
            KERNEL void many(GLOBAL float* __restrict__ out, const GLOBAL float* __restrict__ in,
                             int n, uint seed, float alpha, /* a comment */ unsigned long long offset)
            { }
            KERNEL void shared(GLOBAL float* x, int n DYNAMIC_SHARED_PARAM(float, cache)) { DYNAMIC_SHARED_DECL(float, cache) }
            KERNEL void none(void) { }
            """);
        IReadOnlyDictionary<string, KernelSignature> all = source.Signatures;
        Assert.Equal(["many", "none", "shared"], all.Keys.Order(StringComparer.Ordinal));
        KernelSignature many = all["many"];
        Assert.Equal([8, 8, 4, 4, 4, 8], many.Parameters.Select(p => p.Size));
        Assert.Equal([KernelParameterKind.GlobalPointer, KernelParameterKind.GlobalPointer], many.Parameters.Take(2).Select(p => p.Kind));
        Assert.Equal("const GLOBAL float* in", many.Parameters[1].ToString());
        Assert.Equal("offset", many.Parameters[5].Name);
        Assert.False(many.UsesDynamicSharedMemory);
        Assert.True(all["shared"].UsesDynamicSharedMemory);
        Assert.Equal(2, all["shared"].Parameters.Count);
        Assert.Empty(all["none"].Parameters);
    }

    [Theory]
    [InlineData("KERNEL void k(size_t n) {}", "type 'size_t', which the host cannot size")]
    [InlineData("KERNEL void k(float* x) {}", "is a pointer without GLOBAL")]
    [InlineData("KERNEL void k(int) {}", "cannot read parameter 'int'")]
    public void AParameterTheHostCannotPassIsNamed(string text, string expected)
    {
        var e = Assert.Throws<AlexNetException>(() => KernelSignature.Parse("k.cu", text));
        Assert.StartsWith("k.cu: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void EveryEmbeddedKernelHasASignatureTheHostCanPass()
    {
        foreach (string file in KernelSource.EmbeddedKernelFiles())
        {
            IReadOnlyDictionary<string, KernelSignature> signatures = KernelSource.FromEmbedded(file).Signatures;
            Assert.NotEmpty(signatures);
            Assert.All(signatures.Values, s => Assert.NotEmpty(s.Parameters));
        }
    }

    [Fact]
    public void DeclaredAndCompiledSignaturesMustAgree()
    {
        KernelSignature declared = KernelSignature.Parse("t.cu", "KERNEL void t(GLOBAL float* out, int n, float a) {}")["t"];
        CudaDevice.CheckCompiledSignature("t.cu", declared, [8, 4, 4]);
        var size = Assert.Throws<AlexNetException>(() => CudaDevice.CheckCompiledSignature("t.cu", declared, [8, 8, 4]));
        Assert.Equal("t.cu: parameter 1 of kernel t ('int n') is 4 bytes to the host but 8 in the compiled kernel", size.Message);
        var count = Assert.Throws<AlexNetException>(() => CudaDevice.CheckCompiledSignature("t.cu", declared, [8, 4]));
        Assert.Contains("declared with 3 parameters but compiled with 2", count.Message);
    }

    [Theory]
    [InlineData(12, 12, true, null, "12 kernels; 12 compared with cuFuncGetParamInfo")]
    [InlineData(12, 0, false, null, "12 kernels; 0 compared with cuFuncGetParamInfo: the driver predates it (CUDA 12.4), so only the declared signatures were read")]
    [InlineData(12, 0, true, "CUDA_ERROR_NOT_SUPPORTED for lrn.cu:lrn_kernel1",
        "12 kernels; 0 compared with cuFuncGetParamInfo, 12 not: the driver answered CUDA_ERROR_NOT_SUPPORTED for lrn.cu:lrn_kernel1, so only their declared signatures were read")]
    [InlineData(12, 7, true, "CUDA_ERROR_INVALID_HANDLE for a.cu:k",
        "12 kernels; 7 compared with cuFuncGetParamInfo, 5 not: the driver answered CUDA_ERROR_INVALID_HANDLE for a.cu:k, so only their declared signatures were read")]
    public void TheSignatureCheckSaysHowManyKernelsItComparedNeverJustDone(int kernels, int compared, bool entryPoint, string? failure, string expected)
    {
        string detail = DeviceChecks.SignatureComparison(kernels, compared, entryPoint, failure);
        Assert.Equal(expected, detail);
        Assert.DoesNotContain("done", detail);
        Assert.DoesNotContain("each compared", detail);
    }

    [Theory]
    [InlineData(13, 0, 13000, true, null)]
    [InlineData(13, 0, 13000, false, null)]
    [InlineData(13, 1, 13000, true, null)] // a cubin of a newer minor loads: minor version compatibility
    [InlineData(13, 1, 13000, false, "NVRTC 13.1 is newer than the driver's CUDA 13.0 and builds PTX (compute_90) for this GPU, which that driver cannot JIT; install NVRTC 13.0 or older, or update the driver")]
    [InlineData(12, 10, 12090, false, "NVRTC 12.10 is newer than the driver's CUDA 12.9 and builds PTX")] // minors compare as numbers
    [InlineData(12, 9, 12100, false, null)]
    [InlineData(12, 4, 13000, false, null)] // an older toolkit's PTX: the driver JITs it
    [InlineData(11, 8, 12020, true, null)]
    [InlineData(13, 0, 12080, true, "NVRTC 13.0 is newer than the driver's CUDA 12.8, which loads nothing it builds; install a CUDA 12.x toolkit's NVRTC or update the driver")]
    [InlineData(13, 0, 12080, false, "NVRTC 13.0 is newer than the driver's CUDA 12.8, which loads nothing it builds")]
    [InlineData(13, 2, null, false, null)] // no driver version to go by
    public void NvrtcNewerThanTheDriverIsRefusedWhereWhatItBuildsCannotLoad(int major, int minor, int? driver, bool cubin, string? expected)
    {
        string? problem = NvrtcCompiler.DriverProblem((major, minor), driver, new NvrtcTarget(90, cubin));
        if (expected is null) Assert.Null(problem);
        else Assert.StartsWith(expected, problem);
        if (problem is not null) Assert.DoesNotContain('\n', problem);
    }
}
