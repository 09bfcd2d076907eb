#if ONNXRUNTIME_PEER
using AlexNet.Cuda;
using AlexNet.Cuda.Onnx;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cli;

/// <summary>
/// ONNX Runtime's CPU execution provider running AlexNet from an ONNX graph built from the same weights
/// (<see cref="OnnxAlexNet"/>) as <c>alexnet bench</c>'s peer: what a .NET user would pick for CPU inference, and
/// the engine's CPU target (docs/performance.md). Its runs return when their results are computed, so each pass
/// is timed with a wall clock.
/// </summary>
internal sealed class OnnxRuntimeBenchPeer : IBenchPeer
{
    private OnnxAlexNet? _network;
    private AlexNetWeights? _weights;

    public OnnxRuntimeBenchPeer()
    {
        try
        {
            // Loads libonnxruntime.so: a missing or unloadable native library is a one-line error here, before any timing.
            Name = $"ONNX Runtime {OnnxAlexNet.RuntimeVersion} (CPU execution provider, {Environment.ProcessorCount} threads, all graph optimisations)";
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
        {
            throw new AlexNetException($"ONNX Runtime's native library did not load ({e.GetBaseException().Message.Split('\n')[0]}): pass --peer none to benchmark without it");
        }
    }

    public string Name { get; }

    public BenchPeerResult Measure(AlexNetWeights weights, float[] images, int batch, int warmup, int iterations,
        ReadOnlySpan<float> engineProbabilities, Action<string>? progress)
    {
        // One session for all batch sizes (the graph's batch is symbolic), rebuilt only when a larger batch needs
        // larger bound arrays.
        if (_network is null || !ReferenceEquals(_weights, weights) || _network.MaxBatch < batch)
        {
            _network?.Dispose();
            _network = null;
            _network = OnnxAlexNet.Create(weights, batch);
            _weights = weights;
        }
        OnnxAlexNet net = _network;
        net.Forward(images, batch);
        var probabilities = new float[batch * net.NumClasses];
        net.ReadProbabilities(probabilities);
        return BenchPeers.TimeAndCompare("ONNX Runtime", () => net.Run(batch), batch, warmup, iterations, probabilities, engineProbabilities, net.NumClasses, progress);
    }

    public void Dispose() => _network?.Dispose();
}
#endif
