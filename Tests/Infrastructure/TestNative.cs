using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;

namespace AlexNet.Cuda.Tests.Infrastructure;

/// <summary>
/// Whether the native pieces a test needs are here. Locally a missing library skips the test with the
/// reason; under <c>ALEXNET_REQUIRE_NATIVE=1</c> (set by <c>./alexnet test</c> and CI, which install them)
/// it fails instead, so a broken install can never pass as "skipped".
/// </summary>
public static class TestNative
{
    public static bool Required => Environment.GetEnvironmentVariable("ALEXNET_REQUIRE_NATIVE") == "1";

    public static void Require(NativeLibraryId id)
    {
        try
        {
            NativeLibraries.Load(id);
        }
        catch (NativeLibraryNotFoundException e)
        {
            if (Required) throw;
            Skip.If(true, e.Message);
        }
    }

    private static readonly Lazy<(CudaDevice? Device, string? Reason)> Cuda = new(() =>
    {
        try { return (CudaDevice.Open(0, TestCache.Shared), null); }
        catch (NoDeviceException e) { return (null, e.Message); }
    });

    /// <summary>The GPU, or a skip with the one-line reason there is none.</summary>
    public static CudaDevice RequireCuda()
    {
        (CudaDevice? device, string? reason) = Cuda.Value;
        Skip.If(device is null, reason ?? "no CUDA device");
        return device!;
    }

    /// <summary>The reason CUDA cannot open, or null when a GPU works.</summary>
    public static string? CudaUnavailableReason => Cuda.Value.Reason;
}

/// <summary>One kernel cache for the whole test run: the one the launcher points at (so CLBlast's and
/// PoCL's compilations persist between runs), else a folder under the temp directory.</summary>
public static class TestCache
{
    public static KernelCache Shared { get; } = new(
        Environment.GetEnvironmentVariable("ALEXNET_CACHE_DIR") is { Length: > 0 } root
            ? root
            : Path.Combine(Path.GetTempPath(), "alexnet-cuda-tests"));

    /// <summary>A fresh, empty cache folder for tests of the cache itself; deleted on dispose.</summary>
    public static FreshCache Fresh() =>
        new(new KernelCache(Path.Combine(Path.GetTempPath(), "alexnet-cache-test-" + Guid.NewGuid().ToString("N"))));
}

public sealed class FreshCache(KernelCache cache) : IDisposable
{
    public KernelCache Cache { get; } = cache;

    public void Dispose()
    {
        if (Directory.Exists(Cache.Root)) Directory.Delete(Cache.Root, recursive: true);
    }
}

/// <summary>The OpenCL device (PoCL in CI), opened once and shared by every test in the collection.</summary>
public sealed class OpenClFixture : IDisposable
{
    private readonly Lazy<OpenClDevice> _device = new(() => OpenClDevice.Open(null, TestCache.Shared));

    public OpenClDevice Device
    {
        get
        {
            TestNative.Require(NativeLibraryId.OpenCl);
            return _device.Value;
        }
    }

    public void Dispose()
    {
        if (_device.IsValueCreated) _device.Value.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class OpenClCollection : ICollectionFixture<OpenClFixture>
{
    public const string Name = "OpenCL device";
}
