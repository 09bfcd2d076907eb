using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// The network's kernels (<see cref="NetworkKernels"/>) against <see cref="LayerReference"/>: AlexNet's
/// real shapes at batch 1 where they are cheap, and small awkward ones (odd sizes, not multiples of the
/// block, single elements, non-square windows), on <see cref="KernelChecks.TestData"/> with its outliers
/// plus NaN and -inf where an operation has rules for them. Every output buffer is longer than the result
/// and pre-filled with NaN, so a missing write or a write past the end shows up. Part of
/// <see cref="KernelChecks.All"/>.
/// </summary>
public static class LayerChecks
{
    /// <summary>Elements after each output that the kernel must leave alone.</summary>
    internal const int Guard = 5;

    /// <summary>A NaN with a payload of its own, to tell it from the NaN the output buffers are filled with.</summary>
    internal static readonly float MarkedNaN = BitConverter.UInt32BitsToSingle(0x7FC0_0123);

    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All()
    {
        foreach ((int images, int pixels, int channels, string note) in InputShapes)
        {
            yield return ($"input_nhwc_to_cnhw {images}x{pixels}x{channels}{note}", d => ConvertInput(d, images, pixels, channels, NetworkKernelTarget.Gpu));
            yield return ($"input_nhwc_to_cnhw2 {images}x{pixels}x{channels}{note}", d => ConvertInput(d, images, pixels, channels, NetworkKernelTarget.Cpu));
        }
        foreach (Im2ColShape s in Im2ColShapes)
        {
            // Both variants on whatever device runs the checks, so PoCL proves the GPU's kernel too.
            yield return ($"im2col_kernel1 {s}", d => Im2Col(d, s, NetworkKernelTarget.Gpu));
            yield return ($"im2col_kernel2 {s}", d => Im2Col(d, s, NetworkKernelTarget.Cpu));
        }
        // The fused input activation (the previous convolution's bias and ReLU applied on the way in), on
        // some of the same shapes: the result must equal bias+ReLU, then the operation.
        foreach (int i in FusedIm2Col)
        {
            Im2ColShape s = Im2ColShapes[i];
            yield return ($"im2col_kernel1 {s}, input bias+relu fused", d => Im2Col(d, s, NetworkKernelTarget.Gpu, fused: true));
            yield return ($"im2col_kernel2 {s}, input bias+relu fused", d => Im2Col(d, s, NetworkKernelTarget.Cpu, fused: true));
        }
        foreach ((int outer, int channels, int inner, bool relu, string note) in BiasReluShapes)
        {
            yield return ($"bias_relu_kernel1 ({outer}, {channels}, {inner}){(relu ? " relu" : "")}{note}",
                d => BiasRelu(d, outer, channels, inner, relu, NetworkKernelTarget.Gpu));
            // The CPU target launches kernel1 too when inner is 1.
            yield return ($"bias_relu_kernel{(inner > 1 ? 2 : 1)} ({outer}, {channels}, {inner}){(relu ? " relu" : "")}{note}, CPU target",
                d => BiasRelu(d, outer, channels, inner, relu, NetworkKernelTarget.Cpu));
        }
        foreach ((int channels, int inner, LrnParameters p, string note) in LrnShapes)
        {
            yield return ($"lrn_kernel1 {channels}x{inner} {p}{note}", d => Lrn(d, channels, inner, p, NetworkKernelTarget.Gpu));
            yield return ($"lrn_kernel2 {channels}x{inner} {p}{note}", d => Lrn(d, channels, inner, p, NetworkKernelTarget.Cpu));
        }
        foreach (int i in FusedLrn)
        {
            (int channels, int inner, LrnParameters p, string note) = LrnShapes[i];
            yield return ($"lrn_kernel1 {channels}x{inner} {p}{note}, input bias+relu fused", d => Lrn(d, channels, inner, p, NetworkKernelTarget.Gpu, fused: true));
            yield return ($"lrn_kernel2 {channels}x{inner} {p}{note}, input bias+relu fused", d => Lrn(d, channels, inner, p, NetworkKernelTarget.Cpu, fused: true));
        }
        foreach (PoolShape s in PoolShapes)
        {
            yield return ($"maxpool_kernel1 {s}", d => MaxPool(d, s, NetworkKernelTarget.Gpu));
            yield return ($"maxpool_kernel2 {s}", d => MaxPool(d, s, NetworkKernelTarget.Cpu));
        }
        foreach (int i in FusedPool)
        {
            PoolShape s = PoolShapes[i];
            yield return ($"maxpool_kernel1 {s}, input bias+relu fused", d => MaxPool(d, s, NetworkKernelTarget.Gpu, fused: true));
            yield return ($"maxpool_kernel2 {s}, input bias+relu fused", d => MaxPool(d, s, NetworkKernelTarget.Cpu, fused: true));
        }
        foreach ((PoolShape s, LrnParameters p, bool fused) in LrnPoolCases)
            yield return ($"lrn_maxpool_kernel1 {s}, LRN {p}{(fused ? ", input bias+relu fused" : "")}", d => LrnMaxPool(d, s, p, fused));
        foreach ((int count, float keepProb, ulong seed, uint offset) in DropoutCases)
            yield return ($"dropout_kernel1 {count} elements keep {keepProb} seed {seed:x} offset {offset}",
                d => Dropout(d, count, keepProb, seed, offset));
        foreach ((int rows, int features, float keepProb, uint offset) in FusedDropoutCases)
            yield return ($"dropout_kernel1 {rows}x{features} keep {keepProb} offset {offset}, bias+relu fused",
                d => Dropout(d, rows * features, keepProb, 99, offset, features));
        foreach ((int rows, int classes) in SoftmaxShapes)
            yield return ($"softmax_kernel1 {rows}x{classes}", d => Softmax(d, rows, classes));
    }

    internal static readonly (int Images, int Pixels, int Channels, string Note)[] InputShapes =
    [
        (1, 227 * 227, 3, " (AlexNet input, batch 1)"), (2, 35, 3, ""), (3, 1, 1, ""), (1, 10, 5, ""),
        (2, 17 * 4096 + 3, 3, " (35 runs of input_nhwc_to_cnhw2, the last partial: three work-groups)"), (1, 4099, 2, ""),
    ];

    /// <summary>One im2col call: input (channels, batch, height, width), images [image0, image0 + images).</summary>
    public sealed record Im2ColShape(int Channels, int Batch, int Height, int Width, int Image0, int Images,
        int KernelH, int KernelW, int Stride, int Pad, string Note = "")
    {
        public int OutH => (Height + 2 * Pad - KernelH) / Stride + 1;

        public int OutW => (Width + 2 * Pad - KernelW) / Stride + 1;

        public override string ToString() =>
            $"in {Channels}x{Batch}x{Height}x{Width} images [{Image0},{Image0 + Images}) window {KernelH}x{KernelW} stride {Stride} pad {Pad}{Note}";
    }

    internal static readonly Im2ColShape[] Im2ColShapes =
    [
        new(3, 1, 227, 227, 0, 1, 11, 11, 4, 0, " (conv1, batch 1)"),
        new(96, 1, 27, 27, 0, 1, 5, 5, 1, 2, " (conv2, batch 1)"),
        new(256, 1, 13, 13, 0, 1, 3, 3, 1, 1, " (conv3, batch 1)"),
        new(3, 3, 9, 7, 1, 2, 3, 2, 2, 1, " (non-square window, images 1-2 of 3)"),
        new(2, 2, 6, 5, 0, 2, 1, 1, 1, 0, " (1x1 window)"),
        new(2, 1, 4, 4, 0, 1, 2, 2, 1, 3, " (padding wider than the window: all-zero columns)"),
        new(7, 2, 10, 9, 1, 1, 3, 4, 2, 1, " (84 rows: a second, partial work-group of rows)"),
        new(5, 2, 11, 10, 0, 2, 4, 3, 3, 2, " (stride 3, padding cut on the right)"),
        new(1, 2, 1, 1, 1, 1, 1, 1, 1, 0, " (one pixel)"),
    ];

    /// <summary>The shapes checked with the fused input activation too: the layers that use it in the pass
    /// (conv4/conv5's lowering, norm1/norm2, pool5) and awkward ones (non-square, padding wider than the
    /// window, partial work-groups, NaN and -inf).</summary>
    internal static readonly int[] FusedIm2Col = [2, 3, 5, 7], FusedLrn = [0, 3, 5, 9], FusedPool = [3, 4, 5, 6, 9];

    /// <summary>The fused activation's bias for <paramref name="channels"/> channels, and the input as the
    /// unfused pass would have handed it on: relu(x + bias[c]) for x laid out as [C][inner].</summary>
    internal static (float[] Bias, float[] Activated) FusedInput(float[] input, int channels, int seed)
    {
        float[] bias = KernelChecks.TestData(channels, seed: seed);
        return (bias, LayerReference.BiasRelu(input, bias, 1, channels, input.Length / channels, relu: true));
    }

    internal static readonly (int Outer, int Channels, int Inner, bool Relu, string Note)[] BiasReluShapes =
    [
        (1, 96, 55 * 55, true, " (conv1, batch 1)"), (1, 4096, 1, true, " (fc6, batch 1)"), (3, 1000, 1, false, " (fc8, batch 3)"),
        (1, 7, 33, false, ""), (5, 37, 1, true, ""), (2, 3, 5, true, ""), (1, 1, 1, true, ""),
        (2, 3, 17 * 4096 + 5, true, " (18 runs of bias_relu_kernel2, the last partial: two work-groups)"), (1, 2, 4099, false, ""),
    ];

    internal static readonly (int Channels, int Inner, LrnParameters P, string Note)[] LrnShapes =
    [
        (96, 55 * 55, LrnParameters.Default, " (norm1, batch 1)"),
        (256, 27 * 27, LrnParameters.Default, " (norm2, batch 1)"),
        (7, 33, LrnParameters.Default, ""),
        (6, 17 * 1024 + 7, LrnParameters.Default, " (18 runs of lrn_kernel2, the last partial: two work-groups of runs)"),
        (11, 29, new LrnParameters(2, 0.1f, 0.75f, 1f), " (fast path, strong alpha)"),
        (13, 50, new LrnParameters(2, 0.01f, 0.6f, 2f), " (general power)"),
        (9, 31, new LrnParameters(3, 1e-3f, 1f, 0.5f), " (beta 1)"),
        (6, 20, new LrnParameters(1, 0.05f, 0f, 1f), " (beta 0: identity)"),
        (5, 17, new LrnParameters(0, 0.02f, 0.75f, 1f), " (radius 0)"),
        (3, 40, new LrnParameters(5, 0.02f, 0.75f, 1f), " (radius beyond the channels)"),
        (1, 1, LrnParameters.Default, ""),
    ];

    /// <summary>One pooling: input (channels, batch, height, width), the window, and the output layout.</summary>
    public sealed record PoolShape(int Channels, int Batch, int Height, int Width, int Size, int Stride, PoolLayout Layout, string Note = "")
    {
        public int OutH => (Height - Size) / Stride + 1;

        public int OutW => (Width - Size) / Stride + 1;

        public int Plane => OutH * OutW;

        public (int StrideC, int StrideN) OutputStrides => Layout switch
        {
            PoolLayout.Cnhw => (Batch * Plane, Plane),
            PoolLayout.Flatten => (Plane, Channels * Plane),
            // Gaps between planes and between channels: the elements in them must stay untouched.
            _ => (Batch * (Plane + 3) + 2, Plane + 3),
        };

        public int OutputExtent => (Channels - 1) * OutputStrides.StrideC + (Batch - 1) * OutputStrides.StrideN + Plane;

        public override string ToString() =>
            $"in {Channels}x{Batch}x{Height}x{Width} window {Size} stride {Stride} -> {OutH}x{OutW} {Layout switch { PoolLayout.Cnhw => "[C][N][Ho][Wo]", PoolLayout.Flatten => "[N][C*Ho*Wo]", _ => "padded strides" }}{Note}";
    }

    public enum PoolLayout { Cnhw, Flatten, Padded }

    internal static readonly PoolShape[] PoolShapes =
    [
        new(96, 1, 55, 55, 3, 2, PoolLayout.Cnhw, " (pool1, batch 1)"),
        new(256, 1, 27, 27, 3, 2, PoolLayout.Cnhw, " (pool2, batch 1)"),
        new(256, 3, 13, 13, 3, 2, PoolLayout.Cnhw, " (pool5, batch 3)"),
        new(256, 3, 13, 13, 3, 2, PoolLayout.Flatten, " (pool5 for fc6, batch 3)"),
        new(3, 2, 9, 8, 3, 2, PoolLayout.Cnhw, " (NaN, -inf)"),
        new(3, 2, 9, 8, 3, 2, PoolLayout.Flatten, " (NaN, -inf)"),
        new(2, 3, 7, 5, 2, 2, PoolLayout.Padded, ""),
        new(2, 2, 9, 6, 3, 3, PoolLayout.Cnhw, ""),
        new(3, 1, 4, 3, 1, 1, PoolLayout.Flatten, " (1x1 window)"),
        new(2, 19, 7, 9, 3, 2, PoolLayout.Padded, " (19 images: a second, partial work-group of maxpool_kernel2)"),
    ];

    /// <summary>LRN then max pooling in one kernel: norm1+pool1 and norm2+pool2 at batch 1, and awkward shapes
    /// and parameters (every layout, a second partial block, the general power, radius 0).</summary>
    internal static readonly (PoolShape Shape, LrnParameters P, bool Fused)[] LrnPoolCases =
    [
        (new(96, 1, 55, 55, 3, 2, PoolLayout.Cnhw, " (norm1+pool1, batch 1)"), LrnParameters.Default, true),
        (new(256, 1, 27, 27, 3, 2, PoolLayout.Cnhw, " (norm2+pool2, batch 1)"), LrnParameters.Default, false),
        (new(7, 3, 9, 8, 3, 2, PoolLayout.Padded), new LrnParameters(2, 0.01f, 0.6f, 2f), true),
        (new(5, 19, 7, 9, 3, 2, PoolLayout.Flatten, " (19 images)"), new LrnParameters(0, 0.02f, 0.75f, 1f), false),
        (new(3, 2, 6, 5, 2, 1, PoolLayout.Cnhw), new LrnParameters(5, 0.1f, 0.75f, 1f), true),
    ];

    internal static readonly (int Count, float KeepProb, ulong Seed, uint Offset)[] DropoutCases =
    [
        (1000, 0.5f, 0x0123_4567_89AB_CDEF, 0),
        (4099, 0.8f, 42, 6),
        (3, 0.3f, 7, 1),
        (257, 1f, 5, 0),
        (1, 0.5f, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF),
    ];

    /// <summary>fc6 at batch 2, and shapes whose rows are not a multiple of Philox's four-element blocks.</summary>
    internal static readonly (int Rows, int Features, float KeepProb, uint Offset)[] FusedDropoutCases =
        [(2, 4096, 0.5f, 0), (3, 37, 0.7f, 5), (1, 1, 0.5f, 1u << 31)];

    internal static readonly (int Rows, int Classes)[] SoftmaxShapes = [(3, 1000), (2, 1001), (4, 10), (5, 1), (1, 257), (2, 256)];

    public static ComparisonResult ConvertInput(ComputeDevice device, int images, int pixels, int channels, NetworkKernelTarget target)
    {
        float[] input = KernelChecks.TestData(images * pixels * channels, seed: 11 + pixels);
        using var kernels = new NetworkKernels(device, target);
        using DeviceBuffer<float> src = device.Upload<float>(input);
        using DeviceBuffer<float> dst = NaNFilled(device, input.Length + Guard);
        kernels.ConvertInput(device.DefaultStream, dst, src, images, pixels, channels);
        return Comparison.Exact(device.Download(dst), Guarded(LayerReference.ConvertInput(input, images, pixels, channels)));
    }

    public static ComparisonResult Im2Col(ComputeDevice device, Im2ColShape s, NetworkKernelTarget target, bool fused = false)
    {
        float[] input = KernelChecks.TestData(s.Channels * s.Batch * s.Height * s.Width, seed: 13 + s.Height * s.Channels);
        (float[] bias, float[] activated) = fused ? FusedInput(input, s.Channels, 43 + s.Channels) : (null!, input);
        float[] expected = LayerReference.Im2Col(activated, s.Channels, s.Batch, s.Height, s.Width, s.Image0, s.Images,
            s.KernelH, s.KernelW, s.Stride, s.Pad, s.OutH, s.OutW);
        using var kernels = new NetworkKernels(device, target);
        using DeviceBuffer<float> src = device.Upload<float>(input);
        using DeviceBuffer<float>? db = fused ? device.Upload<float>(bias) : null;
        using DeviceBuffer<float> col = NaNFilled(device, expected.Length + Guard);
        kernels.Im2Col(device.DefaultStream, col, src, s.Channels, s.Batch, s.Height, s.Width, s.Image0, s.Images,
            s.KernelH, s.KernelW, s.Stride, s.Pad, s.OutH, s.OutW, db);
        return Comparison.Exact(device.Download(col), Guarded(expected));
    }

    public static ComparisonResult BiasRelu(ComputeDevice device, int outer, int channels, int inner, bool relu, NetworkKernelTarget target)
    {
        int count = outer * channels * inner;
        float[] x = KernelChecks.TestData(count, seed: 17 + channels);
        if (count > 2) x[count / 2] = float.NaN; // ReLU must keep it
        float[] bias = KernelChecks.TestData(channels, seed: 19 + channels);
        float[] expected = LayerReference.BiasRelu(x, bias, outer, channels, inner, relu);
        using var kernels = new NetworkKernels(device, target);
        using DeviceBuffer<float> dx = device.Upload<float>(Guarded(x));
        using DeviceBuffer<float> db = device.Upload<float>(bias);
        kernels.BiasRelu(device.DefaultStream, dx, db, outer, channels, inner, relu);
        return SameValues(device.Download(dx), Guarded(expected));
    }

    public static ComparisonResult Lrn(ComputeDevice device, int channels, int inner, LrnParameters p, NetworkKernelTarget target, bool fused = false)
    {
        float[] input = KernelChecks.TestData(channels * inner, seed: 23 + channels);
        (float[] bias, float[] activated) = fused ? FusedInput(input, channels, 47 + channels) : (null!, input);
        float[] expected = Guarded(LayerReference.Lrn(activated, channels, inner, p));
        using var kernels = new NetworkKernels(device, target);
        using DeviceBuffer<float> src = device.Upload<float>(input);
        using DeviceBuffer<float>? db = fused ? device.Upload<float>(bias) : null;
        using DeviceBuffer<float> dst = NaNFilled(device, expected.Length);
        kernels.Lrn(device.DefaultStream, dst, src, channels, inner, p, db);
        // Relative to each element; the guard (magnitude 0) must be untouched.
        var magnitude = new double[expected.Length];
        for (int i = 0; i < channels * inner; i++) magnitude[i] = Math.Abs((double)expected[i]);
        return Comparison.AgainstMagnitude(device.Download(dst), expected, magnitude, 0, Tolerances.LrnRtol(p.Radius, p.Beta));
    }

    public static ComparisonResult MaxPool(ComputeDevice device, PoolShape s, NetworkKernelTarget target, bool fused = false)
    {
        float[] input = KernelChecks.TestData(s.Channels * s.Batch * s.Height * s.Width, seed: 29 + s.Height * s.Channels);
        if (s.Note.Contains("NaN", StringComparison.Ordinal))
        {
            // A NaN in one window (and in the overlapping neighbours), and a window of -inf only.
            input[(0 * s.Batch + 1) * s.Height * s.Width + 4 * s.Width + 4] = MarkedNaN;
            int plane = (1 * s.Batch + 0) * s.Height * s.Width;
            for (int i = 0; i < s.Size; i++)
            for (int j = 0; j < s.Size; j++)
                input[plane + i * s.Width + j] = float.NegativeInfinity;
        }
        (int strideC, int strideN) = s.OutputStrides;
        (float[] bias, float[] activated) = fused ? FusedInput(input, s.Channels, 53 + s.Channels) : (null!, input);
        float[] expected = LayerReference.MaxPool(activated, s.Channels, s.Batch, s.Height, s.Width, s.OutH, s.OutW, s.Size, s.Stride,
            strideC, strideN, s.OutputExtent + Guard, float.NaN);
        using var kernels = new NetworkKernels(device, target);
        using DeviceBuffer<float> src = device.Upload<float>(input);
        using DeviceBuffer<float>? db = fused ? device.Upload<float>(bias) : null;
        using DeviceBuffer<float> dst = NaNFilled(device, expected.Length);
        kernels.MaxPool(device.DefaultStream, dst, src, s.Channels, s.Batch, s.Height, s.Width, s.OutH, s.OutW, s.Size, s.Stride, strideC, strideN, db);
        // Selection, no arithmetic: bit for bit, the marked NaN's payload included. Fused, the bias addition is
        // arithmetic: the same values, but a GPU may give any NaN for a NaN input.
        return fused ? SameValues(device.Download(dst), expected) : Comparison.Exact(device.Download(dst), expected);
    }

    public static ComparisonResult LrnMaxPool(ComputeDevice device, PoolShape s, LrnParameters p, bool fused)
    {
        int inner = s.Batch * s.Height * s.Width;
        float[] input = KernelChecks.TestData(s.Channels * inner, seed: 67 + s.Channels);
        (float[] bias, float[] activated) = fused ? FusedInput(input, s.Channels, 71 + s.Channels) : (null!, input);
        float[] normalised = LayerReference.Lrn(activated, s.Channels, inner, p);
        (int strideC, int strideN) = s.OutputStrides;
        float[] expected = LayerReference.MaxPool(normalised, s.Channels, s.Batch, s.Height, s.Width, s.OutH, s.OutW, s.Size, s.Stride,
            strideC, strideN, s.OutputExtent + Guard, float.NaN);
        using var kernels = new NetworkKernels(device);
        using DeviceBuffer<float> src = device.Upload<float>(input);
        using DeviceBuffer<float>? db = fused ? device.Upload<float>(bias) : null;
        using DeviceBuffer<float> dst = NaNFilled(device, expected.Length);
        kernels.LrnMaxPool(device.DefaultStream, dst, src, s.Channels, s.Batch, s.Height, s.Width, s.OutH, s.OutW, s.Size, s.Stride,
            strideC, strideN, p, db);
        // Relative to each element, as the LRN's own check; the gaps and the guard (NaN) must be untouched.
        var magnitude = new double[expected.Length];
        for (int i = 0; i < expected.Length; i++) magnitude[i] = float.IsNaN(expected[i]) ? 0 : Math.Abs((double)expected[i]);
        return Comparison.AgainstMagnitude(device.Download(dst), expected, magnitude, 0, Tolerances.LrnRtol(p.Radius, p.Beta));
    }

    public static ComparisonResult Dropout(ComputeDevice device, int count, float keepProb, ulong seed, uint offset, int features = 0)
    {
        float[] x = KernelChecks.TestData(count, seed: 31 + count);
        float[] bias = features > 0 ? KernelChecks.TestData(features, seed: 59 + features) : [];
        float[] activated = features > 0 ? LayerReference.BiasRelu(x, bias, count / features, features, 1, relu: true) : x;
        float[] expected = Guarded(LayerReference.Dropout(activated, keepProb, seed, offset));
        using var kernels = new NetworkKernels(device);
        using DeviceBuffer<float> dx = device.Upload<float>(Guarded(x));
        using DeviceBuffer<float>? db = features > 0 ? device.Upload<float>(bias) : null;
        kernels.Dropout(device.DefaultStream, dx, count, keepProb, seed, offset, db, features);
        return Comparison.Exact(device.Download(dx), expected);
    }

    public static ComparisonResult Softmax(ComputeDevice device, int rows, int classes)
    {
        // Logits in [-8, 8) spread the probabilities over e^±16. The test data's outlier (3e4) would turn
        // its row into a one-hot, so it goes only into row 0 of several, where it checks that nothing
        // overflows; the other rows, and a lone row, check the ordinary case.
        float[] logits = KernelChecks.TestData(rows * classes, seed: 37 + classes);
        for (int i = 0; i < logits.Length; i++) logits[i] = 8 * Math.Clamp(logits[i], -1f, 1f);
        if (rows > 1) logits[classes / 3] = 3.0e4f;
        float[] bias = KernelChecks.TestData(classes, seed: 41 + classes);
        for (int k = 0; k < classes; k++) bias[k] = Math.Clamp(bias[k], -1f, 1f);
        (float[] z, float[] prob) = LayerReference.Softmax(logits, bias, rows, classes);
        using var kernels = new NetworkKernels(device);
        using DeviceBuffer<float> dLogits = device.Upload<float>(Guarded(logits));
        using DeviceBuffer<float> dBias = device.Upload<float>(bias);
        using DeviceBuffer<float> dProb = NaNFilled(device, prob.Length + Guard);
        kernels.Softmax(device.DefaultStream, dProb, dLogits, dBias, rows, classes);

        ComparisonResult logitsResult = SameValues(device.Download(dLogits), Guarded(z));
        if (!logitsResult.Passed) return logitsResult with { Detail = "logits + bias: " + logitsResult.Detail };
        // The error scale of each probability (Tolerances.SoftmaxRtol): p·(classes + 4 + |z − max z|).
        var magnitude = new double[prob.Length + Guard];
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity;
            for (int k = 0; k < classes; k++) max = Math.Max(max, z[r * classes + k]);
            for (int k = 0; k < classes; k++)
                magnitude[r * classes + k] = prob[r * classes + k] * (classes + 4 + Math.Abs(z[r * classes + k] - max));
        }
        ComparisonResult probResult = Comparison.AgainstMagnitude(device.Download(dProb), Guarded(prob), magnitude,
            Tolerances.SoftmaxAtol, Tolerances.SoftmaxRtol);
        return probResult with { Detail = "prob: " + probResult.Detail };
    }

    /// <summary>
    /// Equal values: bit for bit except that any NaN matches any NaN and -0 matches +0, for results of
    /// arithmetic (a GPU returns its own canonical NaN, not the operand's payload).
    /// </summary>
    private static ComparisonResult SameValues(float[] got, float[] expected) =>
        Comparison.AgainstMagnitude(got, expected, new double[expected.Length], 0, 0);

    internal static DeviceBuffer<float> NaNFilled(ComputeDevice device, int length)
    {
        DeviceBuffer<float> buffer = device.Allocate<float>(length);
        device.Fill(buffer, float.NaN);
        return buffer;
    }

    /// <summary>The values followed by <see cref="Guard"/> NaNs, as a NaN-filled output buffer ends.</summary>
    internal static float[] Guarded(float[] values)
    {
        var result = new float[values.Length + Guard];
        values.CopyTo(result, 0);
        result.AsSpan(values.Length).Fill(float.NaN);
        return result;
    }
}
