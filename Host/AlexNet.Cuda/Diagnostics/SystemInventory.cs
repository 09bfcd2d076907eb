using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;

namespace AlexNet.Cuda.Diagnostics;

/// <summary>What this machine offers the engine: each library and device, or the one-line reason it is
/// missing. Probing never throws.</summary>
public sealed record SystemInventory(
    string CacheRoot,
    string? PoclCacheDir,
    string CudaDriver,
    IReadOnlyList<string> CudaDevices,
    string? CudaDevicesMissing,
    string Nvrtc,
    string Cublas,
    IReadOnlyList<string> OpenClDevices,
    string? OpenClDevicesMissing,
    string ClBlast,
    string OpenBlas,
    IReadOnlyList<string> OpenClGemm,
    string OneDnn = "",
    string CublasLt = "")
{
    public static SystemInventory Probe()
    {
        var cudaDevices = new List<string>();
        string? cudaMissing = null;
        string driver = Describe(NativeLibraryId.CudaDriver, () =>
        {
            CudaException.ThrowIfFailed(Interop.CudaDriver.cuDriverGetVersion(out int v));
            return $"CUDA {v / 1000}.{v % 1000 / 10}";
        });
        try
        {
            using CudaDevice first = CudaDevice.Open(0);
            cudaDevices.Add(WithPrecisions(first));
            CudaException.ThrowIfFailed(Interop.CudaDriver.cuDeviceGetCount(out int count));
            for (int i = 1; i < count; i++)
            {
                using CudaDevice other = CudaDevice.Open(i);
                cudaDevices.Add(WithPrecisions(other));
            }
        }
        catch (AlexNetException e) { cudaMissing = e.Message; }

        string nvrtc = Describe(NativeLibraryId.Nvrtc, () =>
        {
            IReadOnlyList<int> archs = NvrtcCompiler.SupportedArchitectures();
            return $"{NvrtcCompiler.VersionText}, builds sm_{archs.Min()}..sm_{archs.Max()}";
        }) + ToolkitChoice(NativeLibraryId.Nvrtc);
        string cublas = Describe(NativeLibraryId.Cublas, () => "loadable") + ToolkitChoice(NativeLibraryId.Cublas);
        // cuBLASLt runs fc6's and fc7's bias+ReLU epilogue (--epilogue cublaslt); its file shows which release loaded.
        string cublasLt = Describe(NativeLibraryId.CublasLt, () => "loadable");

        var clDevices = new List<string>();
        string? clMissing = null;
        try
        {
            foreach (OpenClDeviceInfo info in OpenClDevice.Enumerate()) clDevices.Add(info.ToString());
            if (clDevices.Count == 0) clMissing = "no OpenCL platform reports a device";
        }
        catch (AlexNetException e) { clMissing = e.Message; }
        string clblast = Describe(NativeLibraryId.ClBlast, () => "loadable");
        string openblas = Describe(NativeLibraryId.OpenBlas, () => "loadable");
        string onednn = Describe(NativeLibraryId.OneDnn, () => "loadable");
        var clGemm = new List<string>();
        try
        {
            OpenClGemmProvider requested = OpenClDevice.RequestedGemmProvider();
            foreach (OpenClDeviceInfo info in OpenClDevice.Enumerate())
            {
                string why = requested != OpenClGemmProvider.Auto ? $"forced by {OpenClDevice.GemmVariable}"
                    : info.BuffersInHostMemory ? $"the default where the buffers live in host memory; {OpenClDevice.GemmVariable}=clblast for CLBlast"
                    : "the default for a device with its own memory";
                string provider;
                try
                {
                    (OpenClGemmProvider kind, string name) = OpenClDevice.ChooseGemmProvider(info, requested);
                    // OpenBLAS or oneDNN on mapped buffers runs every precision (16-bit and TF32 operands converted on the host);
                    // CLBlast only FP32 (OpenClDevice.SupportsGemm).
                    provider = kind is OpenClGemmProvider.OpenBlas or OpenClGemmProvider.OneDnn
                        ? $"{name}; precisions fp32, tf32, fp16, bf16 (tf32/fp16/bf16 operands converted on the host for SGEMM)"
                        : $"{name}; precisions fp32";
                }
                catch (AlexNetException e) { provider = $"none: {e.Message}"; }
                clGemm.Add($"opencl:{info.Index} {provider} ({why})");
            }
        }
        catch (AlexNetException e) { clGemm.Add($"none: {e.Message}"); }

        return new SystemInventory(KernelCache.DefaultRoot(), Environment.GetEnvironmentVariable("POCL_CACHE_DIR"),
            driver, cudaDevices, cudaMissing, nvrtc, cublas, clDevices, clMissing, clblast, openblas, clGemm, onednn, cublasLt);
    }

    /// <summary>A CUDA device's description and the precisions its cuBLAS GEMMs run (<c>--precision</c>).</summary>
    private static string WithPrecisions(ComputeDevice device)
    {
        var supported = new List<string>();
        var lacking = new List<string>();
        foreach (Network.Precision p in Network.Precisions.All)
        {
            if (Network.Precisions.IsSupported(device, p, out string? why)) supported.Add(Network.Precisions.Name(p));
            else lacking.Add($"{Network.Precisions.Name(p)}: {why}");
        }
        return $"{device.Description}; precisions {string.Join(", ", supported)}" + (lacking.Count > 0 ? $" (not {string.Join("; ", lacking)})" : "");
    }

    /// <summary>Why this toolkit release: the newest the driver supports, naming the newer ones skipped.</summary>
    internal static string ToolkitChoice(NativeLibraryId id)
    {
        int? version = NativeLibraries.DriverCudaVersion();
        if (version is not int v) return "; no CUDA driver, so any toolkit release is tried";
        IReadOnlyList<string> skipped = NativeLibraries.NamesTooNewForDriver(id, v / 1000);
        string driver = $"the driver supports CUDA {v / 1000}.{v % 1000 / 10}";
        return skipped.Count == 0
            ? $"; {driver}, so every toolkit release up to CUDA {v / 1000} is tried, newest first"
            : $"; {driver}, so {string.Join(", ", skipped)} {(skipped.Count == 1 ? "is" : "are")} skipped even if installed";
    }

    private static string Describe(NativeLibraryId id, Func<string> details)
    {
        try
        {
            NativeLibraries.Load(id);
            return $"{details()} ({NativeLibraries.LoadedPath(id)})";
        }
        catch (AlexNetException e)
        {
            return $"not available: {e.Message}";
        }
    }
}
