using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Kernels;

/// <summary>Every kernel and GEMM runs on the OpenCL device (PoCL on the CPU in CI) and matches the C#
/// reference; the kernel text is the same that NVRTC compiles.</summary>
[Collection(OpenClCollection.Name)]
public class OpenClKernelTests(OpenClFixture fixture)
{
    public static TheoryData<string> CheckNames() => new(KernelChecks.All().Select(c => c.Name));

    [SkippableTheory]
    [MemberData(nameof(CheckNames))]
    public void KernelMatchesTheReference(string name)
    {
        ComputeDevice device = fixture.Device;
        if (name.StartsWith("sgemm", StringComparison.Ordinal)) TestNative.Require(NativeLibraryId.ClBlast);
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
    public void EveryEmbeddedKernelFileBuildsOnOpenCl()
    {
        ComputeDevice device = fixture.Device;
        Assert.NotEmpty(KernelSource.EmbeddedKernelFiles());
        foreach (string file in KernelSource.EmbeddedKernelFiles())
        {
            using KernelModule module = device.LoadModule(file);
            Assert.Equal(file, module.SourceName);
        }
    }

    [SkippableFact]
    public void ABrokenKernelFailsWithTheBuildLog()
    {
        ComputeDevice device = fixture.Device;
        KernelSource broken = KernelSource.FromText("broken.cu", """
            #include "prelude.h"
            KERNEL void broken(GLOBAL float* x)
            {
                x[0] = undeclared_variable;
            }
            """);
        var e = Assert.Throws<OpenClException>(() => device.LoadModule(broken));
        Assert.StartsWith("clBuildProgram(broken.cu, -cl-std=CL1.2) failed: CL_BUILD_PROGRAM_FAILURE (-11); compiler log:", e.Message);
        Assert.Contains("undeclared_variable", e.CompilerLog);
        Assert.Contains("broken.cu:4", e.CompilerLog); // #line keeps the kernel file's own line numbers
    }

    [SkippableFact]
    public void AMissingEntryPointIsNamed()
    {
        using KernelModule module = fixture.Device.LoadModule("transpose.cu");
        var e = Assert.Throws<AlexNetException>(() => module.GetKernel("transpose_kernel9"));
        Assert.Equal("kernel 'transpose_kernel9' is not defined in transpose.cu (is it declared KERNEL?)", e.Message);
    }

    [SkippableFact]
    public void ASecondLoadOfTheSameModuleComesFromTheDiskCache()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        using FreshCache fresh = TestCache.Fresh();
        KernelCache cache = fresh.Cache;
        using OpenClDevice device = OpenClDevice.Open(null, cache);
        using KernelModule first = device.LoadModule("transpose.cu");
        using KernelModule second = device.LoadModule("transpose.cu");
        using KernelModule otherDefines = device.LoadModule("transpose.cu", new Dictionary<string, string> { ["TILE_DIM"] = "16" });
        Assert.False(first.FromCache);
        Assert.True(second.FromCache);
        Assert.False(otherDefines.FromCache);
        Assert.NotEqual(first.CacheKey, otherDefines.CacheKey);
        // The cached binary still runs correctly.
        Assert.True(KernelChecks.Transpose(device, 2, 37, 41, null).Passed);
    }

    [SkippableFact]
    public void ACorruptCacheEntryIsRebuiltFromSource()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        using FreshCache fresh = TestCache.Fresh();
        KernelCache cache = fresh.Cache;
        using OpenClDevice device = OpenClDevice.Open(null, cache);
        using (device.LoadModule("transpose.cu")) { }
        foreach (string entry in Directory.GetFiles(Path.Combine(cache.Root, "opencl")))
            File.WriteAllBytes(entry, [1, 2, 3, 4]);
        using KernelModule rebuilt = device.LoadModule("transpose.cu");
        Assert.False(rebuilt.FromCache);
        Assert.True(KernelChecks.Transpose(device, 1, 5, 3, null).Passed);
    }

    public static TheoryData<string> DeviceCheckNames() => new(DeviceChecks.All().Select(c => c.Name));

    /// <summary>The device layer's promises (signature checks, dynamic shared memory, cache recovery,
    /// timing, overlap refusal, disposal order): the same checks `alexnet check --device cuda` runs on
    /// the GPU validation machine.</summary>
    [SkippableTheory]
    [MemberData(nameof(DeviceCheckNames))]
    public void DeviceLayerKeepsItsPromises(string name)
    {
        ComputeDevice device = fixture.Device;
        TestNative.Require(NativeLibraryId.ClBlast);
        ComparisonResult result = DeviceChecks.All().Single(c => c.Name == name).Run(device);
        Assert.True(result.Passed, $"{name}: {result.Detail}");
    }

    [SkippableFact]
    public void TimingNeedsRecordedTimingEventsOfThisDevice()
    {
        ComputeDevice device = fixture.Device;
        using DeviceEvent unrecorded = device.CreateEvent(timing: true);
        using DeviceEvent recorded = device.RecordEvent(timing: true);
        Assert.Throws<ArgumentException>(() => device.ElapsedMilliseconds(unrecorded, recorded));
        using DeviceEvent ordering = device.RecordEvent();
        Assert.False(ordering.Timing);
        Assert.Contains("timing: true", Assert.Throws<ArgumentException>(() => device.ElapsedMilliseconds(recorded, ordering)).Message);
        Assert.Throws<ArgumentException>(() => device.DefaultStream.Wait(device.CreateEvent()));
    }

    [SkippableFact]
    public void GemmShapesAreCheckedBeforeAnyNativeCall()
    {
        ComputeDevice device = fixture.Device;
        using DeviceBuffer<float> small = device.Allocate<float>(10);
        using DeviceBuffer<float> big = device.Allocate<float>(1000);
        MatrixView big4 = MatrixView.ColumnMajor(big, 4, 4);
        var tooSmall = Assert.Throws<ArgumentOutOfRangeException>(() =>
            device.Gemm(MatrixView.ColumnMajor(small, 4, 4), big4, big4));
        Assert.Contains("GEMM operand A (4×4, ld 4, offset 0, stride 0, batch 1) reaches element 15 of a buffer of 10", tooSmall.Message);
        var badLd = Assert.Throws<ArgumentOutOfRangeException>(() =>
            device.Gemm(MatrixView.ColumnMajor(big, 6, 4, leadingDimension: 5).T, MatrixView.ColumnMajor(big, 6, 4), big4));
        Assert.Contains("lda=5 is less than the 6 rows of A", badLd.Message);
        var batch = Assert.Throws<ArgumentOutOfRangeException>(() =>
            device.GemmBatched(big4, big4, big4, new GemmBatch(3, 16, 16, 500)));
        Assert.Contains("GEMM operand C", batch.Message);
        var chain = Assert.Throws<ArgumentException>(() => device.Gemm(MatrixView.ColumnMajor(big, 4, 5), big4, big4));
        Assert.Contains("do not chain: A is 4×5, B is 4×4, C is 4×4", chain.Message);
        var overlap = Assert.Throws<ArgumentOutOfRangeException>(() =>
            device.GemmBatched(big4, big4, MatrixView.ColumnMajor(big, 4, 4, leadingDimension: 6), new GemmBatch(2, 16, 16, 21)));
        Assert.Contains("GEMM batch outputs overlap: strideC 21 is less than the 22 elements", overlap.Message);
    }

    [SkippableFact]
    public void CopiesHonourOffsetsAndRanges()
    {
        ComputeDevice device = fixture.Device;
        using DeviceBuffer<float> buffer = device.Allocate<float>(8);
        device.Fill(buffer, -1f);
        device.CopyToDevice<float>([1f, 2f, 3f], buffer, offset: 4);
        Assert.Equal([-1f, -1f, -1f, -1f, 1f, 2f, 3f, -1f], device.Download(buffer));
        var part = new float[2];
        device.CopyToHost<float>(buffer, part, offset: 5);
        Assert.Equal([2f, 3f], part);
        Assert.Throws<ArgumentOutOfRangeException>(() => device.CopyToDevice<float>([1f, 2f], buffer, offset: 7));
        buffer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => buffer.Handle);
    }
}

/// <summary>Streams, pinned memory and events on the OpenCL device.</summary>
[Collection(OpenClCollection.Name)]
public class OpenClStreamTests(OpenClFixture fixture)
{
    [SkippableFact]
    public void PinnedAsyncCopiesRoundTripWithOffsets()
    {
        ComputeDevice device = fixture.Device;
        using ComputeStream stream = device.CreateStream();
        using PinnedHostBuffer<float> up = device.AllocatePinned<float>(10);
        using PinnedHostBuffer<float> down = device.AllocatePinned<float>(10);
        using DeviceBuffer<float> buffer = device.Allocate<float>(6);
        for (int i = 0; i < 10; i++) up.Span[i] = i;
        down.Span.Fill(-1);
        stream.Fill(buffer, 100f);
        stream.CopyToDeviceAsync(up, 2, buffer, 1, 4);  // buffer = 100, 2, 3, 4, 5, 100
        stream.CopyToHostAsync(buffer, 0, down, 4, 6);  // down[4..10] = buffer
        stream.Synchronize();
        Assert.Equal([-1f, -1f, -1f, -1f, 100f, 2f, 3f, 4f, 5f, 100f], down.Span.ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => stream.CopyToDeviceAsync(up, 8, buffer, 0, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => stream.CopyToHostAsync(buffer, 4, down, 0, 3));
    }

    [SkippableFact]
    public void EventsOrderWorkAcrossStreams()
    {
        ComparisonResult result = KernelChecks.Streams(fixture.Device, 2, 70, 33);
        Assert.True(result.Passed, result.Detail);
    }

    [SkippableFact]
    public void DisposingADeviceDisposesItsStreamsAndKeepsTheContextForLiveResources()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        OpenClDevice device = OpenClDevice.Open(null, TestCache.Shared);
        ComputeStream stream = device.CreateStream();
        DeviceBuffer<float> buffer = device.Allocate<float>(4);
        stream.Fill(buffer, 1f);
        device.Synchronize(); // waits for every stream, not only the default one
        Assert.Equal([1f, 1f, 1f, 1f], device.Download(buffer));
        Assert.Equal(1, device.LiveResources);
        device.Dispose();
        Assert.True(device.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => stream.Fill(buffer, 2f));          // streams are gone
        Assert.Throws<ObjectDisposedException>(() => device.Allocate<float>(1));        // no new work
        Assert.Throws<ObjectDisposedException>(() => device.LoadModule("transpose.cu"));
        Assert.Equal(1, device.LiveResources); // the buffer still holds the context
        buffer.Dispose();
        Assert.Equal(0, device.LiveResources);
        stream.Dispose(); // a second release is harmless
        device.Dispose();
    }
}
