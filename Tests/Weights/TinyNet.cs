using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>A small AlexNet-shaped architecture for fast tests, and the value formula that
/// Tests/Fixtures/weights/make_fixtures.py also uses (every value exact in float16).</summary>
internal static class TinyNet
{
    public static readonly AlexNetArchitecture Architecture = new(
    [
        new("conv1", LayerKind.Convolution, [3, 3, 3, 4]),
        new("conv2", LayerKind.Convolution, [3, 3, 2, 6], Groups: 2),
        new("conv3", LayerKind.Convolution, [3, 3, 6, 6]),
        new("conv4", LayerKind.Convolution, [3, 3, 3, 6], Groups: 2),
        new("conv5", LayerKind.Convolution, [3, 3, 3, 4], Groups: 2),
        new("fc6", LayerKind.FullyConnected, [36, 8]),
        new("fc7", LayerKind.FullyConnected, [8, 8]),
        new("fc8", LayerKind.FullyConnected, [8, 5]),
    ]);

    public static float[] Weight(int layer, int[] shape)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        var w = new float[n];
        for (long i = 0; i < n; i++) w[i] = (float)((((i * 7 + layer * 13) % 251) - 125) / 64.0);
        return w;
    }

    public static float[] Bias(int layer, int count)
    {
        var b = new float[count];
        for (int i = 0; i < count; i++) b[i] = (float)((i % 17 - 8) / 8.0 + layer);
        return b;
    }

    /// <summary>The layers of <paramref name="arch"/> filled with the formula, ready for <see cref="Py2PickleWriter"/>.</summary>
    public static List<Py2PickleWriter.Layer> Layers(AlexNetArchitecture? arch = null) =>
        (arch ?? Architecture).Layers.Select((l, i) => new Py2PickleWriter.Layer(l.Name, Weight(i, l.WeightShape), l.WeightShape, Bias(i, l.OutputChannels))).ToList();

    public static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "weights", name);

    /// <summary>Asserts every layer holds exactly the formula's values.</summary>
    public static void AssertExact(AlexNetWeights w)
    {
        Assert.Equal(8, w.Layers.Count);
        for (int i = 0; i < 8; i++)
        {
            var spec = Architecture.Layers[i];
            var l = w.Layers[i];
            Assert.Equal(spec.Name, l.Name);
            Assert.Equal(spec.WeightShape, l.WeightShape);
            Assert.Equal(Weight(i, spec.WeightShape), l.Weight);
            Assert.Equal(Bias(i, spec.OutputChannels), l.Bias);
        }
    }
}
