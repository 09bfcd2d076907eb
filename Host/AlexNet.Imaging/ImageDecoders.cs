using AlexNet.Cuda;

namespace AlexNet.Imaging;

/// <summary>The decoders by name (<c>skiasharp</c>, <c>imagesharp</c>) and the default one.</summary>
public static class ImageDecoders
{
    private static readonly IImageDecoder Skia = new SkiaSharpDecoder();
    private static readonly IImageDecoder Sharp = new ImageSharpDecoder();

    /// <summary>
    /// skiasharp: its JPEG pixels are libjpeg-turbo's, sample for sample (the library cv2.imread decodes with);
    /// in the NativeAOT binary it is as fast as ImageSharp on JPEG, with half the peak memory and a 2× faster
    /// scaled decode; and ImageSharp 2.1.x has reported flaws with crafted images. docs/decoding.md has the
    /// measurements. ImageSharp remains for TIFF.
    /// </summary>
    public static string DefaultName => "skiasharp";

    public static IReadOnlyList<string> Names { get; } = ["skiasharp", "imagesharp"];

    /// <summary>The decoder called <paramref name="name"/> (case-insensitive); one shared, thread-safe instance each.</summary>
    public static IImageDecoder Create(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "skiasharp" => Skia,
            "imagesharp" => Sharp,
            _ => throw new AlexNetException($"unknown image decoder '{name}' (choose {string.Join(" or ", Names)})"),
        };
    }
}
