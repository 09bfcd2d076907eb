using System.Buffers;
using System.Runtime.InteropServices;
using SkiaSharp;

namespace AlexNet.Imaging;

/// <summary>
/// Decodes with SkiaSharp 4.155.0, Skia's codecs over libjpeg-turbo, libpng, libwebp and its own GIF/BMP
/// readers (no TIFF). Rows are decoded one at a time where the codec allows it (JPEG, PNG, BMP), so the only
/// whole-image buffer is the result. No colour management: the destination has no colour space, so ICC
/// profiles are ignored as OpenCV ignores them. 16-bit samples are decoded as 16-bit and shifted right by 8.
/// </summary>
internal sealed class SkiaSharpDecoder : IImageDecoder
{
    internal const string Version = "4.155.0";

    public string Name => "skiasharp " + Version;

    public DecodedImage Decode(string path, ImageDecodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(options);
        long length;
        using (FileStream stream = ImageFiles.Open(path)) length = stream.Length;
        if (length == 0) throw new ImageDecodeException(path, "not an image (empty file)");

        using SKCodec codec = SKCodec.Create(path, out SKCodecResult created) ?? throw NotCreated(path, created, options);
        SKImageInfo stored = codec.Info;
        ImageDecodeException.ThrowIfTooLarge(path, stored.Width, stored.Height, options);
        string format = FormatName(codec.EncodedFormat);

        SKSizeI size = options.FastDecode && codec.EncodedFormat == SKEncodedImageFormat.Jpeg
            ? ScaledSize(codec, options.TargetShortSide)
            : stored.Size;
        bool sixteenBit = stored.ColorType is SKColorType.Rgba16161616 or SKColorType.RgbaF16 or SKColorType.RgbaF16Clamped
            or SKColorType.RgbaF32 or SKColorType.Alpha16 or SKColorType.R16Unorm or SKColorType.Rg1616;
        var target = new SKImageInfo(size.Width, size.Height,
            sixteenBit ? SKColorType.Rgba16161616 : SKColorType.Rgba8888,
            stored.AlphaType == SKAlphaType.Opaque ? SKAlphaType.Opaque : SKAlphaType.Unpremul);

        IDisposable lease = options.Memory.Reserve(path, MemoryNeeded(path, codec.EncodedFormat, stored, target), 3L * size.Width * size.Height);
        OrientedWriter writer;
        try
        {
            writer = new OrientedWriter(size.Width, size.Height, (int)codec.EncodedOrigin);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
        writer.Image.Hold(lease);
        try
        {
            SKCodecResult result = codec.StartScanlineDecode(target);
            if (result == SKCodecResult.Success)
                DecodeRows(codec, target, writer, path, format);
            else if (result is SKCodecResult.Unimplemented or SKCodecResult.InvalidScale)
                DecodeWhole(codec, target, writer, path, format);
            else
                throw Failed(path, format, result);
            return writer.Image;
        }
        catch
        {
            writer.Image.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The bytes one decode holds at its peak: the RGB result, and the decoded rows: one row where Skia
    /// decodes row by row (JPEG, non-interlaced PNG, BMP), the whole image where it cannot (GIF, WebP and
    /// the rest go through one GetPixels call; an interlaced PNG is buffered whole by Skia), and for a
    /// progressive JPEG libjpeg's coefficients of the whole image (2 bytes each, up to 3 per pixel).
    /// </summary>
    internal static long MemoryNeeded(string path, SKEncodedImageFormat format, SKImageInfo stored, SKImageInfo target)
    {
        long pixels = (long)target.Width * target.Height;
        long rows = target.RowBytes64 * target.Height;
        long result = pixels * 3;
        return format switch
        {
            SKEncodedImageFormat.Jpeg => result + target.RowBytes64 + (ImageHeaders.JpegProgressive(path) == false ? 0 : 6L * stored.Width * stored.Height),
            SKEncodedImageFormat.Png => result + (ImageHeaders.Png(path) is { Interlaced: false } ? target.RowBytes64 : rows),
            SKEncodedImageFormat.Bmp => result + target.RowBytes64,
            _ => result + rows,
        };
    }

    private static void DecodeRows(SKCodec codec, SKImageInfo target, OrientedWriter writer, string path, string format)
    {
        int rowBytes = target.RowBytes;
        byte[] row = ArrayPool<byte>.Shared.Rent(rowBytes);
        bool bottomUp = codec.ScanlineOrder == SKCodecScanlineOrder.BottomUp;
        try
        {
            unsafe
            {
                fixed (byte* p = row)
                {
                    for (int i = 0; i < target.Height; i++)
                    {
                        if (codec.GetScanlines((IntPtr)p, 1, rowBytes) != 1) throw Failed(path, format, SKCodecResult.IncompleteInput);
                        int y = bottomUp ? target.Height - 1 - i : i;
                        ToRgb(row.AsSpan(0, rowBytes), target.ColorType, writer.Row(y));
                        writer.Commit(y);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(row);
        }
    }

    private static void DecodeWhole(SKCodec codec, SKImageInfo target, OrientedWriter writer, string path, string format)
    {
        int rowBytes = target.RowBytes;
        long total = (long)rowBytes * target.Height;
        if (total > Array.MaxLength)
            throw new ImageDecodeException(path, $"{target.Width}×{target.Height} {format} is too large to decode whole (more than {Array.MaxLength} bytes)");
        using ImageMemory pixels = ImageMemory.Allocate(total);
        SKCodecResult result;
        unsafe
        {
            fixed (byte* p = pixels.Span) result = codec.GetPixels(target, (IntPtr)p, rowBytes, SKCodecOptions.Default);
        }
        if (result != SKCodecResult.Success) throw Failed(path, format, result);
        for (int y = 0; y < target.Height; y++)
        {
            ToRgb(pixels.Span.Slice(y * rowBytes, rowBytes), target.ColorType, writer.Row(y));
            writer.Commit(y);
        }
    }

    /// <summary>One decoded row, RGBA 8888 or RGBA 16161616 (native-endian), to RGB bytes; alpha dropped.</summary>
    private static void ToRgb(ReadOnlySpan<byte> source, SKColorType type, Span<byte> rgb)
    {
        int width = rgb.Length / 3;
        if (type == SKColorType.Rgba16161616)
        {
            ReadOnlySpan<ushort> samples = MemoryMarshal.Cast<byte, ushort>(source);
            for (int x = 0; x < width; x++)
            {
                rgb[3 * x] = (byte)(samples[4 * x] >> 8);
                rgb[3 * x + 1] = (byte)(samples[4 * x + 1] >> 8);
                rgb[3 * x + 2] = (byte)(samples[4 * x + 2] >> 8);
            }
        }
        else
        {
            for (int x = 0; x < width; x++)
            {
                rgb[3 * x] = source[4 * x];
                rgb[3 * x + 1] = source[4 * x + 1];
                rgb[3 * x + 2] = source[4 * x + 2];
            }
        }
    }

    /// <summary>The smallest of libjpeg's 1/2, 1/4, 1/8 scalings whose shorter side stays at or above the target.</summary>
    private static SKSizeI ScaledSize(SKCodec codec, int targetShortSide)
    {
        SKSizeI best = codec.Info.Size;
        foreach (float scale in (ReadOnlySpan<float>)[0.5f, 0.25f, 0.125f])
        {
            SKSizeI size = codec.GetScaledDimensions(scale);
            if (Math.Min(size.Width, size.Height) < targetShortSide) break;
            best = size;
        }
        return best;
    }

    private static ImageDecodeException NotCreated(string path, SKCodecResult result, ImageDecodeOptions options)
    {
        string? sniffed = ImageFiles.Sniff(path);
        if (sniffed == "PNG" && PastLibpngLimit(path, options) is { } limit) return limit;
        if (sniffed == "TIFF")
            return new ImageDecodeException(path, "TIFF is not read by the skiasharp decoder (the imagesharp decoder reads it)");
        if (sniffed is null || result == SKCodecResult.Unimplemented)
            return new ImageDecodeException(path, "not an image (unknown format)");
        return Failed(path, sniffed, result);
    }

    /// <summary>
    /// libpng refuses a PNG wider or taller than 1,000,000 pixels (its default user limit) and Skia reports
    /// that as incomplete input; the header says what it really is.
    /// </summary>
    private static ImageDecodeException? PastLibpngLimit(string path, ImageDecodeOptions options)
    {
        const long limit = 1_000_000;
        if (ImageHeaders.Png(path) is not { } png || (png.Width <= limit && png.Height <= limit)) return null;
        // Past the pixel limit as well: that is the reason that matters, whichever decoder reads it.
        if (png.Width * png.Height > options.MaxPixels) return ImageDecodeException.TooLarge(path, png.Width, png.Height, options.MaxPixels);
        return new ImageDecodeException(path, $"{png.Width}×{png.Height} PNG is over 1000000 pixels on a side, more than the skiasharp decoder (libpng) reads; the imagesharp decoder reads it");
    }

    private static ImageDecodeException Failed(string path, string format, SKCodecResult result) => new(path, result switch
    {
        SKCodecResult.IncompleteInput => $"truncated or corrupt {format} (the data ends before the image does)",
        SKCodecResult.ErrorInInput => $"truncated or corrupt {format} (invalid data)",
        SKCodecResult.InvalidInput => $"truncated or corrupt {format} (invalid header)",
        _ => $"cannot be decoded as {format} (Skia: {result})",
    });

    private static string FormatName(SKEncodedImageFormat format) => format switch
    {
        SKEncodedImageFormat.Jpeg => "JPEG",
        SKEncodedImageFormat.Png => "PNG",
        SKEncodedImageFormat.Gif => "GIF",
        SKEncodedImageFormat.Bmp => "BMP",
        SKEncodedImageFormat.Webp => "WebP",
        SKEncodedImageFormat.Ico => "ICO",
        SKEncodedImageFormat.Wbmp => "WBMP",
        _ => format.ToString(),
    };
}
