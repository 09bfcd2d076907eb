namespace AlexNet.Imaging;

/// <summary>How an image of any size becomes the network's 227×227 input (docs/decoding.md).</summary>
public enum ResizeMode
{
    /// <summary>Resize to 227×227, the aspect ratio not kept: the reference code's <c>cv2.resize(img, (227, 227))</c>.</summary>
    Stretch,

    /// <summary>Resize the shorter side to 256 (the longer side in proportion, rounded down), then take the centre 227×227.</summary>
    Crop,
}

/// <summary>
/// Where the 227×227 window lies in the resized image: the resized size, and the window's top-left corner.
/// Stretch: 227×227 at (0, 0). Crop: the shorter side becomes 256 and the longer
/// ⌊256·long/short⌋ (integer arithmetic); the window starts at (⌊(W′−227)/2⌋, ⌊(H′−227)/2⌋).
/// </summary>
internal readonly record struct ResizeWindow(int ResizedWidth, int ResizedHeight, int Left, int Top)
{
    /// <summary>The size the shorter side is resized to before the centre crop.</summary>
    public const int CropShortSide = 256;

    public static ResizeWindow Of(int width, int height, ResizeMode mode, int output)
    {
        if (mode == ResizeMode.Stretch) return new ResizeWindow(output, output, 0, 0);
        if (mode != ResizeMode.Crop) throw new ArgumentOutOfRangeException(nameof(mode), mode, "not a resize mode");
        int resizedWidth, resizedHeight;
        if (width <= height)
        {
            resizedWidth = CropShortSide;
            resizedHeight = checked((int)((long)CropShortSide * height / width));
        }
        else
        {
            resizedHeight = CropShortSide;
            resizedWidth = checked((int)((long)CropShortSide * width / height));
        }
        return new ResizeWindow(resizedWidth, resizedHeight, (resizedWidth - output) / 2, (resizedHeight - output) / 2);
    }
}
