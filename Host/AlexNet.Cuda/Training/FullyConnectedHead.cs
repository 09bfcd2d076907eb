using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Training;

/// <summary>The optimiser's settings for one step: TensorFlow's MomentumOptimizer with L2 weight decay on the weights
/// (not the biases) folded into the gradient (see sgd.cu).</summary>
public readonly record struct SgdStep(float LearningRate, float Momentum, float WeightDecay);

/// <summary>
/// AlexNet's fully connected head, fc6 → fc7 → fc8, trained on pool5 features: the part of the network that
/// fine-tuning trains in the common recipe (the TensorFlow fine-tuning code trains fc6…fc8 with dropout on fc6
/// and fc7). The frozen convolutional part runs once per image elsewhere (its pool5 output does not change while
/// only these layers train), so one step here is the whole cost of a training batch.
/// <para>
/// Layouts: pool5 features [N][C·H·W] in the engine's [C][H][W] order (what <see cref="AlexNetModel.Features"/>
/// exports), fc weights [in][out] row-major as in the weight file (fc6's rows in the engine's order on the
/// device, the file's when exported), activations [N][F]. Forward of layer l: Y = X·W (GEMM), then bias, ReLU and
/// dropout in one kernel (bias only for fc8). Backward, from the loss's gradient G at fc8's logits:
/// dW = Xᵀ·G, db = Σ_rows G, and for the layer below dX = G·Wᵀ masked by ReLU (where the stored output is 0) and
/// dropout (the forward's own Philox mask, scaled by 1/keep). Only the layers from the lowest trained one up run
/// backward; a frozen layer above it passes the gradient through but is not updated. Every buffer is allocated
/// here, once: a step allocates nothing.
/// </para>
/// </summary>
public sealed class FullyConnectedHead : IDisposable
{
    /// <summary>The head's layers, in network order.</summary>
    public static IReadOnlyList<string> LayerNames { get; } = ["fc6", "fc7", "fc8"];

    private readonly ComputeDevice _device;
    private readonly ComputeStream _stream;
    private readonly NetworkKernels _kernels;
    private readonly BackwardKernels _backward;
    private readonly List<IDisposable> _owned = [];
    private readonly int[] _widths; // inputs of fc6, then the outputs of fc6, fc7, fc8
    private readonly int _pool5Channels, _pool5Pixels;
    private readonly bool[] _trained = new bool[3];
    private readonly int _lowest; // the lowest trained layer (0 = fc6); backward runs from fc8 down to it
    private readonly DeviceBuffer<float>[] _weights = new DeviceBuffer<float>[3], _biases = new DeviceBuffer<float>[3];
    private readonly DeviceBuffer<float>?[] _weightGrads = new DeviceBuffer<float>?[3], _biasGrads = new DeviceBuffer<float>?[3];
    private readonly DeviceBuffer<float>?[] _weightVelocity = new DeviceBuffer<float>?[3], _biasVelocity = new DeviceBuffer<float>?[3];
    // _activations[0] is the input (pool5), [1] and [2] fc6's and fc7's outputs, [3] the logits; _grads likewise.
    private readonly DeviceBuffer<float>[] _activations = new DeviceBuffer<float>[4];
    private readonly DeviceBuffer<float>?[] _grads = new DeviceBuffer<float>?[4];
    private readonly DeviceBuffer<int> _labels;
    private readonly DeviceBuffer<float> _loss;
    private readonly AlexNetWeights _initial;
    private int _count;
    private bool _disposed;

    /// <summary>
    /// Uploads fc6…fc8 of <paramref name="weights"/> and allocates the buffers of batches up to
    /// <paramref name="maxBatch"/> images; <paramref name="trainedLayers"/> (a non-empty subset of fc6, fc7, fc8)
    /// get gradients and momentum (zero). <paramref name="pool5"/> is the plan's pool5 (fc6's input shape).
    /// </summary>
    public FullyConnectedHead(ComputeDevice device, AlexNetWeights weights, ActivationPlan pool5, IReadOnlyCollection<string> trainedLayers,
        int maxBatch, float keepProbability, bool inputGradient = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(pool5);
        ArgumentNullException.ThrowIfNull(trainedLayers);
        if (maxBatch <= 0) throw new AlexNetException($"the head's batch must be positive, not {maxBatch}");
        if (!(keepProbability > 0 && keepProbability <= 1))
            throw new AlexNetException($"keep probability must be in (0, 1], not {keepProbability}");
        foreach (string layer in trainedLayers)
        {
            int index = LayerIndex(layer);
            _trained[index] = true;
        }
        if (trainedLayers.Count == 0 && !inputGradient) throw new AlexNetException("the head trains at least one of fc6, fc7, fc8");
        // With the input's gradient asked for (a convolution below trains), backward runs through every layer.
        _lowest = inputGradient ? -1 : Array.IndexOf(_trained, true);
        _device = device;
        _stream = device.DefaultStream;
        _initial = weights;
        MaxBatch = maxBatch;
        KeepProbability = keepProbability;
        _pool5Channels = pool5.Channels;
        _pool5Pixels = pool5.Height * pool5.Width;
        _widths = [weights.Fc6.WeightShape[0], weights.Fc6.WeightShape[1], weights.Fc7.WeightShape[1], weights.Fc8.WeightShape[1]];
        if (_widths[0] != pool5.ElementsPerImage)
            throw new AlexNetException($"fc6 takes {_widths[0]} inputs but pool5 gives {pool5.Channels}×{pool5.Height}×{pool5.Width} = {pool5.ElementsPerImage}");
        try
        {
            _kernels = new NetworkKernels(device);
            _owned.Add(_kernels);
            _backward = new BackwardKernels(device);
            _owned.Add(_backward);
            for (int l = 0; l < 3; l++)
            {
                LayerWeights layer = weights.Layers[5 + l];
                float[] w = l == 0 ? AlexNetModel.Fc6Rows(layer.Weight, _pool5Channels, _pool5Pixels, _widths[1], toEngine: true) : layer.Weight;
                _weights[l] = Own(device.Upload<float>(w));
                _biases[l] = Own(device.Upload<float>(layer.Bias));
                if (!_trained[l]) continue;
                _weightGrads[l] = Own(device.Allocate<float>(w.Length));
                _biasGrads[l] = Own(device.Allocate<float>(layer.Bias.Length));
                _weightVelocity[l] = Own(device.Allocate<float>(w.Length));
                _biasVelocity[l] = Own(device.Allocate<float>(layer.Bias.Length));
                _stream.Fill(_weightVelocity[l]!, 0f);
                _stream.Fill(_biasVelocity[l]!, 0f);
            }
            for (int i = 0; i < 4; i++)
            {
                _activations[i] = Own(device.Allocate<float>((long)maxBatch * _widths[i]));
                // The gradient at layer i's output exists where backward passes through: the logits always, the
                // hidden layers from the lowest trained one's output up (its input's gradient is never needed).
                if (i == 3 || i > _lowest) _grads[i] = Own(device.Allocate<float>((long)maxBatch * _widths[i]));
                // (with the input's gradient, _lowest is −1 and _grads[0] is pool5's gradient)
            }
            _labels = Own(device.Allocate<int>(maxBatch));
            _loss = Own(device.Allocate<float>(maxBatch));
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

    /// <summary>0, 1, 2 for fc6, fc7, fc8; anything else is a one-line error.</summary>
    public static int LayerIndex(string layer) => layer switch
    {
        "fc6" => 0,
        "fc7" => 1,
        "fc8" => 2,
        _ => throw new AlexNetException($"the fully connected head has fc6, fc7 and fc8, not '{layer}'"),
    };

    public int MaxBatch { get; }

    public float KeepProbability { get; }

    public int NumClasses => _widths[3];

    /// <summary>Floats of one image's input (pool5).</summary>
    public int InputFloats => _widths[0];

    public bool IsTrained(string layer) => _trained[LayerIndex(layer)];

    /// <summary>
    /// One SGD step on <paramref name="count"/> images: <paramref name="features"/> [count][<see cref="InputFloats"/>]
    /// and <paramref name="labels"/> in [0, classes). The loss is the mean softmax cross-entropy over the batch;
    /// dropout (when the keep probability is below 1) draws its masks from <paramref name="dropoutSeed"/>, so a
    /// step is a pure function of its inputs, the seed and the parameters. Writes each image's loss to
    /// <paramref name="losses"/> and returns their mean; waits for the step.
    /// </summary>
    public double Step(ReadOnlySpan<float> features, ReadOnlySpan<int> labels, int count, SgdStep sgd, ulong dropoutSeed, Span<float> losses)
    {
        CheckBatch(features, count);
        if (labels.Length < count) throw new AlexNetException($"a step of {count} images needs {count} labels, not {labels.Length}");
        if (losses.Length < count) throw new AlexNetException($"a step of {count} images writes {count} losses, not {losses.Length}");
        for (int i = 0; i < count; i++)
            if ((uint)labels[i] >= (uint)NumClasses)
                throw new AlexNetException($"label {labels[i]} of image {i} is not a class of this head (0…{NumClasses - 1})");
        _stream.CopyToDevice(features[..(count * InputFloats)], _activations[0]);
        QueueStep(labels, count, sgd, dropoutSeed);
        return ReadLosses(count, losses);
    }

    /// <summary>The device buffer the head reads its input from, [N][<see cref="InputFloats"/>]: the convolutions below
    /// write pool5 there when they train too.</summary>
    public DeviceBuffer<float> Input => _activations[0];

    /// <summary>pool5's gradient after <see cref="QueueForwardBackward"/>, [N][<see cref="InputFloats"/>]; only with
    /// the input's gradient asked for at construction.</summary>
    public DeviceBuffer<float> InputGradient => _grads[0] ?? throw new InvalidOperationException("this head was built without its input's gradient");

    /// <summary>A whole step on what <see cref="Input"/> holds: forward, backward, update.</summary>
    private void QueueStep(ReadOnlySpan<int> labels, int count, SgdStep sgd, ulong dropoutSeed)
    {
        QueueForwardBackward(labels, count, dropoutSeed);
        QueueUpdate(sgd);
    }

    /// <summary>Queues the forward pass (dropout from <paramref name="dropoutSeed"/>), the loss and every gradient
    /// (down to <see cref="InputGradient"/> when it exists) for the <paramref name="count"/> images in <see cref="Input"/>;
    /// nothing is updated yet.</summary>
    public void QueueForwardBackward(ReadOnlySpan<int> labels, int count, ulong dropoutSeed)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (count <= 0 || count > MaxBatch) throw new AlexNetException($"a batch of the head holds 1…{MaxBatch} images, not {count}");
        if (labels.Length < count) throw new AlexNetException($"a step of {count} images needs {count} labels, not {labels.Length}");
        for (int i = 0; i < count; i++)
            if ((uint)labels[i] >= (uint)NumClasses)
                throw new AlexNetException($"label {labels[i]} of image {i} is not a class of this head (0…{NumClasses - 1})");
        ComputeStream s = _stream;
        s.CopyToDevice(labels[..count], _labels);
        _count = count;
        Forward(count, dropoutSeed);
        int classes = NumClasses;
        _backward.SoftmaxCrossEntropyBackward(s, _grads[3]!, _loss, _activations[3], _labels, count, classes, 1f / count);
        for (int l = 2; l >= Math.Max(_lowest, 0); l--)
        {
            int inputs = _widths[l], outputs = _widths[l + 1];
            DeviceBuffer<float> g = _grads[l + 1]!;
            if (_trained[l])
            {
                // dW[in][out] = Xᵀ·G, db = the column sums of G.
                s.Gemm(MatrixView.RowMajor(_activations[l], count, inputs).T, MatrixView.RowMajor(g, count, outputs),
                    MatrixView.RowMajor(_weightGrads[l]!, inputs, outputs));
                _backward.BiasGradient(s, _biasGrads[l]!, g, count, outputs, 1);
            }
            if (l == _lowest) break;
            // dX = G·Wᵀ, then (above pool5) through the layer below's dropout and ReLU: its stored output is 0
            // wherever either cut it. pool5's gradient goes to the convolutions as it is.
            DeviceBuffer<float> dx = _grads[l]!;
            s.Gemm(MatrixView.RowMajor(g, count, outputs), MatrixView.RowMajor(_weights[l], inputs, outputs).T, MatrixView.RowMajor(dx, count, inputs));
            if (l == 0) break;
            _backward.ReluBackward(s, dx, _activations[l], count * inputs);
            if (KeepProbability < 1f)
                _backward.DropoutBackward(s, dx, count * inputs, KeepProbability, dropoutSeed, DropoutOffset(l - 1));
        }
    }

    /// <summary>Queues the SGD update of the trained layers with the gradients of the last <see cref="QueueForwardBackward"/>
    /// (after every gradient: dX of a layer read its weights before they change).</summary>
    public void QueueUpdate(SgdStep sgd)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ComputeStream s = _stream;
        for (int l = 0; l < 3; l++)
        {
            if (!_trained[l]) continue;
            _backward.SgdMomentum(s, _weights[l], _weightVelocity[l]!, _weightGrads[l]!, _widths[l] * _widths[l + 1],
                sgd.LearningRate, sgd.Momentum, sgd.WeightDecay);
            _backward.SgdMomentum(s, _biases[l], _biasVelocity[l]!, _biasGrads[l]!, _widths[l + 1], sgd.LearningRate, sgd.Momentum, 0f);
        }
    }

    /// <summary>Waits, copies the last step's per-image losses to <paramref name="losses"/> and returns their mean.</summary>
    public double ReadLosses(int count, Span<float> losses)
    {
        if (count != _count) throw new InvalidOperationException($"the last step had {_count} images, not {count}");
        if (losses.Length < count) throw new AlexNetException($"a step of {count} images writes {count} losses, not {losses.Length}");
        _stream.CopyToHost(_loss, losses[..count]);
        double sum = 0;
        for (int i = 0; i < count; i++) sum += losses[i];
        return sum / count;
    }

    /// <summary>fc8's logits for the <paramref name="count"/> images in <see cref="Input"/>, without dropout; waits.</summary>
    public void EvaluateInput(int count, Span<float> logits)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (count <= 0 || count > MaxBatch) throw new AlexNetException($"a batch of the head holds 1…{MaxBatch} images, not {count}");
        if (logits.Length < count * NumClasses) throw new AlexNetException($"{count} images have {count * NumClasses} logits; the destination holds {logits.Length}");
        Forward(count, dropoutSeed: null);
        _stream.CopyToHost(_activations[3], logits[..(count * NumClasses)]);
    }

    /// <summary>fc8's logits (bias added) for <paramref name="count"/> images, without dropout (inference), into
    /// <paramref name="logits"/> [count][classes]; waits.</summary>
    public void Evaluate(ReadOnlySpan<float> features, int count, Span<float> logits)
    {
        CheckBatch(features, count);
        if (logits.Length < count * NumClasses) throw new AlexNetException($"{count} images have {count * NumClasses} logits; the destination holds {logits.Length}");
        _stream.CopyToDevice(features[..(count * InputFloats)], _activations[0]);
        EvaluateInput(count, logits);
    }

    private void CheckBatch(ReadOnlySpan<float> features, int count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (count <= 0 || count > MaxBatch) throw new AlexNetException($"a batch of the head holds 1…{MaxBatch} images, not {count}");
        if (features.Length < (long)count * InputFloats)
            throw new AlexNetException($"{count} images need {(long)count * InputFloats} pool5 floats, not {features.Length}");
    }

    /// <summary>The forward pass; dropout on fc6 and fc7 with <paramref name="dropoutSeed"/> (null: none, inference).</summary>
    private void Forward(int count, ulong? dropoutSeed)
    {
        ComputeStream s = _stream;
        for (int l = 0; l < 3; l++)
        {
            int inputs = _widths[l], outputs = _widths[l + 1];
            DeviceBuffer<float> y = _activations[l + 1];
            s.Gemm(MatrixView.RowMajor(_activations[l], count, inputs), MatrixView.RowMajor(_weights[l], inputs, outputs), MatrixView.RowMajor(y, count, outputs));
            if (l == 2)
                _kernels.BiasRelu(s, y, _biases[l], count, outputs, 1, relu: false);
            else if (dropoutSeed is ulong seed && KeepProbability < 1f)
                _kernels.Dropout(s, y, count * outputs, KeepProbability, seed, DropoutOffset(l), _biases[l], outputs);
            else
                _kernels.BiasRelu(s, y, _biases[l], count, outputs, 1, relu: true);
        }
    }

    /// <summary>The Philox counter offset of fc6's (0) and fc7's dropout, the same as the model's forward pass.</summary>
    private static uint DropoutOffset(int layer) => layer == 0 ? 0u : AlexNetModel.Fc7DropoutOffset;

    /// <summary>The weights as they stand: fc6…fc8 downloaded (fc6's rows back in the file's order), the other
    /// layers as given to the constructor. Waits.</summary>
    public AlexNetWeights ExportWeights()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var layers = new List<LayerWeights>(_initial.Layers);
        for (int l = 0; l < 3; l++)
        {
            if (!_trained[l]) continue;
            LayerWeights before = _initial.Layers[5 + l];
            float[] w = _device.Download(_weights[l]);
            if (l == 0) w = AlexNetModel.Fc6Rows(w, _pool5Channels, _pool5Pixels, _widths[1], toEngine: false);
            layers[5 + l] = new LayerWeights(before.Spec, w, _device.Download(_biases[l]), "trained");
        }
        return new AlexNetWeights(_initial.Architecture, layers);
    }

    /// <summary>The momentum of each trained layer's weights and biases (fc6's rows in the file's order), by name
    /// "fc6.weight", "fc6.bias", …: the optimiser state a checkpoint keeps.</summary>
    public IReadOnlyDictionary<string, float[]> ExportVelocity()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
        for (int l = 0; l < 3; l++)
        {
            if (!_trained[l]) continue;
            float[] w = _device.Download(_weightVelocity[l]!);
            if (l == 0) w = AlexNetModel.Fc6Rows(w, _pool5Channels, _pool5Pixels, _widths[1], toEngine: false);
            result[LayerNames[l] + ".weight"] = w;
            result[LayerNames[l] + ".bias"] = _device.Download(_biasVelocity[l]!);
        }
        return result;
    }

    /// <summary>Restores the momentum <see cref="ExportVelocity"/> gave (a resumed run); every trained layer's two
    /// arrays must be there, with their sizes.</summary>
    public void ImportVelocity(IReadOnlyDictionary<string, float[]> velocity)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(velocity);
        for (int l = 0; l < 3; l++)
        {
            if (!_trained[l]) continue;
            float[] weight = Velocity(velocity, LayerNames[l] + ".weight", _weightVelocity[l]!);
            _stream.CopyToDevice<float>(l == 0 ? AlexNetModel.Fc6Rows(weight, _pool5Channels, _pool5Pixels, _widths[1], toEngine: true) : weight, _weightVelocity[l]!);
            _stream.CopyToDevice<float>(Velocity(velocity, LayerNames[l] + ".bias", _biasVelocity[l]!), _biasVelocity[l]!);
        }
    }

    /// <summary>The momentum array <paramref name="name"/> of an optimiser state, checked to fit <paramref name="buffer"/>.</summary>
    internal static float[] Velocity(IReadOnlyDictionary<string, float[]> velocity, string name, DeviceBuffer<float> buffer)
    {
        if (!velocity.TryGetValue(name, out float[]? values))
            throw new AlexNetException($"the optimiser state has no momentum for {name}");
        if (values.LongLength != buffer.Length)
            throw new AlexNetException($"the optimiser state's {name} has {values.LongLength} values; the layer has {buffer.Length}");
        return values;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        for (int i = _owned.Count - 1; i >= 0; i--) _owned[i].Dispose();
    }
}
