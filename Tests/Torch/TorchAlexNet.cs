using System.Runtime.CompilerServices;
using AlexNet.Cuda.Weights;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AlexNet.Cuda.Tests.Torch;

/// <summary>
/// LRN and dropout settings of <see cref="TorchAlexNet.Run"/>, in TensorFlow's terms (docs/model.md):
/// <c>y = x / (bias + alpha · Σ x²)^beta</c> over channels [c − radius, c + radius].
/// </summary>
public sealed record TorchNetworkOptions(int LrnRadius = 2, double LrnAlpha = 2e-05, double LrnBeta = 0.75, double LrnBias = 1.0)
{
    /// <summary>The dropout factor of element n·F + f of "fc6" or "fc7", applied after the ReLU; null for inference.</summary>
    public Func<string, long, double>? DropoutScale { get; init; }
}

/// <summary>Deliberate mistakes, each one a plausible way to get the network wrong, for showing that the
/// comparison with <see cref="AlexNet.Cuda.Reference.ReferenceNetwork"/> catches it.</summary>
public enum TorchFault
{
    None,
    /// <summary>fc6 reads pool5 flattened in NCHW order (c·36 + h·6 + w) instead of the file's NHWC order.</summary>
    NchwFlatten,
    /// <summary>Each group of conv2/4/5 reads the other group's half of the input channels.</summary>
    SwappedGroupInputs,
    /// <summary>TensorFlow's alpha handed to PyTorch's LRN, which divides it by the window size.</summary>
    LrnAlphaNotScaled,
    /// <summary>The historical bug: pooling before the normalisation.</summary>
    PoolBeforeNorm,
}

/// <summary>
/// AlexNet with TorchSharp's functional ops, float32 on the CPU: an implementation independent of
/// <see cref="AlexNet.Cuda.Reference.ReferenceNetwork"/> (NCHW, OIHW weights, PyTorch's kernels) that checks it.
/// Input and output are as there: N×227×227×C floats NHWC in; each layer's output, [N, C, H, W] for
/// conv1…pool5 and [N, F] for fc6…prob, out.
/// </summary>
public static class TorchAlexNet
{
    public static Dictionary<string, float[]> Run(AlexNetWeights weights, float[] input, int batch,
        TorchNetworkOptions? options = null) => Run(weights, input, batch, options ?? new TorchNetworkOptions(), TorchFault.None);

    public static Dictionary<string, float[]> Run(AlexNetWeights weights, float[] input, int batch,
        TorchNetworkOptions options, TorchFault fault)
    {
        TorchReference.Require();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        int channels = weights.Conv1.WeightShape[2];
        if (input.Length != batch * 227 * 227 * channels)
            throw new ArgumentException($"input holds {input.Length} floats, not {batch}×227×227×{channels}", nameof(input));

        var outputs = new Dictionary<string, float[]>(StringComparer.Ordinal);
        using var scope = NewDisposeScope();
        void Keep(string layer, Tensor t) => outputs[layer] = t.contiguous().data<float>().ToArray();

        Tensor x = tensor(input, [batch, 227, 227, channels]).permute(0, 3, 1, 2);

        Tensor Lrn(Tensor t)
        {
            long size = 2 * options.LrnRadius + 1;
            // PyTorch divides alpha by the window size (Caffe's convention); TensorFlow does not.
            double alpha = fault == TorchFault.LrnAlphaNotScaled ? options.LrnAlpha : options.LrnAlpha * size;
            return F.local_response_norm(t, size, alpha, options.LrnBeta, options.LrnBias);
        }
        Tensor Pool(Tensor t) => F.max_pool2d(t, kernel_size: 3, stride: 2);

        x = Conv(x, weights.Conv1, stride: 4, same: false, fault);
        Keep("conv1", x);
        if (fault == TorchFault.PoolBeforeNorm)
        {
            // No norm1 of the right shape exists in this order: the block's output stands in for pool1.
            x = Lrn(Pool(x));
            Keep("pool1", x);
        }
        else
        {
            x = Lrn(x);
            Keep("norm1", x);
            x = Pool(x);
            Keep("pool1", x);
        }
        x = Conv(x, weights.Conv2, stride: 1, same: true, fault);
        Keep("conv2", x);
        x = Lrn(x);
        Keep("norm2", x);
        x = Pool(x);
        Keep("pool2", x);
        x = Conv(x, weights.Conv3, stride: 1, same: true, fault);
        Keep("conv3", x);
        x = Conv(x, weights.Conv4, stride: 1, same: true, fault);
        Keep("conv4", x);
        x = Conv(x, weights.Conv5, stride: 1, same: true, fault);
        Keep("conv5", x);
        x = Pool(x);
        Keep("pool5", x);

        // The file's fc6 rows are in NHWC flatten order: permute to NHWC first and the rows apply unchanged.
        x = fault == TorchFault.NchwFlatten ? x.reshape(batch, -1) : x.permute(0, 2, 3, 1).reshape(batch, -1);
        x = Linear(x, weights.Fc6, relu: true, options.DropoutScale);
        Keep("fc6", x);
        x = Linear(x, weights.Fc7, relu: true, options.DropoutScale);
        Keep("fc7", x);
        x = Linear(x, weights.Fc8, relu: false, null);
        Keep("fc8", x);
        Keep("prob", F.softmax(x, 1));
        return outputs;
    }

    /// <summary>conv2d + ReLU with the HWIO weights turned to OIHW.</summary>
    private static Tensor Conv(Tensor x, LayerWeights layer, int stride, bool same, TorchFault fault)
    {
        int[] s = layer.WeightShape;
        (Tensor w, Tensor b) = Parameters(layer);
        int groups = layer.Spec.Groups;
        if (fault == TorchFault.SwappedGroupInputs && groups == 2)
            x = torch.cat([x.narrow(1, s[2], s[2]), x.narrow(1, 0, s[2])], 1);
        // SAME at stride 1 with an odd kernel pads k / 2 on every side; VALID pads nothing.
        if (same && (stride != 1 || s[0] % 2 == 0 || s[1] % 2 == 0))
            throw new NotSupportedException($"{layer.Name}: SAME padding is written here for stride 1 and odd kernels only");
        long[] padding = same ? [s[0] / 2, s[1] / 2] : [0, 0];
        // The input goes in channels-last memory (an NCHW view of NHWC data): on the build machines (AMD EPYC),
        // libtorch 2.10's float32 CPU convolution of contiguous NCHW input came out wrong (errors of 7–50 % of the
        // largest output, sometimes NaN) for batches of 2 or more with 17 or 34 input channels, ungrouped, while
        // channels-last input was right in every case tried. The narrow-network test keeps such a shape.
        x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        return F.relu(F.conv2d(x, w, b, strides: [stride, stride], padding: padding, groups: groups));
    }

    /// <summary>x · W + b (F.linear takes the weights as (out, in)).</summary>
    private static Tensor Linear(Tensor x, LayerWeights layer, bool relu, Func<string, long, double>? dropoutScale)
    {
        (Tensor w, Tensor b) = Parameters(layer);
        Tensor y = F.linear(x, w, b);
        if (!relu) return y;
        y = F.relu(y);
        if (dropoutScale is null) return y;
        var mask = new float[y.numel()];
        for (long i = 0; i < mask.LongLength; i++) mask[i] = (float)dropoutScale(layer.Name, i);
        return y * tensor(mask, y.shape);
    }

    /// <summary>
    /// A layer's weights as PyTorch wants them: convolutions HWIO → OIHW, fully connected (in, out) → (out, in).
    /// Made once per <see cref="LayerWeights"/> and kept as long as it lives, so repeated runs on the same
    /// weights do not copy 233 MB each time; the tensors' finalizers free them with it.
    /// </summary>
    private static (Tensor Weight, Tensor Bias) Parameters(LayerWeights layer) => Converted.GetValue(layer, l =>
    {
        using var scope = NewDisposeScope();
        int[] s = l.WeightShape;
        Tensor w = l.Spec.Kind == LayerKind.Convolution
            ? tensor(l.Weight, [s[0], s[1], s[2], s[3]]).permute(3, 2, 0, 1).contiguous()
            : tensor(l.Weight, [s[0], s[1]]).t().contiguous();
        return new LayerTensors(w.DetachFromDisposeScope(), tensor(l.Bias).DetachFromDisposeScope());
    }).Pair;

    private static readonly ConditionalWeakTable<LayerWeights, LayerTensors> Converted = new();

    private sealed record LayerTensors(Tensor Weight, Tensor Bias)
    {
        public (Tensor, Tensor) Pair => (Weight, Bias);
    }
}
