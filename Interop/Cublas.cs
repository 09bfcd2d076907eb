using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Interop;

/// <summary>
/// cuBLAS (libcublas), the <c>_v2</c> API. Matrices are column-major; device pointers are
/// <see cref="ulong"/>; scalars are passed by host pointer (the default pointer mode).
/// </summary>
public static unsafe partial class Cublas
{
    private const string Lib = NativeLibraries.CublasName;

    [LibraryImport(Lib)] public static partial CublasStatus cublasCreate_v2(out IntPtr handle);
    [LibraryImport(Lib)] public static partial CublasStatus cublasDestroy_v2(IntPtr handle);
    [LibraryImport(Lib)] public static partial CublasStatus cublasGetVersion_v2(IntPtr handle, out int version);
    [LibraryImport(Lib)] public static partial CublasStatus cublasSetStream_v2(IntPtr handle, IntPtr stream);
    [LibraryImport(Lib)] public static partial CublasStatus cublasSetMathMode(IntPtr handle, CublasMath mode);
    [LibraryImport(Lib)] public static partial byte* cublasGetStatusName(CublasStatus status);

    [LibraryImport(Lib)]
    public static partial CublasStatus cublasSgemm_v2(IntPtr handle, CublasOperation transA, CublasOperation transB,
        int m, int n, int k, float* alpha, ulong a, int lda, ulong b, int ldb, float* beta, ulong c, int ldc);

    [LibraryImport(Lib)]
    public static partial CublasStatus cublasSgemmStridedBatched(IntPtr handle, CublasOperation transA, CublasOperation transB,
        int m, int n, int k, float* alpha, ulong a, int lda, long strideA, ulong b, int ldb, long strideB,
        float* beta, ulong c, int ldc, long strideC, int batchCount);

    [LibraryImport(Lib)]
    public static partial CublasStatus cublasGemmEx(IntPtr handle, CublasOperation transA, CublasOperation transB,
        int m, int n, int k, void* alpha, ulong a, CudaDataType aType, int lda, ulong b, CudaDataType bType, int ldb,
        void* beta, ulong c, CudaDataType cType, int ldc, CublasComputeType computeType, CublasGemmAlgo algo);

    [LibraryImport(Lib)]
    public static partial CublasStatus cublasGemmStridedBatchedEx(IntPtr handle, CublasOperation transA, CublasOperation transB,
        int m, int n, int k, void* alpha, ulong a, CudaDataType aType, int lda, long strideA,
        ulong b, CudaDataType bType, int ldb, long strideB, void* beta, ulong c, CudaDataType cType, int ldc, long strideC,
        int batchCount, CublasComputeType computeType, CublasGemmAlgo algo);

    public static string StatusName(CublasStatus status)
    {
        try
        {
            byte* name = cublasGetStatusName(status);
            if (name != null) return Marshal.PtrToStringUTF8((IntPtr)name) ?? status.ToString();
        }
        catch (NativeLibraryNotFoundException) { }
        catch (EntryPointNotFoundException) { }
        return $"CUBLAS_STATUS_{status}";
    }
}

public enum CublasStatus
{
    Success = 0,
    NotInitialized = 1,
    AllocFailed = 3,
    InvalidValue = 7,
    ArchMismatch = 8,
    MappingError = 11,
    ExecutionFailed = 13,
    InternalError = 14,
    NotSupported = 15,
    LicenseError = 16,
}

/// <summary><c>cublasOperation_t</c>.</summary>
public enum CublasOperation
{
    None = 0,
    Transpose = 1,
    ConjugateTranspose = 2,
}

/// <summary><c>cublasMath_t</c>.</summary>
public enum CublasMath
{
    Default = 0,
    TensorOp = 1,
    Pedantic = 2,
    Tf32TensorOp = 3,
    DisallowReducedPrecisionReduction = 16,
}

/// <summary><c>cudaDataType_t</c>: the types the engine uses.</summary>
public enum CudaDataType
{
    R32F = 0,
    R64F = 1,
    R16F = 2,
    R16BF = 14,
}

/// <summary><c>cublasComputeType_t</c>.</summary>
public enum CublasComputeType
{
    Compute16F = 64,
    Compute32F = 68,
    Compute32FPedantic = 69,
    Compute32FFast16F = 74,
    Compute32FFast16BF = 75,
    Compute32FFastTf32 = 77,
}

/// <summary><c>cublasGemmAlgo_t</c>.</summary>
public enum CublasGemmAlgo
{
    Default = -1,
    DefaultTensorOp = 99,
}

public sealed class CublasException : NativeCallException
{
    public CublasStatus Result { get; }

    private CublasException(CublasStatus result, string message) : base(message) => Result = result;

    public static void ThrowIfFailed(CublasStatus status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status == CublasStatus.Success) return;
        string name = Cublas.StatusName(status);
        string hint = status == CublasStatus.AllocFailed ? ". The GPU is out of memory: use a smaller batch" : "";
        throw new CublasException(status, $"{OneLine(call)} failed: {name} ({(int)status}){hint}")
        {
            Call = call, Status = (int)status, StatusName = name,
        };
    }
}

// The workspace binding, for graph capture.
public static partial class Cublas
{
    /// <summary>
    /// Gives the handle a device buffer of its own as workspace, so that no call made during stream capture
    /// needs to allocate one. <c>cublasSetStream</c> resets the workspace to cuBLAS's own pool, so this is
    /// called after it.
    /// </summary>
    [LibraryImport(NativeLibraries.CublasName)]
    public static partial CublasStatus cublasSetWorkspace_v2(IntPtr handle, ulong workspace, nuint workspaceSizeInBytes);
}
