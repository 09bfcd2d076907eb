using System.Runtime.InteropServices;
using System.Runtime.CompilerServices;

namespace AlexNet.Cuda.Interop;

/// <summary>CLBlast's C API (libclblast): the two GEMMs the OpenCL backend needs. Sizes and offsets are
/// <c>size_t</c>; offsets count elements; the queue is passed by pointer.</summary>
public static unsafe partial class ClBlast
{
    private const string Lib = NativeLibraries.ClBlastName;

    [LibraryImport(Lib)]
    public static partial ClBlastStatus CLBlastSgemm(ClBlastLayout layout, ClBlastTranspose transA, ClBlastTranspose transB,
        nuint m, nuint n, nuint k, float alpha, IntPtr a, nuint aOffset, nuint lda, IntPtr b, nuint bOffset, nuint ldb,
        float beta, IntPtr c, nuint cOffset, nuint ldc, IntPtr* queue, IntPtr* @event);

    [LibraryImport(Lib)]
    public static partial ClBlastStatus CLBlastSgemmStridedBatched(ClBlastLayout layout, ClBlastTranspose transA, ClBlastTranspose transB,
        nuint m, nuint n, nuint k, float alpha, IntPtr a, nuint aOffset, nuint lda, nuint aStride,
        IntPtr b, nuint bOffset, nuint ldb, nuint bStride, float beta, IntPtr c, nuint cOffset, nuint ldc, nuint cStride,
        nuint batchCount, IntPtr* queue, IntPtr* @event);

    public static string StatusName(ClBlastStatus status) => status switch
    {
        ClBlastStatus.NotImplemented => "CLBlastNotImplemented",
        ClBlastStatus.InvalidMatrixA => "CLBlastInvalidMatrixA",
        ClBlastStatus.InvalidMatrixB => "CLBlastInvalidMatrixB",
        ClBlastStatus.InvalidMatrixC => "CLBlastInvalidMatrixC",
        ClBlastStatus.InvalidDimension => "CLBlastInvalidDimension",
        ClBlastStatus.InvalidLeadDimA => "CLBlastInvalidLeadDimA",
        ClBlastStatus.InvalidLeadDimB => "CLBlastInvalidLeadDimB",
        ClBlastStatus.InvalidLeadDimC => "CLBlastInvalidLeadDimC",
        ClBlastStatus.InsufficientMemoryA => "CLBlastInsufficientMemoryA",
        ClBlastStatus.InsufficientMemoryB => "CLBlastInsufficientMemoryB",
        ClBlastStatus.InsufficientMemoryC => "CLBlastInsufficientMemoryC",
        ClBlastStatus.InvalidBatchCount => "CLBlastInvalidBatchCount",
        ClBlastStatus.InvalidLocalMemUsage => "CLBlastInvalidLocalMemUsage",
        ClBlastStatus.DatabaseError => "CLBlastDatabaseError",
        ClBlastStatus.UnknownError => "CLBlastUnknownError",
        ClBlastStatus.UnexpectedError => "CLBlastUnexpectedError",
        // The rest are OpenCL's own codes.
        _ => OpenCl.ErrorName((int)status),
    };
}

public enum ClBlastLayout { RowMajor = 101, ColMajor = 102 }

public enum ClBlastTranspose { No = 111, Yes = 112, Conjugate = 113 }

/// <summary><c>CLBlastStatusCode</c>: OpenCL's codes plus clBLAS's and CLBlast's own.</summary>
public enum ClBlastStatus
{
    Success = 0,
    TempBufferAllocFailure = -4,
    NotImplemented = -1024,
    InvalidMatrixA = -1022,
    InvalidMatrixB = -1021,
    InvalidMatrixC = -1020,
    InvalidDimension = -1017,
    InvalidLeadDimA = -1016,
    InvalidLeadDimB = -1015,
    InvalidLeadDimC = -1014,
    InsufficientMemoryA = -1011,
    InsufficientMemoryB = -1010,
    InsufficientMemoryC = -1009,
    InvalidBatchCount = -2049,
    InvalidLocalMemUsage = -2046,
    DatabaseError = -2041,
    UnknownError = -2040,
    UnexpectedError = -2039,
}

public sealed class ClBlastException : NativeCallException
{
    public ClBlastStatus Result { get; }

    private ClBlastException(ClBlastStatus result, string message) : base(message) => Result = result;

    public static void ThrowIfFailed(ClBlastStatus status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status == ClBlastStatus.Success) return;
        string name = ClBlast.StatusName(status);
        throw new ClBlastException(status, $"{OneLine(call)} failed: {name} ({(int)status})")
        {
            Call = call, Status = (int)status, StatusName = name,
        };
    }
}
