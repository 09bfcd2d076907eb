using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Devices;

/// <summary>
/// The CUDA backend: one clear line without a GPU, the whole check list with one. The GPU validation machine
/// has no .NET, so these tests never run there: everything they check on a GPU is also in
/// <c>alexnet check --device cuda</c> (the same <see cref="KernelChecks.All"/> list: kernels, GEMMs, streams,
/// the device layer's promises, the whole network), which Bench/gpu/run-checks.sh runs there with a NativeAOT
/// build, and <c>alexnet info</c> there shows what <c>--device auto</c> picks.
/// </summary>
public class CudaDeviceTests
{
    [SkippableFact]
    public void WithoutAGpuTheCudaBackendSaysSoInOneLine()
    {
        TestNative.Require(NativeLibraryId.CudaDriver);
        Skip.If(TestNative.CudaUnavailableReason is null, "a CUDA device is present: this test is for machines without one");
        var e = Assert.Throws<NoDeviceException>(() => CudaDevice.Open(0));
        Assert.StartsWith("no CUDA device: ", e.Message);
        Assert.Contains("CUDA_ERROR_NO_DEVICE (100)", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(DeviceBackend.Cuda, e.Backend);
    }

    [SkippableFact]
    public void AutoFallsBackToOpenClAndSaysWhy()
    {
        Skip.If(TestNative.CudaUnavailableReason is null, "a CUDA device is present: auto picks it");
        TestNative.Require(NativeLibraryId.OpenCl);
        using SelectedDevice selected = DeviceSelector.Open(DeviceChoice.Auto, TestCache.Shared);
        Assert.Equal(DeviceBackend.OpenCl, selected.Device.Backend);
        Assert.StartsWith("auto: fell back to OpenCL because no CUDA device: ", selected.Reason);
    }

    [SkippableFact]
    public void AskingForCudaWithoutAGpuIsAnErrorNotAFallback()
    {
        Skip.If(TestNative.CudaUnavailableReason is null, "a CUDA device is present");
        var e = Assert.Throws<NoDeviceException>(() => DeviceSelector.Open(DeviceChoice.Cuda, TestCache.Shared));
        Assert.StartsWith("no CUDA device: ", e.Message);
    }

    public static TheoryData<string> CheckNames() => new(KernelChecks.All().Select(c => c.Name));

    [SkippableTheory]
    [MemberData(nameof(CheckNames))]
    public void OnTheGpuKernelMatchesTheReference(string name)
    {
        CudaDevice device = TestNative.RequireCuda();
        ComparisonResult result;
        try
        {
            result = KernelChecks.All().Single(c => c.Name == name).Run(device);
        }
        catch (CheckNotApplicableException e)
        {
            throw new SkipException($"{name} does not apply to {device.Description}: {e.Message}");
        }
        Assert.True(result.Passed, $"{name} on {device.Description}: {result.Detail}");
    }

    [SkippableFact]
    public void OnTheGpuAutoPicksCuda()
    {
        TestNative.RequireCuda();
        using SelectedDevice selected = DeviceSelector.Open(DeviceChoice.Auto, TestCache.Shared);
        Assert.Equal(DeviceBackend.Cuda, selected.Device.Backend);
    }
}
