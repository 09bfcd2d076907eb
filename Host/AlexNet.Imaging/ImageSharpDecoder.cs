using System.Buffers;
using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;

namespace AlexNet.Imaging;

/// <summary>
/// Decodes with SixLabors.ImageSharp 2.1.13, fully managed: JPEG, PNG, BMP, GIF, TIFF, WebP, TGA, PBM.
/// 8-bit images are decoded into <see cref="Rgb24"/> (grey replicated, alpha dropped); images with 16-bit
/// samples into <see cref="Rgba64"/>, then each sample shifted right by 8, because ImageSharp's own
/// 16→8 conversion rounds (<c>(v·255 + 32895) &gt;&gt; 16</c>) where OpenCV truncates.
/// </summary>
internal sealed class ImageSharpDecoder : IImageDecoder
{
    internal const string Version = "2.1.13";

    // One configuration for every call (ImageSharp's configuration is safe to share between threads once
    // built): GIF and TIFF decode their first frame only, and decoding stays on the calling thread, because
    // the caller decodes many images in parallel and a second layer of parallelism only adds contention.
    private static readonly Configuration Configuration = CreateConfiguration();

    public string Name => "imagesharp " + Version;

    private static Configuration CreateConfiguration()
    {
        Configuration configuration = Configuration.Default.Clone();
        configuration.MaxDegreeOfParallelism = 1;
        configuration.ImageFormatsManager.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First });
        configuration.ImageFormatsManager.SetDecoder(TiffFormat.Instance, new TiffDecoder { DecodingMode = FrameDecodingMode.First });
        return configuration;
    }

    public DecodedImage Decode(string path, ImageDecodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(options);
        // The whole file in one pooled buffer: ImageSharp reads it through a MemoryStream, and the JPEG end
        // check below needs its last bytes.
        (byte[] data, int length) = ImageFiles.ReadAll(path);
        try
        {
            using var stream = new MemoryStream(data, 0, length, writable: false);
            return Decode(path, stream, data.AsSpan(0, length), options);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(data);
        }
    }

    private static DecodedImage Decode(string path, MemoryStream stream, ReadOnlySpan<byte> data, ImageDecodeOptions options)
    {
        if (data.IsEmpty) throw new ImageDecodeException(path, "not an image (empty file)");
        IImageInfo? info;
        IImageFormat? format;
        try
        {
            info = Image.Identify(Configuration, stream, out format);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw Corrupt(path, ImageFiles.Sniff(data), e.Message, e);
        }
        if (info is null || format is null) throw new ImageDecodeException(path, "not an image (unknown format)");
        ImageDecodeException.ThrowIfTooLarge(path, info.Width, info.Height, options);
        // ImageSharp 2.1 decodes a JPEG, GIF, BMP or WebP cut short without complaint, the missing part
        // grey or black: refuse it instead.
        if (TruncatedFiles.Reason(format.Name, data) is { } truncated) throw Corrupt(path, format.Name, truncated);

        bool sixteenBit = format is PngFormat
            ? info.Metadata.GetPngMetadata().BitDepth == PngBitDepth.Bit16
            : info.PixelType.BitsPerPixel is 16 or > 32;
        stream.Position = 0;
        try
        {
            // The orientation is applied where Skia applies it too (JPEG, WebP), so both decoders give the
            // same pixels; a PNG's eXIf chunk is ignored by both.
            bool oriented = format is JpegFormat or WebpFormat;
            return sixteenBit ? DecodeSixteenBit(stream, oriented) : DecodeEightBit(stream, oriented);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or ImageDecodeException))
        {
            throw Corrupt(path, format.Name, e.Message, e);
        }
    }


    private static DecodedImage DecodeEightBit(Stream stream, bool oriented)
    {
        using Image<Rgb24> image = Image.Load<Rgb24>(Configuration, stream);
        var writer = new OrientedWriter(image.Width, image.Height, oriented ? Orientation(image.Metadata) : 1);
        image.ProcessPixelRows(rows =>
        {
            for (int y = 0; y < rows.Height; y++)
            {
                MemoryMarshal.AsBytes(rows.GetRowSpan(y)).CopyTo(writer.Row(y));
                writer.Commit(y);
            }
        });
        return writer.Image;
    }

    private static DecodedImage DecodeSixteenBit(Stream stream, bool oriented)
    {
        using Image<Rgba64> image = Image.Load<Rgba64>(Configuration, stream);
        var writer = new OrientedWriter(image.Width, image.Height, oriented ? Orientation(image.Metadata) : 1);
        image.ProcessPixelRows(rows =>
        {
            for (int y = 0; y < rows.Height; y++)
            {
                Span<Rgba64> source = rows.GetRowSpan(y);
                Span<byte> target = writer.Row(y);
                for (int x = 0; x < source.Length; x++)
                {
                    target[3 * x] = (byte)(source[x].R >> 8);
                    target[3 * x + 1] = (byte)(source[x].G >> 8);
                    target[3 * x + 2] = (byte)(source[x].B >> 8);
                }
                writer.Commit(y);
            }
        });
        return writer.Image;
    }

    private static int Orientation(ImageMetadata metadata)
    {
        IExifValue<ushort>? value = metadata.ExifProfile?.GetValue(ExifTag.Orientation);
        return value is null ? 1 : value.Value;
    }

    private static ImageDecodeException Corrupt(string path, string? format, string reason, Exception? inner = null) =>
        new(path, $"truncated or corrupt {format ?? "image"} ({reason.ReplaceLineEndings(" ").TrimEnd('.')})", inner);
}
