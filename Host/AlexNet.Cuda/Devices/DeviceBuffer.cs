using System.Runtime.CompilerServices;

namespace AlexNet.Cuda.Devices;

/// <summary>
/// Device memory of any element type: what a kernel argument or a GEMM operand needs to know of a buffer
/// (its handle, device and length), so the network can hold FP32 and 16-bit activations alike.
/// <see cref="DeviceBuffer{T}"/> is the only kind.
/// </summary>
public abstract class DeviceBuffer : IDisposable
{
    private protected DeviceBuffer(long length, int elementSize)
    {
        Length = length;
        ElementSize = elementSize;
    }

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    /// <summary>Bytes per element.</summary>
    public int ElementSize { get; }

    public long SizeInBytes => Length * ElementSize;

    public abstract ComputeDevice Device { get; }

    public abstract bool IsDisposed { get; }

    /// <summary>The native handle; throws once disposed so a stale buffer is never launched on.</summary>
    public abstract nint Handle { get; }

    public abstract void Dispose();
}

/// <summary>
/// A typed array in device memory. Owned by the caller: dispose it to free the memory (freeing never
/// throws). <see cref="Handle"/> is the backend's own handle: a <c>CUdeviceptr</c> on CUDA, a
/// <c>cl_mem</c> on OpenCL; kernels receive it as their pointer argument. Element offsets are passed
/// to kernels and GEMMs separately, because OpenCL cannot offset a <c>cl_mem</c>.
/// </summary>
public sealed class DeviceBuffer<T> : DeviceBuffer where T : unmanaged
{
    private readonly ComputeDevice _device;
    private nint _handle;

    internal DeviceBuffer(ComputeDevice device, nint handle, long length) : base(length, Unsafe.SizeOf<T>())
    {
        _device = device;
        _handle = handle;
        device.Retain();
    }

    public override ComputeDevice Device => _device;

    public override bool IsDisposed => _handle == 0;

    public override nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle == 0, this);
            return _handle;
        }
    }

    public override void Dispose()
    {
        nint handle = Interlocked.Exchange(ref _handle, 0);
        if (handle == 0) return;
        _device.FreeMemory(handle);
        _device.Release();
    }

    public override string ToString() => $"DeviceBuffer<{typeof(T).Name}>[{Length}] on {_device.Backend}";
}
