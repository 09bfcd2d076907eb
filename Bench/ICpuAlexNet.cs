namespace AlexNet.Cuda.Bench;

/// <summary>
/// Another implementation of AlexNet on the CPU (TorchSharp's, ONNX Runtime's) as the benchmarks use it: built once
/// for batches of up to <see cref="MaxBatch"/> images, filled and run synchronously, its probabilities read back.
/// </summary>
public interface ICpuAlexNet : IDisposable
{
    int MaxBatch { get; }

    int NumClasses { get; }

    /// <summary>Copies <paramref name="count"/> images (N×227×227×3 floats, NHWC) in and runs the network.</summary>
    void Forward(ReadOnlySpan<float> images, int count);

    /// <summary>Runs the network again on the images last copied in; returns when the results are computed.</summary>
    void Run(int count);

    /// <summary>Copies the class probabilities of the last pass, [N][classes].</summary>
    void ReadProbabilities(Span<float> destination);
}
