using AlexNet.Cuda.Bench;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cli;

/// <summary>
/// A CPU implementation of AlexNet (<see cref="ICpuAlexNet"/>: TorchSharp's, ONNX Runtime's) as <c>alexnet bench</c>'s
/// peer. Its runs return when their results are computed, so each pass is timed with a wall clock, as the engine's
/// passes on a CPU device are by its queue's profiling clock. One network serves every batch size (weights converted
/// once), rebuilt only when a larger batch needs it.
/// </summary>
internal sealed class CpuBenchPeer(string name, string who, Func<AlexNetWeights, int, ICpuAlexNet> create) : IBenchPeer
{
    private ICpuAlexNet? _network;
    private AlexNetWeights? _weights;

    public string Name { get; } = name;

    public BenchPeerResult Measure(AlexNetWeights weights, float[] images, int batch, int warmup, int iterations,
        ReadOnlySpan<float> engineProbabilities, Action<string>? progress)
    {
        if (_network is null || !ReferenceEquals(_weights, weights) || _network.MaxBatch < batch)
        {
            _network?.Dispose();
            _network = null;
            _network = create(weights, batch);
            _weights = weights;
        }
        ICpuAlexNet net = _network;
        net.Forward(images, batch);
        var probabilities = new float[batch * net.NumClasses];
        net.ReadProbabilities(probabilities);
        return BenchPeers.TimeAndCompare(who, () => net.Run(batch), batch, warmup, iterations, probabilities, engineProbabilities, net.NumClasses, progress);
    }

    public void Dispose() => _network?.Dispose();
}
