using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;

namespace AlexNet.Cuda.Tests.Interop;

public class NativeLibraryTests
{
    [Fact]
    public void CandidateNamesCoverCuda11To13()
    {
        Assert.Equal(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"], NativeLibraries.CandidateNames(NativeLibraryId.Nvrtc));
        Assert.Equal(["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"], NativeLibraries.CandidateNames(NativeLibraryId.Cublas));
        Assert.Contains("/usr/local/cuda/lib64", NativeLibraries.SearchFolders());
    }

    [Fact]
    public void AFailedLoadNamesTheLibraryAndEveryNameTried()
    {
        var e = Assert.Throws<NativeLibraryNotFoundException>(() =>
            NativeLibraries.LoadFrom(NativeLibraryId.Nvrtc, ["libnvrtc.so.99", "libnvrtc-missing.so"], ["/nonexistent-folder"], exactPath: null));
        Assert.Contains("NVRTC (libnvrtc) not found", e.Message);
        Assert.Contains("libnvrtc.so.99", e.Message);
        Assert.Contains("libnvrtc-missing.so", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void AnExplicitPathThatDoesNotLoadIsReported()
    {
        var e = Assert.Throws<NativeLibraryNotFoundException>(() =>
            NativeLibraries.LoadFrom(NativeLibraryId.Cublas, [], [], exactPath: "/nonexistent/libcublas.so.13"));
        Assert.Contains("/nonexistent/libcublas.so.13 (from ALEXNET_LIBCUBLAS)", e.Message);
    }

    [Fact]
    public void NativeFailuresNameTheCallTheCodeAndItsName()
    {
        var cuda = Assert.Throws<CudaException>(() => CudaException.ThrowIfFailed(CudaResult.OutOfMemory));
        Assert.Contains("CudaResult.OutOfMemory", cuda.Message); // the call as written
        Assert.Contains("(2)", cuda.Message);
        Assert.Equal(2, cuda.Status);

        var cl = Assert.Throws<OpenClException>(() => OpenClException.ThrowIfFailed(-54, "clEnqueueNDRangeKernel(k)"));
        Assert.Equal("clEnqueueNDRangeKernel(k) failed: CL_INVALID_WORK_GROUP_SIZE (-54)", cl.Message);

        var blast = Assert.Throws<ClBlastException>(() => ClBlastException.ThrowIfFailed(ClBlastStatus.InvalidLeadDimA, "CLBlastSgemm(...)"));
        Assert.Equal("CLBlastSgemm(...) failed: CLBlastInvalidLeadDimA (-1016)", blast.Message);
    }

    [Fact]
    public void DeviceChoicesParseAndUnknownOnesAreOneLineErrors()
    {
        Assert.Equal(DeviceChoice.Auto, DeviceChoiceParser.Parse("auto"));
        Assert.Equal(DeviceChoice.Cuda, DeviceChoiceParser.Parse("CUDA"));
        Assert.Equal(DeviceChoice.OpenCl, DeviceChoiceParser.Parse("opencl"));
        var e = Assert.Throws<AlexNetException>(() => DeviceChoiceParser.Parse("tpu"));
        Assert.Equal("unknown device 'tpu'; use --device auto, cuda or opencl", e.Message);
    }
}
