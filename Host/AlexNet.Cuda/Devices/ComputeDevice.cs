using System.Runtime.CompilerServices;
using AlexNet.Cuda.Compilation;

namespace AlexNet.Cuda.Devices;

/// <summary>Whether a GEMM operand is used as stored or transposed (cuBLAS's <c>CUBLAS_OP_N</c>/<c>_T</c>).</summary>
public enum MatrixOp
{
    None,
    Transpose,
}

/// <summary>
/// One compute device, whichever backend runs it. All work goes into the device's one in-order queue
/// (a CUDA stream, an OpenCL command queue) and runs asynchronously: launches and GEMMs return at
/// once, copies to the host wait for the work before them, <see cref="Synchronize"/> waits for all.
/// </summary>
public abstract class ComputeDevice : IDisposable
{
    public abstract DeviceBackend Backend { get; }

    /// <summary>The device's own name (<c>NVIDIA H100 80GB HBM3</c>, <c>pthread-haswell-AMD EPYC …</c>).</summary>
    public abstract string Name { get; }

    /// <summary>One line naming backend, device and compiler target, for logs and benchmark output.</summary>
    public abstract string Description { get; }

    /// <summary>The compiler and its version (<c>NVRTC 11.8</c>, <c>OpenCL 1.2 PoCL 3.1</c>).</summary>
    public abstract string CompilerVersion { get; }

    public abstract long TotalMemoryBytes { get; }

    public abstract KernelCache Cache { get; }

    private int _modulesCompiled, _modulesFromCache;

    /// <summary>Kernel modules this device compiled (cache misses) and loaded from the disk cache.</summary>
    public (int Compiled, int FromCache) ModuleLoads => (_modulesCompiled, _modulesFromCache);

    /// <summary>Counts a module load; backends return their modules through it.</summary>
    protected KernelModule Loaded(KernelModule module)
    {
        Interlocked.Increment(ref module.FromCache ? ref _modulesFromCache : ref _modulesCompiled);
        return module;
    }

    // ---- memory ----

    /// <summary>Allocates <paramref name="length"/> elements of uninitialised device memory.</summary>
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        long bytes = checked(length * Unsafe.SizeOf<T>());
        return new DeviceBuffer<T>(this, AllocateMemory(bytes), length);
    }

    /// <summary>Allocates a buffer holding a copy of <paramref name="data"/>.</summary>
    public DeviceBuffer<T> Upload<T>(ReadOnlySpan<T> data) where T : unmanaged
    {
        DeviceBuffer<T> buffer = Allocate<T>(data.Length);
        try
        {
            CopyToDevice(data, buffer);
            return buffer;
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    /// <summary>Copies host data into <paramref name="destination"/> at element <paramref name="offset"/>,
    /// after the work queued before it. <paramref name="source"/> may be reused once this returns.</summary>
    public unsafe void CopyToDevice<T>(ReadOnlySpan<T> source, DeviceBuffer<T> destination, long offset = 0) where T : unmanaged
    {
        CheckRange(destination, offset, source.Length, nameof(destination));
        if (source.IsEmpty) return;
        fixed (T* p = source)
            WriteMemory(destination.Handle, offset * Unsafe.SizeOf<T>(), p, (long)source.Length * Unsafe.SizeOf<T>());
    }

    /// <summary>Copies device data to the host, after the work queued before it has finished.</summary>
    public unsafe void CopyToHost<T>(DeviceBuffer<T> source, Span<T> destination, long offset = 0) where T : unmanaged
    {
        CheckRange(source, offset, destination.Length, nameof(source));
        if (destination.IsEmpty) return;
        fixed (T* p = destination)
            ReadMemory(source.Handle, offset * Unsafe.SizeOf<T>(), p, (long)destination.Length * Unsafe.SizeOf<T>());
    }

    /// <summary>The whole buffer as a new array (waits for queued work).</summary>
    public T[] Download<T>(DeviceBuffer<T> source) where T : unmanaged
    {
        var result = new T[checked((int)source.Length)];
        CopyToHost<T>(source, result);
        return result;
    }

    /// <summary>Queues setting every element of <paramref name="buffer"/> to <paramref name="value"/>.</summary>
    public void Fill(DeviceBuffer<float> buffer, float value) =>
        FillMemory(buffer.Handle, BitConverter.SingleToUInt32Bits(value), buffer.Length);

    // ---- kernels ----

    /// <summary>
    /// Compiles the embedded kernel file <paramref name="sourceName"/> (<c>transpose.cu</c>) with the given
    /// <c>-D</c> defines, or loads it from the disk cache when the same source, defines, compiler and
    /// target were compiled before.
    /// </summary>
    public KernelModule LoadModule(string sourceName, IReadOnlyDictionary<string, string>? defines = null) =>
        LoadModule(KernelSource.FromEmbedded(sourceName), defines);

    /// <summary>Compiles a kernel source that is not embedded (tests, experiments).</summary>
    public abstract KernelModule LoadModule(KernelSource source, IReadOnlyDictionary<string, string>? defines = null);

    /// <summary>Queues a launch of <paramref name="grid"/> blocks of <paramref name="block"/> threads.</summary>
    public abstract void Launch(Kernel kernel, Dim3 grid, Dim3 block, in KernelArguments arguments);

    // ---- GEMM, with cuBLAS's semantics ----

    /// <summary>
    /// C = alpha·op(A)·op(B) + beta·C on column-major matrices, as cuBLAS's <c>cublasSgemm</c>:
    /// op(A) is m×k, op(B) is k×n, C is m×n; <c>lda</c>/<c>ldb</c>/<c>ldc</c> are the leading dimensions
    /// (column strides) of the stored matrices; offsets are in elements. Queued, not waited for.
    /// </summary>
    public void Gemm(MatrixOp transA, MatrixOp transB, int m, int n, int k,
        float alpha, DeviceBuffer<float> a, long aOffset, int lda,
        DeviceBuffer<float> b, long bOffset, int ldb,
        float beta, DeviceBuffer<float> c, long cOffset, int ldc)
    {
        ValidateGemm(transA, transB, m, n, k, a, aOffset, lda, 0, b, bOffset, ldb, 0, c, cOffset, ldc, 0, 1);
        if (m == 0 || n == 0) return;
        GemmCore(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);
    }

    /// <summary>
    /// <paramref name="batchCount"/> independent GEMMs; matrix <c>i</c> of each operand starts
    /// <c>i·stride</c> elements after its offset (cuBLAS's <c>cublasSgemmStridedBatched</c>).
    /// </summary>
    public void GemmStridedBatched(MatrixOp transA, MatrixOp transB, int m, int n, int k,
        float alpha, DeviceBuffer<float> a, long aOffset, int lda, long strideA,
        DeviceBuffer<float> b, long bOffset, int ldb, long strideB,
        float beta, DeviceBuffer<float> c, long cOffset, int ldc, long strideC, int batchCount)
    {
        ValidateGemm(transA, transB, m, n, k, a, aOffset, lda, strideA, b, bOffset, ldb, strideB, c, cOffset, ldc, strideC, batchCount);
        if (m == 0 || n == 0 || batchCount == 0) return;
        GemmStridedBatchedCore(transA, transB, m, n, k, alpha, a, aOffset, lda, strideA, b, bOffset, ldb, strideB,
            beta, c, cOffset, ldc, strideC, batchCount);
    }

    // ---- ordering and timing ----

    /// <summary>Waits until all queued work has finished.</summary>
    public abstract void Synchronize();

    /// <summary>Marks the current point of the queue; two marks give device-side elapsed time.</summary>
    public abstract DeviceEvent RecordEvent();

    /// <summary>Device time between two recorded events, in milliseconds; waits for <paramref name="end"/>.</summary>
    public abstract double ElapsedMilliseconds(DeviceEvent start, DeviceEvent end);

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected abstract void Dispose(bool disposing);

    // ---- what each backend implements ----

    protected internal abstract nint AllocateMemory(long bytes);

    /// <summary>Frees memory; must never throw (it runs from Dispose).</summary>
    protected internal abstract void FreeMemory(nint handle);

    protected abstract unsafe void WriteMemory(nint handle, long byteOffset, void* source, long bytes);

    protected abstract unsafe void ReadMemory(nint handle, long byteOffset, void* destination, long bytes);

    protected abstract void FillMemory(nint handle, uint pattern, long count);

    protected abstract void GemmCore(MatrixOp transA, MatrixOp transB, int m, int n, int k,
        float alpha, DeviceBuffer<float> a, long aOffset, int lda,
        DeviceBuffer<float> b, long bOffset, int ldb,
        float beta, DeviceBuffer<float> c, long cOffset, int ldc);

    protected abstract void GemmStridedBatchedCore(MatrixOp transA, MatrixOp transB, int m, int n, int k,
        float alpha, DeviceBuffer<float> a, long aOffset, int lda, long strideA,
        DeviceBuffer<float> b, long bOffset, int ldb, long strideB,
        float beta, DeviceBuffer<float> c, long cOffset, int ldc, long strideC, int batchCount);

    // ---- checks shared by both backends ----

    private void CheckRange<T>(DeviceBuffer<T> buffer, long offset, long count, string name) where T : unmanaged
    {
        if (!ReferenceEquals(buffer.Device, this))
            throw new ArgumentException($"{name} belongs to another device ({buffer.Device.Description})", name);
        if (offset < 0 || count < 0 || offset + count > buffer.Length)
            throw new ArgumentOutOfRangeException(name, $"elements [{offset}, {offset + count}) are outside the buffer's {buffer.Length}");
    }

    /// <summary>
    /// Checks a GEMM's shapes against its buffers before any native call: cuBLAS would read or write
    /// past a buffer silently, so the last element each operand touches must lie inside it.
    /// </summary>
    private void ValidateGemm(MatrixOp transA, MatrixOp transB, int m, int n, int k,
        DeviceBuffer<float> a, long aOffset, int lda, long strideA,
        DeviceBuffer<float> b, long bOffset, int ldb, long strideB,
        DeviceBuffer<float> c, long cOffset, int ldc, long strideC, int batchCount)
    {
        if (m < 0 || n < 0 || k < 0 || batchCount < 0)
            throw new ArgumentOutOfRangeException(nameof(m), $"GEMM sizes must not be negative (m={m}, n={n}, k={k}, batch={batchCount})");
        // Stored shapes (rows × columns, column-major) of A and B.
        (long aRows, long aCols) = transA == MatrixOp.None ? (m, k) : (k, m);
        (long bRows, long bCols) = transB == MatrixOp.None ? (k, n) : (n, k);
        CheckOperand("A", a, aOffset, lda, aRows, aCols, strideA, batchCount);
        CheckOperand("B", b, bOffset, ldb, bRows, bCols, strideB, batchCount);
        CheckOperand("C", c, cOffset, ldc, m, n, strideC, batchCount);
    }

    private void CheckOperand(string name, DeviceBuffer<float> buffer, long offset, int ld, long rows, long cols, long stride, int batchCount)
    {
        if (!ReferenceEquals(buffer.Device, this))
            throw new ArgumentException($"GEMM operand {name} belongs to another device", name);
        if (ld < Math.Max(1, rows))
            throw new ArgumentOutOfRangeException(name, $"GEMM leading dimension ld{name.ToLowerInvariant()}={ld} is less than the {rows} rows of {name}");
        if (offset < 0 || stride < 0)
            throw new ArgumentOutOfRangeException(name, $"GEMM operand {name} has a negative offset or stride");
        if (rows == 0 || cols == 0 || batchCount == 0) return;
        long last = offset + (long)(batchCount - 1) * stride + (cols - 1) * ld + rows - 1;
        if (last >= buffer.Length)
            throw new ArgumentOutOfRangeException(name, $"GEMM operand {name} ({rows}×{cols}, ld {ld}, offset {offset}, stride {stride}, batch {batchCount}) reaches element {last} of a buffer of {buffer.Length}");
    }

    protected static string Bytes(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.0} GiB" : $"{bytes / (double)(1L << 20):0.0} MiB";

    protected static string Utf8(ReadOnlySpan<byte> text)
    {
        int end = text.IndexOf((byte)0);
        return System.Text.Encoding.UTF8.GetString(end >= 0 ? text[..end] : text);
    }

}
