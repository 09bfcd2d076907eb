using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Training;
using static AlexNet.Cuda.Checks.LayerChecks;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// The backward kernels of <see cref="ConvolutionBackward"/> and its convolution gradients against
/// <see cref="ConvolutionBackwardReference"/>: AlexNet's real shapes at batch 1 where they are cheap (pool1, norm1,
/// conv2's col2im and gradients), and small awkward ones: odd sizes, partial blocks, stride 4 with a large window
/// (conv1's, scaled down), padding, two groups, chunks of images with a partial last one, ties, NaN and -inf in max
/// pooling, the fused input activation. Every output buffer is longer than the result and pre-filled with NaN, so
/// a missing write or one past the end shows up; gradients that must not be read (the gaps of a padded layout)
/// are NaN too. Part of <see cref="KernelChecks.All"/>.
/// </summary>
public static class ConvolutionBackwardChecks
{
    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All()
    {
        foreach ((PoolShape s, PoolData data, bool fused) in MaxPoolCases)
            yield return ($"maxpool_backward_kernel1 {s}{Describe(data)}{(fused ? ", input bias+relu fused" : "")}",
                d => MaxPoolBackward(d, s, data, fused));
        foreach ((int channels, int inner, LrnParameters p, float scale, bool fused, string note) in LrnCases)
            yield return ($"lrn_backward_kernel1 {channels}x{inner} {p}, input x{scale}{note}{(fused ? ", input bias+relu fused" : "")}",
                d => LrnBackward(d, channels, inner, p, scale, fused));
        foreach (Im2ColShape s in Col2ImShapes)
            yield return ($"col2im_kernel1 {s}", d => Col2Im(d, s));
        foreach (ConvolutionCase c in ConvolutionCases)
            yield return ($"convolution gradients {c}", d => ConvolutionGradients(d, c));
    }

    // ---- tolerances: each bound is twice the first-order worst case of the float computation ----

    /// <summary>
    /// A max-pool gradient element is a float sum of the window gradients that picked it, at most
    /// ceil(size/stride)² of them, against the double sum rounded once: |error| ≤ 2·(terms + 1)·u·Σ|terms|.
    /// A gradient sent to the wrong element of a window misses by a whole term.
    /// </summary>
    public static double MaxPoolBackwardRtol(int size, int stride)
    {
        int reach = (size + stride - 1) / stride;
        return 2.0 * (reach * reach + 1) * Tolerances.Float32Roundoff;
    }

    /// <summary>
    /// LRN's gradient, relative to Σ|terms| of the reference's scatter (the own term grad·base^−beta and the
    /// 2r + 1 cross terms). Each base's float sum is off by (2r + 3)·u relatively (as in <see cref="Tolerances.LrnRtol"/>),
    /// which base^−beta / base turns into (|beta| + 1)·(2r + 3)·u; the power is allowed 16 ulp, the products and
    /// the division 5, the sum over the 2r + 1 cross terms 2r + 1, the scaling by 2·alpha·beta·x and the final
    /// difference 4. A cross term of the wrong sign, a missing factor 2 or a window one channel off exceeds it
    /// wherever the cross terms count (large inputs or alpha, the test data's outliers).
    /// </summary>
    public static double LrnBackwardRtol(int radius, float beta) =>
        2.0 * ((Math.Abs(beta) + 1) * (2.0 * radius + 3) + 2.0 * radius + 26) * Tolerances.Float32Roundoff;

    /// <summary>A col2im element is a float sum of at most ceil(kernelH/stride)·ceil(kernelW/stride) entries of col.</summary>
    public static double Col2ImRtol(int kernelH, int kernelW, int stride) =>
        2.0 * (((kernelH + stride - 1) / stride) * ((kernelW + stride - 1) / stride) + 1) * Tolerances.Float32Roundoff;

    // ---- max pooling ----

    /// <summary>What the forward input of a max-pool case holds beyond <see cref="KernelChecks.TestData"/>.</summary>
    public enum PoolData
    {
        Plain,
        /// <summary>A marked NaN in one window (and its overlapping neighbours), and a window of -inf only.</summary>
        NaNAndInfinity,
        /// <summary>Values of {−1, −0, +0, 1} only: most windows hold ties, which the first equal value wins.</summary>
        Ties,
    }

    private static string Describe(PoolData data) => data switch
    {
        PoolData.NaNAndInfinity => ", NaN and -inf",
        PoolData.Ties => ", ties (values -1, -0, +0, 1)",
        _ => "",
    };

    internal static readonly (PoolShape Shape, PoolData Data, bool Fused)[] MaxPoolCases =
    [
        (new(96, 1, 55, 55, 3, 2, PoolLayout.Cnhw, " (pool1, batch 1)"), PoolData.Plain, false),
        (new(256, 2, 13, 13, 3, 2, PoolLayout.Flatten, " (pool5, fc6's gradient layout, batch 2)"), PoolData.Plain, true),
        (new(3, 2, 9, 8, 3, 2, PoolLayout.Cnhw), PoolData.NaNAndInfinity, false),
        (new(3, 2, 9, 8, 3, 2, PoolLayout.Flatten), PoolData.NaNAndInfinity, true),
        (new(4, 3, 9, 11, 3, 2, PoolLayout.Cnhw), PoolData.Ties, false),
        (new(3, 2, 8, 7, 2, 1, PoolLayout.Padded), PoolData.Ties, false),
        (new(2, 3, 7, 5, 2, 2, PoolLayout.Padded), PoolData.Plain, false),
        (new(2, 2, 9, 6, 3, 3, PoolLayout.Cnhw), PoolData.Plain, false),
        (new(3, 2, 11, 10, 2, 3, PoolLayout.Cnhw, " (stride 3 over 2x2 windows: rows and columns no window reads)"), PoolData.Plain, false),
        (new(3, 1, 4, 3, 1, 1, PoolLayout.Flatten, " (1x1 window)"), PoolData.Plain, false),
        (new(2, 19, 7, 9, 3, 2, PoolLayout.Padded, " (19 images: a partial last block)"), PoolData.Plain, true),
    ];

    public static ComparisonResult MaxPoolBackward(ComputeDevice device, PoolShape s, PoolData data, bool fused)
    {
        int count = s.Channels * s.Batch * s.Height * s.Width, plane = s.Height * s.Width;
        float[] input = KernelChecks.TestData(count, seed: 83 + s.Height * s.Channels);
        if (data == PoolData.NaNAndInfinity)
        {
            input[(0 * s.Batch + 1) * plane + 4 * s.Width + 4] = MarkedNaN;
            int first = (1 * s.Batch + 0) * plane;
            for (int i = 0; i < s.Size; i++)
            for (int j = 0; j < s.Size; j++)
                input[first + i * s.Width + j] = float.NegativeInfinity;
        }
        else if (data == PoolData.Ties)
        {
            float[] values = [-1f, -0f, 0f, 1f];
            for (int i = 0; i < count; i++) input[i] = values[(int)Math.Floor((input[i] + 1) * 2) & 3];
        }
        (int strideC, int strideN) = s.OutputStrides;
        // The output gradient in the forward's output layout; the gaps between its planes must not be read.
        var gradOutput = new float[s.OutputExtent];
        Array.Fill(gradOutput, float.NaN);
        float[] values2 = KernelChecks.TestData(s.Channels * s.Batch * s.Plane, seed: 89 + s.Width);
        for (int c = 0, v = 0; c < s.Channels; c++)
        for (int n = 0; n < s.Batch; n++)
        for (int p = 0; p < s.Plane; p++)
            gradOutput[c * strideC + n * strideN + p] = values2[v++];
        (float[] bias, float[] activated) = fused ? FusedInput(input, s.Channels, 97 + s.Channels) : (null!, input);
        ReferenceGradient expected = ConvolutionBackwardReference.MaxPoolBackward(gradOutput, activated, s.Channels, s.Batch, s.Height, s.Width,
            s.OutH, s.OutW, s.Size, s.Stride, strideC, strideN);

        using var backward = new ConvolutionBackward(device);
        using DeviceBuffer<float> dIn = device.Upload<float>(input);
        using DeviceBuffer<float> dGradOut = device.Upload<float>(gradOutput);
        using DeviceBuffer<float>? dBias = fused ? device.Upload<float>(bias) : null;
        using DeviceBuffer<float> dGradIn = NaNFilled(device, count + Guard);
        backward.MaxPoolBackward(device.DefaultStream, dGradIn, dGradOut, dIn, s.Channels, s.Batch, s.Height, s.Width, s.OutH, s.OutW,
            s.Size, s.Stride, strideC, strideN, dBias);
        return Compare(device.Download(dGradIn), expected, 0, MaxPoolBackwardRtol(s.Size, s.Stride));
    }

    // ---- local response normalisation ----

    /// <summary>norm1 at batch 1 with the real parameters and inputs of the size real activations have (x50), and
    /// awkward shapes and parameters: one channel, one pixel, radius 0, a radius wider than the channels, the
    /// general power, an alpha large enough that every cross term counts, a second partial block.</summary>
    internal static readonly (int Channels, int Inner, LrnParameters P, float Scale, bool Fused, string Note)[] LrnCases =
    [
        (96, 55 * 55, LrnParameters.Default, 50f, false, " (norm1, batch 1)"),
        (96, 55 * 55, LrnParameters.Default, 50f, true, " (norm1, batch 1)"),
        (7, 33, new LrnParameters(2, 0.01f, 0.6f, 2f), 5f, false, " (general power)"),
        (16, 513, new LrnParameters(2, 0.05f, 0.75f, 1f), 3f, true, " (cross terms comparable to the own term)"),
        (5, 1, LrnParameters.Default, 50f, false, " (one pixel)"),
        (1, 300, new LrnParameters(2, 0.1f, 0.75f, 1f), 2f, false, " (one channel)"),
        (3, 257, new LrnParameters(5, 0.1f, 0.75f, 1f), 2f, false, " (radius wider than the channels)"),
        (6, 37, new LrnParameters(0, 0.5f, 0.75f, 1f), 2f, false, " (radius 0)"),
        (4, 2 * 256 + 7, new LrnParameters(1, 0.02f, 1.5f, 0.5f), 4f, false, " (beta 1.5, bias 0.5, a partial third block)"),
    ];

    public static ComparisonResult LrnBackward(ComputeDevice device, int channels, int inner, LrnParameters p, float scale, bool fused)
    {
        int count = channels * inner;
        float[] input = KernelChecks.TestData(count, seed: 101 + channels);
        for (int i = 0; i < count; i++) input[i] *= scale;
        float[] gradOutput = KernelChecks.TestData(count, seed: 103 + inner);
        (float[] bias, float[] activated) = fused ? FusedInput(input, channels, 107 + channels) : (null!, input);
        ReferenceGradient expected = ConvolutionBackwardReference.LrnBackward(gradOutput, activated, channels, inner, p);

        using var backward = new ConvolutionBackward(device);
        using DeviceBuffer<float> dIn = device.Upload<float>(input);
        using DeviceBuffer<float> dGradOut = device.Upload<float>(gradOutput);
        using DeviceBuffer<float>? dBias = fused ? device.Upload<float>(bias) : null;
        using DeviceBuffer<float> dGradIn = NaNFilled(device, count + Guard);
        backward.LrnBackward(device.DefaultStream, dGradIn, dGradOut, dIn, channels, inner, p, dBias);
        return Compare(device.Download(dGradIn), expected, 0, LrnBackwardRtol(p.Radius, p.Beta));
    }

    // ---- col2im ----

    internal static readonly Im2ColShape[] Col2ImShapes =
    [
        new(96, 1, 27, 27, 0, 1, 5, 5, 1, 2, " (conv2, batch 1)"),
        new(3, 2, 35, 35, 0, 2, 11, 11, 4, 0, " (conv1's 11x11 window and stride 4, scaled down)"),
        new(3, 2, 23, 22, 1, 1, 7, 7, 4, 0, " (stride 4, image 1 of 2; columns no window reads)"),
        new(3, 3, 9, 7, 1, 2, 3, 2, 2, 1, " (non-square window, images 1-2 of 3)"),
        new(2, 2, 6, 5, 0, 2, 1, 1, 1, 0, " (1x1 window)"),
        new(2, 1, 4, 4, 0, 1, 2, 2, 1, 3, " (padding wider than the window)"),
        new(5, 2, 11, 10, 0, 2, 4, 3, 3, 2, " (stride 3, padding cut on the right)"),
        new(2, 2, 9, 9, 0, 2, 2, 2, 3, 0, " (stride 3 over 2x2: rows and columns no window reads)"),
        new(1, 2, 1, 1, 1, 1, 1, 1, 1, 0, " (one pixel)"),
        new(7, 3, 20, 19, 0, 3, 3, 3, 1, 1, " (a partial last block)"),
    ];

    public static ComparisonResult Col2Im(ComputeDevice device, Im2ColShape s)
    {
        int rows = s.Channels * s.KernelH * s.KernelW, columns = s.Images * s.OutH * s.OutW;
        float[] col = KernelChecks.TestData(rows * columns, seed: 109 + s.Height * s.Channels);
        // The images outside [image0, image0 + images) keep the buffer's NaN.
        ReferenceGradient expected = ConvolutionBackwardReference.Col2Im(col, s.Channels, s.Batch, s.Height, s.Width, s.Image0, s.Images,
            s.KernelH, s.KernelW, s.Stride, s.Pad, s.OutH, s.OutW, float.NaN);

        using var backward = new ConvolutionBackward(device);
        using DeviceBuffer<float> dCol = device.Upload<float>(col);
        using DeviceBuffer<float> dGradIn = NaNFilled(device, expected.Values.Length + Guard);
        backward.Col2Im(device.DefaultStream, dGradIn, dCol, s.Channels, s.Batch, s.Height, s.Width, s.Image0, s.Images,
            s.KernelH, s.KernelW, s.Stride, s.Pad, s.OutH, s.OutW);
        return Compare(device.Download(dGradIn), expected, 0, Col2ImRtol(s.KernelH, s.KernelW, s.Stride));
    }

    // ---- convolution gradients ----

    /// <summary>One call of <see cref="ConvolutionBackward.ConvolutionGradients"/>: the layer (its ChunkImages, 0 for as
    /// many as a workspace of <see cref="WorkspaceImages"/> images holds), the batch, whether dX is asked for,
    /// whether dW accumulates onto what the buffer holds, whether the input is a raw output with its bias and ReLU fused.</summary>
    public sealed record ConvolutionCase(ConvolutionPlan Layer, int Batch, int WorkspaceImages, bool InputGradient = true,
        bool Accumulate = false, bool Fused = false, string Note = "")
    {
        public override string ToString() =>
            $"{Layer.InputChannels}->{Layer.OutputChannels} in {Layer.InputSize}x{Layer.InputSize} window {Layer.KernelSize} stride {Layer.Stride} pad {Layer.Pad} " +
            $"groups {Layer.Groups} batch {Batch} chunks of {(Layer.ChunkImages > 0 ? Layer.ChunkImages.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"what {WorkspaceImages} images' workspace holds")}" +
            $"{(InputGradient ? ", dW and dX" : ", dW only")}{(Accumulate ? ", dW accumulated" : "")}{(Fused ? ", input bias+relu fused" : "")}{Note}";
    }

    private static ConvolutionPlan Layer(string name, int cin, int cout, int groups, int kernel, int stride, int pad, int size, int chunk) =>
        new(name, cin, cout, groups, kernel, stride, pad, size, (size + 2 * pad - kernel) / stride + 1, chunk);

    internal static readonly ConvolutionCase[] ConvolutionCases =
    [
        new(Layer("conv2", 96, 256, 2, 5, 1, 2, 27, 1), 1, 1, Note: " (conv2, batch 1)"),
        new(Layer("stride4", 3, 8, 1, 5, 4, 0, 23, 2), 3, 2, Note: " (conv1's stride 4, scaled down; a partial last chunk; edge columns no window reads)"),
        new(Layer("grouped", 6, 10, 2, 3, 1, 1, 9, 1), 3, 1, Note: " (conv4/conv5's form)"),
        new(Layer("grouped5", 4, 6, 2, 5, 1, 2, 7, 0), 2, 1),
        new(Layer("strided", 4, 6, 2, 4, 2, 1, 11, 0), 3, 3, Note: " (one chunk)"),
        new(Layer("first", 6, 4, 2, 3, 1, 1, 5, 2), 3, 2, InputGradient: false, Note: " (the first trained layer)"),
        new(Layer("accumulated", 3, 5, 1, 3, 2, 0, 8, 1), 2, 1, Accumulate: true),
        new(Layer("fused", 6, 4, 2, 3, 1, 1, 6, 2), 3, 2, Fused: true),
        new(Layer("one", 1, 1, 1, 1, 1, 0, 1, 1), 1, 1, Note: " (one pixel, one channel)"),
    ];

    public static ComparisonResult ConvolutionGradients(ComputeDevice device, ConvolutionCase c)
    {
        ConvolutionPlan p = c.Layer;
        int size = p.InputSize, pixels = p.OutputPixels;
        int inputCount = p.InputChannels * c.Batch * size * size, weightCount = p.OutputChannels * p.GroupK;
        float[] input = KernelChecks.TestData(inputCount, seed: 113 + p.InputChannels);
        float[] weights = KernelChecks.TestData(weightCount, seed: 127 + p.OutputChannels);
        float[] gradOutput = KernelChecks.TestData(p.OutputChannels * c.Batch * pixels, seed: 131 + size);
        float[] previous = c.Accumulate ? KernelChecks.TestData(weightCount, seed: 137) : [];
        (float[] bias, float[] activated) = c.Fused ? FusedInput(input, p.InputChannels, 139 + p.InputChannels) : (null!, input);
        (ReferenceGradient dw, ReferenceGradient dx) = ConvolutionBackwardReference.ConvolutionGradients(activated, weights, gradOutput,
            p.InputChannels, p.OutputChannels, p.Groups, c.Batch, size, size, p.KernelSize, p.Stride, p.Pad);
        if (c.Accumulate)
        {
            // What the buffer held is one more term of each sum.
            for (int i = 0; i < weightCount; i++)
            {
                dw.Values[i] = (float)((double)previous[i] + ((double)dw.Values[i]));
                dw.Magnitudes[i] += Math.Abs(previous[i]);
            }
        }

        using var backward = new ConvolutionBackward(device);
        using DeviceBuffer<float> dIn = device.Upload<float>(input);
        using DeviceBuffer<float> dW = device.Upload<float>(weights);
        using DeviceBuffer<float> dGradOut = device.Upload<float>(gradOutput);
        using DeviceBuffer<float>? dBias = c.Fused ? device.Upload<float>(bias) : null;
        using DeviceBuffer<float> dGradW = NaNFilled(device, weightCount + Guard);
        if (c.Accumulate) device.CopyToDevice<float>(previous, dGradW);
        using DeviceBuffer<float>? dGradIn = c.InputGradient ? NaNFilled(device, inputCount + Guard) : null;
        using DeviceBuffer<float> workspace = NaNFilled(device, (int)(c.WorkspaceImages * p.LoweredPerImage));
        backward.ConvolutionGradients(device.DefaultStream, p, c.Batch, dIn, dW, dGradOut, dGradW, dGradIn, workspace, dBias, c.Accumulate);

        int chunk = p.ChunkImages > 0 ? p.ChunkImages : ConvolutionPlan.ChunkFor(pixels, c.WorkspaceImages, c.Batch);
        int chunks = (c.Batch + chunk - 1) / chunk;
        // dW: a sum over every column of every chunk, one GEMM per chunk adding onto the last.
        ComparisonResult weightResult = Compare(device.Download(dGradW), dw, Tolerances.GemmAtol,
            Tolerances.GemmRtol(c.Batch * pixels + chunks + (c.Accumulate ? 1 : 0)));
        if (!weightResult.Passed || dGradIn is null) return weightResult with { Detail = "dW: " + weightResult.Detail };
        // dX: a GEMM's sum over the group's output channels, then col2im's over the taps that reach the element.
        int reach = (p.KernelSize + p.Stride - 1) / p.Stride;
        ComparisonResult inputResult = Compare(device.Download(dGradIn), dx, Tolerances.GemmAtol,
            Tolerances.GemmRtol(p.GroupOutputChannels + reach * reach));
        return inputResult with { Detail = $"dW: {weightResult.Detail}; dX: {inputResult.Detail}" };
    }

    // ---- shared ----

    /// <summary>The result against the reference's values (then <see cref="Guard"/> NaNs), each element within
    /// atol + rtol·Σ|terms|; elements no term reached must be exactly what the reference says.</summary>
    private static ComparisonResult Compare(float[] got, ReferenceGradient expected, double atol, double rtol)
    {
        var magnitude = new double[expected.Magnitudes.Length + Guard];
        expected.Magnitudes.CopyTo(magnitude, 0);
        return Comparison.AgainstMagnitude(got, Guarded(expected.Values), magnitude, atol, rtol);
    }
}
