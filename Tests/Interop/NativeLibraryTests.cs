using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Interop;

public class NativeLibraryTests
{
    [Fact]
    public void ADefaultReachesTheNativeEnvironmentAndNeverOverridesAValueThere()
    {
        string name = $"ALEXNET_TEST_VARIABLE_{Guid.NewGuid():N}";
        Assert.Null(NativeEnvironment.Get(name));
        Assert.True(NativeEnvironment.SetDefault(name, "first"));
        Assert.Equal("first", NativeEnvironment.Get(name));
        Assert.False(NativeEnvironment.SetDefault(name, "second"));
        Assert.Equal("first", NativeEnvironment.Get(name));
    }

    [SkippableFact]
    public void OpenBlasLoadsWithItsWorkersSleepingSoonUnlessTheEnvironmentSaysOtherwise()
    {
        string? preset = NativeEnvironment.Get(NativeLibraries.OpenBlasThreadTimeoutVariable);
        TestNative.Require(NativeLibraryId.OpenBlas);
        Assert.Equal(preset ?? NativeLibraries.OpenBlasThreadTimeout, NativeEnvironment.Get(NativeLibraries.OpenBlasThreadTimeoutVariable));
    }

    [Theory]
    [InlineData(NativeLibraryId.Nvrtc)]
    [InlineData(NativeLibraryId.Cublas)]
    [InlineData(NativeLibraryId.CublasLt)]
    public void ToolkitReleasesNewerThanTheDriverAreNeverTried(NativeLibraryId id)
    {
        IReadOnlyList<string> all = NativeLibraries.AllCandidateNames(id);
        // Newest first, so the newest release the driver supports wins.
        List<int> majors = all.Select(NativeLibraries.ToolkitMajor).OfType<int>().ToList();
        Assert.Equal(majors.OrderDescending(), majors);
        foreach (int driver in new[] { 11, 12, 13, 14 })
        {
            IReadOnlyList<string> allowed = NativeLibraries.CandidateNames(id, driver);
            Assert.All(allowed, n => Assert.True(NativeLibraries.ToolkitMajor(n) is not int t || t <= driver, $"{n} offered to a CUDA {driver} driver"));
            Assert.Equal(all.Count, allowed.Count + NativeLibraries.NamesTooNewForDriver(id, driver).Count);
            Assert.Equal(all[^1], allowed[^1]); // the unversioned name stays, last
        }
        Assert.DoesNotContain(NativeLibraries.CandidateNames(id, 12), n => n.EndsWith(".so.13", StringComparison.Ordinal));
        Assert.Contains(NativeLibraries.CandidateNames(id, 12), n => n.EndsWith(".so.12", StringComparison.Ordinal));
        Assert.Equal(all, NativeLibraries.CandidateNames(id, null)); // no driver: nothing to rule out
    }

    [Theory]
    [InlineData("libnvrtc.so.11.2", 11)]
    [InlineData("libcublas.so.13", 13)]
    [InlineData("libcublas.so.12.4.1", 12)]
    [InlineData("libnvrtc.so", null)]
    public void ToolkitMajorIsReadFromTheSoname(string name, int? major) => Assert.Equal(major, NativeLibraries.ToolkitMajor(name));

    [SkippableFact]
    public void HereTheDriverRulesOutNewerToolkits()
    {
        TestNative.Require(NativeLibraryId.CudaDriver);
        int? driver = NativeLibraries.DriverCudaMajor();
        Assert.NotNull(driver); // cuDriverGetVersion needs no GPU
        TestNative.Require(NativeLibraryId.Nvrtc);
        string loaded = NativeLibraries.LoadedPath(NativeLibraryId.Nvrtc)!;
        Assert.True(NativeLibraries.ToolkitMajor(Path.GetFileName(loaded)) is not int t || t <= driver, $"{loaded} loaded for a CUDA {driver} driver");
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
