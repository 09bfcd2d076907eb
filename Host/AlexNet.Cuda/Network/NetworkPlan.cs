using System.Globalization;
using System.Text;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Network;

/// <summary>
/// One convolution as the engine runs it: im2col of <see cref="ChunkImages"/> images at a time into the
/// workspace, then one GEMM per chunk, out[Cout × P] = W[Cout × K] · col[K × P], as a strided batch of
/// <see cref="Groups"/> GEMMs (each group's filters, lowered rows and output channels are contiguous
/// blocks). Spatial sizes follow docs/model.md: VALID for conv1 (stride 4), SAME (pad (k−1)/2) for the rest.
/// <see cref="WorkspaceImages"/> is how many images' lowering the workspace holds; the chunk may be smaller
/// (see <see cref="ChunkFor"/>).
/// </summary>
public sealed record ConvolutionPlan(string Name, int InputChannels, int OutputChannels, int Groups, int KernelSize,
    int Stride, int Pad, int InputSize, int OutputSize, int ChunkImages, int WorkspaceImages = 0)
{
    /// <summary>
    /// The images per chunk for a workspace that holds <paramref name="fit"/> images' lowering and batches of up
    /// to <paramref name="maxBatch"/>: the whole batch when it fits; otherwise <paramref name="fit"/> rounded
    /// down to the <see cref="AlignmentGranule"/>, so that every full chunk's columns (images·Ho·Wo) and every
    /// chunk's first output column (image0·Ho·Wo) are multiples of 4 floats, 16 bytes: the alignment cuBLAS's
    /// vectorised loads need (AlexNet's Ho·Wo, 3025, 729 and 169, are odd). A workspace that holds fewer images
    /// than the granule keeps what it holds.
    /// </summary>
    public static int ChunkFor(int outputPixels, long fit, int maxBatch, int elementBytes = sizeof(float))
    {
        if (fit >= maxBatch) return maxBatch;
        int granule = AlignmentGranule(outputPixels, elementBytes);
        return fit >= granule ? (int)(fit / granule * granule) : (int)fit;
    }

    /// <summary>The fewest images whose Ho·Wo output columns make 16 bytes: for floats (4 per 16 bytes) 4 for odd
    /// Ho·Wo, 2 when it is twice an odd number, 1 when it is a multiple of 4; for 16-bit elements (8 per 16 bytes)
    /// 8 for odd Ho·Wo, and so on.</summary>
    public static int AlignmentGranule(int outputPixels, int elementBytes = sizeof(float))
    {
        int per16Bytes = 16 / elementBytes;
        int granule = 1;
        while (granule < per16Bytes && (long)outputPixels * granule % per16Bytes != 0) granule *= 2;
        return granule;
    }

    /// <summary>Rows of one group's lowered input (and columns of its filter matrix): Cin/groups · k · k.</summary>
    public int GroupK => InputChannels / Groups * KernelSize * KernelSize;

    public int GroupOutputChannels => OutputChannels / Groups;

    public int OutputPixels => OutputSize * OutputSize;

    /// <summary>Floats of lowered input per image: all groups' rows × output pixels.</summary>
    public long LoweredPerImage => (long)GroupK * Groups * OutputPixels;

    /// <summary>Multiply-adds per image.</summary>
    public long MacsPerImage => (long)OutputChannels * GroupK * OutputPixels;
}

/// <summary>The work of one step of a forward pass, named as <see cref="ForwardProfile"/> names it: the FLOPs of
/// a GEMM (2 per multiply-add; 0 for the memory-bound steps) and the bytes the step must move at least (each
/// operand read once and each result written once).</summary>
public sealed record StepCost(string Name, double Flops, double Bytes);

/// <summary>One activation the network produces, in the engine's layout, and the arena that holds it.</summary>
public sealed record ActivationPlan(string Name, int Channels, int Height, int Width, int Arena, string Layout)
{
    public long ElementsPerImage => (long)Channels * Height * Width;

    /// <summary>The shape the layer is exported with: [N, C, H, W] for spatial layers, [N, F] for vectors.</summary>
    public int[] ExportShape(int images) => Height == 1 && Width == 1 && Layout == "[N][F]"
        ? [images, Channels]
        : [images, Channels, Height, Width];
}

/// <summary>
/// Every device buffer of a model, sized at load for the maximum batch. Each activation is read only by the
/// next layer, so two arenas used alternately hold them all (the ping-pong plan): the activation of step i
/// lives in arena i mod 2, and each arena is as large as its largest tenant. The input staging buffer, the
/// lowering workspace and the weights are separate.
/// </summary>
public sealed class NetworkPlan
{
    internal NetworkPlan(int maxBatch, long workspaceFloats, IReadOnlyList<ConvolutionPlan> convolutions,
        IReadOnlyList<ActivationPlan> activations, long weightFloats, int[] fullyConnected, int elementBytes)
    {
        MaxBatch = maxBatch;
        ElementBytes = elementBytes;
        WorkspaceFloats = workspaceFloats;
        Convolutions = convolutions;
        Activations = activations;
        WeightFloats = weightFloats;
        FullyConnected = fullyConnected;
        StagingFloats = (long)maxBatch * AlexNetModel.InputSize * AlexNetModel.InputSize * AlexNetModel.InputChannels;
        // The converted input, [3][N][227][227], is step 0: arena 0.
        ArenaFloats = [StagingFloats, 0];
        foreach (ActivationPlan a in activations)
            ArenaFloats[a.Arena] = Math.Max(ArenaFloats[a.Arena], a.ElementsPerImage * maxBatch);
        // 16-bit activations: the logits and the probabilities, FP32 whatever the storage, get buffers of their own.
        ProbabilityFloats = elementBytes == sizeof(float) ? 0 : (long)maxBatch * fullyConnected[2];
    }

    public int MaxBatch { get; }

    /// <summary>Bytes per element of the activations, the workspace and the weights: 4 for FP32 and TF32, 2 for
    /// fp16 and bf16. The arenas', workspace's and weights' "floats" below count elements of that size; the
    /// input staging (the user's images) and the probabilities are FP32 in every precision.</summary>
    public int ElementBytes { get; }

    /// <summary>Floats of each of the two separate FP32 buffers of a 16-bit plan, fc8's logits and the probabilities
    /// (0 in FP32, where they take their arenas).</summary>
    public long ProbabilityFloats { get; }

    public IReadOnlyList<ConvolutionPlan> Convolutions { get; }

    /// <summary>The 14 exportable layers in order: conv1, norm1, pool1, …, fc8, prob.</summary>
    public IReadOnlyList<ActivationPlan> Activations { get; }

    /// <summary>Widths of fc6, fc7, fc8 (the last is the number of classes).</summary>
    public int[] FullyConnected { get; }

    public long[] ArenaFloats { get; }

    public long StagingFloats { get; }

    public long WorkspaceFloats { get; }

    public long WeightFloats { get; }

    /// <summary>Multiply-adds of one image's forward pass (724,406,816 for BVLC AlexNet; docs/model.md).</summary>
    public long MacsPerImage => Convolutions.Sum(c => c.MacsPerImage)
        + (long)Activation("pool5").ElementsPerImage * FullyConnected[0] + (long)FullyConnected[0] * FullyConnected[1] + (long)FullyConnected[1] * FullyConnected[2];

    /// <summary>Device bytes of the activations, staging and workspace (what the batch size drives).</summary>
    public long ActivationBytes => (ArenaFloats[0] + ArenaFloats[1] + WorkspaceFloats) * ElementBytes + (StagingFloats + 2 * ProbabilityFloats) * sizeof(float);

    /// <summary>Device bytes of everything the model allocates: weights, biases, activations, workspace.</summary>
    public long PeakBytes => ActivationBytes + WeightFloats * ElementBytes;

    /// <summary>What <see cref="ActivationBytes"/> would be with one buffer per tensor (the converted input and
    /// each layer's activation) instead of two shared arenas: the saving of the plan.</summary>
    public long UnsharedActivationBytes =>
        (Activations.Sum(a => a.ElementsPerImage) * MaxBatch + StagingFloats + WorkspaceFloats) * ElementBytes + StagingFloats * sizeof(float);

    /// <summary>
    /// The minimum work of each step of a pass over <paramref name="batch"/> images, in the order the pass runs
    /// them (dropout, off for inference, is not listed; each step is one kernel launch, or one GEMM call per
    /// chunk of images): what a benchmark divides by the measured time for
    /// GFLOP/s and GB/s, and what a roofline bound is computed from (docs/performance.md).
    /// </summary>
    public IReadOnlyList<StepCost> StepCosts(int batch, bool fusedActivations = true)
    {
        // Activations, lowering and weights move in the plan's element size; biases, the user's images and the
        // probabilities are floats. (The 16-bit formats halve every step but those edges.)
        double F = ElementBytes;
        const double F32 = sizeof(float);
        var steps = new List<StepCost>();
        double inputFloats = (double)StagingFloats / MaxBatch * batch;
        steps.Add(new StepCost("input", 0, inputFloats * (F32 + F)));
        double current = inputFloats;
        // With fused activations a convolution's bias and ReLU are applied by the step that reads its output
        // next (see AlexNetModel.Run), which reads the bias too (`pendingBias` is its length, or 0), and an LRN
        // and the pool after it are one step. Without, each convolution has a bias+relu step of its own.
        double pendingBias = 0;
        foreach (ConvolutionPlan c in Convolutions)
        {
            double lowered = (double)c.LoweredPerImage * batch, output = (double)c.OutputChannels * c.OutputPixels * batch;
            double chunks = Math.Ceiling(batch / (double)c.ChunkImages), filters = (double)c.OutputChannels * c.GroupK;
            steps.Add(new StepCost($"{c.Name} im2col", 0, (current + lowered) * F + pendingBias * F32));
            steps.Add(new StepCost($"{c.Name} gemm", 2.0 * c.MacsPerImage * batch, (chunks * filters + lowered + output) * F));
            if (fusedActivations)
                pendingBias = c.OutputChannels;
            else
                steps.Add(new StepCost($"{c.Name} bias+relu", 0, 2 * output * F + c.OutputChannels * F32));
            current = output;
            if (fusedActivations && Activations.Any(x => x.Name == $"norm{c.Name[^1]}"))
            {
                // LRN and the pool after it as one kernel: the normalised tensor is neither written nor read.
                ActivationPlan pool = Activation($"pool{c.Name[^1]}");
                double pooled = (double)pool.ElementsPerImage * batch;
                steps.Add(new StepCost($"norm{c.Name[^1]}+pool{c.Name[^1]}", 0, (current + pooled) * F + pendingBias * F32));
                current = pooled;
                pendingBias = 0;
                continue;
            }
            foreach (string follower in new[] { "norm", "pool" })
            {
                ActivationPlan? a = Activations.FirstOrDefault(x => x.Name == $"{follower}{c.Name[^1]}");
                if (a is null) continue;
                double produced = (double)a.ElementsPerImage * batch;
                steps.Add(new StepCost(a.Name, 0, (current + produced) * F + pendingBias * F32));
                current = produced;
                pendingBias = 0;
            }
        }
        double inputs = Activation("pool5").ElementsPerImage;
        for (int i = 0; i < 3; i++)
        {
            double outputs = FullyConnected[i];
            // fc8's logits are FP32 in every precision.
            double outputBytes = i == 2 ? F32 : F;
            steps.Add(new StepCost($"fc{6 + i} gemm", 2.0 * inputs * outputs * batch, (inputs * outputs + inputs * batch) * F + outputs * batch * outputBytes));
            if (i < 2) steps.Add(new StepCost($"fc{6 + i} bias+relu", 0, 2 * outputs * batch * F + outputs * F32));
            inputs = outputs;
        }
        // The softmax adds fc8's bias to the logits in place and writes the probabilities.
        steps.Add(new StepCost("softmax", 0, (3 * inputs * batch + inputs) * F32));
        return steps;
    }

    public ActivationPlan Activation(string name) =>
        Activations.FirstOrDefault(a => a.Name == name)
        ?? throw new AlexNetException($"AlexNet has no layer '{name}'; layers: {string.Join(", ", Activations.Select(a => a.Name))}");

    /// <summary>A table of the plan, for `alexnet features --plan` and the docs.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        CultureInfo c = CultureInfo.InvariantCulture;
        int e = ElementBytes;
        text.Append(c, $"memory plan for batch {MaxBatch}{(e == sizeof(float) ? "" : $", {8 * e}-bit activations and weights")}:\n");
        foreach (ActivationPlan a in Activations)
            text.Append(c, $"  {a.Name,-6} {a.Layout,-13} {a.Channels,5} x {a.Height,3} x {a.Width,3}  arena {a.Arena}  {Mib(a.ElementsPerImage * MaxBatch * e),10}\n");
        text.Append(c, $"  arena 0 {Mib(ArenaFloats[0] * e)}, arena 1 {Mib(ArenaFloats[1] * e)}, input staging {Mib(StagingFloats * 4)}, im2col workspace {Mib(WorkspaceFloats * e)}{(ProbabilityFloats > 0 ? $", FP32 logits and probabilities {Mib(2 * ProbabilityFloats * 4)}" : "")}\n");
        foreach (ConvolutionPlan p in Convolutions)
            text.Append(c, $"  {p.Name}: GEMM M={p.GroupOutputChannels} N={p.ChunkImages}x{p.OutputPixels} K={p.GroupK} batch {p.Groups}; {Chunking(p)}\n");
        text.Append(c, $"  activations {Mib(ActivationBytes)} (one buffer per tensor would take {Mib(UnsharedActivationBytes)}), weights {Mib(WeightFloats * e)}, peak {Mib(PeakBytes)}");
        return text.ToString();
    }

    /// <summary>How <paramref name="p"/> splits a batch, and why its chunk has the size it has.</summary>
    private string Chunking(ConvolutionPlan p)
    {
        int chunks = (MaxBatch + p.ChunkImages - 1) / p.ChunkImages;
        if (chunks == 1) return $"one chunk: the workspace holds the whole batch ({p.WorkspaceImages} images' lowering)";
        string why = p.ChunkImages == p.WorkspaceImages
            ? p.ChunkImages % ConvolutionPlan.AlignmentGranule(p.OutputPixels, ElementBytes) == 0
                ? "as many as the workspace holds"
                : $"all the workspace holds, too few to round to a multiple of {ConvolutionPlan.AlignmentGranule(p.OutputPixels, ElementBytes)} (GEMM operands not 16-byte aligned)"
            : $"the workspace holds {p.WorkspaceImages}, rounded down so every chunk's GEMM operands are 16-byte aligned";
        return $"chunks of {p.ChunkImages} image{(p.ChunkImages == 1 ? "" : "s")} ({why}), {chunks} at batch {MaxBatch}";
    }

    private static string Mib(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:F1} MiB");

    /// <summary>
    /// The plan for <paramref name="architecture"/> (channel counts and kernel sizes from the weights; the
    /// strides, paddings and pooling of docs/model.md). Throws an <see cref="AlexNetException"/> when the
    /// shapes do not chain or the workspace cannot hold one image's lowering.
    /// </summary>
    /// <summary>The largest batch whose every convolution's lowering fits <paramref name="workspaceBytes"/> whole (one
    /// chunk each), for elements of <paramref name="elementBytes"/>: the fewest images any convolution's workspace holds.</summary>
    public static int LargestUnchunkedBatch(AlexNetArchitecture architecture, long workspaceBytes, int elementBytes = sizeof(float)) =>
        Create(architecture, 1, workspaceBytes, elementBytes).Convolutions.Min(c => c.WorkspaceImages);

    internal static NetworkPlan Create(AlexNetArchitecture architecture, int maxBatch, long workspaceBytes, int elementBytes = sizeof(float))
    {
        // (stride, VALID?) of conv1..conv5 and whether a 3×3/2 pool follows, as the reference defines them.
        (int Stride, bool Valid, bool Pool, bool Lrn)[] shape =
        [
            (4, true, true, true), (1, false, true, true), (1, false, false, false), (1, false, false, false), (1, false, true, false),
        ];
        var convolutions = new List<ConvolutionPlan>();
        var activations = new List<ActivationPlan>();
        int size = AlexNetModel.InputSize, channels = AlexNetModel.InputChannels;
        long largestLowering = 0;
        int step = 1; // the input is step 0, in arena 0
        void Add(string name, int c, int h) => activations.Add(new ActivationPlan(name, c, h, h, step++ % 2, "[C][N][H][W]"));
        for (int i = 0; i < 5; i++)
        {
            LayerSpec spec = architecture.Layers[i];
            int k = spec.WeightShape[0];
            if (spec.WeightShape[1] != k)
                throw new AlexNetException($"{spec.Name}: the engine runs square kernels; the weights are {spec.WeightShape[0]}×{spec.WeightShape[1]}");
            if (spec.WeightShape[2] * spec.Groups != channels)
                throw new AlexNetException($"{spec.Name}: its weights take {spec.WeightShape[2]}×{spec.Groups} input channels but the layer before gives {channels}");
            if (spec.OutputChannels % spec.Groups != 0)
                throw new AlexNetException($"{spec.Name}: {spec.OutputChannels} output channels do not split into {spec.Groups} groups");
            int pad = shape[i].Valid ? 0 : (k - 1) / 2;
            int outSize = (size + 2 * pad - k) / shape[i].Stride + 1;
            if (outSize < 1) throw new AlexNetException($"{spec.Name}: a {k}×{k} kernel does not fit a {size}×{size} input");
            var plan = new ConvolutionPlan(spec.Name, channels, spec.OutputChannels, spec.Groups, k, shape[i].Stride, pad, size, outSize, 0);
            largestLowering = Math.Max(largestLowering, plan.LoweredPerImage);
            convolutions.Add(plan);
            channels = spec.OutputChannels;
            size = outSize;
            Add(spec.Name, channels, size);
            if (shape[i].Lrn) Add($"norm{i + 1}", channels, size);
            if (shape[i].Pool)
            {
                size = (size - 3) / 2 + 1;
                if (i == 4) activations.Add(new ActivationPlan("pool5", channels, size, size, step++ % 2, "[N][C][H][W]"));
                else Add($"pool{i + 1}", channels, size);
            }
        }
        int flatten = channels * size * size;
        if (architecture.Layers[5].WeightShape[0] != flatten)
            throw new AlexNetException($"fc6: its weights take {architecture.Layers[5].WeightShape[0]} inputs but pool5 gives {channels}×{size}×{size} = {flatten}");
        int[] widths = new int[3];
        for (int i = 5; i < 8; i++)
        {
            LayerSpec spec = architecture.Layers[i];
            if (i > 5 && spec.WeightShape[0] != widths[i - 6])
                throw new AlexNetException($"{spec.Name}: its weights take {spec.WeightShape[0]} inputs but {architecture.Layers[i - 1].Name} gives {widths[i - 6]}");
            widths[i - 5] = spec.WeightShape[1];
            activations.Add(new ActivationPlan(spec.Name, widths[i - 5], 1, 1, step++ % 2, "[N][F]"));
        }
        activations.Add(new ActivationPlan("prob", widths[2], 1, 1, step++ % 2, "[N][F]"));

        long workspaceFloats = workspaceBytes / elementBytes;
        if (workspaceFloats < largestLowering)
            throw new AlexNetException(string.Create(CultureInfo.InvariantCulture,
                $"the im2col workspace of {workspaceBytes / 1048576.0:F1} MiB cannot hold one image's lowered input ({largestLowering * elementBytes / 1048576.0:F1} MiB for {convolutions.First(p => p.LoweredPerImage == largestLowering).Name}); give a larger workspace"));
        // Each convolution takes as many images per chunk as fit, to a multiple of 4 when it takes several
        // chunks (ConvolutionPlan.ChunkFor); the workspace is then only as large as the largest chunk needs.
        long used = 0;
        for (int i = 0; i < convolutions.Count; i++)
        {
            ConvolutionPlan p = convolutions[i];
            long fit = workspaceFloats / p.LoweredPerImage;
            int chunk = ConvolutionPlan.ChunkFor(p.OutputPixels, fit, maxBatch, elementBytes);
            convolutions[i] = p with { ChunkImages = chunk, WorkspaceImages = (int)Math.Min(fit, int.MaxValue) };
            used = Math.Max(used, chunk * p.LoweredPerImage);
        }
        long weights = architecture.ParameterCount;
        return new NetworkPlan(maxBatch, used, convolutions, activations, weights, widths, elementBytes);
    }
}
