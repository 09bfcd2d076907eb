using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Interop;

/// <summary>
/// oneDNN's (libdnnl) BLAS-like SGEMM: the GEMM the OpenCL backend hands to the host's cores where the device's
/// buffers live in host memory, when it loads (measured faster than OpenBLAS on the engine's shapes on AVX-512
/// processors: its JIT kernels use AVX-512 where Debian's OpenBLAS runs AVX2 ones; docs/performance.md).
/// Unlike CBLAS its matrices are row-major and its sizes 64-bit (<c>dnnl_dim_t</c>); the transposes are the
/// characters 'N' and 'T'.
/// </summary>
public static unsafe partial class OneDnn
{
    private const string Lib = NativeLibraries.OneDnnName;

    /// <summary>C = alpha·op(A)·op(B) + beta·C, all row-major; returns a <c>dnnl_status_t</c> (0: success).</summary>
    [LibraryImport(Lib)]
    public static partial int dnnl_sgemm(byte transA, byte transB, long m, long n, long k, float alpha, float* a, long lda,
        float* b, long ldb, float beta, float* c, long ldc);

    /// <summary>A static <c>dnnl_version_t</c>: major, minor, patch (ints), then the commit hash and runtimes.</summary>
    [LibraryImport(Lib)] public static partial DnnlVersion* dnnl_version();
}

[StructLayout(LayoutKind.Sequential)]
public struct DnnlVersion
{
    public int Major, Minor, Patch;
    public IntPtr Hash;
    public uint CpuRuntime, GpuRuntime;
}
