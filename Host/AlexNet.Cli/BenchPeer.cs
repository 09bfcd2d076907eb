using AlexNet.Cuda.Weights;

namespace AlexNet.Cli;

/// <summary>The peer's measurement at one batch size, beside the engine's: the same weights, the same images,
/// the same number of warm-up and timed passes, in the same process.</summary>
internal sealed record BenchPeerResult(double MedianMs, double MinMs, double ImagesPerSecond,
    double MaxProbabilityDifference, int Top1Agreements);

/// <summary>Another implementation of AlexNet that <c>alexnet bench</c> times beside the engine.</summary>
internal interface IBenchPeer : IDisposable
{
    /// <summary>What it is, with its version and settings, for the output.</summary>
    string Name { get; }

    /// <summary>Times <paramref name="iterations"/> passes over <paramref name="images"/> after
    /// <paramref name="warmup"/>, and compares its probabilities with the engine's
    /// (<paramref name="engineProbabilities"/>, [N][classes]). <paramref name="progress"/> is told of each pass
    /// before it runs, and may stop the measurement by throwing.</summary>
    BenchPeerResult Measure(AlexNetWeights weights, float[] images, int batch, int warmup, int iterations,
        ReadOnlySpan<float> engineProbabilities, Action<string>? progress);
}

/// <summary>Which peers this build has: TorchSharp's CPU AlexNet in the JIT build the launcher makes; none in
/// the NativeAOT build (libtorch is not AOT-compiled; the GPU validation machine compares with PyTorch).</summary>
internal static class BenchPeers
{
    /// <summary>True when this build carries TorchSharp.</summary>
    public static bool HasTorchSharp =>
#if TORCHSHARP_PEER
        true;
#else
        false;
#endif

    /// <summary>TorchSharp's peer, or throws an <see cref="AlexNet.Cuda.AlexNetException"/> saying why there is none.</summary>
    public static IBenchPeer TorchSharp()
    {
#if TORCHSHARP_PEER
        return new TorchSharpBenchPeer();
#else
        throw new AlexNet.Cuda.AlexNetException("this alexnet is the NativeAOT build, which leaves TorchSharp out: run `./alexnet bench` from the repository for the TorchSharp comparison, or pass --peer none");
#endif
    }
}
