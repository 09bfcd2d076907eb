using AlexNet.Cuda.Bench;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Weights;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AlexNet.Cuda.Torch;

/// <summary>The memory layout of the activations and convolution weights of a <see cref="TorchSharpAlexNet"/>.</summary>
public enum TorchLayout
{
    /// <summary>NCHW tensors stored NHWC (PyTorch's channels_last): the input needs no transpose, pool5
    /// flattens in the weight file's NHWC order, and libtorch's CPU convolutions take their fast path.</summary>
    ChannelsLast,

    /// <summary>Contiguous NCHW, PyTorch's default: the input is transposed once per batch and fc6's rows are
    /// reordered at load to the NCHW flatten order.</summary>
    Nchw,
}

/// <summary>
/// BVLC AlexNet with TorchSharp's functional ops, float32 on the CPU, as fast as idiomatic TorchSharp makes
/// it: the peer the engine's benchmarks are measured against. Same semantics as <see cref="AlexNetModel"/>
/// (docs/model.md): the same weights, input and outputs, LRN with TensorFlow's parameters, no dropout.
/// <para>
/// The weights are converted once, at <see cref="Create"/>, to the layout of <see cref="Layout"/>; the input
/// tensor (N×227×227×3, NHWC) is allocated once for <see cref="MaxBatch"/> images and filled in place; every
/// pass runs under inference mode, so no autograd state is recorded. What remains per pass is libtorch's own
/// allocation of each operation's output (TorchSharp has no preallocated <c>out=</c> forms of these ops).
/// </para>
/// <para>
/// The default, <see cref="TorchLayout.ChannelsLast"/>, was as fast or faster than NCHW for every operation on
/// AlexNet's real shapes but conv1 on the build machine, the pools about 14× (docs/performance.md), and it
/// avoids libtorch 2.10's wrong float32 NCHW convolutions on some CPUs and shapes (docs/platform.md).
/// </para>
/// </summary>
public sealed class TorchSharpAlexNet : ICpuAlexNet
{
    public const int InputSize = AlexNetModel.InputSize;
    public const int InputChannels = AlexNetModel.InputChannels;

    private readonly Tensor _input;
    private readonly Tensor[] _weights = new Tensor[8];
    private readonly Tensor[] _biases = new Tensor[8];
    private readonly LayerSpec[] _specs;
    private readonly long[][] _convolutionPadding = new long[5][];
    private readonly long[][] _convolutionStrides = new long[5][];
    private readonly long _lrnSize;
    private readonly double _lrnAlpha;
    private Tensor? _logits, _probabilities;
    private int _lastBatch;
    private bool _disposed;

    private TorchSharpAlexNet(AlexNetWeights weights, int maxBatch, LrnParameters lrn, TorchLayout layout)
    {
        MaxBatch = maxBatch;
        Lrn = lrn;
        Layout = layout;
        _specs = [.. weights.Architecture.Layers];
        NumClasses = weights.NumClasses;
        // PyTorch's LRN divides alpha by the window size (Caffe's convention); TensorFlow's does not.
        _lrnSize = 2L * lrn.Radius + 1;
        _lrnAlpha = (double)lrn.Alpha * _lrnSize;
        try
        {
            using var scope = NewDisposeScope();
            for (int i = 0; i < 8; i++)
            {
                LayerWeights layer = weights.Layers[i];
                _weights[i] = (i < 5 ? ConvolutionWeight(layer, layout) : i == 5 ? Fc6Weight(layer, layout) : FullyConnectedWeight(layer))
                    .DetachFromDisposeScope();
                _biases[i] = tensor(layer.Bias).DetachFromDisposeScope();
            }
            _input = zeros([maxBatch, InputSize, InputSize, InputChannels], ScalarType.Float32).DetachFromDisposeScope();
        }
        catch
        {
            Dispose();
            throw;
        }
        for (int i = 0; i < 5; i++)
        {
            // Stride 4 and no padding for conv1 (VALID); SAME at stride 1 with odd kernels for the rest.
            int k = _specs[i].WeightShape[0];
            _convolutionStrides[i] = i == 0 ? [4, 4] : [1, 1];
            _convolutionPadding[i] = i == 0 ? [0, 0] : [k / 2, k / 2];
        }
    }

    /// <summary>
    /// Converts <paramref name="weights"/> (BVLC AlexNet's shapes, or an <see cref="AlexNetArchitecture"/> of the
    /// same geometry) for batches of up to <paramref name="maxBatch"/> images.
    /// </summary>
    public static TorchSharpAlexNet Create(AlexNetWeights weights, int maxBatch, LrnParameters? lrn = null,
        TorchLayout layout = TorchLayout.ChannelsLast)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (maxBatch < 1) throw new AlexNetException($"the maximum batch must be 1 or more, not {maxBatch}");
        LrnParameters parameters = lrn ?? LrnParameters.Default;
        parameters.Validate();
        if (weights.Architecture.Layers.Count != 8 || weights.Conv1.WeightShape[2] != InputChannels)
            throw new AlexNetException($"TorchSharp's AlexNet takes 8 layers over {InputChannels}-channel images; these weights have {weights.Architecture.Layers.Count} layers and {weights.Conv1.WeightShape[2]} input channels");
        return new TorchSharpAlexNet(weights, maxBatch, parameters, layout);
    }

    public int MaxBatch { get; }

    public int NumClasses { get; }

    public LrnParameters Lrn { get; }

    public TorchLayout Layout { get; }

    /// <summary>The threads libtorch runs its operations on (its default: one per core).</summary>
    public static int Threads => get_num_threads();

    /// <summary>The input of the next pass, [MaxBatch, 227, 227, 3] (NHWC, BGR, mean subtracted): fill it in
    /// place and call <see cref="Run"/>, or let <see cref="Forward"/> copy the images in.</summary>
    public Tensor InputTensor => _input;

    // ---- weight conversion, once at load ----

    /// <summary>HWIO (kh, kw, cin/groups, cout) to PyTorch's OIHW; with channels-last, stored OHWI.</summary>
    private static Tensor ConvolutionWeight(LayerWeights layer, TorchLayout layout)
    {
        int[] s = layer.WeightShape;
        Tensor hwio = tensor(layer.Weight, [s[0], s[1], s[2], s[3]]);
        return layout == TorchLayout.ChannelsLast
            ? hwio.permute(3, 0, 1, 2).contiguous().permute(0, 3, 1, 2)
            : hwio.permute(3, 2, 0, 1).contiguous();
    }

    /// <summary>(in, out) to F.linear's (out, in).</summary>
    private static Tensor FullyConnectedWeight(LayerWeights layer) =>
        tensor(layer.Weight, [layer.WeightShape[0], layer.WeightShape[1]]).t().contiguous();

    /// <summary>fc6 as F.linear wants it, its columns in the order pool5 flattens in: the file's NHWC order,
    /// (h·6 + w)·C + c, as it stands for channels-last, reordered to c·36 + h·6 + w for NCHW.</summary>
    private Tensor Fc6Weight(LayerWeights layer, TorchLayout layout)
    {
        if (layout == TorchLayout.ChannelsLast) return FullyConnectedWeight(layer);
        int channels = _specs[4].OutputChannels, outputs = layer.WeightShape[1];
        long pixels = layer.WeightShape[0] / channels;
        int side = (int)Math.Round(Math.Sqrt(pixels));
        return tensor(layer.Weight, [side, side, channels, outputs]).permute(3, 2, 0, 1).reshape(outputs, -1).contiguous();
    }

    // ---- one operation at a time, for benchmarks ----

    /// <summary>
    /// An NCHW activation of <paramref name="batch"/>×<paramref name="channels"/>×<paramref name="height"/>×<paramref name="width"/>
    /// from floats in NCHW order, stored in this network's layout (a new tensor; the caller disposes it).
    /// </summary>
    public Tensor Activation(ReadOnlySpan<float> nchw, int batch, int channels, int height, int width)
    {
        long count = (long)batch * channels * height * width;
        if (nchw.Length != count)
            throw new AlexNetException($"{batch}×{channels}×{height}×{width} needs {count} floats, not {nchw.Length}");
        using var scope = NewDisposeScope();
        Tensor t = tensor(nchw.ToArray(), [batch, channels, height, width]);
        if (Layout == TorchLayout.ChannelsLast) t = t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        return t.MoveToOuterDisposeScope();
    }

    /// <summary>conv<paramref name="index"/>+1 with its bias and ReLU (index 0…4; groups as the weights say).</summary>
    public Tensor Convolution(int index, Tensor x)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)index, 4u, nameof(index));
        return F.conv2d(x, _weights[index], _biases[index], _convolutionStrides[index], _convolutionPadding[index],
            groups: _specs[index].Groups).relu_();
    }

    /// <summary>Local response normalisation across channels with <see cref="Lrn"/>'s TensorFlow parameters.</summary>
    public Tensor Normalize(Tensor x) => F.local_response_norm(x, _lrnSize, _lrnAlpha, Lrn.Beta, Lrn.Bias);

    /// <summary>AlexNet's max pooling: 3×3 windows, stride 2, no padding.</summary>
    public static Tensor MaxPool(Tensor x) => F.max_pool2d(x, kernel_size: 3, stride: 2);

    /// <summary>pool5 [N, C, 6, 6] flattened to fc6's input [N, C·36], in the order fc6's weights were converted to
    /// (no copy in either layout).</summary>
    public Tensor Flatten(Tensor pool5) =>
        Layout == TorchLayout.ChannelsLast ? pool5.permute(0, 2, 3, 1).reshape(pool5.shape[0], -1) : pool5.reshape(pool5.shape[0], -1);

    /// <summary>fc<paramref name="index"/>+1 (index 5…7): x·W + b, with ReLU for fc6 and fc7; fc8 gives the logits.</summary>
    public Tensor FullyConnected(int index, Tensor x)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(index, 5);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, 7);
        Tensor y = F.linear(x, _weights[index], _biases[index]);
        return index < 7 ? y.relu_() : y;
    }

    /// <summary>Class probabilities of logits [N, classes].</summary>
    public static Tensor Softmax(Tensor logits) => F.softmax(logits, 1);

    // ---- the forward pass ----

    /// <summary>Copies <paramref name="images"/> (N×227×227×3 floats, NHWC) into <see cref="InputTensor"/> and runs
    /// the network; read the results with <see cref="ReadProbabilities"/> and <see cref="ReadLogits"/>.</summary>
    public void Forward(ReadOnlySpan<float> images, int count)
    {
        CheckBatch(count);
        long floats = (long)count * AlexNetModel.InputFloatsPerImage;
        if (images.Length != floats)
            throw new AlexNetException($"{count} images need {floats} floats (227×227×3 each), but {images.Length} were given");
        _input.data<float>().CopyFrom(images, 0, 0);
        Run(count);
    }

    /// <summary>Runs the network on the first <paramref name="count"/> images of <see cref="InputTensor"/>.
    /// Synchronous: the results are computed when it returns.</summary>
    public void Run(int count)
    {
        CheckBatch(count);
        using IDisposable inference = inference_mode(true);
        using var scope = NewDisposeScope();
        Tensor x = _input.narrow(0, 0, count).permute(0, 3, 1, 2);
        if (Layout == TorchLayout.Nchw) x = x.contiguous();
        x = MaxPool(Normalize(Convolution(0, x)));
        x = MaxPool(Normalize(Convolution(1, x)));
        x = MaxPool(Convolution(4, Convolution(3, Convolution(2, x))));
        x = FullyConnected(6, FullyConnected(5, Flatten(x)));
        Tensor logits = FullyConnected(7, x);
        Tensor probabilities = Softmax(logits);
        _logits?.Dispose();
        _probabilities?.Dispose();
        _logits = logits.DetachFromDisposeScope();
        _probabilities = probabilities.DetachFromDisposeScope();
        _lastBatch = count;
    }

    /// <summary>Copies the class probabilities of the last pass, [N][classes].</summary>
    public void ReadProbabilities(Span<float> destination) => Read(_probabilities, destination);

    /// <summary>Copies the logits (fc8, bias included) of the last pass, [N][classes].</summary>
    public void ReadLogits(Span<float> destination) => Read(_logits, destination);

    /// <summary>Class probabilities of <paramref name="count"/> images, [N][classes] (allocates the result).</summary>
    public float[] Predict(ReadOnlySpan<float> images, int count)
    {
        Forward(images, count);
        var result = new float[count * NumClasses];
        ReadProbabilities(result);
        return result;
    }

    private void Read(Tensor? source, Span<float> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (source is null) throw new InvalidOperationException("no forward pass has run yet");
        int count = _lastBatch * NumClasses;
        if (destination.Length < count)
            throw new ArgumentException($"{_lastBatch} images × {NumClasses} classes need {count} floats, the destination holds {destination.Length}", nameof(destination));
        source.data<float>().CopyTo(destination[..count], 0, 0);
    }

    private void CheckBatch(int count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (count < 1 || count > MaxBatch)
            throw new AlexNetException($"a batch of {count} images: the network was built for 1 to {MaxBatch}; build it with a larger maximum batch");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _input?.Dispose();
        foreach (Tensor? t in _weights) t?.Dispose();
        foreach (Tensor? t in _biases) t?.Dispose();
        _logits?.Dispose();
        _probabilities?.Dispose();
    }
}
