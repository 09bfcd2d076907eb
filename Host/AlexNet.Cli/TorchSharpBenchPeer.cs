#if TORCHSHARP_PEER
using AlexNet.Cuda;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Torch;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cli;

/// <summary>
/// TorchSharp's AlexNet on the CPU (<see cref="TorchSharpAlexNet"/>: libtorch's own convolution, LRN, pooling
/// and GEMM kernels, channels-last, inference mode) as <c>alexnet bench</c>'s peer. libtorch's CPU ops return
/// when their results are computed, so each pass is timed with a wall clock, as the engine's passes on a CPU
/// device are by its queue's profiling clock.
/// </summary>
internal sealed class TorchSharpBenchPeer : IBenchPeer
{
    private TorchSharpAlexNet? _network;
    private AlexNetWeights? _weights;

    public TorchSharpBenchPeer()
    {
        try
        {
            // Loads libtorch: a missing or unloadable native library is a one-line error here, before any timing.
            Name = $"TorchSharp {typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(3)} (libtorch CPU, {TorchSharpAlexNet.Threads} threads, channels-last)";
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or NotSupportedException)
        {
            throw new AlexNetException($"TorchSharp's native library did not load ({e.GetBaseException().Message.Split('\n')[0]}): pass --peer none to benchmark without it");
        }
    }

    public string Name { get; }

    public BenchPeerResult Measure(AlexNetWeights weights, float[] images, int batch, int warmup, int iterations,
        ReadOnlySpan<float> engineProbabilities, Action<string>? progress)
    {
        // One network for all batch sizes (weights converted once), rebuilt only when a larger batch needs it.
        if (_network is null || !ReferenceEquals(_weights, weights) || _network.MaxBatch < batch)
        {
            _network?.Dispose();
            _network = TorchSharpAlexNet.Create(weights, batch);
            _weights = weights;
        }
        TorchSharpAlexNet net = _network;
        net.Forward(images, batch);
        var probabilities = new float[batch * net.NumClasses];
        net.ReadProbabilities(probabilities);
        return BenchPeers.TimeAndCompare("TorchSharp", () => net.Run(batch), batch, warmup, iterations, probabilities, engineProbabilities, net.NumClasses, progress);
    }

    public void Dispose() => _network?.Dispose();
}
#endif
