namespace AlexNet.Cuda.Weights;

/// <summary>The eight weighted layers of AlexNet, shape-checked against <see cref="Architecture"/>.</summary>
public sealed class AlexNetWeights
{
    private readonly Dictionary<string, LayerWeights> _byName;

    internal AlexNetWeights(AlexNetArchitecture architecture, IReadOnlyList<LayerWeights> layers)
    {
        Architecture = architecture;
        Layers = layers;
        _byName = layers.ToDictionary(l => l.Name, StringComparer.Ordinal);
    }

    public AlexNetArchitecture Architecture { get; }

    /// <summary>conv1 … fc8 in network order.</summary>
    public IReadOnlyList<LayerWeights> Layers { get; }

    public LayerWeights this[string name] =>
        _byName.TryGetValue(name, out var l) ? l
        : throw new KeyNotFoundException($"AlexNet has no layer '{name}'; layers: {string.Join(", ", AlexNetArchitecture.LayerNames)}");

    public LayerWeights Conv1 => Layers[0];
    public LayerWeights Conv2 => Layers[1];
    public LayerWeights Conv3 => Layers[2];
    public LayerWeights Conv4 => Layers[3];
    public LayerWeights Conv5 => Layers[4];
    public LayerWeights Fc6 => Layers[5];
    public LayerWeights Fc7 => Layers[6];
    public LayerWeights Fc8 => Layers[7];

    public int NumClasses => Architecture.NumClasses;

    public long ParameterCount => Layers.Sum(l => l.ParameterCount);
}
