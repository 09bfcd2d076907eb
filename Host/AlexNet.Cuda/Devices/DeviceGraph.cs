namespace AlexNet.Cuda.Devices;

/// <summary>
/// Work captured from a stream (<see cref="ComputeStream.Capture"/>) and instantiated once, replayed with one
/// launch per <see cref="Launch"/>: on CUDA a <c>CUgraphExec</c>, whose launch costs the host one call where the
/// stream pass costs one per kernel and GEMM. A replay runs the captured kernels with the captured arguments, so
/// it reads and writes the same buffers each time: fill the inputs the capture read, read the outputs it wrote.
/// Holds its device open like a buffer; disposing it never throws, and a replay still running is finished first.
/// </summary>
public abstract class DeviceGraph : IDisposable
{
    private int _released;

    protected DeviceGraph(ComputeDevice device)
    {
        Device = device;
        device.Retain();
    }

    public ComputeDevice Device { get; }

    public bool IsDisposed => Volatile.Read(ref _released) != 0;

    /// <summary>Queues one replay of the captured work on <paramref name="stream"/> (any stream of the same
    /// device) and returns at once; it is ordered after the work queued on that stream before it.</summary>
    public void Launch(ComputeStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (!ReferenceEquals(stream.Device, Device))
            throw new ArgumentException("the stream belongs to another device", nameof(stream));
        LaunchCore(stream);
    }

    protected abstract void LaunchCore(ComputeStream stream);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        ReleaseGraph();
        Device.Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the native graph; never throws.</summary>
    protected abstract void ReleaseGraph();
}
