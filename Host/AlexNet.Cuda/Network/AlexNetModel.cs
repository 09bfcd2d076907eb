using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Network;

/// <summary>
/// BVLC AlexNet on one device, exactly as the reference TensorFlow model computes it (docs/model.md):
/// conv1 → ReLU → LRN → pool, conv2 (two groups) → ReLU → LRN → pool, conv3, conv4 and conv5 (two groups
/// each for 4 and 5) with ReLU, pool, fc6 and fc7 with ReLU (and dropout when training), fc8, softmax.
/// <para>
/// Everything is set up at load: the weights are converted once to the layouts the kernels want and
/// uploaded, every kernel is compiled, and every device buffer is allocated for <see cref="MaxBatch"/>
/// (<see cref="Plan"/>). A forward pass then only queues work on the device's default stream: no device
/// or managed allocation, no lazily created handle, no synchronisation — what CUDA graph capture needs.
/// </para>
/// <para>
/// Layout: activations of the convolutional part are channel-major with the batch inside,
/// <c>[C][N][H][W]</c>, so each convolution is one GEMM <c>out[Cout × N·H·W] = W[Cout × K] · col[K × N·H·W]</c>
/// (per workspace-sized chunk of images) and each group of conv2/4/5 is a contiguous block of channels,
/// lowered rows and filters: the two groups are one strided-batched GEMM. pool5 writes <c>[N][C·6·6]</c>,
/// which is fc6's input as it stands; fc6's weight rows are reordered at load from the file's NHWC
/// flatten order to that order. Fully connected activations are <c>[N][F]</c>.
/// </para>
/// </summary>
public sealed class AlexNetModel : IDisposable
{
    public const int InputSize = 227;
    public const int InputChannels = 3;

    /// <summary>Floats of one input image: 227 × 227 × 3 (HWC, BGR, mean subtracted).</summary>
    public const int InputFloatsPerImage = InputSize * InputSize * InputChannels;

    /// <summary>The layers whose activations can be read, in network order.</summary>
    public static IReadOnlyList<string> LayerNames { get; } =
        ["conv1", "norm1", "pool1", "conv2", "norm2", "pool2", "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8", "prob"];

    /// <summary>Dropout's counter offset for fc7, so its mask never repeats fc6's (fc6 uses 0..N·4096).</summary>
    internal const uint Fc7DropoutOffset = 1u << 31;

    private readonly ComputeDevice _device;
    private readonly ComputeStream _stream;
    private readonly NetworkKernels _kernels;
    private readonly DeviceBuffer<float> _staging;
    // Activations, the lowering and the weights are stored in the precision's format (floats, or 16-bit values);
    // the biases, the user's images and the probabilities are floats in every precision.
    private readonly DeviceBuffer _workspace;
    private readonly DeviceBuffer[] _arenas;
    private readonly DeviceBuffer[] _weights = new DeviceBuffer[8];
    private readonly DeviceBuffer<float>[] _biases = new DeviceBuffer<float>[8];
    // fc6's and fc7's biases as the GEMM epilogue takes them (in the activations' format: cuBLASLt's bias has D's type):
    // the FP32 biases themselves, or 16-bit copies.
    private readonly DeviceBuffer?[] _epilogueBiases = new DeviceBuffer?[2];
    private readonly DeviceBuffer<float>? _probabilities, _logits;
    private readonly ElementFormat _format;
    private readonly GemmMath _math;
    // conv1…conv5's biases on the host too: their activations leave the pass raw (the next kernel applies the
    // bias and ReLU), so exporting one applies them on the way out.
    private readonly Dictionary<string, float[]> _convolutionBiases = new(StringComparer.Ordinal);
    private readonly ActivationPlan[] _activations;
    // Where the last pass left fc8 and the probabilities: the fused pass skips norm1 and norm2, so its
    // activations alternate between the arenas differently from the plan's.
    private DeviceBuffer? _fc8Buffer;
    private DeviceBuffer<float>? _probBuffer;
    private static readonly string[] NormPoolSteps = ["norm1+pool1", "norm2+pool2"];
    private int _lastBatch;

    private AlexNetModel(ComputeDevice device, AlexNetWeights weights, AlexNetOptions options, NetworkPlan plan)
    {
        _device = device;
        _stream = device.DefaultStream;
        Options = options;
        Plan = plan;
        _activations = [.. plan.Activations];
        _format = Precisions.Storage(options.Precision);
        _math = Precisions.Math(options.Precision);
        var owned = new List<IDisposable>();
        try
        {
            _kernels = new NetworkKernels(device, null, _format);
            owned.Add(_kernels);
            FusesActivations = options.FuseActivations ?? AlexNetOptions.FusesActivationsByDefault(device);
            UsesGemmEpilogue = options.GemmEpilogue == GemmEpilogue.CublasLt && options.KeepProbability >= 1f;
            _staging = Track(device.Allocate<float>(plan.StagingFloats), owned);
            _workspace = Track(Allocate(device, _format, Math.Max(1, plan.WorkspaceFloats)), owned);
            _arenas = [Track(Allocate(device, _format, plan.ArenaFloats[0]), owned), Track(Allocate(device, _format, plan.ArenaFloats[1]), owned)];
            if (plan.ProbabilityFloats > 0)
            {
                _probabilities = Track(device.Allocate<float>(plan.ProbabilityFloats), owned);
                _logits = Track(device.Allocate<float>(plan.ProbabilityFloats), owned);
            }
            for (int i = 0; i < 8; i++)
            {
                LayerWeights layer = weights.Layers[i];
                float[] converted = i < 5 ? ConvolutionWeights(layer) : i == 5 ? Fc6Weights(layer, plan) : layer.Weight;
                // Weights in the precision's storage: converted once, here.
                _weights[i] = Track(device.Upload(converted, _format), owned);
                _biases[i] = Track(device.Upload<float>(layer.Bias), owned);
                if (UsesGemmEpilogue && i is 5 or 6)
                    _epilogueBiases[i - 5] = _format == ElementFormat.Float32 ? _biases[i] : Track(device.Upload(layer.Bias, _format), owned);
                if (i < 5) _convolutionBiases[plan.Convolutions[i].Name] = (float[])layer.Bias.Clone();
            }
        }
        catch
        {
            foreach (IDisposable d in owned) d.Dispose();
            throw;
        }
        device.Synchronize();
        GraphsOffReason = GraphsOff(device, options);
        _graphs = GraphsOffReason is null ? new ForwardGraphs<PassOutputs>(new StreamGraphRecorder(_stream), StreamPass) : null;
    }

    private static T Track<T>(T resource, List<IDisposable> owned) where T : IDisposable
    {
        owned.Add(resource);
        return resource;
    }

    /// <summary><paramref name="length"/> elements of <paramref name="format"/>: floats, or 16-bit values.</summary>
    private static DeviceBuffer Allocate(ComputeDevice device, ElementFormat format, long length) =>
        format == ElementFormat.Float32 ? device.Allocate<float>(length) : device.Allocate<ushort>(length);

    /// <summary>
    /// Builds the model from weights already read (<see cref="WeightFile.Load"/> with
    /// <see cref="AlexNetOptions.WeightLoadOptions"/>). Out of device memory is an <see cref="AlexNetException"/>
    /// naming the size; use a smaller <see cref="AlexNetOptions.MaxBatch"/>.
    /// </summary>
    public static AlexNetModel Create(ComputeDevice device, AlexNetWeights weights, AlexNetOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(weights);
        options ??= new AlexNetOptions();
        options.Validate();
        if (!Precisions.IsSupported(device, options.Precision, out string? reason))
            throw new AlexNetException($"precision {Precisions.Name(options.Precision)} is not available on {device.Name}: {reason}; `alexnet info` lists each device's precisions");
        if (options.GemmEpilogue == GemmEpilogue.CublasLt
            && !device.SupportsGemmBias(Precisions.Storage(options.Precision), Precisions.Math(options.Precision), out string? noEpilogue))
            throw new AlexNetException($"cuBLASLt's bias epilogue was asked for (GemmEpilogue = CublasLt), but {noEpilogue}");
        if (options.UseGraphs == true && device.GraphsUnsupportedReason is string noGraphs)
            throw new AlexNetException($"graphs were asked for (UseGraphs = true), but {noGraphs}");
        NetworkPlan plan = NetworkPlan.Create(weights.Architecture, options.MaxBatch, options.WorkspaceBytes, ElementFormats.SizeOf(Precisions.Storage(options.Precision)));
        return new AlexNetModel(device, weights, options, plan);
    }

    /// <summary>Reads a weight file (<c>bvlc_alexnet.npy</c> or an .npz) and builds the model.</summary>
    public static AlexNetModel Load(ComputeDevice device, string weightFile, AlexNetOptions? options = null)
    {
        options ??= new AlexNetOptions();
        options.Validate();
        return Create(device, WeightFile.Load(weightFile, options.WeightLoadOptions), options);
    }

    public ComputeDevice Device => _device;

    public AlexNetOptions Options { get; }

    /// <summary>The number formats of this model's pass (<see cref="AlexNetOptions.Precision"/>).</summary>
    public Precision Precision => Options.Precision;

    /// <summary>Whether the convolutions' bias and ReLU run inside the next kernel (see
    /// <see cref="AlexNetOptions.FuseActivations"/>); <see cref="StepCosts"/> counts the pass accordingly.</summary>
    public bool FusesActivations { get; }

    /// <summary>The minimum work of each step of this model's pass over <paramref name="batch"/> images
    /// (<see cref="NetworkPlan.StepCosts"/>, with or without the separate bias+ReLU passes).</summary>
    public IReadOnlyList<StepCost> StepCosts(int batch)
    {
        IReadOnlyList<StepCost> steps = Plan.StepCosts(batch, FusesActivations);
        if (!UsesGemmEpilogue) return steps;
        // fc6's and fc7's bias and ReLU run in their GEMMs: no pass of their own, and each GEMM reads its bias too.
        int biasBytes = ElementFormats.SizeOf(_format);
        return [.. steps.Where(c => c.Name is not ("fc6 bias+relu" or "fc7 bias+relu"))
            .Select(c => c.Name is "fc6 gemm" or "fc7 gemm" ? c with { Bytes = c.Bytes + (double)Plan.FullyConnected[c.Name == "fc6 gemm" ? 0 : 1] * biasBytes } : c)];
    }

    /// <summary>Whether fc6's and fc7's bias and ReLU run in their GEMM's epilogue (<see cref="AlexNetOptions.GemmEpilogue"/>
    /// = CublasLt, without dropout) rather than as bias_relu's pass; the profile's "fc6 gemm" and "fc7 gemm" then include them.</summary>
    public bool UsesGemmEpilogue { get; }

    /// <summary>The device buffers and their sizes; print it to see the peak bytes.</summary>
    public NetworkPlan Plan { get; }

    public int MaxBatch => Plan.MaxBatch;

    public int NumClasses => Plan.FullyConnected[2];

    /// <summary>
    /// The device buffer the next forward pass reads its images from: N×227×227×3 floats (HWC per image,
    /// BGR, mean subtracted). Fill it with <see cref="ComputeStream.CopyToDeviceAsync{T}"/> from pinned memory
    /// to overlap the upload with other work, then call <see cref="Run"/>.
    /// </summary>
    public DeviceBuffer<float> InputBuffer => _staging;

    /// <summary>A new device buffer the size of <see cref="InputBuffer"/>, for <see cref="Run(int, DeviceBuffer{float}, DeviceEvent?)"/>
    /// (a pipeline's second input); the caller disposes it.</summary>
    public DeviceBuffer<float> AllocateInputBuffer() => _device.Allocate<float>(Plan.StagingFloats);

    // ---- weight conversion, once at load ----

    /// <summary>HWIO (kh, kw, cin/groups, cout) to the GEMM's row-major [cout][(ci·kh + i)·kw + j]: each
    /// output channel's filter is one contiguous row, and the rows of group g are the g-th block.</summary>
    private static float[] ConvolutionWeights(LayerWeights layer) => ConvolutionRows(layer.Weight, layer.WeightShape, toEngine: true);

    /// <summary>A convolution's weights between the file's HWIO and the engine's [cout][(ci·kh + i)·kw + j];
    /// <paramref name="toEngine"/> false is the inverse, for writing trained weights back in the file's order.</summary>
    internal static float[] ConvolutionRows(float[] w, int[] shape, bool toEngine)
    {
        int kh = shape[0], kw = shape[1], cin = shape[2], cout = shape[3];
        var result = new float[w.Length];
        int k = cin * kh * kw;
        for (int i = 0; i < kh; i++)
        for (int j = 0; j < kw; j++)
        for (int ci = 0; ci < cin; ci++)
        {
            int file = ((i * kw + j) * cin + ci) * cout;
            int column = (ci * kh + i) * kw + j;
            if (toEngine)
                for (int co = 0; co < cout; co++) result[co * k + column] = w[file + co];
            else
                for (int co = 0; co < cout; co++) result[file + co] = w[co * k + column];
        }
        return result;
    }

    /// <summary>fc6's rows from the file's NHWC flatten of pool5, (h·6 + w)·C + c, to the engine's
    /// [N][C][6][6] order, c·36 + h·6 + w: pool5 then feeds the GEMM as it is.</summary>
    private static float[] Fc6Weights(LayerWeights layer, NetworkPlan plan)
    {
        ActivationPlan pool5 = plan.Activation("pool5");
        return Fc6Rows(layer.Weight, pool5.Channels, pool5.Height * pool5.Width, layer.WeightShape[1], toEngine: true);
    }

    /// <summary>fc6's weight rows reordered between the file's NHWC flatten of pool5 ((h·W + w)·C + c) and the
    /// engine's [C][H][W] one (c·H·W + h·W + w): <paramref name="toEngine"/> false is the inverse, for writing a
    /// trained fc6 back in the file's order.</summary>
    internal static float[] Fc6Rows(float[] w, int channels, int pixels, int outputs, bool toEngine)
    {
        var result = new float[w.Length];
        for (int p = 0; p < pixels; p++)
        for (int c = 0; c < channels; c++)
        {
            long file = (long)(p * channels + c) * outputs, engine = (long)(c * pixels + p) * outputs;
            Array.Copy(w, toEngine ? file : engine, result, toEngine ? engine : file, outputs);
        }
        return result;
    }

    // ---- the forward pass ----

    /// <summary>Uploads <paramref name="images"/> (waits for the copy) and queues the forward pass; read the
    /// results with <see cref="ReadProbabilities"/> or <see cref="ReadActivation"/>.</summary>
    public void Forward(ReadOnlySpan<float> images, int count)
    {
        CheckImages(images, count);
        _stream.CopyToDevice(images, _staging);
        Run(count);
    }

    /// <summary>
    /// Queues the forward pass over the first <paramref name="count"/> images of <see cref="InputBuffer"/> on
    /// the device's default stream and returns: no allocation, no synchronisation. Where graphs are on
    /// (<see cref="GraphStatus"/>) a batch size's first pass runs launch by launch and is captured, and every
    /// later one is a replay of that graph.
    /// </summary>
    public void Run(int count) => Run(count, _staging);

    /// <summary>
    /// As <see cref="Run(int)"/>, over the first <paramref name="count"/> images of <paramref name="input"/> (a buffer
    /// of <see cref="AllocateInputBuffer"/>'s size on this device), and recording <paramref name="inputRead"/>, when
    /// given, as soon as the pass has read the input (after its first kernel): from then on the buffer may be
    /// refilled, on another stream that waits for the event, while the rest of the pass runs. With two such buffers
    /// a pipeline uploads batch i+1 while batch i computes.
    /// </summary>
    public void Run(int count, DeviceBuffer<float> input, DeviceEvent? inputRead = null)
    {
        ObjectDisposedException.ThrowIf(_kernels is null || _device.IsDisposed, this);
        ArgumentNullException.ThrowIfNull(input);
        CheckBatch(count);
        if (!ReferenceEquals(input.Device, _device))
            throw new AlexNetException($"the input buffer belongs to another device ({input.Device.Description}) than the model ({_device.Description})");
        if (input.Length < (long)count * InputFloatsPerImage)
            throw new AlexNetException($"{count} images need {(long)count * InputFloatsPerImage} floats of input buffer, but it holds {input.Length}");
        // The conversion is launched on its own, outside any graph: the graphs (one per batch size) start at arena 0.
        _kernels.ConvertInput(_stream, _arenas[0], input, count, InputSize * InputSize, InputChannels);
        if (inputRead is not null) _stream.Record(inputRead);
        if (_graphs is null)
        {
            RunLayers(count, null, null);
            return;
        }
        PassOutputs outputs = _graphs.Run(count);
        // A replay writes where the captured pass wrote: the results are read from there.
        _fc8Buffer = outputs.Fc8;
        _probBuffer = outputs.Probabilities;
        _lastBatch = count;
    }

    /// <summary>As <see cref="Run(int)"/>, but always launch by launch, even where a graph of the size is
    /// captured: what the graph's replay is timed and checked against.</summary>
    public void RunStream(int count) => Run(count, (Action<ActivationPlan, DeviceBuffer>?)null, null);

    /// <summary>As <see cref="Run(int)"/>, recording a timing event after each operation into
    /// <paramref name="profile"/> (see <see cref="CreateProfile"/>) for a per-operation breakdown.</summary>
    public void Run(int count, ForwardProfile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        Run(count, null, profile);
    }

    /// <summary>Timing events for <see cref="Run(int, ForwardProfile)"/>, enough for every operation of a pass
    /// at the maximum batch, created once.</summary>
    public ForwardProfile CreateProfile()
    {
        int chunks = Plan.Convolutions.Sum(c => (MaxBatch + c.ChunkImages - 1) / c.ChunkImages);
        return new ForwardProfile(_device, 32 + 2 * chunks);
    }

    // Step names of the profile: constants, so marking a step allocates nothing.
    private static readonly string[][] ConvolutionSteps =
        [.. Enumerable.Range(1, 5).Select(i => new[] { $"conv{i} im2col", $"conv{i} gemm", $"conv{i} bias+relu" })];
    private static readonly string[] FcGemm = ["fc6 gemm", "fc7 gemm", "fc8 gemm"];
    private static readonly string[] FcBias = ["fc6 bias+relu", "fc7 bias+relu"];
    private static readonly string[] FcDropout = ["fc6 bias+relu+dropout", "fc7 bias+relu+dropout"];

    private void CheckImages(ReadOnlySpan<float> images, int count)
    {
        CheckBatch(count);
        if (images.Length != (long)count * InputFloatsPerImage)
            throw new AlexNetException($"{count} images need {(long)count * InputFloatsPerImage} floats (227×227×3 each), but {images.Length} were given");
    }

    private void CheckBatch(int count)
    {
        if (count < 1 || count > MaxBatch)
            throw new AlexNetException($"a batch of {count} images: the model was planned for 1 to {MaxBatch}; build it with a larger maximum batch");
    }

    /// <summary>The forward pass; <paramref name="produced"/>, when given, is told of each activation as soon as
    /// it has been queued (for reading layers out; it may synchronise).</summary>
    private void Run(int n, Action<ActivationPlan, DeviceBuffer>? produced, ForwardProfile? profile)
    {
        ObjectDisposedException.ThrowIf(_kernels is null || _device.IsDisposed, this);
        CheckBatch(n);
        profile?.Begin(_stream);
        _kernels.ConvertInput(_stream, _arenas[0], _staging, n, InputSize * InputSize, InputChannels);
        profile?.Mark(_stream, "input");
        RunLayers(n, produced, profile);
    }

    /// <summary>Everything after the input's conversion, which has left the batch in arena 0: what a graph
    /// captures, so that a graph does not depend on which input buffer the images came from.</summary>
    private void RunLayers(int n, Action<ActivationPlan, DeviceBuffer>? produced, ForwardProfile? profile)
    {
        _lastBatch = n;
        ComputeStream s = _stream;
        int act = 0;
        DeviceBuffer current = _arenas[0];
        // Each activation goes to the arena that does not hold its input (the plan's ping-pong). Reading
        // layers out needs norm1 and norm2 written; otherwise, with fused activations, LRN and pooling run as
        // one kernel and the normalised tensors are never written.
        bool fuseNormPool = FusesActivations && produced is null;
        // With FusesActivations a convolution leaves its GEMM's raw output, and its bias and ReLU are applied by
        // the kernel that reads it next (norm1, norm2, conv4's and conv5's im2col, pool5): a pass over every
        // conv activation saved. `pending` is the bias that the next reader of `current` must apply, or null.
        DeviceBuffer<float>? pending = null;
        for (int layer = 0; layer < 5; layer++)
        {
            ConvolutionPlan p = Plan.Convolutions[layer];
            ActivationPlan convPlan = _activations[act++];
            DeviceBuffer output = Other(current);
            Convolve(s, p, current, output, layer, n, profile, pending);
            if (FusesActivations)
            {
                pending = _biases[layer];
            }
            else
            {
                _kernels.BiasRelu(s, output, _biases[layer], 1, p.OutputChannels, n * p.OutputPixels, relu: true);
                profile?.Mark(s, ConvolutionSteps[layer][2]);
            }
            produced?.Invoke(convPlan, output);
            current = output;
            int size = p.OutputSize, channels = p.OutputChannels;
            if (layer < 2 && fuseNormPool)
            {
                act++; // norm1/norm2: not written
                ActivationPlan poolPlan = _activations[act++];
                DeviceBuffer pooled = Other(current);
                int outSize = poolPlan.Height, pixels = outSize * outSize;
                _kernels.LrnMaxPool(s, pooled, current, channels, n, size, size, outSize, outSize, 3, 2, n * pixels, pixels, Options.Lrn, pending);
                profile?.Mark(s, NormPoolSteps[layer]);
                current = pooled;
                pending = null;
                continue;
            }
            if (layer < 2)
            {
                ActivationPlan normPlan = _activations[act++];
                DeviceBuffer normalized = Other(current);
                _kernels.Lrn(s, normalized, current, channels, n * size * size, Options.Lrn, pending);
                profile?.Mark(s, normPlan.Name);
                produced?.Invoke(normPlan, normalized);
                current = normalized;
                pending = null;
            }
            if (layer is 0 or 1 or 4)
            {
                ActivationPlan poolPlan = _activations[act++];
                DeviceBuffer pooled = Other(current);
                int outSize = poolPlan.Height, pixels = outSize * outSize;
                // pool5 writes [N][C][6][6], fc6's input; the others stay channel-major.
                (int strideC, int strideN) = layer == 4 ? (pixels, channels * pixels) : (n * pixels, pixels);
                _kernels.MaxPool(s, pooled, current, channels, n, size, size, outSize, outSize, 3, 2, strideC, strideN, pending);
                profile?.Mark(s, poolPlan.Name);
                produced?.Invoke(poolPlan, pooled);
                current = pooled;
                pending = null;
            }
        }
        int inputs = (int)_activations[act - 1].ElementsPerImage;
        for (int layer = 5; layer < 8; layer++)
        {
            ActivationPlan fcPlan = _activations[act++];
            // fc8's logits are FP32 in every precision (softmax.cu): with 16-bit storage the GEMM writes its FP32
            // accumulation to a buffer of its own.
            bool logits = layer == 7 && _logits is not null;
            DeviceBuffer output = logits ? _logits! : Other(current);
            int outputs = fcPlan.Channels;
            var x = MatrixView.RowMajor(current, _format, n, inputs);
            var w = MatrixView.RowMajor(_weights[layer], _format, inputs, outputs);
            var y = MatrixView.RowMajor(output, logits ? ElementFormat.Float32 : _format, n, outputs);
            // fc6 and fc7 with the epilogue: the bias and ReLU in the GEMM (y is [N][F], one bias per column: GemmBias).
            bool epilogue = layer < 7 && UsesGemmEpilogue;
            if (epilogue) s.GemmBias(x, w, y, _epilogueBiases[layer - 5]!, relu: true, _math);
            else s.Gemm(x, w, y, math: _math);
            profile?.Mark(s, FcGemm[layer - 5]);
            if (layer < 7)
            {
                if (Options.KeepProbability < 1f)
                {
                    // Bias, ReLU and dropout in one pass.
                    _kernels.Dropout(s, output, n * outputs, Options.KeepProbability, Options.DropoutSeed, layer == 5 ? 0u : Fc7DropoutOffset,
                        _biases[layer], outputs);
                    profile?.Mark(s, FcDropout[layer - 5]);
                }
                else if (!epilogue)
                {
                    _kernels.BiasRelu(s, output, _biases[layer], n, outputs, 1, relu: true);
                    profile?.Mark(s, FcBias[layer - 5]);
                }
                produced?.Invoke(fcPlan, output);
                current = output;
                inputs = outputs;
            }
            else
            {
                ActivationPlan probPlan = _activations[act++];
                // The softmax kernel adds fc8's bias to the logits in place (that is the exported fc8) and
                // writes the probabilities.
                // The probabilities are FP32: in the other arena when that holds floats, else in their own buffer.
                DeviceBuffer<float> probabilities = _probabilities ?? (DeviceBuffer<float>)Other(output);
                _kernels.Softmax(s, probabilities, (DeviceBuffer<float>)output, _biases[layer], n, outputs);
                _fc8Buffer = output;
                _probBuffer = probabilities;
                profile?.Mark(s, "softmax");
                produced?.Invoke(fcPlan, output);
                produced?.Invoke(probPlan, probabilities);
            }
        }
    }

    /// <summary>The arena that is not <paramref name="buffer"/>: where the activation computed from it goes.</summary>
    private DeviceBuffer Other(DeviceBuffer buffer) => ReferenceEquals(buffer, _arenas[0]) ? _arenas[1] : _arenas[0];

    // ---- one operation at a time, as the forward pass queues it (the per-operation benchmarks) ----

    internal NetworkKernels Kernels => _kernels;

    /// <summary>Layer <paramref name="layer"/>'s weights (0…7) in the layout the forward pass uses.</summary>
    internal DeviceBuffer WeightBuffer(int layer) => _weights[layer];

    internal DeviceBuffer<float> BiasBuffer(int layer) => _biases[layer];

    /// <summary>Queues convolution <paramref name="layer"/> (0…4) + bias + ReLU of <paramref name="n"/> images from
    /// <paramref name="input"/> to <paramref name="output"/>, both <c>[C][N][H][W]</c>, with this model's workspace:
    /// the whole layer as one operation (the forward pass leaves the bias and ReLU to the next kernel).</summary>
    internal void Convolve(int layer, DeviceBuffer input, DeviceBuffer output, int n)
    {
        CheckBatch(n);
        ConvolutionPlan p = Plan.Convolutions[layer];
        Convolve(_stream, p, input, output, layer, n, null, null);
        _kernels.BiasRelu(_stream, output, _biases[layer], 1, p.OutputChannels, n * p.OutputPixels, relu: true);
    }

    /// <summary>One convolution without its bias and ReLU: per chunk of images, im2col (applying
    /// <paramref name="inputBias"/>, the previous convolution's, when its raw output is the input) then one
    /// strided-batched GEMM over the groups.</summary>
    private void Convolve(ComputeStream s, ConvolutionPlan p, DeviceBuffer input, DeviceBuffer output, int layer, int n,
        ForwardProfile? profile, DeviceBuffer<float>? inputBias)
    {
        string[] steps = ConvolutionSteps[layer];
        int pixels = p.OutputPixels, groupK = p.GroupK, groupOut = p.GroupOutputChannels;
        long outputRow = (long)n * pixels;
        if (outputRow > int.MaxValue) throw new AlexNetException($"{p.Name}: {n} images make an output row longer than a GEMM takes");
        for (int image0 = 0; image0 < n; image0 += p.ChunkImages)
        {
            int images = Math.Min(p.ChunkImages, n - image0);
            int columns = images * pixels;
            _kernels.Im2Col(s, _workspace, input, p.InputChannels, n, p.InputSize, p.InputSize, image0, images,
                p.KernelSize, p.KernelSize, p.Stride, p.Pad, p.OutputSize, p.OutputSize, inputBias);
            profile?.Mark(s, steps[0]);
            s.GemmBatched(
                MatrixView.RowMajor(_weights[layer], _format, groupOut, groupK),
                MatrixView.RowMajor(_workspace, _format, groupK, columns),
                MatrixView.RowMajor(output, _format, groupOut, columns, offset: (long)image0 * pixels, leadingDimension: (int)outputRow),
                new GemmBatch(p.Groups, (long)groupOut * groupK, (long)groupK * columns, groupOut * outputRow), math: _math);
            profile?.Mark(s, steps[1]);
        }
    }

    // ---- results ----

    /// <summary>Copies the class probabilities of the last forward pass, [N][classes], waiting for it.</summary>
    public void ReadProbabilities(Span<float> destination)
    {
        int count = _lastBatch * NumClasses;
        if (_lastBatch == 0) throw new InvalidOperationException("no forward pass has run yet");
        if (destination.Length < count) throw new ArgumentException($"{_lastBatch} images × {NumClasses} classes need {count} floats, the destination holds {destination.Length}", nameof(destination));
        _stream.CopyToHost(_probBuffer!, destination[..count]);
    }

    /// <summary>
    /// Queues a copy of the last forward pass's class probabilities, [N][classes], into
    /// <paramref name="destination"/> at element <paramref name="offset"/> and returns at once: record an event
    /// after it and wait on that before reading. For pipelines that keep several batches in flight.
    /// </summary>
    public void CopyProbabilitiesAsync(PinnedHostBuffer<float> destination, long offset = 0)
    {
        if (_lastBatch == 0) throw new InvalidOperationException("no forward pass has run yet");
        _stream.CopyToHostAsync(_probBuffer!, 0, destination, offset, (long)_lastBatch * NumClasses);
    }

    /// <summary>The stream the model's work is queued on (the device's default stream).</summary>
    public ComputeStream Stream => _stream;

    /// <summary>Class probabilities of <paramref name="count"/> images, [N][classes] (allocates the result).</summary>
    public float[] Predict(ReadOnlySpan<float> images, int count)
    {
        Forward(images, count);
        var result = new float[count * NumClasses];
        ReadProbabilities(result);
        return result;
    }

    /// <summary>
    /// Runs a forward pass and returns the activations of <paramref name="layers"/> (any of
    /// <see cref="LayerNames"/>) in the export layout: [N, C, H, W] for conv1…pool5, [N, F] for fc6…prob.
    /// Each is copied out as soon as it is produced (its buffer is reused later in the pass), so this
    /// synchronises once per requested layer: for reading features, not for throughput.
    /// </summary>
    public IReadOnlyDictionary<string, float[]> Features(ReadOnlySpan<float> images, int count, IReadOnlyCollection<string> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        foreach (string layer in layers) Plan.Activation(layer); // unknown names fail before any work
        CheckImages(images, count);
        var wanted = new HashSet<string>(layers, StringComparer.Ordinal);
        var result = new Dictionary<string, float[]>(StringComparer.Ordinal);
        _stream.CopyToDevice(images, _staging);
        Run(count, (plan, buffer) =>
        {
            if (wanted.Contains(plan.Name)) result[plan.Name] = Export(plan, buffer, count);
        }, null);
        return result;
    }

    /// <summary>The activation of <paramref name="layer"/> from the last forward pass when it is still in its
    /// arena (only the last two layers, fc8 and prob, always are); use <see cref="Features"/> for any layer.</summary>
    public float[] ReadActivation(string layer)
    {
        ActivationPlan plan = Plan.Activation(layer);
        if (_lastBatch == 0) throw new InvalidOperationException("no forward pass has run yet");
        if (layer is not ("fc8" or "prob"))
            throw new AlexNetException($"{layer}'s buffer is reused later in the forward pass; read it with Features");
        return Export(plan, layer == "prob" ? _probBuffer! : _fc8Buffer!, _lastBatch);
    }

    /// <summary>Copies an activation to the host in the export layout: [C][N][H][W] is permuted to [N][C][H][W].
    /// With fused activations a convolution's buffer holds its raw GEMM output; its bias and ReLU are applied here, with the float
    /// addition and comparison of the kernels, so the export is what the fused kernels read.</summary>
    private float[] Export(ActivationPlan plan, DeviceBuffer buffer, int n)
    {
        long count = plan.ElementsPerImage * n;
        // 16-bit storage: the values exactly as the kernels stored them, as floats (fc8 and prob are FP32 buffers).
        float[] raw = ComputeDevice.Download(_stream, buffer, buffer is DeviceBuffer<float> ? ElementFormat.Float32 : _format, count);
        if (plan.Layout != "[C][N][H][W]") return raw;
        int channels = plan.Channels, pixels = plan.Height * plan.Width;
        float[]? bias = FusesActivations ? _convolutionBiases.GetValueOrDefault(plan.Name) : null;
        var permuted = new float[count];
        for (int c = 0; c < channels; c++)
        for (int image = 0; image < n; image++)
        {
            long from = ((long)c * n + image) * pixels, to = ((long)image * channels + c) * pixels;
            if (bias is null)
            {
                Array.Copy(raw, from, permuted, to, pixels);
                continue;
            }
            float b = bias[c];
            for (int i = 0; i < pixels; i++)
            {
                float v = raw[from + i] + b;
                permuted[to + i] = v < 0f ? 0f : v; // NaN < 0 is false: NaN stays, as in bias_relu.cu
            }
        }
        return permuted;
    }

    public void Dispose()
    {
        _graphs?.Dispose();
        _kernels?.Dispose();
        _staging?.Dispose();
        _workspace?.Dispose();
        if (_arenas is not null) foreach (DeviceBuffer a in _arenas) a?.Dispose();
        _probabilities?.Dispose();
        _logits?.Dispose();
        foreach (DeviceBuffer? w in _weights) w?.Dispose();
        foreach (DeviceBuffer<float>? b in _biases) b?.Dispose();
        if (_format != ElementFormat.Float32) foreach (DeviceBuffer? b in _epilogueBiases) b?.Dispose();
    }

    // ---- graphs ----

    /// <summary>Where a pass leaves fc8 and the probabilities: kept with each graph, since a replay writes there.</summary>
    private readonly record struct PassOutputs(DeviceBuffer Fc8, DeviceBuffer<float> Probabilities);

    private readonly ForwardGraphs<PassOutputs>? _graphs;

    private PassOutputs StreamPass(int n)
    {
        RunLayers(n, null, null);
        return new PassOutputs(_fc8Buffer!, _probBuffer!);
    }

    private static string? GraphsOff(ComputeDevice device, AlexNetOptions options) =>
        options.UseGraphs == false ? "UseGraphs = false: the stream path runs"
        : device.GraphsUnsupportedReason is string reason ? $"{reason}: the stream path runs"
        : null;

    /// <summary>Queues filling both activation arenas with NaN, so that an output a later pass fails to write
    /// shows (the graph check poisons them before a replay).</summary>
    internal void PoisonActivations()
    {
        foreach (DeviceBuffer arena in _arenas)
        {
            if (arena is DeviceBuffer<float> floats)
            {
                _stream.Fill(floats, float.NaN);
            }
            else if (arena is DeviceBuffer<ushort> halves)
            {
                // 16-bit storage: all ones is a NaN in fp16 and in bf16 alike.
                var nan = new ushort[halves.Length];
                Array.Fill(nan, (ushort)0xFFFF);
                _stream.CopyToDevice<ushort>(nan, halves);
            }
        }
    }

    /// <summary>True when <see cref="Run(int)"/> captures and replays graphs (<see cref="AlexNetOptions.UseGraphs"/>
    /// and the device allow it).</summary>
    public bool UsesGraphs => _graphs is not null;

    /// <summary>Why <see cref="Run(int)"/> never uses a graph, in one line; null when it does.</summary>
    public string? GraphsOffReason { get; }

    /// <summary>True when the next <see cref="Run(int)"/> over <paramref name="batch"/> images is a replay.</summary>
    public bool HasGraph(int batch) => _graphs?.HasGraph(batch) ?? false;

    /// <summary>Why the pass over <paramref name="batch"/> images runs launch by launch although graphs are on (its
    /// capture failed, and is not tried again); null when it did not fail.</summary>
    public string? GraphFailure(int batch) => _graphs?.Failures.GetValueOrDefault(batch);

    /// <summary>
    /// One line on the graphs: "off: " and why, or "on: " with the batch sizes captured, the replays so far and
    /// each size whose capture failed with the reason (that size runs launch by launch).
    /// </summary>
    public string GraphStatus
    {
        get
        {
            if (_graphs is null) return $"off: {GraphsOffReason}";
            IReadOnlyList<int> captured = _graphs.Captured;
            string sizes = captured.Count == 0 ? "no batch size captured yet" : $"batch {string.Join(", ", captured.Order())} captured";
            string failures = string.Concat(_graphs.Failures.OrderBy(f => f.Key).Select(f => $"; batch {f.Key} runs launch by launch, its capture failed: {f.Value}"));
            return $"on (a graph per batch size, at most {_graphs.Capacity}): {sizes}, {_graphs.Replays} replays{failures}";
        }
    }
}
