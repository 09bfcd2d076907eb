using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Interop;

/// <summary>
/// cuBLASLt (libcublasLt), the GEMM library with epilogues that cuBLAS itself is built on: the calls one GEMM with a
/// bias (+ReLU) epilogue needs. Matrices are column-major; device pointers are <see cref="ulong"/>; descriptors are
/// opaque host pointers; alpha and beta are passed by host pointer (the default pointer mode). Every attribute is
/// set through a typed helper below whose size is the one cublasLt.h gives it (the library refuses a size that
/// differs, which the tests use to check each helper against the real library).
/// </summary>
public static unsafe partial class CublasLt
{
    private const string Lib = NativeLibraries.CublasLtName;

    [LibraryImport(Lib)] public static partial CublasStatus cublasLtCreate(out IntPtr handle);
    [LibraryImport(Lib)] public static partial CublasStatus cublasLtDestroy(IntPtr handle);
    /// <summary>major·10000 + minor·100 + patch, as cuBLAS's (111103 for 11.11.3).</summary>
    [LibraryImport(Lib)] public static partial nuint cublasLtGetVersion();
    [LibraryImport(Lib)] public static partial byte* cublasLtGetStatusName(CublasStatus status);

    [LibraryImport(Lib)]
    public static partial CublasStatus cublasLtMatmulDescCreate(out IntPtr descriptor, CublasComputeType computeType, CudaDataType scaleType);

    [LibraryImport(Lib)] public static partial CublasStatus cublasLtMatmulDescDestroy(IntPtr descriptor);

    [LibraryImport(Lib)]
    public static partial CublasStatus cublasLtMatmulDescSetAttribute(IntPtr descriptor, CublasLtMatmulDescAttribute attribute, void* buffer, nuint sizeInBytes);

    [LibraryImport(Lib)]
    public static partial CublasStatus cublasLtMatmulDescGetAttribute(IntPtr descriptor, CublasLtMatmulDescAttribute attribute, void* buffer, nuint sizeInBytes,
        out nuint sizeWritten);

    [LibraryImport(Lib)]
    public static partial CublasStatus cublasLtMatrixLayoutCreate(out IntPtr layout, CudaDataType type, ulong rows, ulong columns, long leadingDimension);

    [LibraryImport(Lib)] public static partial CublasStatus cublasLtMatrixLayoutDestroy(IntPtr layout);

    [LibraryImport(Lib)]
    public static partial CublasStatus cublasLtMatrixLayoutGetAttribute(IntPtr layout, CublasLtMatrixLayoutAttribute attribute, void* buffer, nuint sizeInBytes,
        out nuint sizeWritten);

    [LibraryImport(Lib)] public static partial CublasStatus cublasLtMatmulPreferenceCreate(out IntPtr preference);
    [LibraryImport(Lib)] public static partial CublasStatus cublasLtMatmulPreferenceDestroy(IntPtr preference);

    [LibraryImport(Lib)]
    public static partial CublasStatus cublasLtMatmulPreferenceSetAttribute(IntPtr preference, CublasLtPreferenceAttribute attribute, void* buffer, nuint sizeInBytes);

    [LibraryImport(Lib)]
    public static partial CublasStatus cublasLtMatmulAlgoGetHeuristic(IntPtr handle, IntPtr descriptor, IntPtr layoutA, IntPtr layoutB, IntPtr layoutC,
        IntPtr layoutD, IntPtr preference, int requestedAlgoCount, CublasLtHeuristicResult* results, out int returnedAlgoCount);

    /// <summary>D = alpha·op(A)·op(B) + beta·C, then the descriptor's epilogue; C == D with the same layout is the
    /// in-place form.</summary>
    [LibraryImport(Lib)]
    public static partial CublasStatus cublasLtMatmul(IntPtr handle, IntPtr descriptor, void* alpha, ulong a, IntPtr layoutA, ulong b, IntPtr layoutB,
        void* beta, ulong c, IntPtr layoutC, ulong d, IntPtr layoutD, CublasLtMatmulAlgo* algorithm, ulong workspace, nuint workspaceSizeInBytes,
        IntPtr stream);

    // ---- attributes, each with the type cublasLt.h gives it ----

    /// <summary>TRANSA / TRANSB: <c>int32_t</c> (a <c>cublasOperation_t</c>).</summary>
    public static CublasStatus SetOperation(IntPtr descriptor, CublasLtMatmulDescAttribute which, CublasOperation operation)
    {
        int value = (int)operation;
        return cublasLtMatmulDescSetAttribute(descriptor, which, &value, sizeof(int));
    }

    /// <summary>EPILOGUE: <c>uint32_t</c> (a <c>cublasLtEpilogue_t</c>).</summary>
    public static CublasStatus SetEpilogue(IntPtr descriptor, CublasLtEpilogue epilogue)
    {
        uint value = (uint)epilogue;
        return cublasLtMatmulDescSetAttribute(descriptor, CublasLtMatmulDescAttribute.Epilogue, &value, sizeof(uint));
    }

    /// <summary>BIAS_POINTER: <c>const void*</c>, a device address. The heuristic reads it for its alignment.</summary>
    public static CublasStatus SetBiasPointer(IntPtr descriptor, ulong bias)
    {
        void* value = (void*)bias;
        return cublasLtMatmulDescSetAttribute(descriptor, CublasLtMatmulDescAttribute.BiasPointer, &value, (nuint)sizeof(void*));
    }

    /// <summary>MAX_WORKSPACE_BYTES: <c>uint64_t</c>.</summary>
    public static CublasStatus SetMaxWorkspace(IntPtr preference, ulong bytes) =>
        cublasLtMatmulPreferenceSetAttribute(preference, CublasLtPreferenceAttribute.MaxWorkspaceBytes, &bytes, sizeof(ulong));

    /// <summary>MIN_ALIGNMENT_A/B/C/D_BYTES: <c>uint32_t</c>.</summary>
    public static CublasStatus SetMinAlignment(IntPtr preference, CublasLtPreferenceAttribute which, uint bytes) =>
        cublasLtMatmulPreferenceSetAttribute(preference, which, &bytes, sizeof(uint));

    /// <summary>The status's name (<c>CUBLAS_STATUS_NOT_SUPPORTED</c>) from cuBLASLt itself, or a name made here when
    /// the library cannot say.</summary>
    public static string StatusName(CublasStatus status)
    {
        try
        {
            byte* name = cublasLtGetStatusName(status);
            if (name != null) return Marshal.PtrToStringUTF8((IntPtr)name) ?? $"CUBLAS_STATUS_{status}";
        }
        catch (NativeLibraryNotFoundException) { }
        catch (EntryPointNotFoundException) { }
        return $"CUBLAS_STATUS_{status}";
    }
}

/// <summary><c>cublasLtMatmulDescAttributes_t</c>: those the engine sets or reads.</summary>
public enum CublasLtMatmulDescAttribute
{
    ComputeType = 0,
    ScaleType = 1,
    PointerMode = 2,
    TransA = 3,
    TransB = 4,
    TransC = 5,
    Epilogue = 7,
    BiasPointer = 8,
    BiasBatchStride = 10,
    /// <summary>cuBLASLt 11.8 and later. Left unset (-1) the bias has D's type, which is what the engine gives it.</summary>
    BiasDataType = 26,
}

/// <summary><c>cublasLtMatrixLayoutAttribute_t</c>.</summary>
public enum CublasLtMatrixLayoutAttribute
{
    /// <summary><c>uint32_t</c> (a <c>cudaDataType</c>).</summary>
    Type = 0,
    /// <summary><c>int32_t</c>, CUBLASLT_ORDER_COL (0) by default.</summary>
    Order = 1,
    /// <summary><c>uint64_t</c>.</summary>
    Rows = 2,
    /// <summary><c>uint64_t</c>.</summary>
    Columns = 3,
    /// <summary><c>int64_t</c>.</summary>
    LeadingDimension = 4,
    BatchCount = 5,
    StridedBatchOffset = 6,
}

/// <summary><c>cublasLtMatmulPreferenceAttributes_t</c>: those the engine sets.</summary>
public enum CublasLtPreferenceAttribute
{
    SearchMode = 0,
    MaxWorkspaceBytes = 1,
    MinAlignmentABytes = 5,
    MinAlignmentBBytes = 6,
    MinAlignmentCBytes = 7,
    MinAlignmentDBytes = 8,
}

/// <summary><c>cublasLtEpilogue_t</c>: what happens to each element of D after the product. The bias is a vector
/// as long as D has rows, added to every column (element (i, j) gains bias[i]), before the ReLU.</summary>
public enum CublasLtEpilogue : uint
{
    Default = 1,
    Relu = 2,
    Bias = 4,
    ReluBias = Relu | Bias,
}

/// <summary><c>cublasLtMatmulAlgo_t</c>: 64 opaque bytes, filled by the heuristic, passed back to the matmul.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct CublasLtMatmulAlgo
{
    public fixed ulong Data[8];
}

/// <summary><c>cublasLtMatmulHeuristicResult_t</c> (96 bytes): the algorithm, the workspace it needs, whether it
/// is valid (<see cref="State"/>) and how many waves of the GPU it fills.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct CublasLtHeuristicResult
{
    public CublasLtMatmulAlgo Algorithm;
    public nuint WorkspaceSize;
    public CublasStatus State;
    public float WavesCount;
    public fixed int Reserved[4];
}

/// <summary>One matmul problem as cuBLASLt takes it, column-major: op(A) is m×k, op(B) k×n, C and D m×n (D is C, in
/// place), A and B of <see cref="ABType"/>, C of <see cref="CType"/>, FP32 scale type; the bias of
/// <see cref="Epilogue"/>, when it has one, is m values of C's type.</summary>
public readonly record struct CublasLtMatmulShape(CublasOperation TransA, CublasOperation TransB, ulong M, ulong N, ulong K,
    long Lda, long Ldb, long Ldc, CudaDataType ABType, CudaDataType CType, CublasComputeType ComputeType, CublasLtEpilogue Epilogue)
{
    /// <summary>A as stored (the layout cuBLASLt describes, before its operation): m×k, or k×m when transposed.</summary>
    public (ulong Rows, ulong Columns) StoredA => TransA == CublasOperation.None ? (M, K) : (K, M);

    /// <summary>B as stored: k×n, or n×k when transposed.</summary>
    public (ulong Rows, ulong Columns) StoredB => TransB == CublasOperation.None ? (K, N) : (N, K);

    public override string ToString() =>
        $"{M}x{N}x{K} {(TransA == CublasOperation.None ? 'N' : 'T')}{(TransB == CublasOperation.None ? 'N' : 'T')} {ABType}->{CType} {ComputeType} epilogue {Epilogue}";
}

/// <summary>
/// One cuBLASLt matmul set up once and run many times: its operation descriptor, the layouts of A, B and C, and the
/// algorithm the heuristic chose (cuBLASLt recommends querying the heuristic once per problem: it costs tens of
/// microseconds of host time). Descriptors and layouts are host structures (their create calls allocate only those),
/// so a plan holds no device memory; the workspace is the caller's. The bias pointer is a descriptor attribute,
/// set before each run. Not thread-safe: one caller at a time.
/// </summary>
public sealed unsafe class CublasLtMatmulPlan : IDisposable
{
    private IntPtr _descriptor, _layoutA, _layoutB, _layoutC;
    private CublasLtMatmulAlgo _algorithm;

    private CublasLtMatmulPlan(CublasLtMatmulShape shape) => Shape = shape;

    public CublasLtMatmulShape Shape { get; }

    /// <summary>The operation descriptor and the layouts, for reading their attributes back.</summary>
    public (IntPtr Descriptor, IntPtr A, IntPtr B, IntPtr C) Handles => (_descriptor, _layoutA, _layoutB, _layoutC);

    /// <summary>True once <see cref="ChooseAlgorithm"/> has found one.</summary>
    public bool HasAlgorithm { get; private set; }

    /// <summary>The workspace the chosen algorithm needs (at most what <see cref="ChooseAlgorithm"/> allowed).</summary>
    public ulong WorkspaceBytes { get; private set; }

    /// <summary>The descriptor (compute type, FP32 scale type, the two operations, the epilogue) and the three
    /// layouts; needs the library, not a GPU.</summary>
    public static CublasLtMatmulPlan Create(in CublasLtMatmulShape shape)
    {
        var plan = new CublasLtMatmulPlan(shape);
        try
        {
            CublasLtException.ThrowIfFailed(CublasLt.cublasLtMatmulDescCreate(out plan._descriptor, shape.ComputeType, CudaDataType.R32F));
            CublasLtException.ThrowIfFailed(CublasLt.SetOperation(plan._descriptor, CublasLtMatmulDescAttribute.TransA, shape.TransA));
            CublasLtException.ThrowIfFailed(CublasLt.SetOperation(plan._descriptor, CublasLtMatmulDescAttribute.TransB, shape.TransB));
            CublasLtException.ThrowIfFailed(CublasLt.SetEpilogue(plan._descriptor, shape.Epilogue));
            (ulong aRows, ulong aColumns) = shape.StoredA;
            (ulong bRows, ulong bColumns) = shape.StoredB;
            CublasLtException.ThrowIfFailed(CublasLt.cublasLtMatrixLayoutCreate(out plan._layoutA, shape.ABType, aRows, aColumns, shape.Lda));
            CublasLtException.ThrowIfFailed(CublasLt.cublasLtMatrixLayoutCreate(out plan._layoutB, shape.ABType, bRows, bColumns, shape.Ldb));
            CublasLtException.ThrowIfFailed(CublasLt.cublasLtMatrixLayoutCreate(out plan._layoutC, shape.CType, shape.M, shape.N, shape.Ldc));
            return plan;
        }
        catch
        {
            plan.Dispose();
            throw;
        }
    }

    /// <summary>Points the epilogue at <paramref name="bias"/> (m values of C's type, on the device).</summary>
    public void SetBias(ulong bias)
    {
        ObjectDisposedException.ThrowIf(_descriptor == IntPtr.Zero, this);
        CublasLtException.ThrowIfFailed(CublasLt.SetBiasPointer(_descriptor, bias));
    }

    /// <summary>
    /// Asks the heuristic for the fastest algorithm that needs at most <paramref name="maxWorkspaceBytes"/> of workspace
    /// and works with operands aligned only to the given byte counts (the preference's default assumes 256: an
    /// algorithm chosen for that could fault on an operand at an odd offset). D is C. Set the bias first: the
    /// heuristic reads its pointer's alignment. Throws a one-line <see cref="AlexNetException"/> when there is none.
    /// </summary>
    public void ChooseAlgorithm(IntPtr handle, ulong maxWorkspaceBytes, uint alignmentA, uint alignmentB, uint alignmentC)
    {
        ObjectDisposedException.ThrowIf(_descriptor == IntPtr.Zero, this);
        CublasLtException.ThrowIfFailed(CublasLt.cublasLtMatmulPreferenceCreate(out IntPtr preference));
        try
        {
            CublasLtException.ThrowIfFailed(CublasLt.SetMaxWorkspace(preference, maxWorkspaceBytes));
            CublasLtException.ThrowIfFailed(CublasLt.SetMinAlignment(preference, CublasLtPreferenceAttribute.MinAlignmentABytes, alignmentA));
            CublasLtException.ThrowIfFailed(CublasLt.SetMinAlignment(preference, CublasLtPreferenceAttribute.MinAlignmentBBytes, alignmentB));
            CublasLtException.ThrowIfFailed(CublasLt.SetMinAlignment(preference, CublasLtPreferenceAttribute.MinAlignmentCBytes, alignmentC));
            CublasLtException.ThrowIfFailed(CublasLt.SetMinAlignment(preference, CublasLtPreferenceAttribute.MinAlignmentDBytes, alignmentC));
            CublasLtHeuristicResult result;
            CublasStatus status = CublasLt.cublasLtMatmulAlgoGetHeuristic(handle, _descriptor, _layoutA, _layoutB, _layoutC, _layoutC, preference,
                1, &result, out int returned);
            if (status == CublasStatus.NotSupported || (status == CublasStatus.Success && (returned < 1 || result.State != CublasStatus.Success)))
                throw new AlexNetException($"cuBLASLt has no algorithm for the GEMM {Shape} on this GPU ({CublasLt.StatusName(status == CublasStatus.Success ? result.State : status)}, " +
                    $"{returned} found); run the bias and ReLU as a kernel instead");
            CublasLtException.ThrowIfFailed(status, "cublasLtMatmulAlgoGetHeuristic(handle, descriptor, A, B, C, D, preference, 1, &result, out returned)");
            _algorithm = result.Algorithm;
            WorkspaceBytes = result.WorkspaceSize;
            HasAlgorithm = true;
        }
        finally
        {
            CublasLt.cublasLtMatmulPreferenceDestroy(preference);
        }
    }

    /// <summary>
    /// Queues D = op(A)·op(B) (alpha 1, beta 0: C is not read) with the epilogue, in place in <paramref name="c"/>, on
    /// <paramref name="stream"/>, with the chosen algorithm and the caller's workspace (256-byte aligned, at least
    /// <see cref="WorkspaceBytes"/>).
    /// </summary>
    public void Run(IntPtr handle, ulong a, ulong b, ulong c, ulong workspace, ulong workspaceBytes, IntPtr stream)
    {
        ObjectDisposedException.ThrowIf(_descriptor == IntPtr.Zero, this);
        if (!HasAlgorithm) throw new InvalidOperationException("no algorithm chosen yet: call ChooseAlgorithm first");
        float alpha = 1f, beta = 0f;
        CublasLtMatmulAlgo algorithm = _algorithm;
        CublasStatus status = CublasLt.cublasLtMatmul(handle, _descriptor, &alpha, a, _layoutA, b, _layoutB, &beta, c, _layoutC, c, _layoutC,
            &algorithm, workspace, (nuint)workspaceBytes, stream);
        // The call's text is made only on failure: a forward pass allocates nothing.
        if (status != CublasStatus.Success) CublasLtException.ThrowIfFailed(status, $"cublasLtMatmul({Shape})");
    }

    /// <summary>Destroys the descriptors; never throws.</summary>
    public void Dispose()
    {
        IntPtr layoutC = Interlocked.Exchange(ref _layoutC, IntPtr.Zero), layoutB = Interlocked.Exchange(ref _layoutB, IntPtr.Zero);
        IntPtr layoutA = Interlocked.Exchange(ref _layoutA, IntPtr.Zero), descriptor = Interlocked.Exchange(ref _descriptor, IntPtr.Zero);
        if (layoutC != IntPtr.Zero) CublasLt.cublasLtMatrixLayoutDestroy(layoutC);
        if (layoutB != IntPtr.Zero) CublasLt.cublasLtMatrixLayoutDestroy(layoutB);
        if (layoutA != IntPtr.Zero) CublasLt.cublasLtMatrixLayoutDestroy(layoutA);
        if (descriptor != IntPtr.Zero) CublasLt.cublasLtMatmulDescDestroy(descriptor);
    }
}

/// <summary>A cuBLASLt call failed (the same <c>cublasStatus_t</c> as cuBLAS, named by cuBLASLt).</summary>
public sealed class CublasLtException : NativeCallException
{
    public CublasStatus Result { get; }

    private CublasLtException(CublasStatus result, string message) : base(message) => Result = result;

    public static void ThrowIfFailed(CublasStatus status, [CallerArgumentExpression(nameof(status))] string call = "")
    {
        if (status == CublasStatus.Success) return;
        string name = CublasLt.StatusName(status);
        string hint = status switch
        {
            CublasStatus.AllocFailed => ". The GPU is out of memory: use a smaller batch",
            CublasStatus.NotSupported or CublasStatus.ArchMismatch => ". cuBLASLt has no kernel for this GEMM and epilogue on this GPU: run the bias and ReLU as a kernel instead",
            _ => "",
        };
        throw new CublasLtException(status, $"{OneLine(call)} failed: {name} ({(int)status}){hint}")
        {
            Call = call, Status = (int)status, StatusName = name,
        };
    }
}
