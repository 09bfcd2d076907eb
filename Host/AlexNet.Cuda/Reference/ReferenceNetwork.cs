using System.Globalization;
using System.Numerics;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Reference;

/// <summary>
/// The settings of <see cref="ReferenceNetwork.Run"/>. LRN uses TensorFlow's semantics (docs/model.md):
/// <c>y = x / (bias + alpha · Σ x²)^beta</c>, the sum over channels [c − radius, c + radius] ∩ [0, C).
/// The defaults (radius 2, alpha 2e-05, beta 0.75, bias 1) reproduce the BVLC training.
/// </summary>
public sealed record ReferenceNetworkOptions
{
    public static ReferenceNetworkOptions Default { get; } = new();

    public int LrnRadius { get; init; } = 2;

    public double LrnAlpha { get; init; } = 2e-05;

    public double LrnBeta { get; init; } = 0.75;

    public double LrnBias { get; init; } = 1.0;

    /// <summary>
    /// Dropout of fc6 and fc7 as a given mask: for layer "fc6" or "fc7" and element index n·F + f, the factor
    /// applied after the ReLU (0 for a dropped value, 1/keep_prob for a kept one). Null is inference, where
    /// dropout is the identity.
    /// </summary>
    public Func<string, long, double>? DropoutScale { get; init; }
}

/// <summary>
/// AlexNet's forward pass written straight from the TensorFlow definition (docs/model.md): activations NHWC,
/// convolution weights HWIO, fully connected weights (in, out), every sum accumulated in <see cref="double"/>
/// and every activation kept in double. It is the specification the GPU engine is checked against.
/// <para>
/// The layer shapes come from the weights, so any <see cref="AlexNetArchitecture"/> whose layers chain
/// (each convolution's input channels × groups equal to the previous output channels, fc6's inputs equal to
/// pool5's H·W·C) runs: the real one, or one with fewer channels for faster tests. Strides and padding are
/// those of AlexNet: conv1 stride 4 VALID, conv2…conv5 stride 1 SAME; pools 3×3 stride 2 VALID.
/// </para>
/// </summary>
public static class ReferenceNetwork
{
    /// <summary>Height and width of the input images.</summary>
    public const int InputSize = 227;

    /// <summary>The layers whose outputs <see cref="Run"/> returns, in network order.</summary>
    public static IReadOnlyList<string> Layers { get; } =
        ["conv1", "norm1", "pool1", "conv2", "norm2", "pool2", "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8", "prob"];

    private const int PoolSize = 3, PoolStride = 2;

    private static readonly Dictionary<string, (int Stride, bool Same)> ConvGeometry = new(StringComparer.Ordinal)
    {
        ["conv1"] = (4, false),
        ["conv2"] = (1, true),
        ["conv3"] = (1, true),
        ["conv4"] = (1, true),
        ["conv5"] = (1, true),
    };

    /// <summary>
    /// The shape of each layer's output as <see cref="Run"/> returns it: [N, C, H, W] for conv1…pool5,
    /// [N, F] for fc6…prob. Throws <see cref="AlexNetException"/> when the architecture's layers do not chain.
    /// </summary>
    public static IReadOnlyDictionary<string, int[]> OutputShapes(AlexNetArchitecture architecture, int batch)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), "the batch must hold at least one image");
        var shapes = new Dictionary<string, int[]>(StringComparer.Ordinal);
        int h = InputSize, w = InputSize, c = architecture.Layers[0].WeightShape[2] * architecture.Layers[0].Groups;
        foreach (string layer in Layers)
        {
            switch (layer)
            {
                case "conv1" or "conv2" or "conv3" or "conv4" or "conv5":
                {
                    var spec = Spec(architecture, layer, LayerKind.Convolution);
                    (int stride, bool same) = ConvGeometry[layer];
                    int[] s = spec.WeightShape;
                    if (s[2] * spec.Groups != c || s[3] % spec.Groups != 0)
                        throw new AlexNetException(Invariant($"{layer}: weights ({Join(s)}) with {spec.Groups} group(s) do not fit the {c} channels that reach it; each group's input channels × groups must equal the previous layer's output channels, and the outputs must divide into the groups"));
                    (h, _) = ConvExtent(h, s[0], stride, same, layer);
                    (w, _) = ConvExtent(w, s[1], stride, same, layer);
                    c = s[3];
                    break;
                }
                case "pool1" or "pool2" or "pool5":
                    h = PoolExtent(h, layer);
                    w = PoolExtent(w, layer);
                    break;
                case "fc6" or "fc7" or "fc8":
                {
                    var spec = Spec(architecture, layer, LayerKind.FullyConnected);
                    int inputs = layer == "fc6" ? h * w * c : c;
                    if (spec.WeightShape[0] != inputs)
                        throw new AlexNetException(Invariant($"{layer}: weights ({Join(spec.WeightShape)}) expect {spec.WeightShape[0]} inputs, but the previous layer gives {inputs}{(layer == "fc6" ? $" (pool5 is {h}×{w}×{c})" : "")}"));
                    h = w = 1;
                    c = spec.WeightShape[1];
                    break;
                }
            }
            shapes[layer] = layer.StartsWith("fc", StringComparison.Ordinal) || layer == "prob" ? [batch, c] : [batch, c, h, w];
        }
        return shapes;
    }

    /// <summary>
    /// Runs the network on <paramref name="batch"/> images given as N×227×227×C floats (NHWC, BGR, mean already
    /// subtracted) and returns every layer's output (names in <see cref="Layers"/>) in the export layout:
    /// [N, C, H, W] for conv1…pool5, [N, F] for fc6…prob. Convolutions and fc6/fc7 are after their ReLU (and
    /// fc6/fc7 after the dropout mask when one is given); fc8 holds the logits; prob their softmax.
    /// </summary>
    public static Dictionary<string, float[]> Run(AlexNetWeights weights, ReadOnlySpan<float> input, int batch,
        ReferenceNetworkOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        options ??= ReferenceNetworkOptions.Default;
        if (options.LrnRadius < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.LrnRadius, "the LRN radius cannot be negative");
        var shapes = OutputShapes(weights.Architecture, batch);
        foreach (var layer in weights.Layers)
        {
            if (layer.Weight.LongLength != layer.Spec.WeightCount || layer.Bias.Length != layer.Spec.OutputChannels)
                throw new AlexNetException(Invariant($"{layer.Name}: {layer.Weight.Length} weights and {layer.Bias.Length} biases do not match its shape ({Join(layer.WeightShape)})"));
        }
        int channels = weights.Conv1.WeightShape[2] * weights.Conv1.Spec.Groups;
        long expected = (long)batch * InputSize * InputSize * channels;
        // Activations are single arrays indexed by int.
        if (Math.Max(expected, shapes.Values.Max(s => s.Aggregate(1L, (a, b) => a * b))) > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(batch), batch, "the batch is too large for the reference network; run it in smaller batches");
        if (input.Length != expected)
            throw new ArgumentException(Invariant($"the input holds {input.Length} floats; {batch} image(s) of {InputSize}×{InputSize}×{channels} (NHWC) need {expected}"), nameof(input));

        var outputs = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var x = new Activation(batch, InputSize, InputSize, channels, new double[input.Length]);
        for (int i = 0; i < input.Length; i++) x.Data[i] = input[i];

        foreach (string layer in Layers)
        {
            switch (layer)
            {
                case "conv1" or "conv2" or "conv3" or "conv4" or "conv5":
                    x = ConvolutionRelu(x, weights[layer], ConvGeometry[layer].Stride, ConvGeometry[layer].Same);
                    break;
                case "norm1" or "norm2":
                    x = LocalResponseNorm(x, options);
                    break;
                case "pool1" or "pool2" or "pool5":
                    x = MaxPool(x);
                    break;
                case "fc6" or "fc7" or "fc8":
                    // Flattening pool5 is free: NHWC memory order is row (h·W + w)·C + c, the order of fc6's rows.
                    x = FullyConnected(x, weights[layer], relu: layer != "fc8", layer, options.DropoutScale);
                    break;
                case "prob":
                    x = Softmax(x);
                    break;
            }
            outputs[layer] = x.ToExportLayout();
            int[] shape = shapes[layer];
            if (outputs[layer].LongLength != shape.Aggregate(1L, (a, b) => a * b))
                throw new InvalidOperationException($"{layer}: computed {outputs[layer].Length} values for shape ({Join(shape)})");
        }
        return outputs;
    }

    /// <summary>A batch of activations, NHWC in memory (fully connected layers: H = W = 1).</summary>
    private sealed record Activation(int N, int H, int W, int C, double[] Data)
    {
        public float[] ToExportLayout()
        {
            var result = new float[Data.Length];
            if (H == 1 && W == 1)
            {
                for (int i = 0; i < Data.Length; i++) result[i] = (float)Data[i];
                return result;
            }
            for (int n = 0; n < N; n++)
            for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++)
                result[((n * C + c) * H + y) * W + x] = (float)Data[((n * H + y) * W + x) * C + c];
            return result;
        }
    }

    /// <summary>
    /// y[n, oy, ox, o] = ReLU(b[o] + Σ_{ky, kx, i} x[n, oy·s + ky − pad, ox·s + kx − pad, g·Cin_g + i] · W[ky, kx, i, o]),
    /// where g = o / Cout_g is the output's group (tf.split of input and weights, then tf.concat) and
    /// positions outside the image contribute zero.
    /// </summary>
    private static Activation ConvolutionRelu(Activation x, LayerWeights layer, int stride, bool same)
    {
        int[] s = layer.WeightShape;
        int kh = s[0], kw = s[1], cinGroup = s[2], cout = s[3], groups = layer.Spec.Groups, coutGroup = cout / groups;
        (int oh, int padTop) = ConvExtent(x.H, kh, stride, same, layer.Name);
        (int ow, int padLeft) = ConvExtent(x.W, kw, stride, same, layer.Name);
        double[] w = Array.ConvertAll(layer.Weight, v => (double)v);
        float[] bias = layer.Bias;
        var y = new double[(long)x.N * oh * ow * cout];

        // One task per output row. The row's accumulators (ow·cout doubles, 55 KB for conv2) stay in cache while
        // the loops walk the window and the input channels; each weight row W[ky, kx, i, group] is then used
        // for the whole output row at once, running along contiguous memory (HWIO: o fastest). Every output
        // still sums its terms in the order (ky, kx, i).
        Parallel.For(0, x.N * oh, row =>
        {
            int n = row / oh, oy = row % oh;
            var acc = y.AsSpan((int)((long)row * ow * cout), ow * cout);
            for (int ox = 0; ox < ow; ox++)
            for (int o = 0; o < cout; o++)
                acc[ox * cout + o] = bias[o];
            for (int ky = 0; ky < kh; ky++)
            {
                int iy = oy * stride + ky - padTop;
                if (iy < 0 || iy >= x.H) continue;
                var inputRow = x.Data.AsSpan((n * x.H + iy) * x.W * x.C, x.W * x.C);
                for (int kx = 0; kx < kw; kx++)
                for (int g = 0; g < groups; g++)
                for (int i = 0; i < cinGroup; i++)
                {
                    var wRow = w.AsSpan(((ky * kw + kx) * cinGroup + i) * cout + g * coutGroup, coutGroup);
                    for (int ox = 0; ox < ow; ox++)
                    {
                        int ix = ox * stride + kx - padLeft;
                        if (ix < 0 || ix >= x.W) continue;
                        AddScaled(acc.Slice(ox * cout + g * coutGroup, coutGroup), inputRow[ix * x.C + g * cinGroup + i], wRow);
                    }
                }
            }
            foreach (ref double v in acc) v = Math.Max(v, 0.0);
        });
        return new Activation(x.N, oh, ow, cout, y);
    }

    /// <summary>acc[o] += v · w[o] for every o, several o at a time.</summary>
    private static void AddScaled(Span<double> acc, double v, ReadOnlySpan<double> w)
    {
        int o = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var scale = new Vector<double>(v);
            for (; o <= acc.Length - Vector<double>.Count; o += Vector<double>.Count)
                (new Vector<double>(acc.Slice(o)) + scale * new Vector<double>(w.Slice(o))).CopyTo(acc.Slice(o));
        }
        for (; o < acc.Length; o++) acc[o] += v * w[o];
    }

    /// <summary>acc[o] += v · w[o] for every o, each float weight widened to double.</summary>
    private static void AddScaled(Span<double> acc, double v, ReadOnlySpan<float> w)
    {
        int o = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var scale = new Vector<double>(v);
            int half = Vector<double>.Count;
            for (; o <= acc.Length - Vector<float>.Count; o += Vector<float>.Count)
            {
                Vector.Widen(new Vector<float>(w.Slice(o)), out var low, out var high);
                (new Vector<double>(acc.Slice(o)) + scale * low).CopyTo(acc.Slice(o));
                (new Vector<double>(acc.Slice(o + half)) + scale * high).CopyTo(acc.Slice(o + half));
            }
        }
        for (; o < acc.Length; o++) acc[o] += v * w[o];
    }

    /// <summary>TensorFlow's output size and leading pad: VALID keeps only full windows; SAME gives
    /// ceil(size / stride) outputs with the total padding split evenly, the odd one at the end.</summary>
    private static (int Size, int PadBefore) ConvExtent(int size, int kernel, int stride, bool same, string layer)
    {
        if (same)
        {
            int outSize = (size + stride - 1) / stride;
            int padTotal = Math.Max((outSize - 1) * stride + kernel - size, 0);
            return (outSize, padTotal / 2);
        }
        if (size < kernel)
            throw new AlexNetException(Invariant($"{layer}: a {kernel}-wide kernel does not fit the {size}-wide input"));
        return ((size - kernel) / stride + 1, 0);
    }

    private static int PoolExtent(int size, string layer) =>
        size >= PoolSize ? (size - PoolSize) / PoolStride + 1
        : throw new AlexNetException(Invariant($"{layer}: the {PoolSize}×{PoolSize} pool does not fit the {size}-wide input"));

    /// <summary>y = x / (bias + alpha · Σ_{c' ∈ [c−r, c+r] ∩ [0, C)} x[c']²)^beta, across channels at each pixel.</summary>
    private static Activation LocalResponseNorm(Activation x, ReferenceNetworkOptions options)
    {
        int c = x.C, r = options.LrnRadius;
        var y = new double[x.Data.Length];
        Parallel.For(0, x.N * x.H, row =>
        {
            for (int px = 0; px < x.W; px++)
            {
                int offset = (row * x.W + px) * c;
                for (int ch = 0; ch < c; ch++)
                {
                    double sum = 0;
                    for (int k = Math.Max(0, ch - r); k <= Math.Min(c - 1, ch + r); k++)
                        sum += x.Data[offset + k] * x.Data[offset + k];
                    y[offset + ch] = x.Data[offset + ch] / Math.Pow(options.LrnBias + options.LrnAlpha * sum, options.LrnBeta);
                }
            }
        });
        return x with { Data = y };
    }

    /// <summary>3×3 windows, stride 2, VALID: the maximum of each window, per channel.</summary>
    private static Activation MaxPool(Activation x)
    {
        int oh = PoolExtent(x.H, "pool"), ow = PoolExtent(x.W, "pool"), c = x.C;
        var y = new double[(long)x.N * oh * ow * c];
        for (int n = 0; n < x.N; n++)
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        for (int ch = 0; ch < c; ch++)
        {
            double max = double.NegativeInfinity;
            for (int ky = 0; ky < PoolSize; ky++)
            for (int kx = 0; kx < PoolSize; kx++)
            {
                double v = x.Data[((n * x.H + oy * PoolStride + ky) * x.W + ox * PoolStride + kx) * c + ch];
                // Once a NaN is seen it stays (v > NaN is false), so a NaN input shows in the output instead of being skipped.
                max = double.IsNaN(v) || v > max ? v : max;
            }
            y[((n * oh + oy) * ow + ox) * c + ch] = max;
        }
        return new Activation(x.N, oh, ow, c, y);
    }

    /// <summary>y[n, o] = b[o] + Σ_i x[n, i] · W[i, o], then ReLU and the dropout factor when asked; the input
    /// is each image's activations in NHWC memory order.</summary>
    private static Activation FullyConnected(Activation x, LayerWeights layer, bool relu, string name,
        Func<string, long, double>? dropoutScale)
    {
        int inputs = layer.WeightShape[0], outputs = layer.WeightShape[1], batch = x.N;
        float[] w = layer.Weight;
        var y = new double[(long)batch * outputs];
        for (int n = 0; n < batch; n++)
        for (int o = 0; o < outputs; o++)
            y[n * outputs + o] = layer.Bias[o];

        // Blocks of outputs in parallel; within a block each weight row is read once for the whole batch.
        const int block = 256;
        Parallel.For(0, (outputs + block - 1) / block, b =>
        {
            int start = b * block, count = Math.Min(block, outputs - start);
            for (int i = 0; i < inputs; i++)
            {
                var wRow = w.AsSpan(i * outputs + start, count);
                for (int n = 0; n < batch; n++)
                {
                    double v = x.Data[(long)n * inputs + i];
                    AddScaled(y.AsSpan(n * outputs + start, count), v, wRow);
                }
            }
        });

        if (relu)
        {
            for (int i = 0; i < y.Length; i++) y[i] = Math.Max(y[i], 0.0);
            if (dropoutScale is not null)
                for (long i = 0; i < y.LongLength; i++) y[i] *= dropoutScale(name, i);
        }
        return new Activation(batch, 1, 1, outputs, y);
    }

    /// <summary>softmax over each image's logits, computed as exp(z − max z) / Σ exp(z − max z).</summary>
    private static Activation Softmax(Activation x)
    {
        var y = new double[x.Data.Length];
        for (int n = 0; n < x.N; n++)
        {
            var z = x.Data.AsSpan(n * x.C, x.C);
            double max = double.NegativeInfinity;
            foreach (double v in z) max = Math.Max(max, v);
            double sum = 0;
            for (int i = 0; i < z.Length; i++) sum += y[n * x.C + i] = Math.Exp(z[i] - max);
            for (int i = 0; i < z.Length; i++) y[n * x.C + i] /= sum;
        }
        return x with { Data = y };
    }

    private static LayerSpec Spec(AlexNetArchitecture architecture, string layer, LayerKind kind)
    {
        var spec = architecture.Find(layer) ?? throw new AlexNetException($"the architecture has no layer {layer}");
        if (spec.Kind != kind)
            throw new AlexNetException($"{layer} must be {(kind == LayerKind.Convolution ? "a convolution" : "fully connected")}");
        return spec;
    }

    private static string Join(int[] shape) => string.Join(", ", shape);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
