using System.Buffers;

namespace AlexNet.Imaging;

/// <summary>
/// 8-bit RGB pixels of a decoded image, rows top to bottom, 3 bytes per pixel, after the EXIF orientation is
/// applied, grey replicated to 3 channels, alpha dropped and 16-bit samples reduced to 8 (<c>v &gt;&gt; 8</c>):
/// what <c>cv2.imread</c> gives, in RGB order. The pixels live in an <see cref="ImageMemory"/> buffer (pooled
/// when small, the system's when large); <see cref="Dispose"/> returns it, and the decode memory it was granted (<see cref="DecodeMemory"/>),
/// after which <see cref="Pixels"/> throws.
/// </summary>
public sealed class DecodedImage : IDisposable
{
    private ImageMemory? _memory;
    private readonly int _length;
    private IDisposable? _lease;

    internal DecodedImage(int width, int height)
    {
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"{width}×{height} is not an image size");
        long length = (long)width * height * 3;
        if (length > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(width), $"{width}×{height} RGB needs {length} bytes, more than one array holds");
        Width = width;
        Height = height;
        _length = (int)length;
        _memory = ImageMemory.Allocate(_length);
    }

    /// <summary>An image holding a copy of <paramref name="rgb"/> (width·height·3 bytes, rows top to bottom).</summary>
    internal static DecodedImage FromRgb(int width, int height, ReadOnlySpan<byte> rgb)
    {
        var image = new DecodedImage(width, height);
        if (rgb.Length != image._length)
        {
            image.Dispose();
            throw new ArgumentException($"{width}×{height} RGB is {(long)width * height * 3} bytes, not {rgb.Length}", nameof(rgb));
        }
        rgb.CopyTo(image.Writable);
        return image;
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>Width·Height·3 bytes, R G B per pixel, row stride Width·3.</summary>
    public ReadOnlySpan<byte> Pixels => Writable;

    internal Span<byte> Writable
    {
        get
        {
            ImageMemory memory = _memory ?? throw new ObjectDisposedException(nameof(DecodedImage));
            return memory.Span;
        }
    }

    /// <summary>Holds <paramref name="lease"/> (the decode memory this image was granted) until it is disposed.</summary>
    internal void Hold(IDisposable lease) => _lease = lease;

    public void Dispose()
    {
        Interlocked.Exchange(ref _memory, null)?.Dispose();
        Interlocked.Exchange(ref _lease, null)?.Dispose();
    }
}
