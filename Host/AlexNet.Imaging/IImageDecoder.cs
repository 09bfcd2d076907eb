namespace AlexNet.Imaging;

/// <summary>Turns an image file into <see cref="DecodedImage"/> pixels. Implementations are thread-safe.</summary>
public interface IImageDecoder
{
    /// <summary>The library and its version, e.g. <c>skiasharp 4.155.0</c>.</summary>
    string Name { get; }

    /// <summary>Decodes <paramref name="path"/>; failures are <see cref="ImageDecodeException"/>s naming the file.</summary>
    DecodedImage Decode(string path, ImageDecodeOptions options);
}
