using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Torch;

/// <summary>
/// Seeded random weights of the real shapes (or of any <see cref="AlexNetArchitecture"/>), for comparing whole
/// networks without the 233 MiB file. Weights are He-scaled (uniform with variance 2 / fan_in, fan_in =
/// kh·kw·cin_per_group or the fc inputs) so activations keep the size of the input (±128) from layer to
/// layer, as a trained network's roughly do; biases are small and random, so a bias applied to the wrong
/// channel still shows. The same seed gives the same values on every machine (<see cref="Random"/> with a
/// seed is a fixed algorithm).
/// </summary>
public static class SyntheticWeights
{
    /// <summary>Largest |bias|: small next to activations of tens to hundreds, large next to the tolerances.</summary>
    public const double BiasRange = 0.5;

    /// <summary>fc8's scale relative to He: the logits then spread over about ±20, like a trained network's,
    /// so the softmax is not one-hot and its top 5 are well separated (He-scaled logits reach ±300).</summary>
    public const double Fc8Scale = 0.1;

    /// <summary>BVLC AlexNet's shapes with <paramref name="numClasses"/> outputs.</summary>
    public static AlexNetWeights Create(int seed, int numClasses = 1000) =>
        Create(AlexNetArchitecture.Default.WithNumClasses(numClasses), seed);

    public static AlexNetWeights Create(AlexNetArchitecture architecture, int seed)
    {
        var layers = new LayerWeights[architecture.Layers.Count];
        // Each layer from its own seed, so the layers fill in parallel and one layer's values do not depend on
        // the sizes of the layers before it.
        Parallel.For(0, layers.Length, i =>
        {
            var spec = architecture.Layers[i];
            var random = new Random(unchecked(seed * 1_000_003 + i));
            long fanIn = spec.Kind == LayerKind.Convolution
                ? (long)spec.WeightShape[0] * spec.WeightShape[1] * spec.WeightShape[2]
                : spec.WeightShape[0];
            double limit = Math.Sqrt(6.0 / fanIn) * (spec.Name == "fc8" ? Fc8Scale : 1.0);
            var weight = new float[spec.WeightCount];
            for (long k = 0; k < weight.LongLength; k++) weight[k] = (float)((random.NextDouble() * 2 - 1) * limit);
            var bias = new float[spec.OutputChannels];
            for (int k = 0; k < bias.Length; k++) bias[k] = (float)((random.NextDouble() * 2 - 1) * BiasRange);
            layers[i] = new LayerWeights(spec, weight, bias, "synthetic");
        });
        return new AlexNetWeights(architecture, layers);
    }

    /// <summary>N images of 227×227×C (NHWC) uniform in ±128, the range of mean-subtracted pixels.</summary>
    public static float[] Input(int seed, int batch, int channels = 3)
    {
        var random = new Random(seed);
        var input = new float[batch * 227 * 227 * channels];
        for (int i = 0; i < input.Length; i++) input[i] = (float)((random.NextDouble() * 2 - 1) * 128);
        return input;
    }
}
