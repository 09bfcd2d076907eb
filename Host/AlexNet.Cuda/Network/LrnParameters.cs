using System.Globalization;

namespace AlexNet.Cuda.Network;

/// <summary>
/// Local response normalisation across channels, with TensorFlow's semantics:
/// <c>out = in / (Bias + Alpha · Σ in²)^Beta</c>, the sum over the channels within <see cref="Radius"/>.
/// The defaults reproduce the BVLC model's training (Caffe's local_size 5, alpha 1e-4; see docs/model.md).
/// </summary>
public readonly record struct LrnParameters
{
    /// <summary>The defaults: radius 2, alpha 2e-5, beta 0.75, bias 1.</summary>
    public LrnParameters()
    {
    }

    public LrnParameters(int radius, float alpha, float beta, float bias)
    {
        Radius = radius;
        Alpha = alpha;
        Beta = beta;
        Bias = bias;
    }

    /// <summary>Channels on each side of the normalised one that enter its sum (TensorFlow's depth_radius).</summary>
    public int Radius { get; init; } = 2;

    public float Alpha { get; init; } = 2e-5f;

    public float Beta { get; init; } = 0.75f;

    public float Bias { get; init; } = 1f;

    /// <summary>AlexNet's parameters: radius 2, alpha 2e-5, beta 0.75, bias 1.</summary>
    public static LrnParameters Default => new();

    /// <summary>
    /// Throws an <see cref="AlexNetException"/> naming the first invalid parameter. The power's base,
    /// Bias + Alpha·Σ in², must stay positive for every input, which needs Bias &gt; 0 and Alpha ≥ 0.
    /// </summary>
    public void Validate()
    {
        if (Radius < 0)
            throw new AlexNetException($"LRN radius must be 0 or more, not {Radius}");
        if (!float.IsFinite(Alpha) || !float.IsFinite(Beta) || !float.IsFinite(Bias))
            throw new AlexNetException(string.Create(CultureInfo.InvariantCulture,
                $"LRN alpha, beta and bias must be finite numbers (alpha {Alpha}, beta {Beta}, bias {Bias})"));
        if (Bias <= 0)
            throw new AlexNetException(string.Create(CultureInfo.InvariantCulture,
                $"LRN bias must be greater than 0, not {Bias}: it keeps the base bias + alpha·Σx² of the power positive (AlexNet uses 1)"));
        if (Alpha < 0)
            throw new AlexNetException(string.Create(CultureInfo.InvariantCulture,
                $"LRN alpha must be 0 or more, not {Alpha}: a negative alpha can make the base bias + alpha·Σx² of the power negative (AlexNet uses 2e-5)"));
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"radius {Radius}, alpha {Alpha:R}, beta {Beta:R}, bias {Bias:R}");
}
