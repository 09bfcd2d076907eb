using System.Collections.ObjectModel;

namespace AlexNet.Cuda.Weights;

/// <summary>Whether a layer is a convolution (weights HWIO) or fully connected (weights (in, out)).</summary>
public enum LayerKind
{
    Convolution,
    FullyConnected,
}

/// <summary>
/// One layer with weights: its name as in the weight file, its kind, the weight shape in the file's layout
/// (conv: (kh, kw, cin / groups, cout), "HWIO"; fc: (in, out)) and the number of groups (conv2, conv4 and
/// conv5 use 2). The bias shape is (cout,) = (<c>WeightShape[^1]</c>,).
/// </summary>
public sealed record LayerSpec(string Name, LayerKind Kind, int[] WeightShape, int Groups = 1)
{
    public int[] BiasShape => [WeightShape[^1]];

    public long WeightCount => WeightShape.Aggregate(1L, (a, b) => a * b);

    public long ParameterCount => WeightCount + WeightShape[^1];

    public int OutputChannels => WeightShape[^1];
}

/// <summary>
/// The eight layers of AlexNet that carry weights, with the shapes the file must have (docs/model.md for the
/// model, docs/weights.md for the file). <see cref="Default"/> is BVLC AlexNet; tests build smaller variants with the
/// public constructor. Only fc8 depends on the number of classes (<see cref="WithNumClasses"/>).
/// </summary>
public sealed class AlexNetArchitecture
{
    /// <summary>The layer names, in network order.</summary>
    public static readonly IReadOnlyList<string> LayerNames =
        ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"];

    /// <summary>BVLC AlexNet with 1000 classes: 60,965,224 parameters.</summary>
    public static AlexNetArchitecture Default { get; } = new(
    [
        new("conv1", LayerKind.Convolution, [11, 11, 3, 96]),
        new("conv2", LayerKind.Convolution, [5, 5, 48, 256], Groups: 2),
        new("conv3", LayerKind.Convolution, [3, 3, 256, 384]),
        new("conv4", LayerKind.Convolution, [3, 3, 192, 384], Groups: 2),
        new("conv5", LayerKind.Convolution, [3, 3, 192, 256], Groups: 2),
        new("fc6", LayerKind.FullyConnected, [9216, 4096]),
        new("fc7", LayerKind.FullyConnected, [4096, 4096]),
        new("fc8", LayerKind.FullyConnected, [4096, 1000]),
    ]);

    /// <summary>An architecture from eight layer specs named conv1…fc8 in order (conv layers 4-D, fc 2-D).</summary>
    public AlexNetArchitecture(IEnumerable<LayerSpec> layers)
    {
        var list = layers.ToList();
        if (list.Count != LayerNames.Count || list.Select(l => l.Name).Where((n, i) => n != LayerNames[i]).Any())
            throw new ArgumentException($"an AlexNet architecture has the layers {string.Join(", ", LayerNames)} in that order");
        foreach (var l in list)
        {
            if (l.WeightShape.Length != (l.Kind == LayerKind.Convolution ? 4 : 2) || l.WeightShape.Any(d => d <= 0) || l.Groups <= 0)
                throw new ArgumentException($"layer {l.Name}: bad weight shape ({string.Join(", ", l.WeightShape)}) or groups {l.Groups}");
        }
        Layers = new ReadOnlyCollection<LayerSpec>(list);
    }

    public IReadOnlyList<LayerSpec> Layers { get; }

    /// <summary>Number of classes (fc8's output size).</summary>
    public int NumClasses => Layers[^1].WeightShape[1];

    /// <summary>Total number of weights and biases.</summary>
    public long ParameterCount => Layers.Sum(l => l.ParameterCount);

    /// <summary>The spec of a layer by name; null when there is none.</summary>
    public LayerSpec? Find(string name) => Layers.FirstOrDefault(l => l.Name == name);

    /// <summary>This architecture with fc8 producing <paramref name="numClasses"/> outputs.</summary>
    public AlexNetArchitecture WithNumClasses(int numClasses)
    {
        if (numClasses <= 0) throw new ArgumentOutOfRangeException(nameof(numClasses), "num_classes must be positive");
        if (numClasses == NumClasses) return this;
        var fc8 = Layers[^1];
        return new AlexNetArchitecture(Layers.Take(Layers.Count - 1).Append(fc8 with { WeightShape = [fc8.WeightShape[0], numClasses] }));
    }
}
