using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Interop;

/// <summary>
/// OpenBLAS's CBLAS interface (libopenblas, the LP64 build Debian ships: every integer is a C <c>int</c>):
/// the one GEMM the OpenCL backend hands to the host's cores when the device's buffers live in host memory,
/// plus the thread-count and build-configuration queries.
/// </summary>
public static unsafe partial class OpenBlas
{
    private const string Lib = NativeLibraries.OpenBlasName;

    [LibraryImport(Lib)]
    public static partial void cblas_sgemm(CblasLayout layout, CblasTranspose transA, CblasTranspose transB,
        int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    [LibraryImport(Lib)] public static partial void openblas_set_num_threads(int threads);

    [LibraryImport(Lib)] public static partial int openblas_get_num_threads();

    /// <summary>A static NUL-terminated string such as "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64".</summary>
    [LibraryImport(Lib)] public static partial byte* openblas_get_config();
}

public enum CblasLayout { RowMajor = 101, ColMajor = 102 }

public enum CblasTranspose { No = 111, Yes = 112 }
