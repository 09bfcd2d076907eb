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

    // ImageSharp reads every EXIF value's type through Enum.GetValues(typeof(ExifDataType)), which under
    // NativeAOT needs the array type compiled in; nothing else in the program makes one, and without it every
    // TIFF and every JPEG with EXIF failed in the NativeAOT binary ("ExifDataType[] is missing native code").
    private static readonly ExifDataType[] ExifDataTypesForNativeAot = new ExifDataType[1];

    private static Configuration CreateConfiguration()
    {
        Configuration configuration = Configuration.Default.Clone();
        configuration.MaxDegreeOfParallelism = 1;
        configuration.ImageFormatsManager.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First });
        configuration.ImageFormatsManager.SetDecoder(TiffFormat.Instance, new TiffDecoder { DecodingMode = FrameDecodingMode.First });
        // A PNG's text chunks are metadata nothing here reads, and a compressed one can inflate to gigabytes
        // (a 541 KB file took 5 GB): skip them. JPEG and WebP keep theirs, for the EXIF orientation.
        configuration.ImageFormatsManager.SetDecoder(PngFormat.Instance, new PngDecoder { IgnoreMetadata = true });
        return configuration;
    }

    public DecodedImage Decode(string path, ImageDecodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(options);
        using FileStream file = ImageFiles.Open(path);
        long length = file.Length;
        if (length == 0) throw new ImageDecodeException(path, "not an image (empty file)");
        if (length > Array.MaxLength) throw new ImageDecodeException(path, $"cannot be read: {length} bytes is larger than an image file can be here");

        IImageInfo? info;
        IImageFormat? format;
        try
        {
            info = Image.Identify(Configuration, file, out format);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw Corrupt(path, ImageFiles.Sniff(path), e);
        }
        if (info is null || format is null) throw new ImageDecodeException(path, "not an image (unknown format)");
        ImageDecodeException.ThrowIfTooLarge(path, info.Width, info.Height, options);
        bool sixteenBit = format is PngFormat
            ? ImageHeaders.Png(path) is { BitDepth: 16 }
            : info.PixelType.BitsPerPixel is 16 or > 32;

        IDisposable lease = options.Memory.Reserve(path, MemoryNeeded(length, info.Width, info.Height, format, sixteenBit), 3L * info.Width * info.Height);
        try
        {
            // The whole file in one buffer: the structure checks read all of it, and ImageSharp reads it as a
            // stream.
            using ImageMemory data = ImageMemory.Allocate(length);
            file.Position = 0;
            file.ReadExactly(data.Span);
            if (StructureChecks.Unsupported(format.Name, data.Span) is { } unsupported)
                throw new ImageDecodeException(path, $"cannot be decoded: {unsupported}");
            if (StructureChecks.Problem(format.Name, data.Span) is { } problem)
                throw new ImageDecodeException(path, $"truncated or corrupt {FormatName(format)} ({problem})");
            using Stream stream = data.AsStream();
            // The orientation is applied where Skia applies it too (JPEG, WebP), so both decoders give the
            // same pixels; a PNG's eXIf chunk is ignored by both.
            bool oriented = format is JpegFormat or WebpFormat;
            DecodedImage image = sixteenBit ? DecodeSixteenBit(stream, oriented) : DecodeEightBit(stream, oriented);
            image.Hold(lease);
            return image;
        }
        catch (Exception e) when (e is not (OutOfMemoryException or ImageDecodeException))
        {
            lease.Dispose();
            throw Corrupt(path, FormatName(format), e);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    /// <summary>Gives the system back what ImageSharp's allocator keeps for the next image (a decode worker
    /// does so after a large one).</summary>
    internal static void ReleaseRetainedMemory() => Configuration.MemoryAllocator.ReleaseRetainedResources();

    /// <summary>
    /// The bytes one decode holds at its peak: the file, ImageSharp's image (3 bytes a pixel, 8 for 16-bit
    /// samples), the RGB result, and for JPEG the coefficients of every block (kept for the whole image:
    /// 2 bytes a sample, 3 samples a pixel at most).
    /// </summary>
    internal static long MemoryNeeded(long fileBytes, long width, long height, IImageFormat format, bool sixteenBit)
    {
        long pixels = width * height;
        return fileBytes + pixels * (sixteenBit ? 8 : 3) + pixels * 3 + (format is JpegFormat ? pixels * 6 : 0);
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

    /// <summary>
    /// What went wrong, as a sentence: ImageSharp's own format errors say what they found (invalid or
    /// unsupported content); anything else it raised (an index out of range, a null reference, a division by
    /// zero deep in a decoder) only means the file's structure led the decoder astray, and that exception's
    /// text, written for programmers, is not shown.
    /// </summary>
    private static ImageDecodeException Corrupt(string path, string? format, Exception e)
    {
        string what = format ?? "image";
        string problem = e switch
        {
            UnknownImageFormatException => "not an image (unknown format)",
            ImageFormatException => $"truncated or corrupt {what} ({Sentence(e.Message)})",
            NotSupportedException when ThrownByImageSharp(e) => $"cannot be decoded as {what} ({Sentence(e.Message)})",
            EndOfStreamException => $"truncated or corrupt {what} (the data ends before the image does)",
            _ => $"truncated or corrupt {what} (the imagesharp decoder could not follow its structure)",
        };
        return new ImageDecodeException(path, problem, e);
    }

    /// <summary>
    /// Whether ImageSharp itself raised the exception (its "not supported" texts name a feature of the file),
    /// rather than the runtime under it. <see cref="Exception.Source"/> names the assembly under the JIT but not
    /// in a NativeAOT binary, where the tiled TIFF got "could not follow its structure"; the first frame of the
    /// stack trace names the thrower in both.
    /// </summary>
    internal static bool ThrownByImageSharp(Exception e)
    {
        const string Library = "SixLabors.";
        if (e.GetType().FullName?.StartsWith(Library, StringComparison.Ordinal) == true
            || e.Source?.StartsWith(Library.TrimEnd('.'), StringComparison.Ordinal) == true)
            return true;
        string? trace = e.StackTrace;
        if (trace is null)
            return false;
        int end = trace.IndexOf('\n');
        ReadOnlySpan<char> first = (end < 0 ? trace : trace[..end]).AsSpan().TrimStart();
        return first.StartsWith("at ") && first[3..].StartsWith(Library, StringComparison.Ordinal);
    }

    /// <summary>The format as the other decoder and the documentation spell it (ImageSharp says "Webp").</summary>
    private static string FormatName(IImageFormat format) => format is WebpFormat ? "WebP" : format.Name.ToUpperInvariant();

    // ImageSharp's messages, as one line without a closing full stop.
    private static string Sentence(string message) => message.ReplaceLineEndings(" ").Trim().TrimEnd('.');
}
