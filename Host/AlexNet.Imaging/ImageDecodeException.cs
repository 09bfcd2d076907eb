using AlexNet.Cuda;

namespace AlexNet.Imaging;

/// <summary>
/// An image file that cannot be used: unreadable, not an image, truncated or corrupt, too large, or in a
/// format the chosen decoder does not read. The message is one line, <c>PATH: problem</c>.
/// </summary>
public sealed class ImageDecodeException : AlexNetException
{
    public ImageDecodeException(string path, string problem, Exception? inner = null)
        : base(OneLine($"{path}: {problem}"), inner)
    {
        Path = path;
        Problem = OneLine(problem);
    }

    /// <summary>The file the problem is about.</summary>
    public string Path { get; }

    /// <summary>What is wrong with it, without the path: "truncated or corrupt PNG (…)".</summary>
    public string Problem { get; }

    private static string OneLine(string s) => s.Replace('\r', ' ').Replace('\n', ' ');

    /// <summary>The refusal of an image whose header declares more pixels than the limit.</summary>
    internal static ImageDecodeException TooLarge(string path, long width, long height, long maxPixels) =>
        new(path, $"{width}×{height} is {width * height} pixels, above the limit of {maxPixels} (raise it with --max-pixels)");

    /// <summary>Checks the declared size against the limit, before any pixel is decoded.</summary>
    internal static void ThrowIfTooLarge(string path, long width, long height, ImageDecodeOptions options)
    {
        if (width <= 0 || height <= 0) throw new ImageDecodeException(path, $"declares an empty size {width}×{height}");
        if (width * height > options.MaxPixels) throw TooLarge(path, width, height, options.MaxPixels);
        if (width * height * 3 > Array.MaxLength)
            throw new ImageDecodeException(path, $"{width}×{height} is {width * height} pixels, more than one image buffer can hold ({Array.MaxLength / 3} pixels)");
    }
}
