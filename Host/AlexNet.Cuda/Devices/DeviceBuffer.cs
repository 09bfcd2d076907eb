using System.Runtime.CompilerServices;

namespace AlexNet.Cuda.Devices;

/// <summary>
/// A typed array in device memory. Owned by the caller: dispose it to free the memory (freeing never
/// throws). <see cref="Handle"/> is the backend's own handle: a <c>CUdeviceptr</c> on CUDA, a
/// <c>cl_mem</c> on OpenCL; kernels receive it as their pointer argument. Element offsets are passed
/// to kernels and GEMMs separately, because OpenCL cannot offset a <c>cl_mem</c>.
/// </summary>
public sealed class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    private readonly ComputeDevice _device;
    private nint _handle;

    internal DeviceBuffer(ComputeDevice device, nint handle, long length)
    {
        _device = device;
        _handle = handle;
        Length = length;
        device.Retain();
    }

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    public long SizeInBytes => Length * Unsafe.SizeOf<T>();

    public ComputeDevice Device => _device;

    public bool IsDisposed => _handle == 0;

    /// <summary>The native handle; throws once disposed so a stale buffer is never launched on.</summary>
    public nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle == 0, this);
            return _handle;
        }
    }

    public void Dispose()
    {
        nint handle = Interlocked.Exchange(ref _handle, 0);
        if (handle == 0) return;
        _device.FreeMemory(handle);
        _device.Release();
    }

    public override string ToString() => $"DeviceBuffer<{typeof(T).Name}>[{Length}] on {_device.Backend}";
}
