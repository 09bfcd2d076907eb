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

    private long _launches, _gemms;

    /// <summary>Kernel launches queued on this stream so far (a diagnostic: what a forward pass costs).</summary>
    public long Launches => Interlocked.Read(ref _launches);

    /// <summary>GEMM calls (batched or not) queued on this stream so far.</summary>
    public long Gemms => Interlocked.Read(ref _gemms);

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

    /// <summary>
    /// Queues a launch of <paramref name="grid"/> blocks of <paramref name="block"/> threads, with
    /// <paramref name="sharedMemoryBytes"/> bytes of dynamic shared memory for a kernel that declares
    /// <c>DYNAMIC_SHARED_PARAM</c>. The arguments are checked against the kernel's declared signature first.
    /// </summary>
    public void Launch(Kernel kernel, Dim3 grid, Dim3 block, in KernelArguments arguments, int sharedMemoryBytes = 0)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        kernel.CheckArguments(arguments);
        if (sharedMemoryBytes < 0)
            throw new ArgumentOutOfRangeException(nameof(sharedMemoryBytes), "dynamic shared memory cannot be negative");
        if (sharedMemoryBytes > 0 && !kernel.Signature.UsesDynamicSharedMemory)
            throw new ArgumentException($"kernel {kernel} declares no DYNAMIC_SHARED_PARAM, so it cannot take {sharedMemoryBytes} bytes of dynamic shared memory", nameof(sharedMemoryBytes));
        if (grid.Volume == 0 || block.Volume == 0) return;
        LaunchCore(kernel, grid, block, arguments, sharedMemoryBytes);
        Interlocked.Increment(ref _launches);
    }

    protected abstract void LaunchCore(Kernel kernel, Dim3 grid, Dim3 block, in KernelArguments arguments, int sharedMemoryBytes);

    // ---- GEMM, with cuBLAS's semantics ----

    /// <summary>
    /// C = alpha·A·B + beta·C, each operand a <see cref="MatrixView"/> (transposed or not, any offset and
    /// leading dimension): A is m×k, B is k×n, C is m×n as the views are used. Shapes are checked against
    /// each other and against the buffers before any native call. Queued, not waited for. With beta = 0,
    /// C is not read (NaN in it does not propagate), as in BLAS.
    /// </summary>
    public void Gemm(in MatrixView a, in MatrixView b, in MatrixView c, float alpha = 1f, float beta = 0f, GemmMath math = GemmMath.Default) =>
        GemmBatched(a, b, c, new GemmBatch(1, 0, 0, 0), alpha, beta, math);

    /// <summary>
    /// <see cref="GemmBatch.Count"/> independent GEMMs; matrix <c>i</c> of each operand starts
    /// <c>i·stride</c> elements after its view's offset (cuBLAS's <c>cublasSgemmStridedBatched</c>).
    /// Outputs that would overlap (a race in cuBLAS) are refused.
    /// <para>
    /// The three operands share one <see cref="ElementFormat"/>. FP32 with <see cref="GemmMath.Default"/> is SGEMM;
    /// <see cref="GemmMath.Tf32"/> (FP32 only) and the 16-bit formats (FP32 accumulation, C rounded to the format
    /// once) go to the backend's mixed-precision GEMM (cuBLAS's <c>cublasGemmEx</c>; see
    /// <see cref="ComputeDevice.SupportsGemm"/>).
    /// </para>
    /// </summary>
    public void GemmBatched(in MatrixView a, in MatrixView b, in MatrixView c, GemmBatch batch, float alpha = 1f, float beta = 0f,
        GemmMath math = GemmMath.Default)
    {
        // A row-major (transposed) C is computed as its transpose: Cᵀ = Bᵀ·Aᵀ, with column-major Cᵀ.
        if (c.Transposed)
        {
            GemmColumnMajor(b.T, a.T, c.T, batch with { StrideA = batch.StrideB, StrideB = batch.StrideA }, alpha, beta, math);
            return;
        }
        GemmColumnMajor(a, b, c, batch, alpha, beta, math);
    }

    private void GemmColumnMajor(in MatrixView a, in MatrixView b, in MatrixView c, GemmBatch batch, float alpha, float beta, GemmMath math)
    {
        ElementFormat format = CheckGemm(a, b, c, batch, math);
        int m = c.Rows, n = c.Columns, k = a.Columns;
        if (m == 0 || n == 0 || batch.Count == 0) return;
        if (format != ElementFormat.Float32 || math != GemmMath.Default)
        {
            if (!Device.SupportsGemm(format, math, out string? reason))
                throw new AlexNetException($"GEMM in {GemmMathName(format, math)}: {reason}");
            Interlocked.Increment(ref _gemms);
            GemmExCore(new GemmCall(a.Op, b.Op, m, n, k, alpha, beta, a.Buffer, a.Offset, a.LeadingDimension, batch.StrideA,
                b.Buffer, b.Offset, b.LeadingDimension, batch.StrideB, c.Buffer, c.Offset, c.LeadingDimension, batch.StrideC,
                batch.Count, format, math, c.Format));
            return;
        }
        Interlocked.Increment(ref _gemms);
        var fa = (DeviceBuffer<float>)a.Buffer;
        var fb = (DeviceBuffer<float>)b.Buffer;
        var fc = (DeviceBuffer<float>)c.Buffer;
        if (batch.Count == 1)
            GemmCore(a.Op, b.Op, m, n, k, alpha, fa, a.Offset, a.LeadingDimension, fb, b.Offset, b.LeadingDimension,
                beta, fc, c.Offset, c.LeadingDimension);
        else
            GemmStridedBatchedCore(a.Op, b.Op, m, n, k, alpha, fa, a.Offset, a.LeadingDimension, batch.StrideA,
                fb, b.Offset, b.LeadingDimension, batch.StrideB, beta, fc, c.Offset, c.LeadingDimension, batch.StrideC, batch.Count);
    }

    /// <summary>
    /// C = A·B + bias, then max(·, 0) when <paramref name="relu"/>: a fully connected layer's GEMM, bias and ReLU as one
    /// call, where the backend has a GEMM whose epilogue does them (cuBLASLt's BIAS / RELU_BIAS on CUDA; see
    /// <see cref="ComputeDevice.SupportsGemmBias"/>, and elsewhere the caller runs <see cref="Gemm"/> and a bias kernel
    /// itself). A is N×K, B K×F, C N×F as the views are used; the bias holds one value per column of C (F values at
    /// its start, stored in C's format: floats for an FP32 C, 16-bit values of C's format otherwise), added to every
    /// row. C must be a row-major view, as an fc layer's [N][F] output is: see below. Alpha is 1 and beta 0 (C is not
    /// read); one GEMM, no batch. Checked as <see cref="Gemm"/> is, before any native call.
    /// <para>
    /// Why row-major: a row-major C is stored as the column-major matrix Cᵀ (F×N, the same leading dimension), and is
    /// computed as Cᵀ = Bᵀ·Aᵀ (see <see cref="GemmBatched"/>). The rows of that column-major D are C's columns, the
    /// features; cuBLASLt's bias epilogue adds a vector as long as D has rows to every column of D, element (i, j)
    /// gaining bias[i]: C(n, f) gains bias[f], as wanted. A column-major C would need its bias along D's columns, which
    /// the epilogue does not do, and a row-ordered D (CUBLASLT_ORDER_ROW), which would turn it round, takes no bias
    /// epilogue (cuBLASLt's datatypes table). For the same reason a convolution's output, row-major [Cout][N·H·W] with
    /// its bias per row, does not fit: its column-major D is (N·H·W)×Cout, the bias along its columns.
    /// </para>
    /// </summary>
    public void GemmBias(in MatrixView a, in MatrixView b, in MatrixView c, DeviceBuffer bias, bool relu, GemmMath math = GemmMath.Default)
    {
        ArgumentNullException.ThrowIfNull(bias);
        if (!c.Transposed)
            throw new ArgumentException($"GemmBias adds one bias per column of a row-major C; C is a column-major {c.Rows}×{c.Columns} view, whose per-column bias cuBLASLt's epilogue cannot add (make C a row-major view)", nameof(c));
        // The column-major problem, as GemmBatched turns it: D = Cᵀ (F×N) = Bᵀ·Aᵀ, one bias per row of D.
        MatrixView da = b.T, db = a.T, dc = c.T;
        var single = new GemmBatch(1, 0, 0, 0);
        ElementFormat format = CheckGemm(da, db, dc, single, math);
        int m = dc.Rows, n = dc.Columns, k = da.Columns;
        if (!ReferenceEquals(bias.Device, Device))
            throw new ArgumentException($"the bias belongs to another device ({bias.Device.Description})", nameof(bias));
        if (bias.ElementSize != ElementFormats.SizeOf(dc.Format))
            throw new ArgumentException($"the bias must be stored as C is ({ElementFormats.Name(dc.Format)}, {ElementFormats.SizeOf(dc.Format)}-byte elements), not in {bias.ElementSize}-byte elements: cuBLASLt's bias has D's type", nameof(bias));
        if (bias.Length < m)
            throw new ArgumentOutOfRangeException(nameof(bias), $"the bias holds {bias.Length} values, but C has {m} columns");
        if (ReferenceEquals(bias, dc.Buffer))
            throw new ArgumentException("the bias and C are the same buffer: the GEMM would write over the bias it reads", nameof(bias));
        if (!Device.SupportsGemmBias(format, math, out string? reason))
            throw new AlexNetException($"GEMM with a bias epilogue in {GemmMathName(format, math)}: {reason}");
        if (m == 0 || n == 0) return;
        Interlocked.Increment(ref _gemms);
        GemmBiasCore(new GemmCall(da.Op, db.Op, m, n, k, 1f, 0f, da.Buffer, da.Offset, da.LeadingDimension, 0,
            db.Buffer, db.Offset, db.LeadingDimension, 0, dc.Buffer, dc.Offset, dc.LeadingDimension, 0, 1, format, math, dc.Format), bias, relu);
    }

    /// <summary>Checks a column-major GEMM's operands against each other and their buffers and returns A's and B's
    /// format; refuses, with a one-line message, what no backend may be handed.</summary>
    private ElementFormat CheckGemm(in MatrixView a, in MatrixView b, in MatrixView c, GemmBatch batch, GemmMath math)
    {
        int m = c.Rows, n = c.Columns, k = a.Columns;
        if (a.Rows != m || b.Rows != k || b.Columns != n)
            throw new ArgumentException($"GEMM shapes do not chain: A is {a.Rows}×{a.Columns}, B is {b.Rows}×{b.Columns}, C is {m}×{n}");
        // A and B share a format; C has it too, or is FP32 (16-bit inputs with the FP32 accumulation kept whole).
        ElementFormat format = a.Format;
        if (b.Format != format || (c.Format != format && c.Format != ElementFormat.Float32))
            throw new ArgumentException($"GEMM operands differ in format: A is {ElementFormats.Name(a.Format)}, B {ElementFormats.Name(b.Format)}, C {ElementFormats.Name(c.Format)}; convert one first (only C may be FP32 beside 16-bit A and B)");
        if (math == GemmMath.Tf32 && format != ElementFormat.Float32)
            throw new ArgumentException($"TF32 math takes FP32 operands, not {ElementFormats.Name(format)} (16-bit operands always accumulate in FP32)");
        if (batch.Count < 0) throw new ArgumentOutOfRangeException(nameof(batch), $"GEMM batch count {batch.Count} is negative");
        CheckOperand("A", a, batch.StrideA, batch.Count);
        CheckOperand("B", b, batch.StrideB, batch.Count);
        CheckOperand("C", c, batch.StrideC, batch.Count);
        // Matrix i of C covers [offset + i·stride, offset + i·stride + ldc·(n−1) + m): a smaller stride makes
        // two batch entries write the same elements, a race in cuBLAS and silently wrong results.
        long span = (long)c.LeadingDimension * (n - 1) + m;
        if (batch.Count > 1 && m > 0 && n > 0 && batch.StrideC < span)
            throw new ArgumentOutOfRangeException(nameof(batch),
                $"GEMM batch outputs overlap: strideC {batch.StrideC} is less than the {span} elements one {m}×{n} C (ld {c.LeadingDimension}) spans");
        return format;
    }

    /// <summary>"tf32", "fp16", "bf16" or "fp32": what a GEMM of <paramref name="format"/> operands with
    /// <paramref name="math"/> is called in messages.</summary>
    public static string GemmMathName(ElementFormat format, GemmMath math) =>
        math == GemmMath.Tf32 ? "tf32" : ElementFormats.Name(format);

    // ---- ordering and timing ----

    /// <summary>Waits until the work queued on this stream has finished.</summary>
    public abstract void Synchronize();

    /// <summary>Marks the current point of this stream in <paramref name="event"/> (created by
    /// <see cref="ComputeDevice.CreateEvent"/>); recording again moves the mark. No allocation.</summary>
    public abstract void Record(DeviceEvent @event);

    /// <summary>
    /// A new event marking the current point of this stream. By default it only orders other streams
    /// (<see cref="Wait"/>), which is cheaper on CUDA; pass <paramref name="timing"/> for events that
    /// <see cref="ComputeDevice.ElapsedMilliseconds"/> measures between. The caller disposes it.
    /// </summary>
    public DeviceEvent RecordEvent(bool timing = false)
    {
        DeviceEvent created = Device.CreateEvent(timing);
        try
        {
            Record(created);
            return created;
        }
        catch
        {
            created.Dispose();
            throw;
        }
    }

    /// <summary>Makes the work queued on this stream after this call wait for <paramref name="event"/>
    /// (recorded on any stream of the same device); the host does not wait.</summary>
    public abstract void Wait(DeviceEvent @event);

    // ---- graphs: the stream's work captured once, replayed with one launch ----

    /// <summary>Null when this stream can capture its work into a <see cref="DeviceGraph"/>; otherwise why it
    /// cannot, in one line (what a caller that falls back to launching the work itself reports).</summary>
    public virtual string? GraphsUnsupportedReason => $"{Device.Name} cannot capture its work into a graph";

    public bool SupportsGraphs => GraphsUnsupportedReason is null;

    /// <summary>True between <see cref="BeginCapture"/> and <see cref="EndCapture"/>: work queued meanwhile is
    /// recorded, not run.</summary>
    public bool IsCapturing { get; private set; }

    /// <summary>
    /// From now on the work queued on this stream from this thread is recorded instead of run, until
    /// <see cref="EndCapture"/>. Nothing may synchronise with the stream meanwhile (a synchronous copy, an
    /// event's wait), and nothing may allocate device memory on this thread: the capture fails. Prefer
    /// <see cref="Capture"/>, which always ends the capture.
    /// </summary>
    public void BeginCapture()
    {
        if (GraphsUnsupportedReason is string reason) throw new AlexNetException(reason);
        if (IsCapturing) throw new InvalidOperationException("the stream is already capturing");
        BeginCaptureCore();
        IsCapturing = true;
    }

    /// <summary>Ends the capture and instantiates what it recorded; the caller disposes the graph. When the
    /// capture failed (a call that it does not allow was made), throws an <see cref="AlexNetException"/> naming
    /// the reason, and the stream is usable again.</summary>
    public DeviceGraph EndCapture()
    {
        if (!IsCapturing) throw new InvalidOperationException("the stream is not capturing");
        IsCapturing = false;
        return EndCaptureCore();
    }

    /// <summary>
    /// Captures the work <paramref name="queue"/> puts on this stream into a graph (<see cref="BeginCapture"/>,
    /// <paramref name="queue"/>, <see cref="EndCapture"/>). Whatever goes wrong, the capture is ended before the
    /// exception leaves, so the stream stays usable; nothing queued during the capture has run.
    /// </summary>
    public DeviceGraph Capture(Action queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        BeginCapture();
        try
        {
            queue();
        }
        catch
        {
            IsCapturing = false;
            AbandonCaptureCore();
            throw;
        }
        return EndCapture();
    }

    protected virtual void BeginCaptureCore() => throw new NotSupportedException(GraphsUnsupportedReason);

    protected virtual DeviceGraph EndCaptureCore() => throw new NotSupportedException(GraphsUnsupportedReason);

    /// <summary>Ends a capture that failed part-way and discards what it recorded; never throws.</summary>
    protected virtual void AbandonCaptureCore() { }

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

    /// <summary>A GEMM that is not plain SGEMM (TF32 math or 16-bit operands), already checked, on a device whose
    /// <see cref="ComputeDevice.SupportsGemm"/> said yes. Backends without one never get here.</summary>
    protected virtual void GemmExCore(in GemmCall call) =>
        throw new AlexNetException($"GEMM in {GemmMathName(call.Format, call.Math)}: {Device.Description} has no such GEMM");

    /// <summary>A checked column-major GEMM (alpha 1, beta 0, batch 1) whose epilogue adds <paramref name="bias"/>[i] to
    /// row i of C (<see cref="GemmCall.M"/> values of C's format) and then, with <paramref name="relu"/>, clamps at 0;
    /// on a device whose <see cref="ComputeDevice.SupportsGemmBias"/> said yes. Backends without one never get here.</summary>
    protected virtual void GemmBiasCore(in GemmCall call, DeviceBuffer bias, bool relu) =>
        throw new AlexNetException($"GEMM with a bias epilogue: {Device.Description} has none");

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
    /// Checks one operand against its buffer before any native call: cuBLAS would read or write past a
    /// buffer silently, so the last element the operand touches must lie inside it.
    /// </summary>
    private void CheckOperand(string name, in MatrixView view, long stride, int batchCount)
    {
        DeviceBuffer buffer = view.Buffer;
        if (!ReferenceEquals(buffer.Device, Device))
            throw new ArgumentException($"GEMM operand {name} belongs to another device", name);
        long rows = view.StoredRows, cols = view.StoredColumns;
        int ld = view.LeadingDimension;
        if (ld < Math.Max(1, rows))
            throw new ArgumentOutOfRangeException(name, $"GEMM leading dimension ld{name.ToLowerInvariant()}={ld} is less than the {rows} rows of {name}");
        if (view.Offset < 0 || stride < 0)
            throw new ArgumentOutOfRangeException(name, $"GEMM operand {name} has a negative offset or stride");
        if (rows == 0 || cols == 0 || batchCount == 0) return;
        long last = view.Offset + (long)(batchCount - 1) * stride + (cols - 1) * ld + rows - 1;
        if (last >= buffer.Length)
            throw new ArgumentOutOfRangeException(name, $"GEMM operand {name} ({rows}×{cols}, ld {ld}, offset {view.Offset}, stride {stride}, batch {batchCount}) reaches element {last} of a buffer of {buffer.Length}");
    }
}

/// <summary>One checked, column-major GEMM (strided batch of <see cref="BatchCount"/>, 1 for a single GEMM) as a
/// backend's mixed-precision path receives it: cuBLAS's <c>cublasGemmStridedBatchedEx</c> arguments. <see cref="Format"/>
/// is A's and B's; <see cref="CFormat"/> is C's, the same or FP32.</summary>
public readonly record struct GemmCall(MatrixOp TransA, MatrixOp TransB, int M, int N, int K, float Alpha, float Beta,
    DeviceBuffer A, long AOffset, int Lda, long StrideA,
    DeviceBuffer B, long BOffset, int Ldb, long StrideB,
    DeviceBuffer C, long COffset, int Ldc, long StrideC,
    int BatchCount, ElementFormat Format, GemmMath Math, ElementFormat CFormat);
