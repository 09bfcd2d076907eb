using System.Buffers;
using System.Runtime.InteropServices;

namespace AlexNet.Imaging;

/// <summary>
/// A decode's buffer: from the shared array pool when small (a stream of images then does not churn the
/// garbage collector), from the system when large, and given back to it when disposed. A pooled array would
/// outlive its image in the pool, one per thread and size: eight threads decoding 10000×10000 images kept
/// 3 GB resident with the decode memory budget at 1 GB, since the pool keeps what it is given back.
/// </summary>
internal sealed unsafe class ImageMemory : IDisposable
{
    /// <summary>Above this many bytes the memory comes from the system.</summary>
    public const int PooledLimit = 16 << 20;

    private byte[]? _array;
    private byte* _native;
    private int _disposed;

    private ImageMemory(int length)
    {
        Length = length;
        if (length <= PooledLimit) _array = ArrayPool<byte>.Shared.Rent(Math.Max(1, length));
        else _native = (byte*)NativeMemory.Alloc((nuint)length);
    }

    public static ImageMemory Allocate(long length)
    {
        if (length < 0 || length > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(length), $"{length} bytes is more than one buffer holds");
        return new ImageMemory((int)length);
    }

    public int Length { get; }

    public Span<byte> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            return _array is not null ? _array.AsSpan(0, Length) : new Span<byte>(_native, Length);
        }
    }

    /// <summary>The bytes as a read-only stream (for a decoder that reads streams); valid until disposed.</summary>
    public Stream AsStream()
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        return _array is not null ? new MemoryStream(_array, 0, Length, writable: false) : new UnmanagedMemoryStream(_native, Length);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (_array is not null) ArrayPool<byte>.Shared.Return(_array);
        else NativeMemory.Free(_native);
        _array = null;
        _native = null;
    }
}
