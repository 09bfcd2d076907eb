using System.Runtime.CompilerServices;

namespace AlexNet.Cuda.Devices;

/// <summary>
/// An in-order queue of device work: a CUDA stream, or an OpenCL command queue. Launches, GEMMs, fills
/// and asynchronous copies return at once; the synchronous copies wait for the work queued before them;
/// <see cref="Synchronize"/> waits for everything queued. Work on different streams may overlap; order
/// it with <see cref="RecordEvent"/> on one stream and <see cref="Wait"/> on the other.
/// </summary>
public abstract class ComputeStream : IDisposable
{
    protected ComputeStream(ComputeDevice device) => Device = device;

    public ComputeDevice Device { get; }

    // ---- copies ----

    /// <summary>Copies host data into <paramref name="destination"/> at element <paramref name="offset"/>,
    /// after the work queued before it; returns when <paramref name="source"/> may be reused.</summary>
    public unsafe void CopyToDevice<T>(ReadOnlySpan<T> source, DeviceBuffer<T> destination, long offset = 0) where T : unmanaged
    {
        CheckRange(destination, offset, source.Length, nameof(destination));
        if (source.IsEmpty) return;
        fixed (T* p = source)
            WriteMemory(destination.Handle, offset * Unsafe.SizeOf<T>(), p, (long)source.Length * Unsafe.SizeOf<T>(), wait: true);
    }

    /// <summary>Copies device data to the host, after the work queued before it has finished.</summary>
    public unsafe void CopyToHost<T>(DeviceBuffer<T> source, Span<T> destination, long offset = 0) where T : unmanaged
    {
        CheckRange(source, offset, destination.Length, nameof(source));
        if (destination.IsEmpty) return;
        fixed (T* p = destination)
            ReadMemory(source.Handle, offset * Unsafe.SizeOf<T>(), p, (long)destination.Length * Unsafe.SizeOf<T>(), wait: true);
    }

    /// <summary>Queues a copy of <paramref name="count"/> elements from pinned host memory to the device
    /// and returns at once; <paramref name="source"/> must not change until the copy has completed.</summary>
    public unsafe void CopyToDeviceAsync<T>(PinnedHostBuffer<T> source, long sourceOffset, DeviceBuffer<T> destination,
        long destinationOffset, long count) where T : unmanaged
    {
        CheckPinned(source, sourceOffset, count);
        CheckRange(destination, destinationOffset, count, nameof(destination));
        if (count == 0) return;
        int size = Unsafe.SizeOf<T>();
        WriteMemory(destination.Handle, destinationOffset * size, (byte*)source.Pointer + sourceOffset * size, count * size, wait: false);
    }

    /// <summary>Queues a copy of <paramref name="count"/> elements from the device into pinned host memory
    /// and returns at once; read <paramref name="destination"/> only after the copy has completed.</summary>
    public unsafe void CopyToHostAsync<T>(DeviceBuffer<T> source, long sourceOffset, PinnedHostBuffer<T> destination,
        long destinationOffset, long count) where T : unmanaged
    {
        CheckRange(source, sourceOffset, count, nameof(source));
        CheckPinned(destination, destinationOffset, count);
        if (count == 0) return;
        int size = Unsafe.SizeOf<T>();
        ReadMemory(source.Handle, sourceOffset * size, (byte*)destination.Pointer + destinationOffset * size, count * size, wait: false);
    }

    /// <summary>Queues setting every element of <paramref name="buffer"/> to <paramref name="value"/>.</summary>
    public void Fill(DeviceBuffer<float> buffer, float value)
    {
        CheckRange(buffer, 0, buffer.Length, nameof(buffer));
        FillMemory(buffer.Handle, BitConverter.SingleToUInt32Bits(value), buffer.Length);
    }

    // ---- kernels ----

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

    /// <summary>Waits until the work queued on this stream has finished.</summary>
    public abstract void Synchronize();

    /// <summary>Marks the current point of this stream: for device-side timing
    /// (<see cref="ComputeDevice.ElapsedMilliseconds"/>) and for ordering other streams (<see cref="Wait"/>).</summary>
    public abstract DeviceEvent RecordEvent();

    /// <summary>Makes the work queued on this stream after this call wait for <paramref name="event"/>
    /// (recorded on any stream of the same device); the host does not wait.</summary>
    public abstract void Wait(DeviceEvent @event);

    public void Dispose()
    {
        Device.Forget(this);
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the native stream; never throws.</summary>
    protected abstract void Dispose(bool disposing);

    // ---- what each backend implements ----

    protected abstract unsafe void WriteMemory(nint handle, long byteOffset, void* source, long bytes, bool wait);

    protected abstract unsafe void ReadMemory(nint handle, long byteOffset, void* destination, long bytes, bool wait);

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
        if (!ReferenceEquals(buffer.Device, Device))
            throw new ArgumentException($"{name} belongs to another device ({buffer.Device.Description})", name);
        if (offset < 0 || count < 0 || offset + count > buffer.Length)
            throw new ArgumentOutOfRangeException(name, $"elements [{offset}, {offset + count}) are outside the buffer's {buffer.Length}");
    }

    private void CheckPinned<T>(PinnedHostBuffer<T> buffer, long offset, long count) where T : unmanaged
    {
        if (!ReferenceEquals(buffer.Device, Device))
            throw new ArgumentException("the pinned buffer belongs to another device", nameof(buffer));
        if (offset < 0 || count < 0 || offset + count > buffer.Length)
            throw new ArgumentOutOfRangeException(nameof(buffer), $"elements [{offset}, {offset + count}) are outside the pinned buffer's {buffer.Length}");
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
        if (!ReferenceEquals(buffer.Device, Device))
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
}
