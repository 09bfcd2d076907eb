using System.Diagnostics;
using AlexNet.Cuda.Network;
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

/// <summary>Which peers this build has: TorchSharp's and ONNX Runtime's CPU AlexNets in the JIT build the launcher
/// makes; none in the NativeAOT build (libtorch is not AOT-compiled, and the GPU validation machine compares with
/// PyTorch).</summary>
internal static class BenchPeers
{
    private const string NoPeersInAot = "this alexnet is the NativeAOT build, which leaves the CPU peers out: run `./alexnet bench` from the repository for that comparison, or pass --peer none";

    /// <summary>True when this build carries ONNX Runtime.</summary>
    public static bool HasOnnxRuntime =>
#if ONNXRUNTIME_PEER
        true;
#else
        false;
#endif

    /// <summary>ONNX Runtime's peer, or throws an <see cref="AlexNet.Cuda.AlexNetException"/> saying why there is none.</summary>
    public static IBenchPeer OnnxRuntime()
    {
#if ONNXRUNTIME_PEER
        string name;
        try
        {
            // Loads libonnxruntime.so: a missing or unloadable native library is a one-line error here, before any timing.
            name = $"ONNX Runtime {AlexNet.Cuda.Onnx.OnnxAlexNet.RuntimeVersion} (CPU execution provider, {Environment.ProcessorCount} threads, all graph optimisations)";
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
        {
            throw new AlexNet.Cuda.AlexNetException($"ONNX Runtime's native library did not load ({e.GetBaseException().Message.Split('\n')[0]}): pass --peer none to benchmark without it");
        }
        return new CpuBenchPeer(name, "ONNX Runtime", (weights, batch) => AlexNet.Cuda.Onnx.OnnxAlexNet.Create(weights, batch));
#else
        throw new AlexNet.Cuda.AlexNetException(NoPeersInAot);
#endif
    }

    /// <summary>
    /// The timing and the comparison every CPU peer shares: <paramref name="pass"/> (synchronous: it returns when its
    /// results are computed) run <paramref name="warmup"/> times, then timed <paramref name="iterations"/> times by
    /// the wall clock; <paramref name="probabilities"/> (the peer's, [N][classes]) against the engine's.
    /// </summary>
    public static BenchPeerResult TimeAndCompare(string who, Action pass, int batch, int warmup, int iterations,
        ReadOnlySpan<float> probabilities, ReadOnlySpan<float> engineProbabilities, int classes, Action<string>? progress)
    {
        for (int i = 0; i < warmup; i++)
        {
            progress?.Invoke($"batch {batch}: {who} warm-up pass {i + 1}/{warmup}");
            pass();
        }
        var times = new double[iterations];
        for (int i = 0; i < iterations; i++)
        {
            progress?.Invoke($"batch {batch}: {who} pass {i + 1}/{iterations}");
            long start = Stopwatch.GetTimestamp();
            pass();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        double median = AlexNet.Cuda.Bench.BenchmarkHarness.Median(times);

        double maxDifference = 0;
        int agreements = 0;
        for (int n = 0; n < batch; n++)
        {
            ReadOnlySpan<float> ours = engineProbabilities.Slice(n * classes, classes), theirs = probabilities.Slice(n * classes, classes);
            for (int c = 0; c < classes; c++) maxDifference = Math.Max(maxDifference, Math.Abs(ours[c] - theirs[c]));
            if (ClassRanking.Top(ours, 1)[0] == ClassRanking.Top(theirs, 1)[0]) agreements++;
        }
        return new BenchPeerResult(median, times.Min(), batch / (median / 1000), maxDifference, agreements);
    }

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
        string name;
        try
        {
            // Loads libtorch: a missing or unloadable native library is a one-line error here, before any timing.
            name = $"TorchSharp {typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(3)} (libtorch CPU, {AlexNet.Cuda.Torch.TorchSharpAlexNet.Threads} threads, channels-last)";
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or NotSupportedException)
        {
            throw new AlexNet.Cuda.AlexNetException($"TorchSharp's native library did not load ({e.GetBaseException().Message.Split('\n')[0]}): pass --peer none to benchmark without it");
        }
        // TorchSharp's AlexNet on the CPU: libtorch's own convolution, LRN, pooling and GEMM kernels, channels-last,
        // inference mode.
        return new CpuBenchPeer(name, "TorchSharp", (weights, batch) => AlexNet.Cuda.Torch.TorchSharpAlexNet.Create(weights, batch));
#else
        throw new AlexNet.Cuda.AlexNetException(NoPeersInAot);
#endif
    }
}
