using AlexNet.Cuda.Network;

namespace AlexNet.Imaging;

/// <summary>
/// The specification of <see cref="Preprocessor"/>, in double and as plainly as it can be written: every
/// output value computed on its own from the definition of OpenCV's <c>INTER_LINEAR</c> resize (source
/// coordinate u = (x + 0.5)·W/W′ − 0.5, two taps weighted 1 − f and f, edge pixels replicated), the crop
/// window, BGR order and the mean. Slow on purpose; for tests and checks.
/// </summary>
public static class PreprocessorReference
{
    /// <summary>227×227×3 values, HWC, BGR, mean subtracted.</summary>
    public static double[] Compute(DecodedImage image, ResizeMode mode, ReadOnlySpan<double> meanBgr)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (meanBgr.Length != 3) throw new ArgumentException("the mean has 3 values (B, G, R)", nameof(meanBgr));
        const int n = AlexNetModel.InputSize;
        int width = image.Width, height = image.Height;

        // The resized size and the window, from the definition (ResizeMode's documentation).
        int resizedWidth = n, resizedHeight = n, left = 0, top = 0;
        if (mode == ResizeMode.Crop)
        {
            // The shorter side becomes 256, the longer 256·long/short rounded down.
            if (width < height) { resizedWidth = 256; resizedHeight = (int)(256L * height / width); }
            else if (height < width) { resizedHeight = 256; resizedWidth = (int)(256L * width / height); }
            else { resizedWidth = 256; resizedHeight = 256; }
            left = (resizedWidth - n) / 2;
            top = (resizedHeight - n) / 2;
        }

        var result = new double[n * n * 3];
        ReadOnlySpan<byte> pixels = image.Pixels;
        for (int y = 0; y < n; y++)
        {
            for (int x = 0; x < n; x++)
            {
                double u = (x + left + 0.5) * width / resizedWidth - 0.5;
                double v = (y + top + 0.5) * height / resizedHeight - 0.5;
                for (int c = 0; c < 3; c++)
                {
                    int rgb = 2 - c; // output channel c is B, G, R
                    result[(y * n + x) * 3 + c] = Bilinear(pixels, width, height, u, v, rgb) - meanBgr[c];
                }
            }
        }
        return result;
    }

    /// <summary>The value of channel <paramref name="channel"/> at source coordinate (u, v).</summary>
    public static double Bilinear(ReadOnlySpan<byte> pixels, int width, int height, double u, double v, int channel)
    {
        int i = (int)Math.Floor(u), j = (int)Math.Floor(v);
        double fu = u - i, fv = v - j;
        double Sample(int x, int y, ReadOnlySpan<byte> p) =>
            p[(Math.Clamp(y, 0, height - 1) * width + Math.Clamp(x, 0, width - 1)) * 3 + channel];
        double upper = (1 - fu) * Sample(i, j, pixels) + fu * Sample(i + 1, j, pixels);
        double lower = (1 - fu) * Sample(i, j + 1, pixels) + fu * Sample(i + 1, j + 1, pixels);
        return (1 - fv) * upper + fv * lower;
    }
}
