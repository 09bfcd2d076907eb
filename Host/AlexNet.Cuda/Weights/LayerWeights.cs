namespace AlexNet.Cuda.Weights;

/// <summary>
/// One layer's parameters as float32 in the file's layouts: convolution weights HWIO (kh, kw, cin/groups, cout),
/// fully connected weights (in, out), both C order (last axis fastest); the bias has one value per output.
/// </summary>
public sealed class LayerWeights
{
    internal LayerWeights(LayerSpec spec, float[] weight, float[] bias, string source)
    {
        Spec = spec;
        Weight = weight;
        Bias = bias;
        Source = source;
    }

    public LayerSpec Spec { get; }

    public string Name => Spec.Name;

    public float[] Weight { get; }

    public int[] WeightShape => Spec.WeightShape;

    public float[] Bias { get; }

    public int[] BiasShape => Spec.BiasShape;

    /// <summary>Where the values came from: the file's dtype (<c>&lt;f4</c>, <c>&gt;f8</c>, …), or
    /// <c>init</c> for a skipped layer initialised afresh.</summary>
    public string Source { get; }

    public bool FromFile => Source != "init";

    public long ParameterCount => Weight.LongLength + Bias.LongLength;
}
