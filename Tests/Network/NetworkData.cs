using AlexNet.Cuda.Network;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>Seeded weights and images for the network tests: He-scaled weights of any AlexNet-shaped
/// architecture, images in the range of mean-subtracted pixels, with a few outliers.</summary>
internal static class NetworkData
{
    /// <summary>AlexNet's geometry (kernel sizes, strides, pools) with few channels: fast on a CPU device,
    /// yet every layer, group split and the fc6 reorder are exercised.</summary>
    public static readonly AlexNetArchitecture Narrow = new(
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
        var random = new Random(seed);
        var layers = new List<LayerWeights>();
        foreach (LayerSpec spec in architecture.Layers)
        {
            long fanIn = spec.WeightCount / spec.OutputChannels;
            double scale = Math.Sqrt(2.0 / fanIn);
            var w = new float[spec.WeightCount];
            for (long i = 0; i < w.LongLength; i++) w[i] = (float)(Gaussian(random) * scale);
            var b = new float[spec.OutputChannels];
            for (int i = 0; i < b.Length; i++) b[i] = (float)(random.NextDouble() * 0.2 - 0.1);
            layers.Add(new LayerWeights(spec, w, b, "<f4"));
        }
        return new AlexNetWeights(architecture, layers);
    }

    public static float[] Images(int count, int seed)
    {
        var random = new Random(seed);
        var x = new float[count * AlexNetModel.InputFloatsPerImage];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 255 - 124);
        // A saturated patch and a dark one in each image, as photographs have.
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
