using System.Runtime.CompilerServices;

namespace AlexNet.Cuda.Devices;

/// <summary>
/// Host memory the device copies from and to asynchronously: page-locked (<c>cuMemHostAlloc</c>) on
/// CUDA, so a copy can run while the GPU computes and the host prepares the next batch. The memory must
/// stay alive and untouched until the copies queued on it have completed (wait on an event or the stream).
/// </summary>
public sealed unsafe class PinnedHostBuffer<T> : IDisposable where T : unmanaged
{
    private readonly ComputeDevice _device;
    private void* _pointer;

    internal PinnedHostBuffer(ComputeDevice device, void* pointer, long length)
    {
        _device = device;
        _pointer = pointer;
        Length = length;
        device.Retain();
    }

    public long Length { get; }

    public ComputeDevice Device => _device;

    /// <summary>The whole buffer (spans are limited to 2^31 − 1 elements).</summary>
    public Span<T> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return new Span<T>(_pointer, checked((int)Length));
        }
    }

    internal void* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return _pointer;
        }
    }

    internal static int ElementSize => Unsafe.SizeOf<T>();

    public void Dispose()
    {
        void* pointer = _pointer;
        _pointer = null;
        if (pointer == null) return;
        _device.FreePinnedMemory(pointer);
        _device.Release();
    }
}
