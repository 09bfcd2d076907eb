using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Training;

/// <summary>
/// Training of any set of AlexNet's layers, from the input of the lowest trained one: everything below it is frozen,
/// so its output (the trained part's input) is computed once per image elsewhere (<see cref="InputLayer"/> names it:
/// an exported activation of <see cref="AlexNetModel.Features"/>, or the preprocessed image for conv1) and handed to
/// <see cref="Step"/>. When only fully connected layers train this is the <see cref="FullyConnectedHead"/> on pool5;
/// when a convolution trains, the convolutions from it up run here too, forward with every activation kept (bias and
/// ReLU, LRN and pooling as separate kernels: backward needs the normalised tensors the fused forward never writes),
/// then backward layer by layer: pool5's gradient from the head, max-pool backward, ReLU backward, the convolution's
/// dW and dX (lowering + GEMMs, the groups as strided batches), LRN backward, and SGD for each trained layer.
/// Activations [C][N][H][W]; convolution weights in the engine's [cout][(ci·kh + i)·kw + j] on the device, HWIO when
/// exported. FP32. Every buffer is allocated here, once.
/// </summary>
public sealed class NetworkTrainer : IDisposable
{
    private readonly ComputeDevice _device;
    private readonly ComputeStream _stream;
    private readonly List<IDisposable> _owned = [];
    private readonly FullyConnectedHead _head;
    private readonly NetworkKernels? _kernels;
    private readonly BackwardKernels? _backward;
    private readonly ConvolutionBackward? _convBackward;
    private readonly NetworkPlan _plan;
    private readonly AlexNetWeights _initial;
    private readonly LrnParameters _lrn;
    private readonly int _lowest; // the lowest trained layer, 0…7 (conv1…fc8)
    private readonly bool[] _trained = new bool[8];
    // Per convolution i ≥ _lowest: its input, its ReLU output r, for conv1/conv2 the normalised n and pooled p; their gradients.
    private readonly DeviceBuffer<float>?[] _relu = new DeviceBuffer<float>?[5], _norm = new DeviceBuffer<float>?[5], _pool = new DeviceBuffer<float>?[5];
    private readonly DeviceBuffer<float>?[] _reluGrad = new DeviceBuffer<float>?[5], _normGrad = new DeviceBuffer<float>?[5], _poolGrad = new DeviceBuffer<float>?[5];
    private readonly DeviceBuffer<float>?[] _weights = new DeviceBuffer<float>?[5], _biases = new DeviceBuffer<float>?[5];
    private readonly DeviceBuffer<float>?[] _weightGrads = new DeviceBuffer<float>?[5], _biasGrads = new DeviceBuffer<float>?[5];
    private readonly DeviceBuffer<float>?[] _weightVelocity = new DeviceBuffer<float>?[5], _biasVelocity = new DeviceBuffer<float>?[5];
    private readonly DeviceBuffer<float>? _input, _staging, _workspace;
    private bool _disposed;

    /// <summary>
    /// Uploads <paramref name="weights"/>' layers from the lowest of <paramref name="trainedLayers"/> up, with
    /// buffers for batches of up to <paramref name="maxBatch"/>; the layers named train (momentum from zero), the
    /// others between them pass gradients through unchanged.
    /// </summary>
    public NetworkTrainer(ComputeDevice device, AlexNetWeights weights, IReadOnlyCollection<string> trainedLayers, int maxBatch, float keepProbability,
        LrnParameters? lrn = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(trainedLayers);
        if (trainedLayers.Count == 0) throw new AlexNetException("name at least one layer to train");
        foreach (string layer in trainedLayers)
        {
            int index = AlexNetArchitecture.LayerNames.ToList().IndexOf(layer);
            if (index < 0) throw new AlexNetException($"'{layer}' is not a layer with weights; layers: {string.Join(", ", AlexNetArchitecture.LayerNames)}");
            _trained[index] = true;
        }
        _lowest = Array.IndexOf(_trained, true);
        _device = device;
        _stream = device.DefaultStream;
        _initial = weights;
        _lrn = lrn ?? LrnParameters.Default;
        MaxBatch = maxBatch;
        _plan = NetworkPlan.Create(weights.Architecture, maxBatch, AlexNetOptions.DefaultWorkspaceBytes);
        InputLayer = InputLayerFor(_lowest);
        try
        {
            string[] headTrained = [.. FullyConnectedHead.LayerNames.Where(trainedLayers.Contains)];
            _head = Own(new FullyConnectedHead(device, weights, _plan.Activation("pool5"), headTrained, maxBatch, keepProbability, inputGradient: _lowest < 5));
            if (_lowest < 5)
            {
                _kernels = Own(new NetworkKernels(device));
                _backward = Own(new BackwardKernels(device));
                _convBackward = Own(new ConvolutionBackward(device));
                _workspace = Own(device.Allocate<float>(Math.Max(1, _plan.WorkspaceFloats)));
                ConvolutionPlan first = _plan.Convolutions[_lowest];
                _input = Own(device.Allocate<float>((long)maxBatch * first.InputChannels * first.InputSize * first.InputSize));
                if (_lowest == 0) _staging = Own(device.Allocate<float>((long)maxBatch * AlexNetModel.InputFloatsPerImage));
                for (int i = _lowest; i < 5; i++)
                {
                    ConvolutionPlan p = _plan.Convolutions[i];
                    long outputs = (long)maxBatch * p.OutputChannels * p.OutputPixels;
                    _relu[i] = Own(device.Allocate<float>(outputs));
                    _reluGrad[i] = Own(device.Allocate<float>(outputs));
                    if (i < 2)
                    {
                        _norm[i] = Own(device.Allocate<float>(outputs));
                        _normGrad[i] = Own(device.Allocate<float>(outputs));
                        int pooled = PoolSize(p.OutputSize);
                        _pool[i] = Own(device.Allocate<float>((long)maxBatch * p.OutputChannels * pooled * pooled));
                        _poolGrad[i] = Own(device.Allocate<float>((long)maxBatch * p.OutputChannels * pooled * pooled));
                    }
                    LayerWeights layer = weights.Layers[i];
                    _weights[i] = Own(device.Upload<float>(AlexNetModel.ConvolutionRows(layer.Weight, layer.WeightShape, toEngine: true)));
                    _biases[i] = Own(device.Upload<float>(layer.Bias));
                    // Every convolution from the lowest up computes dW (the backward's API), trained or not; only the trained update.
                    _weightGrads[i] = Own(device.Allocate<float>(layer.Weight.Length));
                    _biasGrads[i] = Own(device.Allocate<float>(layer.Bias.Length));
                    if (!_trained[i]) continue;
                    _weightVelocity[i] = Own(device.Allocate<float>(layer.Weight.Length));
                    _biasVelocity[i] = Own(device.Allocate<float>(layer.Bias.Length));
                    _stream.Fill(_weightVelocity[i]!, 0f);
                    _stream.Fill(_biasVelocity[i]!, 0f);
                }
            }
            _stream.Synchronize();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private T Own<T>(T resource) where T : IDisposable
    {
        _owned.Add(resource);
        return resource;
    }

    private static int PoolSize(int size) => (size - 3) / 2 + 1;

    private static string InputLayerFor(int lowest) => lowest switch { 0 => "input", 1 => "pool1", 2 => "pool2", 3 => "conv3", 4 => "conv4", _ => "pool5" };

    /// <summary>The <see cref="InputLayer"/> a trainer of <paramref name="trainedLayers"/> starts from.</summary>
    public static string InputLayerFor(IEnumerable<string> trainedLayers) =>
        InputLayerFor(trainedLayers.Select(l => AlexNetArchitecture.LayerNames.ToList().IndexOf(l)).Where(i => i >= 0).DefaultIfEmpty(5).Min());

    public int MaxBatch { get; }

    public int NumClasses => _head.NumClasses;

    /// <summary>The activation the trained part starts from: "input" (the preprocessed image, 227×227×3 HWC), "pool1",
    /// "pool2", "conv3", "conv4" or "pool5", as <see cref="AlexNetModel.Features"/> exports it ([N][C][H][W]).</summary>
    public string InputLayer { get; }

    /// <summary>Floats of one image's input.</summary>
    public int InputFloats => _lowest switch
    {
        0 => AlexNetModel.InputFloatsPerImage,
        < 5 => _plan.Convolutions[_lowest].InputChannels * _plan.Convolutions[_lowest].InputSize * _plan.Convolutions[_lowest].InputSize,
        _ => _head.InputFloats,
    };

    /// <summary>
    /// One SGD step on <paramref name="count"/> images whose <see cref="InputLayer"/> is <paramref name="inputs"/>
    /// ([count][<see cref="InputFloats"/>], the export layout). As <see cref="FullyConnectedHead.Step"/>: the mean
    /// cross-entropy, dropout from <paramref name="dropoutSeed"/>; each image's loss in <paramref name="losses"/>. Waits.
    /// </summary>
    public double Step(ReadOnlySpan<float> inputs, ReadOnlySpan<int> labels, int count, SgdStep sgd, ulong dropoutSeed, Span<float> losses)
    {
        if (_lowest >= 5) return _head.Step(inputs, labels, count, sgd, dropoutSeed, losses);
        Upload(inputs, count);
        ForwardConvolutions(count);
        _head.QueueForwardBackward(labels, count, dropoutSeed);
        BackwardConvolutions(count);
        _head.QueueUpdate(sgd);
        for (int i = _lowest; i < 5; i++)
        {
            if (!_trained[i]) continue;
            _backward!.SgdMomentum(_stream, _weights[i]!, _weightVelocity[i]!, _weightGrads[i]!, (int)_weights[i]!.Length, sgd.LearningRate, sgd.Momentum, sgd.WeightDecay);
            _backward.SgdMomentum(_stream, _biases[i]!, _biasVelocity[i]!, _biasGrads[i]!, (int)_biases[i]!.Length, sgd.LearningRate, sgd.Momentum, 0f);
        }
        return _head.ReadLosses(count, losses);
    }

    /// <summary>fc8's logits without dropout for <paramref name="count"/> images' <see cref="InputLayer"/>; waits.</summary>
    public void Evaluate(ReadOnlySpan<float> inputs, int count, Span<float> logits)
    {
        if (_lowest >= 5)
        {
            _head.Evaluate(inputs, count, logits);
            return;
        }
        Upload(inputs, count);
        ForwardConvolutions(count);
        _head.EvaluateInput(count, logits);
    }

    /// <summary>The inputs into [C][N][H][W] on the device: the image through the input kernel, an activation permuted here.</summary>
    private void Upload(ReadOnlySpan<float> inputs, int count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (count <= 0 || count > MaxBatch) throw new AlexNetException($"a training batch holds 1…{MaxBatch} images, not {count}");
        long floats = (long)count * InputFloats;
        if (inputs.Length < floats) throw new AlexNetException($"{count} images need {floats} floats of {InputLayer}, not {inputs.Length}");
        if (_lowest == 0)
        {
            _stream.CopyToDevice(inputs[..(int)floats], _staging!);
            _kernels!.ConvertInput(_stream, _input!, _staging!, count, AlexNetModel.InputSize * AlexNetModel.InputSize, AlexNetModel.InputChannels);
            return;
        }
        ConvolutionPlan p = _plan.Convolutions[_lowest];
        int channels = p.InputChannels, pixels = p.InputSize * p.InputSize;
        var permuted = new float[floats];
        for (int n = 0; n < count; n++)
        for (int c = 0; c < channels; c++)
            inputs.Slice((n * channels + c) * pixels, pixels).CopyTo(permuted.AsSpan((c * count + n) * pixels, pixels));
        _stream.CopyToDevice<float>(permuted, _input!);
    }

    private DeviceBuffer<float> ConvolutionInput(int i) => i == _lowest ? _input! : i <= 2 ? _pool[i - 1]! : _relu[i - 1]!;

    private void ForwardConvolutions(int n)
    {
        ComputeStream s = _stream;
        for (int i = _lowest; i < 5; i++)
        {
            ConvolutionPlan p = _plan.Convolutions[i];
            DeviceBuffer<float> input = ConvolutionInput(i), output = _relu[i]!;
            int pixels = p.OutputPixels, groupK = p.GroupK, groupOut = p.GroupOutputChannels;
            long outputRow = (long)n * pixels;
            for (int image0 = 0; image0 < n; image0 += p.ChunkImages)
            {
                int images = Math.Min(p.ChunkImages, n - image0), columns = images * pixels;
                _kernels!.Im2Col(s, _workspace!, input, p.InputChannels, n, p.InputSize, p.InputSize, image0, images,
                    p.KernelSize, p.KernelSize, p.Stride, p.Pad, p.OutputSize, p.OutputSize);
                s.GemmBatched(MatrixView.RowMajor(_weights[i]!, groupOut, groupK), MatrixView.RowMajor(_workspace!, groupK, columns),
                    MatrixView.RowMajor(output, groupOut, columns, offset: (long)image0 * pixels, leadingDimension: (int)outputRow),
                    new GemmBatch(p.Groups, (long)groupOut * groupK, (long)groupK * columns, groupOut * outputRow));
            }
            _kernels!.BiasRelu(s, output, _biases[i]!, 1, p.OutputChannels, n * pixels, relu: true);
            int size = p.OutputSize, pooled = PoolSize(size), outPixels = pooled * pooled;
            if (i < 2)
            {
                _kernels.Lrn(s, _norm[i]!, output, p.OutputChannels, n * size * size, _lrn);
                _kernels.MaxPool(s, _pool[i]!, _norm[i]!, p.OutputChannels, n, size, size, pooled, pooled, 3, 2, n * outPixels, outPixels);
            }
            else if (i == 4)
            {
                // pool5 into the head's input, [N][C][6][6].
                _kernels.MaxPool(s, _head.Input, output, p.OutputChannels, n, size, size, pooled, pooled, 3, 2, outPixels, p.OutputChannels * outPixels);
            }
        }
    }

    private void BackwardConvolutions(int n)
    {
        ComputeStream s = _stream;
        for (int i = 4; i >= _lowest; i--)
        {
            ConvolutionPlan p = _plan.Convolutions[i];
            int size = p.OutputSize, pooled = PoolSize(size), outPixels = pooled * pooled, channels = p.OutputChannels;
            DeviceBuffer<float> dr = _reluGrad[i]!;
            if (i == 4)
                _convBackward!.MaxPoolBackward(s, dr, _head.InputGradient, _relu[i]!, channels, n, size, size, pooled, pooled, 3, 2, outPixels, channels * outPixels);
            else if (i < 2)
            {
                // dr[i] holds, from conv(i+1)'s dX, the gradient at pool(i)'s output: back through the pool and the LRN.
                _convBackward!.MaxPoolBackward(s, _normGrad[i]!, _poolGrad[i]!, _norm[i]!, channels, n, size, size, pooled, pooled, 3, 2, n * outPixels, outPixels);
                _convBackward.LrnBackward(s, dr, _normGrad[i]!, _relu[i]!, channels, n * size * size, _lrn);
            }
            _backward!.ReluBackward(s, dr, _relu[i]!, n * channels * p.OutputPixels);
            DeviceBuffer<float>? gradInput = i == _lowest ? null : i <= 2 ? _poolGrad[i - 1] : _reluGrad[i - 1];
            _convBackward!.ConvolutionGradients(s, p, n, ConvolutionInput(i), _weights[i]!, dr, _weightGrads[i]!, gradInput, _workspace!);
            if (_trained[i]) _backward.BiasGradient(s, _biasGrads[i]!, dr, 1, channels, n * p.OutputPixels);
        }
    }

    /// <summary>The weights as they stand, in the file's layouts (waits).</summary>
    public AlexNetWeights ExportWeights()
    {
        AlexNetWeights head = _head.ExportWeights();
        var layers = new List<LayerWeights>(head.Layers);
        for (int i = _lowest; i < 5; i++)
        {
            if (!_trained[i]) continue;
            LayerWeights before = _initial.Layers[i];
            float[] w = AlexNetModel.ConvolutionRows(_device.Download(_weights[i]!), before.WeightShape, toEngine: false);
            layers[i] = new LayerWeights(before.Spec, w, _device.Download(_biases[i]!), "trained");
        }
        return new AlexNetWeights(_initial.Architecture, layers);
    }

    /// <summary>The momentum of every trained layer ("conv5.weight" in HWIO, "fc6.bias", …).</summary>
    public IReadOnlyDictionary<string, float[]> ExportVelocity()
    {
        var result = new Dictionary<string, float[]>(_head.ExportVelocity(), StringComparer.Ordinal);
        for (int i = _lowest; i < 5; i++)
        {
            if (!_trained[i]) continue;
            string name = AlexNetArchitecture.LayerNames[i];
            result[name + ".weight"] = AlexNetModel.ConvolutionRows(_device.Download(_weightVelocity[i]!), _initial.Layers[i].WeightShape, toEngine: false);
            result[name + ".bias"] = _device.Download(_biasVelocity[i]!);
        }
        return result;
    }

    /// <summary>Restores what <see cref="ExportVelocity"/> gave.</summary>
    public void ImportVelocity(IReadOnlyDictionary<string, float[]> velocity)
    {
        ArgumentNullException.ThrowIfNull(velocity);
        _head.ImportVelocity(velocity);
        for (int i = _lowest; i < 5; i++)
        {
            if (!_trained[i]) continue;
            string name = AlexNetArchitecture.LayerNames[i];
            float[] weight = FullyConnectedHead.Velocity(velocity, name + ".weight", _weightVelocity[i]!);
            _stream.CopyToDevice<float>(AlexNetModel.ConvolutionRows(weight, _initial.Layers[i].WeightShape, toEngine: true), _weightVelocity[i]!);
            _stream.CopyToDevice<float>(FullyConnectedHead.Velocity(velocity, name + ".bias", _biasVelocity[i]!), _biasVelocity[i]!);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
    }
}
