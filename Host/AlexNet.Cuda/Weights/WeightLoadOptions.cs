namespace AlexNet.Cuda.Weights;

/// <summary>How <see cref="WeightFile.Load"/> builds the network's weights from a file.</summary>
public sealed class WeightLoadOptions
{
    /// <summary>Number of classes of fc8. Null: taken from the file's fc8 (1000 for BVLC AlexNet). A value other
    /// than the file's needs "fc8" in <see cref="SkipLayers"/>.</summary>
    public int? NumClasses { get; init; }

    /// <summary>Layers not taken from the file (the reference code's <c>skip_layer</c>): they get a fresh initialisation,
    /// Glorot-uniform weights and zero biases, from <see cref="Seed"/>. They may be absent from the file.</summary>
    public IReadOnlyCollection<string> SkipLayers { get; init; } = [];

    /// <summary>Seed of the initialisation of skipped layers; the same seed gives the same values.</summary>
    public ulong Seed { get; init; }

    /// <summary>The shapes to check against; <see cref="AlexNetArchitecture.Default"/> when null. fc8's class
    /// count is replaced by the file's or <see cref="NumClasses"/>.</summary>
    public AlexNetArchitecture? Architecture { get; init; }
}
