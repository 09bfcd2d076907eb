using AlexNet.Cuda.Network;

namespace AlexNet.Imaging;

/// <summary>
/// Turns decoded RGB pixels into one image of the network's input: 227×227×3 floats, HWC, BGR, mean
/// subtracted, what <see cref="AlexNetModel"/> takes per image.
/// </summary>
/// <remarks>
/// The resize is OpenCV's <c>cv2.resize(img.astype(np.float32), size)</c> with <c>INTER_LINEAR</c>: for
/// destination column x of a resize from W to W′ the source coordinate is u = (x + 0.5)·W/W′ − 0.5; the
/// value is (1 − f)·S[i] + f·S[i + 1] with i = ⌊u⌋, f = u − i, and indices outside 0..W−1 replaced by the
/// nearest edge pixel; rows first, then columns the same way. Two taps per axis, no antialiasing, however
/// large the reduction. The window of <see cref="ResizeMode.Crop"/> is evaluated directly (x + Left in the
/// formula), so the intermediate 256-pixel image is never built and nothing is rounded to bytes between
/// the decode and the output. Taps are computed in double and their weights stored as float (OpenCV rounds
/// the coordinate itself to float: docs/decoding.md says where that differs); sums are float, as in
/// OpenCV's float path. <see cref="PreprocessorReference"/> is the same rule in double, written plainly.
/// </remarks>
public static class Preprocessor
{
    public static void Write(DecodedImage image, ResizeMode mode, ReadOnlySpan<float> meanBgr, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (meanBgr.Length != 3) throw new ArgumentException($"the mean has 3 values (B, G, R), not {meanBgr.Length}", nameof(meanBgr));
        if (destination.Length != AlexNetModel.InputFloatsPerImage)
            throw new ArgumentException($"one image is {AlexNetModel.InputFloatsPerImage} floats (227×227×3), the destination holds {destination.Length}", nameof(destination));

        const int n = AlexNetModel.InputSize;
        int width = image.Width, height = image.Height;
        ResizeWindow window = ResizeWindow.Of(width, height, mode, n);
        Span<int> x0 = stackalloc int[n], x1 = stackalloc int[n], y0 = stackalloc int[n], y1 = stackalloc int[n];
        Span<float> fx = stackalloc float[n], fy = stackalloc float[n];
        Taps(width, window.ResizedWidth, window.Left, x0, x1, fx);
        Taps(height, window.ResizedHeight, window.Top, y0, y1, fy);

        ReadOnlySpan<byte> pixels = image.Pixels;
        float meanB = meanBgr[0], meanG = meanBgr[1], meanR = meanBgr[2];
        int stride = width * 3;
        for (int y = 0; y < n; y++)
        {
            ReadOnlySpan<byte> upper = pixels.Slice(y0[y] * stride, stride);
            ReadOnlySpan<byte> lower = pixels.Slice(y1[y] * stride, stride);
            float b = fy[y], a = 1f - b;
            Span<float> output = destination.Slice(y * n * 3, n * 3);
            for (int x = 0; x < n; x++)
            {
                int i = x0[x] * 3, j = x1[x] * 3;
                float right = fx[x], left = 1f - right;
                // Each channel: across the two source columns in both rows, then between the rows.
                float r = (upper[i] * left + upper[j] * right) * a + (lower[i] * left + lower[j] * right) * b;
                float g = (upper[i + 1] * left + upper[j + 1] * right) * a + (lower[i + 1] * left + lower[j + 1] * right) * b;
                float bl = (upper[i + 2] * left + upper[j + 2] * right) * a + (lower[i + 2] * left + lower[j + 2] * right) * b;
                output[3 * x] = bl - meanB;
                output[3 * x + 1] = g - meanG;
                output[3 * x + 2] = r - meanR;
            }
        }
    }

    /// <summary>
    /// For each output index d of the window starting at <paramref name="offset"/> in a resize from
    /// <paramref name="source"/> to <paramref name="resized"/>: the two source indices and the second one's weight.
    /// </summary>
    private static void Taps(int source, int resized, int offset, Span<int> first, Span<int> second, Span<float> weight)
    {
        double scale = (double)source / resized;
        for (int d = 0; d < first.Length; d++)
        {
            double u = (d + offset + 0.5) * scale - 0.5;
            double floor = Math.Floor(u);
            int i = (int)floor;
            double f = u - floor;
            if (i < 0) { i = 0; f = 0; }
            if (i >= source - 1) { i = source - 1; f = 0; }
            first[d] = i;
            second[d] = Math.Min(i + 1, source - 1);
            weight[d] = (float)f;
        }
    }
}
