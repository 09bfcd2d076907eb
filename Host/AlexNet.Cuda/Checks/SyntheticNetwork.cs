using AlexNet.Cuda.Network;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// Seeded weights and images for checking whole networks without the 233 MiB file: He-scaled weights of any
/// AlexNet-shaped architecture (so activations keep the size of the input from layer to layer, as a trained
/// network's roughly do), small random biases (a bias on the wrong channel still shows), and images in the
/// range of mean-subtracted pixels with saturated and dark patches.
/// </summary>
public static class SyntheticNetwork
{
    /// <summary>AlexNet's geometry (kernel sizes, strides, pools, groups) with few channels: fast on a CPU
    /// device, yet every layer, the group split and the fc6 reorder are exercised.</summary>
    public static AlexNetArchitecture Narrow { get; } = new(
    [
        new("conv1", LayerKind.Convolution, [11, 11, 3, 16]),
        new("conv2", LayerKind.Convolution, [5, 5, 8, 24], Groups: 2),
        new("conv3", LayerKind.Convolution, [3, 3, 24, 20]),
        new("conv4", LayerKind.Convolution, [3, 3, 10, 20], Groups: 2),
        new("conv5", LayerKind.Convolution, [3, 3, 10, 12], Groups: 2),
        new("fc6", LayerKind.FullyConnected, [12 * 36, 40]),
        new("fc7", LayerKind.FullyConnected, [40, 40]),
        new("fc8", LayerKind.FullyConnected, [40, 11]),
    ]);

    public static AlexNetWeights Weights(AlexNetArchitecture architecture, int seed)
    {
        var layers = new LayerWeights[architecture.Layers.Count];
        for (int l = 0; l < layers.Length; l++)
        {
            LayerSpec spec = architecture.Layers[l];
            var random = new Random(unchecked(seed * 7919 + l));
            long fanIn = spec.WeightCount / spec.OutputChannels;
            // fc8 at a tenth of He's scale: logits of tens, not hundreds, so the softmax is not one-hot.
            double scale = Math.Sqrt(2.0 / fanIn) * (spec.Name == "fc8" ? 0.1 : 1.0);
            var w = new float[spec.WeightCount];
            for (long i = 0; i < w.LongLength; i++) w[i] = (float)(Gaussian(random) * scale);
            var b = new float[spec.OutputChannels];
            for (int i = 0; i < b.Length; i++) b[i] = (float)(random.NextDouble() - 0.5);
            layers[l] = new LayerWeights(spec, w, b, "synthetic");
        }
        return new AlexNetWeights(architecture, layers);
    }

    public static float[] Images(int count, int seed)
    {
        var random = new Random(seed);
        var x = new float[count * AlexNetModel.InputFloatsPerImage];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 255 - 124);
        for (int n = 0; n < count; n++)
        for (int p = 0; p < 300; p++)
        {
            x[n * AlexNetModel.InputFloatsPerImage + p] = 151f;
            x[(n + 1) * AlexNetModel.InputFloatsPerImage - 1 - p] = -124f;
        }
        return x;
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
