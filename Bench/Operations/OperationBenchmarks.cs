using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Torch;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using static TorchSharp.torch;

namespace AlexNet.Cuda.Benchmarks;

/// <summary>
/// Every operation of AlexNet's forward pass on its real shapes, the engine on the OpenCL (CPU) device beside
/// TorchSharp on the CPU, and the whole forward pass of each; one category per operation, TorchSharp its
/// baseline, so BenchmarkDotNet's Ratio is the engine's time over TorchSharp's.
/// <para>
/// Both sides get the same values (synthetic weights and activations, seeded) in their own layouts: the
/// engine's activations <c>[C][N][H][W]</c> on the device, TorchSharp's NCHW tensors stored channels-last.
/// The engine's side queues its operation as the forward pass does (<see cref="AlexNetModel"/>'s buffers,
/// kernels and convolution sequence: im2col, the grouped GEMM, bias + ReLU) and waits for the stream, so
/// both are timed on the wall clock from call to finished result, as TorchSharp's synchronous calls are.
/// </para>
/// </summary>
[MemoryDiagnoser]
[CategoriesColumn]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
public class OperationBenchmarks
{
    /// <summary>The batch sizes to run: set by Program from the command line before BenchmarkDotNet starts.</summary>
    public static IReadOnlyList<int> Batches { get; set; } = [1];

    public static IEnumerable<int> BatchValues() => Batches;

    [ParamsSource(nameof(BatchValues))]
    public int Batch { get; set; }

    private OperationFixture _f = null!;

    /// <summary>The fixtures built so far, one per batch size: every benchmark case of a batch shares it (the
    /// run is in process), so the 61 M synthetic weights, the model and the tensors are made once, not 30 times.</summary>
    private static readonly Dictionary<int, OperationFixture> Fixtures = [];

    [GlobalSetup]
    public void Setup()
    {
        if (!Fixtures.TryGetValue(Batch, out OperationFixture? fixture)) Fixtures[Batch] = fixture = new OperationFixture(Batch);
        _f = fixture;
        // The Allocated column counts every thread: the earlier cases' garbage (TorchSharp's tensors, whose
        // finalizers allocate) is collected and finalized before this case starts, not during it.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    /// <summary>Frees every fixture: called once all the benchmarks have run.</summary>
    public static void ReleaseFixtures()
    {
        foreach (OperationFixture f in Fixtures.Values) f.Dispose();
        Fixtures.Clear();
    }

    /// <summary>
    /// Managed bytes the engine's whole forward pass (upload, network, probabilities read back) allocates on the
    /// calling thread over <paramref name="passes"/> passes after two warm-up passes, at each batch benchmarked:
    /// one line per batch, <c>engine forward pass, batch N: B bytes over P passes</c>.
    /// </summary>
    public static string CheckForwardAllocations(int passes)
    {
        var lines = new List<string>();
        foreach (int batch in Batches)
        {
            if (!Fixtures.TryGetValue(batch, out OperationFixture? f)) Fixtures[batch] = f = new OperationFixture(batch);
            long allocated = 0;
            for (int i = 0; i < 2 + passes; i++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                f.Model.Forward(f.Images, batch);
                f.Model.ReadProbabilities(f.EngineResult);
                if (i >= 2) allocated += GC.GetAllocatedBytesForCurrentThread() - before;
            }
            lines.Add($"engine forward pass, batch {batch}: {allocated} bytes over {passes} passes");
        }
        return string.Join(Environment.NewLine, lines);
    }

    // ---- the engine: queue as the forward pass does, then wait for the stream ----

    private void Convolution(int layer)
    {
        _f.Model.Convolve(layer, _f.ConvInputs[layer], _f.ConvOutputs[layer], Batch);
        _f.Stream.Synchronize();
    }

    private void Normalization(DeviceBuffer<float> output, DeviceBuffer<float> input, ActivationPlan plan)
    {
        _f.Kernels.Lrn(_f.Stream, output, input, plan.Channels, Batch * plan.Height * plan.Width, _f.Lrn);
        _f.Stream.Synchronize();
    }

    /// <summary>3×3 windows at stride 2; pool1 and pool2 stay channel-major, pool5 writes fc6's [N][C][6][6].</summary>
    private void Pooling(DeviceBuffer<float> output, DeviceBuffer<float> input, ActivationPlan plan, bool toFullyConnected)
    {
        int n = Batch, size = plan.Height, outSize = (size - 3) / 2 + 1, pixels = outSize * outSize;
        (int strideC, int strideN) = toFullyConnected ? (pixels, plan.Channels * pixels) : (n * pixels, pixels);
        _f.Kernels.MaxPool(_f.Stream, output, input, plan.Channels, n, size, size, outSize, outSize, 3, 2, strideC, strideN);
        _f.Stream.Synchronize();
    }

    /// <summary>fc6…fc8's GEMM, with bias + ReLU for fc6 and fc7 (fc8's bias is added by the softmax kernel).</summary>
    private void FullyConnected(int index)
    {
        int n = Batch, inputs = _f.FcSizes[index], outputs = _f.FcSizes[index + 1];
        _f.Stream.Gemm(MatrixView.RowMajor(_f.FcInputs[index], n, inputs), MatrixView.RowMajor(_f.Model.WeightBuffer(5 + index), ElementFormat.Float32, inputs, outputs),
            MatrixView.RowMajor(_f.FcOutputs[index], n, outputs));
        if (index < 2) _f.Kernels.BiasRelu(_f.Stream, _f.FcOutputs[index], _f.Model.BiasBuffer(5 + index), n, outputs, 1, relu: true);
        _f.Stream.Synchronize();
    }

    [Benchmark, BenchmarkCategory("conv1")] public void Conv1Engine() => Convolution(0);
    [Benchmark, BenchmarkCategory("conv2")] public void Conv2Engine() => Convolution(1);
    [Benchmark, BenchmarkCategory("conv3")] public void Conv3Engine() => Convolution(2);
    [Benchmark, BenchmarkCategory("conv4")] public void Conv4Engine() => Convolution(3);
    [Benchmark, BenchmarkCategory("conv5")] public void Conv5Engine() => Convolution(4);
    [Benchmark, BenchmarkCategory("norm1")] public void Norm1Engine() => Normalization(_f.Norm1Output, _f.Norm1Input, _f.Norm1Plan);
    [Benchmark, BenchmarkCategory("norm2")] public void Norm2Engine() => Normalization(_f.Norm2Output, _f.Norm2Input, _f.Norm2Plan);
    [Benchmark, BenchmarkCategory("pool1")] public void Pool1Engine() => Pooling(_f.Pool1Output, _f.Pool1Input, _f.Norm1Plan, false);
    [Benchmark, BenchmarkCategory("pool2")] public void Pool2Engine() => Pooling(_f.Pool2Output, _f.Pool2Input, _f.Norm2Plan, false);
    [Benchmark, BenchmarkCategory("pool5")] public void Pool5Engine() => Pooling(_f.Pool5Output, _f.Pool5Input, _f.Conv5Plan, true);
    [Benchmark, BenchmarkCategory("fc6")] public void Fc6Engine() => FullyConnected(0);
    [Benchmark, BenchmarkCategory("fc7")] public void Fc7Engine() => FullyConnected(1);
    [Benchmark, BenchmarkCategory("fc8")] public void Fc8Engine() => FullyConnected(2);

    [Benchmark, BenchmarkCategory("softmax")]
    public void SoftmaxEngine()
    {
        _f.Kernels.Softmax(_f.Stream, _f.Probabilities, _f.Logits, _f.ZeroBias, Batch, _f.Model.NumClasses);
        _f.Stream.Synchronize();
    }

    /// <summary>Upload of the images, the whole network, and the probabilities read back.</summary>
    [Benchmark, BenchmarkCategory("forward")]
    public void ForwardEngine()
    {
        _f.Model.Forward(_f.Images, Batch);
        _f.Model.ReadProbabilities(_f.EngineResult);
    }

    // ---- TorchSharp: each call under inference mode, its tensors freed as it returns ----

    [Benchmark(Baseline = true), BenchmarkCategory("conv1")] public void Conv1TorchSharp() => TorchConvolution(0);
    [Benchmark(Baseline = true), BenchmarkCategory("conv2")] public void Conv2TorchSharp() => TorchConvolution(1);
    [Benchmark(Baseline = true), BenchmarkCategory("conv3")] public void Conv3TorchSharp() => TorchConvolution(2);
    [Benchmark(Baseline = true), BenchmarkCategory("conv4")] public void Conv4TorchSharp() => TorchConvolution(3);
    [Benchmark(Baseline = true), BenchmarkCategory("conv5")] public void Conv5TorchSharp() => TorchConvolution(4);

    private void TorchConvolution(int layer)
    {
        using IDisposable mode = inference_mode(true);
        using var scope = NewDisposeScope();
        _f.Torch.Convolution(layer, _f.TorchConvInputs[layer]);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("norm1")] public void Norm1TorchSharp() => TorchNormalization(_f.TorchNorm1Input);
    [Benchmark(Baseline = true), BenchmarkCategory("norm2")] public void Norm2TorchSharp() => TorchNormalization(_f.TorchNorm2Input);

    private void TorchNormalization(Tensor input)
    {
        using IDisposable mode = inference_mode(true);
        using var scope = NewDisposeScope();
        _f.Torch.Normalize(input);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("pool1")] public void Pool1TorchSharp() => TorchPooling(_f.TorchPool1Input);
    [Benchmark(Baseline = true), BenchmarkCategory("pool2")] public void Pool2TorchSharp() => TorchPooling(_f.TorchPool2Input);

    /// <summary>pool5 with the flatten to fc6's input, as the engine's pool5 writes it.</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("pool5")]
    public void Pool5TorchSharp()
    {
        using IDisposable mode = inference_mode(true);
        using var scope = NewDisposeScope();
        _f.Torch.Flatten(TorchSharpAlexNet.MaxPool(_f.TorchPool5Input));
    }

    private static void TorchPooling(Tensor input)
    {
        using IDisposable mode = inference_mode(true);
        using var scope = NewDisposeScope();
        TorchSharpAlexNet.MaxPool(input);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("fc6")] public void Fc6TorchSharp() => TorchFullyConnected(0);
    [Benchmark(Baseline = true), BenchmarkCategory("fc7")] public void Fc7TorchSharp() => TorchFullyConnected(1);
    [Benchmark(Baseline = true), BenchmarkCategory("fc8")] public void Fc8TorchSharp() => TorchFullyConnected(2);

    private void TorchFullyConnected(int index)
    {
        using IDisposable mode = inference_mode(true);
        using var scope = NewDisposeScope();
        _f.Torch.FullyConnected(5 + index, _f.TorchFcInputs[index]);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("softmax")]
    public void SoftmaxTorchSharp()
    {
        using IDisposable mode = inference_mode(true);
        using var scope = NewDisposeScope();
        TorchSharpAlexNet.Softmax(_f.TorchLogits);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("forward")]
    public void ForwardTorchSharp()
    {
        _f.Torch.Forward(_f.Images, Batch);
        _f.Torch.ReadProbabilities(_f.TorchResult);
    }
}
