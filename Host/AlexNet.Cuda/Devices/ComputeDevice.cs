using System.Runtime.CompilerServices;
using AlexNet.Cuda.Compilation;

namespace AlexNet.Cuda.Devices;

/// <summary>
/// One compute device, whichever backend runs it: it owns device memory, compiled kernel modules and
/// its streams. Work runs on a <see cref="ComputeStream"/> (a CUDA stream, an OpenCL command queue),
/// in order within a stream and asynchronously to the host. The operations on the device itself
/// (<see cref="Launch"/>, <see cref="Gemm"/>, copies, events) go to <see cref="DefaultStream"/>;
/// <see cref="CreateStream"/> gives more, to overlap copies with compute.
/// <para>
/// Lifetime: buffers, pinned buffers, modules and events each hold the device open. Disposing the device
/// stops new work and disposes its streams at once, but the backend's context is released only when the
/// last of those resources is gone too, so a buffer disposed after its device is still freed properly and
/// no disposal order can leave a dangling handle.
/// </para>
/// </summary>
public abstract class ComputeDevice : IDisposable
{
    private readonly List<ComputeStream> _streams = [];
    private int _modulesCompiled, _modulesFromCache;
    private int _liveResources;
    private int _disposeState; // 0 open, 1 disposed (context kept for live resources), 2 released

    public abstract DeviceBackend Backend { get; }

    /// <summary>The device's own name (<c>NVIDIA H100 80GB HBM3</c>, <c>pthread-haswell-AMD EPYC …</c>).</summary>
    public abstract string Name { get; }

    /// <summary>One line naming backend, device and compiler target, for logs and benchmark output.</summary>
    public abstract string Description { get; }

    /// <summary>The compiler and its version (<c>NVRTC 11.8</c>, <c>OpenCL 3.0 PoCL …</c>).</summary>
    public abstract string CompilerVersion { get; }

    /// <summary>What runs the GEMMs (<c>cuBLAS 11.11.3</c>, <c>CLBlast</c>, <c>OpenBLAS 0.3.21 on mapped buffers</c>).</summary>
    public abstract string GemmProvider { get; }

    /// <summary>True when the device is the host's own CPU (PoCL's device): its kernels want CPU launch shapes,
    /// and CPU libraries are its peers.</summary>
    public virtual bool IsCpu => false;

    /// <summary>
    /// Whether <see cref="ComputeStream.GemmBatched"/> can multiply <paramref name="format"/> operands with
    /// <paramref name="math"/> on this device; when not, <paramref name="reason"/> says why in a sentence fragment.
    /// Plain FP32 always can.
    /// </summary>
    public virtual bool SupportsGemm(ElementFormat format, GemmMath math, out string? reason)
    {
        if (format == ElementFormat.Float32 && math == GemmMath.Default)
        {
            reason = null;
            return true;
        }
        reason = $"{GemmProvider} on {Name} runs FP32 GEMMs only";
        return false;
    }

    /// <summary>
    /// Whether <see cref="ComputeStream.GemmBias"/> (a GEMM whose epilogue adds a bias and applies ReLU) can multiply
    /// <paramref name="format"/> operands with <paramref name="math"/> on this device; when not, <paramref name="reason"/>
    /// says why in a sentence fragment. Only CUDA has one (cuBLASLt's); elsewhere the bias is a kernel's pass.
    /// </summary>
    public virtual bool SupportsGemmBias(ElementFormat format, GemmMath math, out string? reason)
    {
        reason = $"{GemmProvider} on {Name} has no GEMM with a bias epilogue (cuBLASLt's, on CUDA, is the engine's only one)";
        return false;
    }

    public abstract long TotalMemoryBytes { get; }

    /// <summary>The device's last-level data cache in bytes, 0 when it does not say: a GPU's L2
    /// (<c>CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE</c>: 50 MB on an H100, 60 MB on an H200), or what an OpenCL
    /// device reports as its global memory cache (<c>CL_DEVICE_GLOBAL_MEM_CACHE_SIZE</c>).</summary>
    public abstract long CacheBytes { get; }

    public abstract KernelCache Cache { get; }

    /// <summary>The stream the device's own operations use.</summary>
    public abstract ComputeStream DefaultStream { get; }

    /// <summary>Null when the device's streams can capture work into a <see cref="DeviceGraph"/>; otherwise why
    /// not, in one line (<see cref="ComputeStream.GraphsUnsupportedReason"/>).</summary>
    public string? GraphsUnsupportedReason => DefaultStream.GraphsUnsupportedReason;

    /// <summary>True once <see cref="Dispose()"/> has been called: no new work is accepted.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposeState) != 0;

    /// <summary>Throws <see cref="ObjectDisposedException"/> once the device is disposed.</summary>
    protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(IsDisposed, this);

    /// <summary>Resources that still hold the device's context (buffers, modules, events).</summary>
    public int LiveResources => Volatile.Read(ref _liveResources);

    /// <summary>Called by each resource when it is created: the context stays until it is released.</summary>
    internal void Retain()
    {
        ThrowIfDisposed();
        Interlocked.Increment(ref _liveResources);
    }

    /// <summary>Called by each resource after it freed its native handle; never throws.</summary>
    internal void Release()
    {
        if (Interlocked.Decrement(ref _liveResources) == 0 && Volatile.Read(ref _disposeState) == 1) ReleaseOnce();
    }

    private void ReleaseOnce()
    {
        if (Interlocked.CompareExchange(ref _disposeState, 2, 1) == 1) ReleaseDevice();
    }

    /// <summary>A new stream of this device; disposed with the device if not before.</summary>
    public ComputeStream CreateStream()
    {
        ThrowIfDisposed();
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
        ThrowIfDisposed();
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
        ThrowIfDisposed();
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

    /// <summary>A buffer holding <paramref name="values"/> stored as <paramref name="format"/>: floats, or 16-bit values
    /// converted here (rounding to nearest even, <see cref="ElementFormats.FromFloat"/>).</summary>
    public DeviceBuffer Upload(ReadOnlySpan<float> values, ElementFormat format)
    {
        if (format == ElementFormat.Float32) return Upload<float>(values);
        var bits = new ushort[values.Length];
        ElementFormats.FromFloat(values, bits, format);
        return Upload<ushort>(bits);
    }

    /// <summary>The first <paramref name="count"/> values of a buffer of <paramref name="format"/> as floats (16-bit values
    /// converted exactly), copied on <paramref name="stream"/> after the work queued on it.</summary>
    public static float[] Download(ComputeStream stream, DeviceBuffer buffer, ElementFormat format, long count)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var values = new float[count];
        if (format == ElementFormat.Float32)
        {
            stream.CopyToHost((DeviceBuffer<float>)buffer, values);
            return values;
        }
        var bits = new ushort[count];
        stream.CopyToHost((DeviceBuffer<ushort>)buffer, bits);
        ElementFormats.ToFloat(bits, values, format);
        return values;
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
    public KernelModule LoadModule(KernelSource source, IReadOnlyDictionary<string, string>? defines = null)
    {
        ThrowIfDisposed();
        return LoadModuleCore(source, defines);
    }

    protected abstract KernelModule LoadModuleCore(KernelSource source, IReadOnlyDictionary<string, string>? defines);

    /// <summary>Queues a launch on the default stream; see <see cref="ComputeStream.Launch"/>.</summary>
    public void Launch(Kernel kernel, Dim3 grid, Dim3 block, in KernelArguments arguments, int sharedMemoryBytes = 0) =>
        DefaultStream.Launch(kernel, grid, block, arguments, sharedMemoryBytes);

    // ---- GEMM, with cuBLAS's semantics, on the default stream ----

    /// <inheritdoc cref="ComputeStream.Gemm"/>
    public void Gemm(in MatrixView a, in MatrixView b, in MatrixView c, float alpha = 1f, float beta = 0f) =>
        DefaultStream.Gemm(a, b, c, alpha, beta);

    /// <inheritdoc cref="ComputeStream.GemmBatched"/>
    public void GemmBatched(in MatrixView a, in MatrixView b, in MatrixView c, GemmBatch batch, float alpha = 1f, float beta = 0f) =>
        DefaultStream.GemmBatched(a, b, c, batch, alpha, beta);

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
    public DeviceEvent RecordEvent(bool timing = false) => DefaultStream.RecordEvent(timing);

    /// <summary>
    /// A new, unrecorded event, to be recorded (and recorded again) with <see cref="ComputeStream.Record"/>:
    /// creating events up front keeps a forward pass free of allocation. <paramref name="timing"/> events
    /// can be measured between; ordering-only events are cheaper on CUDA.
    /// </summary>
    public DeviceEvent CreateEvent(bool timing = false)
    {
        ThrowIfDisposed();
        return CreateEventCore(timing);
    }

    protected abstract DeviceEvent CreateEventCore(bool timing);

    /// <summary>
    /// Device time between two recorded timing events, in milliseconds; waits for both (they may be on
    /// different streams).
    /// </summary>
    public double ElapsedMilliseconds(DeviceEvent start, DeviceEvent end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        if (!start.Timing || !end.Timing)
            throw new ArgumentException("elapsed time needs events created with timing: true (RecordEvent(timing: true) or CreateEvent(timing: true))");
        if (!ReferenceEquals(start.Device, this) || !ReferenceEquals(end.Device, this))
            throw new ArgumentException("the events belong to another device");
        return ElapsedMillisecondsCore(start, end);
    }

    protected abstract double ElapsedMillisecondsCore(DeviceEvent start, DeviceEvent end);

    /// <summary>
    /// Disposes the streams and refuses new work at once; the backend's context is released now when no
    /// buffer, module or event holds it, else when the last of them is disposed.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.CompareExchange(ref _disposeState, 1, 0) != 0) return;
        ComputeStream[] streams;
        lock (_streams)
        {
            streams = [.. _streams];
            _streams.Clear();
        }
        foreach (ComputeStream stream in streams) stream.Dispose();
        DefaultStream.Dispose();
        if (Volatile.Read(ref _liveResources) == 0) ReleaseOnce();
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the backend's context, after every stream and resource is gone; never throws.</summary>
    protected abstract void ReleaseDevice();

    // ---- what each backend implements ----

    protected internal abstract nint AllocateMemory(long bytes);

    /// <summary>Frees memory; must never throw (it runs from Dispose).</summary>
    protected internal abstract void FreeMemory(nint handle);

    protected internal abstract unsafe void* AllocatePinnedMemory(long bytes);

    /// <summary>Frees pinned host memory; must never throw.</summary>
    protected internal abstract unsafe void FreePinnedMemory(void* pointer);

    protected static string Bytes(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.0} GiB" : $"{bytes / (double)(1L << 20):0.0} MiB";
}
