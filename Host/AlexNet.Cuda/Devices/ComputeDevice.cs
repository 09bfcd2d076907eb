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
/// One compute device, whichever backend runs it: it owns device memory, compiled kernel modules and
/// its streams. Work runs on a <see cref="ComputeStream"/> (a CUDA stream, an OpenCL command queue),
/// in order within a stream and asynchronously to the host. The operations on the device itself
/// (<see cref="Launch"/>, <see cref="Gemm"/>, copies, events) go to <see cref="DefaultStream"/>;
/// <see cref="CreateStream"/> gives more, to overlap copies with compute.
/// </summary>
public abstract class ComputeDevice : IDisposable
{
    private readonly List<ComputeStream> _streams = [];
    private int _modulesCompiled, _modulesFromCache;

    public abstract DeviceBackend Backend { get; }

    /// <summary>The device's own name (<c>NVIDIA H100 80GB HBM3</c>, <c>pthread-haswell-AMD EPYC …</c>).</summary>
    public abstract string Name { get; }

    /// <summary>One line naming backend, device and compiler target, for logs and benchmark output.</summary>
    public abstract string Description { get; }

    /// <summary>The compiler and its version (<c>NVRTC 11.8</c>, <c>OpenCL 3.0 PoCL …</c>).</summary>
    public abstract string CompilerVersion { get; }

    public abstract long TotalMemoryBytes { get; }

    public abstract KernelCache Cache { get; }

    /// <summary>The stream the device's own operations use.</summary>
    public abstract ComputeStream DefaultStream { get; }

    /// <summary>A new stream of this device; disposed with the device if not before.</summary>
    public ComputeStream CreateStream()
    {
        ComputeStream stream = CreateStreamCore();
        lock (_streams) _streams.Add(stream);
        return stream;
    }

    protected abstract ComputeStream CreateStreamCore();

    internal void Forget(ComputeStream stream)
    {
        lock (_streams) _streams.Remove(stream);
    }

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

    /// <summary>
    /// Allocates host memory the device can copy from and to asynchronously (page-locked on CUDA), for
    /// <see cref="ComputeStream.CopyToDeviceAsync{T}"/> and <see cref="ComputeStream.CopyToHostAsync{T}"/>.
    /// </summary>
    public unsafe PinnedHostBuffer<T> AllocatePinned<T>(long length) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        long bytes = checked(length * Unsafe.SizeOf<T>());
        return new PinnedHostBuffer<T>(this, AllocatePinnedMemory(bytes), length);
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

    /// <summary>Copies host data into <paramref name="destination"/> on the default stream; see
    /// <see cref="ComputeStream.CopyToDevice{T}"/>.</summary>
    public void CopyToDevice<T>(ReadOnlySpan<T> source, DeviceBuffer<T> destination, long offset = 0) where T : unmanaged =>
        DefaultStream.CopyToDevice(source, destination, offset);

    /// <summary>Copies device data to the host on the default stream; see <see cref="ComputeStream.CopyToHost{T}"/>.</summary>
    public void CopyToHost<T>(DeviceBuffer<T> source, Span<T> destination, long offset = 0) where T : unmanaged =>
        DefaultStream.CopyToHost(source, destination, offset);

    /// <summary>The whole buffer as a new array (waits for the default stream's queued work).</summary>
    public T[] Download<T>(DeviceBuffer<T> source) where T : unmanaged
    {
        var result = new T[checked((int)source.Length)];
        CopyToHost<T>(source, result);
        return result;
    }

    /// <summary>Queues setting every element of <paramref name="buffer"/> to <paramref name="value"/>.</summary>
    public void Fill(DeviceBuffer<float> buffer, float value) => DefaultStream.Fill(buffer, value);

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

    /// <summary>Queues a launch on the default stream.</summary>
    public void Launch(Kernel kernel, Dim3 grid, Dim3 block, in KernelArguments arguments) =>
        DefaultStream.Launch(kernel, grid, block, arguments);

    // ---- GEMM, with cuBLAS's semantics, on the default stream ----

    /// <inheritdoc cref="ComputeStream.Gemm"/>
    public void Gemm(MatrixOp transA, MatrixOp transB, int m, int n, int k,
        float alpha, DeviceBuffer<float> a, long aOffset, int lda,
        DeviceBuffer<float> b, long bOffset, int ldb,
        float beta, DeviceBuffer<float> c, long cOffset, int ldc) =>
        DefaultStream.Gemm(transA, transB, m, n, k, alpha, a, aOffset, lda, b, bOffset, ldb, beta, c, cOffset, ldc);

    /// <inheritdoc cref="ComputeStream.GemmStridedBatched"/>
    public void GemmStridedBatched(MatrixOp transA, MatrixOp transB, int m, int n, int k,
        float alpha, DeviceBuffer<float> a, long aOffset, int lda, long strideA,
        DeviceBuffer<float> b, long bOffset, int ldb, long strideB,
        float beta, DeviceBuffer<float> c, long cOffset, int ldc, long strideC, int batchCount) =>
        DefaultStream.GemmStridedBatched(transA, transB, m, n, k, alpha, a, aOffset, lda, strideA, b, bOffset, ldb, strideB,
            beta, c, cOffset, ldc, strideC, batchCount);

    // ---- ordering and timing ----

    /// <summary>Waits until the work queued on every stream of the device has finished.</summary>
    public void Synchronize()
    {
        DefaultStream.Synchronize();
        ComputeStream[] others;
        lock (_streams) others = [.. _streams];
        foreach (ComputeStream stream in others) stream.Synchronize();
    }

    /// <summary>Marks the current point of the default stream; see <see cref="ComputeStream.RecordEvent"/>.</summary>
    public DeviceEvent RecordEvent() => DefaultStream.RecordEvent();

    /// <summary>Device time between two recorded events, in milliseconds; waits for <paramref name="end"/>.</summary>
    public abstract double ElapsedMilliseconds(DeviceEvent start, DeviceEvent end);

    public void Dispose()
    {
        ComputeStream[] streams;
        lock (_streams)
        {
            streams = [.. _streams];
            _streams.Clear();
        }
        foreach (ComputeStream stream in streams) stream.Dispose();
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the backend's resources; never throws.</summary>
    protected abstract void Dispose(bool disposing);

    // ---- what each backend implements ----

    protected internal abstract nint AllocateMemory(long bytes);

    /// <summary>Frees memory; must never throw (it runs from Dispose).</summary>
    protected internal abstract void FreeMemory(nint handle);

    protected internal abstract unsafe void* AllocatePinnedMemory(long bytes);

    /// <summary>Frees pinned host memory; must never throw.</summary>
    protected internal abstract unsafe void FreePinnedMemory(void* pointer);

    protected static string Bytes(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.0} GiB" : $"{bytes / (double)(1L << 20):0.0} MiB";
}
