using AlexNet.Cuda.Bench;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Weights;
using Microsoft.ML.OnnxRuntime;

namespace AlexNet.Cuda.Onnx;

/// <summary>
/// BVLC AlexNet as an ONNX graph, built in memory from the engine's weights and run by ONNX Runtime's CPU execution
/// provider (MLAS kernels, every graph optimisation on, float32): the implementation a .NET user would pick for
/// CPU inference, and the engine's CPU target (docs/performance.md). Same semantics as <see cref="AlexNetModel"/>
/// (docs/model.md): the same weights, NHWC input, LRN with TensorFlow's parameters, no dropout.
/// <para>
/// The graph is what the weight file means, in ONNX's operators (opset 17): a Transpose of the NHWC input to
/// NCHW; Conv (OIHW weights, grouped where the architecture says, VALID at stride 4 for conv1 and SAME for the
/// rest) + Relu; LRN with ONNX's alpha = TensorFlow's alpha × size (ONNX divides by the window, TensorFlow does
/// not); MaxPool 3×3/2; Flatten; Gemm for fc6…fc8 with fc6's rows reordered at build time from the file's
/// NHWC flatten order to NCHW's; Softmax. The batch dimension is symbolic, so one session serves every size.
/// </para>
/// <para>
/// Inputs and outputs are bound to arrays allocated once for <see cref="MaxBatch"/> images (one OrtValue per batch
/// size over the same memory), so a pass copies nothing in or out; ONNX Runtime's own arena serves its
/// intermediate tensors.
/// </para>
/// </summary>
public sealed class OnnxAlexNet : ICpuAlexNet
{
    private const int OpsetVersion = 17;
    private const long IrVersion = 8;
    private const int ElementFloat = 1;

    private const string InputName = "images", LogitsName = "logits", ProbabilitiesName = "probabilities";
    private static readonly string[] InputNames = [InputName];
    private static readonly string[] OutputNames = [LogitsName, ProbabilitiesName];

    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly float[] _input, _logits, _probabilities;
    private readonly Dictionary<int, OrtValue[]> _bound = [];
    private int _lastBatch;
    private bool _disposed;

    private OnnxAlexNet(InferenceSession session, int maxBatch, int numClasses, int threads, LrnParameters lrn)
    {
        _session = session;
        MaxBatch = maxBatch;
        NumClasses = numClasses;
        Threads = threads;
        Lrn = lrn;
        _input = new float[(long)maxBatch * AlexNetModel.InputFloatsPerImage];
        _logits = new float[maxBatch * numClasses];
        _probabilities = new float[maxBatch * numClasses];
    }

    /// <summary>
    /// Builds the graph of <paramref name="weights"/> (BVLC AlexNet's shapes, or an <see cref="AlexNetArchitecture"/>
    /// of the same geometry) and opens an ONNX Runtime session on it for batches of up to
    /// <paramref name="maxBatch"/> images, on <paramref name="threads"/> intra-op threads (default: one per core,
    /// as ONNX Runtime itself chooses).
    /// </summary>
    public static OnnxAlexNet Create(AlexNetWeights weights, int maxBatch, LrnParameters? lrn = null, int? threads = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (maxBatch < 1) throw new AlexNetException($"the maximum batch must be 1 or more, not {maxBatch}");
        LrnParameters parameters = lrn ?? LrnParameters.Default;
        parameters.Validate();
        int threadCount = threads ?? Environment.ProcessorCount;
        if (threadCount < 1) throw new AlexNetException($"ONNX Runtime needs 1 thread or more, not {threadCount}");
        byte[] model = BuildModel(weights, parameters);
        using var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = threadCount,
            InterOpNumThreads = 1,
        };
        InferenceSession session;
        try
        {
            session = new InferenceSession(model, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new AlexNetException($"ONNX Runtime refused the AlexNet graph built from these weights: {e.Message.Split('\n')[0]}");
        }
        return new OnnxAlexNet(session, maxBatch, weights.NumClasses, threadCount, parameters);
    }

    /// <summary>ONNX Runtime's version, as its native library reports it.</summary>
    public static string RuntimeVersion => OrtEnv.Instance().GetVersionString();

    public int MaxBatch { get; }

    public int NumClasses { get; }

    /// <summary>The intra-op threads ONNX Runtime runs each operator on.</summary>
    public int Threads { get; }

    public LrnParameters Lrn { get; }

    /// <summary>The input of the next pass, [MaxBatch, 227, 227, 3] (NHWC, BGR, mean subtracted): fill it in place
    /// and call <see cref="Run"/>, or let <see cref="Forward"/> copy the images in.</summary>
    public Span<float> Input => _input;

    // ---- the graph ----

    /// <summary>The ONNX model (a serialised ModelProto) of <paramref name="weights"/> with <paramref name="lrn"/>.</summary>
    public static byte[] BuildModel(AlexNetWeights weights, LrnParameters lrn)
    {
        IReadOnlyList<LayerSpec> specs = weights.Architecture.Layers;
        if (specs.Count != 8 || specs.Take(5).Any(s => s.Kind != LayerKind.Convolution) || weights.Conv1.WeightShape[2] != AlexNetModel.InputChannels)
            throw new AlexNetException($"the ONNX graph takes AlexNet's 5 convolutions and 3 fully connected layers over {AlexNetModel.InputChannels}-channel images; these weights have {specs.Count} layers and {weights.Conv1.WeightShape[2]} input channels");

        var graph = new ProtoMessage().String(GraphField.Name, "alexnet");
        var nodes = new List<ProtoMessage>();
        string x = "nchw";
        nodes.Add(Node("Transpose", [InputName], x, Ints("perm", 0, 3, 1, 2)));
        for (int i = 0; i < 5; i++)
        {
            LayerSpec spec = specs[i];
            LayerWeights layer = weights.Layers[i];
            int[] s = spec.WeightShape; // kh, kw, cin/groups, cout
            int k = s[0], pad = i == 0 ? 0 : k / 2, stride = i == 0 ? 4 : 1;
            graph.Message(GraphField.Initializer, Tensor($"{spec.Name}_w", ToOihw(layer.Weight, s), s[3], s[2], s[0], s[1]));
            graph.Message(GraphField.Initializer, Tensor($"{spec.Name}_b", layer.Bias, s[3]));
            nodes.Add(Node("Conv", [x, $"{spec.Name}_w", $"{spec.Name}_b"], spec.Name,
                Ints("kernel_shape", s[0], s[1]), Ints("strides", stride, stride), Ints("pads", pad, pad, pad, pad), Int("group", spec.Groups)));
            nodes.Add(Node("Relu", [spec.Name], x = $"{spec.Name}_relu"));
            if (i < 2)
            {
                int size = 2 * lrn.Radius + 1;
                nodes.Add(Node("LRN", [x], x = $"norm{i + 1}",
                    Int("size", size), Float("alpha", lrn.Alpha * size), Float("beta", lrn.Beta), Float("bias", lrn.Bias)));
            }
            if (i is 0 or 1 or 4)
                nodes.Add(Node("MaxPool", [x], x = $"pool{i + 1}", Ints("kernel_shape", 3, 3), Ints("strides", 2, 2)));
        }
        nodes.Add(Node("Flatten", [x], x = "flat", Int("axis", 1)));
        for (int i = 5; i < 8; i++)
        {
            LayerSpec spec = specs[i];
            LayerWeights layer = weights.Layers[i];
            int rows = spec.WeightShape[0], columns = spec.WeightShape[1];
            float[] w = i == 5 ? Fc6RowsInNchwOrder(layer.Weight, rows, columns, specs[4].OutputChannels) : layer.Weight;
            graph.Message(GraphField.Initializer, Tensor($"{spec.Name}_w", w, rows, columns));
            graph.Message(GraphField.Initializer, Tensor($"{spec.Name}_b", layer.Bias, columns));
            string output = i == 7 ? LogitsName : spec.Name;
            nodes.Add(Node("Gemm", [x, $"{spec.Name}_w", $"{spec.Name}_b"], output));
            x = output;
            if (i < 7) nodes.Add(Node("Relu", [x], x = $"{spec.Name}_relu"));
        }
        nodes.Add(Node("Softmax", [LogitsName], ProbabilitiesName, Int("axis", 1)));
        foreach (ProtoMessage node in nodes) graph.Message(GraphField.Node, node);

        int classes = specs[7].WeightShape[1];
        graph.Message(GraphField.Input, ValueInfo(InputName, "N", AlexNetModel.InputSize, AlexNetModel.InputSize, AlexNetModel.InputChannels));
        graph.Message(GraphField.Output, ValueInfo(LogitsName, "N", classes));
        graph.Message(GraphField.Output, ValueInfo(ProbabilitiesName, "N", classes));

        return new ProtoMessage()
            .Int(1, IrVersion)                                             // ir_version
            .String(2, "AlexNet.Cuda")                                     // producer_name
            .Message(7, graph)                                             // graph
            .Message(8, new ProtoMessage().String(1, "").Int(2, OpsetVersion)) // opset_import: the default domain
            .ToArray();
    }

    /// <summary>GraphProto's field numbers (onnx.proto).</summary>
    private static class GraphField
    {
        public const int Node = 1, Name = 2, Initializer = 5, Input = 11, Output = 12;
    }

    private static ProtoMessage Node(string op, string[] inputs, string output, params ProtoMessage[] attributes)
    {
        var node = new ProtoMessage();
        foreach (string input in inputs) node.String(1, input);
        node.String(2, output).String(3, output).String(4, op);
        foreach (ProtoMessage a in attributes) node.Message(5, a);
        return node;
    }

    // AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7).
    private static ProtoMessage Int(string name, long value) => new ProtoMessage().String(1, name).Int(3, value).Int(20, 2);

    private static ProtoMessage Float(string name, float value) => new ProtoMessage().String(1, name).Float(2, value).Int(20, 1);

    private static ProtoMessage Ints(string name, params long[] values) => new ProtoMessage().String(1, name).PackedInts(8, values).Int(20, 7);

    /// <summary>A float TensorProto: dims 1 (packed), data_type 2, name 8, raw_data 9.</summary>
    private static ProtoMessage Tensor(string name, float[] data, params long[] dims)
    {
        if (dims.Aggregate(1L, (a, b) => a * b) != data.Length)
            throw new AlexNetException($"{name}: {data.Length} values for a tensor of shape [{string.Join(", ", dims)}]");
        return new ProtoMessage().PackedInts(1, dims).Int(2, ElementFloat).String(8, name).RawFloats(9, data);
    }

    /// <summary>A float tensor's ValueInfoProto (name 1, type 2 → TypeProto.tensor_type 1 → elem_type 1, shape 2 →
    /// dim 1 → dim_value 1 | dim_param 2), its first dimension named <paramref name="batch"/>.</summary>
    private static ProtoMessage ValueInfo(string name, string batch, params long[] dims)
    {
        var shape = new ProtoMessage().Message(1, new ProtoMessage().String(2, batch));
        foreach (long d in dims) shape.Message(1, new ProtoMessage().Int(1, d));
        var tensorType = new ProtoMessage().Int(1, ElementFloat).Message(2, shape);
        return new ProtoMessage().String(1, name).Message(2, new ProtoMessage().Message(1, tensorType));
    }

    /// <summary>HWIO (kh, kw, cin/groups, cout), the file's layout, to ONNX's OIHW.</summary>
    private static float[] ToOihw(float[] hwio, int[] s)
    {
        int kh = s[0], kw = s[1], cin = s[2], cout = s[3];
        var oihw = new float[hwio.Length];
        for (int y = 0; y < kh; y++)
            for (int x = 0; x < kw; x++)
                for (int i = 0; i < cin; i++)
                    for (int o = 0; o < cout; o++)
                        oihw[((o * cin + i) * kh + y) * kw + x] = hwio[((y * kw + x) * cin + i) * cout + o];
        return oihw;
    }

    /// <summary>fc6's rows from the file's order, pool5 flattened NHWC ((h·W + w)·C + c), to the order ONNX's Flatten
    /// of an NCHW tensor gives (c·H·W + h·W + w).</summary>
    private static float[] Fc6RowsInNchwOrder(float[] weight, int rows, int columns, int channels)
    {
        int pixels = rows / channels;
        if (pixels * channels != rows)
            throw new AlexNetException($"fc6 has {rows} rows, which is not a whole number of pixels of conv5's {channels} channels");
        var reordered = new float[weight.Length];
        for (int p = 0; p < pixels; p++)
            for (int c = 0; c < channels; c++)
                Array.Copy(weight, (long)(p * channels + c) * columns, reordered, (long)(c * pixels + p) * columns, columns);
        return reordered;
    }

    // ---- the forward pass ----

    /// <summary>Copies <paramref name="images"/> (N×227×227×3 floats, NHWC) into <see cref="Input"/> and runs the
    /// network; read the results with <see cref="ReadProbabilities"/> and <see cref="ReadLogits"/>.</summary>
    public void Forward(ReadOnlySpan<float> images, int count)
    {
        CheckBatch(count);
        long floats = (long)count * AlexNetModel.InputFloatsPerImage;
        if (images.Length != floats)
            throw new AlexNetException($"{count} images need {floats} floats (227×227×3 each), but {images.Length} were given");
        images.CopyTo(_input);
        Run(count);
    }

    /// <summary>Runs the network on the first <paramref name="count"/> images of <see cref="Input"/>. Synchronous:
    /// the results are computed when it returns.</summary>
    public void Run(int count)
    {
        CheckBatch(count);
        OrtValue[] bound = Bind(count);
        _session.Run(_runOptions, InputNames, [bound[0]], OutputNames, [bound[1], bound[2]]);
        _lastBatch = count;
    }

    /// <summary>The input and output values of a batch of <paramref name="count"/>, over the arrays allocated at
    /// creation: made on a size's first pass, outside any timed one that follows.</summary>
    private OrtValue[] Bind(int count)
    {
        if (_bound.TryGetValue(count, out OrtValue[]? bound)) return bound;
        OrtMemoryInfo cpu = OrtMemoryInfo.DefaultInstance;
        bound =
        [
            OrtValue.CreateTensorValueFromMemory(cpu, _input.AsMemory(0, count * AlexNetModel.InputFloatsPerImage),
                [count, AlexNetModel.InputSize, AlexNetModel.InputSize, AlexNetModel.InputChannels]),
            OrtValue.CreateTensorValueFromMemory(cpu, _logits.AsMemory(0, count * NumClasses), [count, NumClasses]),
            OrtValue.CreateTensorValueFromMemory(cpu, _probabilities.AsMemory(0, count * NumClasses), [count, NumClasses]),
        ];
        _bound[count] = bound;
        return bound;
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

    private void Read(float[] source, Span<float> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_lastBatch == 0) throw new InvalidOperationException("no forward pass has run yet");
        int count = _lastBatch * NumClasses;
        if (destination.Length < count)
            throw new ArgumentException($"{_lastBatch} images × {NumClasses} classes need {count} floats, the destination holds {destination.Length}", nameof(destination));
        source.AsSpan(0, count).CopyTo(destination);
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
        foreach (OrtValue[] values in _bound.Values)
            foreach (OrtValue v in values) v.Dispose();
        _runOptions.Dispose();
        _session.Dispose();
    }
}
