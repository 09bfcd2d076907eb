using System.Globalization;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Network;

/// <summary>How an <see cref="AlexNetModel"/> is built and run (the reference code's constructor arguments,
/// plus the engine's own sizing).</summary>
public sealed class AlexNetOptions
{
    /// <summary>Probability of keeping an fc6/fc7 activation (the reference code's <c>keep_prob</c>): 1 for inference,
    /// where dropout is the identity and nothing is launched for it; below 1 is training-mode dropout.</summary>
    public float KeepProbability { get; init; } = 1f;

    /// <summary>Seed of the dropout masks: a mask is a pure function of (seed, layer, element index).</summary>
    public ulong DropoutSeed { get; init; }

    /// <summary>Number of classes of fc8 (the reference code's <c>num_classes</c>); null: as the weight file has it.</summary>
    public int? NumClasses { get; init; }

    /// <summary>Layers initialised afresh instead of read from the file (the reference code's <c>skip_layer</c>).</summary>
    public IReadOnlyCollection<string> SkipLayers { get; init; } = [];

    /// <summary>Seed of the fresh initialisation of skipped layers.</summary>
    public ulong InitSeed { get; init; }

    /// <summary>The shapes a weight file must have; BVLC AlexNet's when null. Channel counts may differ (the
    /// geometry — kernel sizes, strides, pools — is AlexNet's), as in the tests' narrow networks.</summary>
    public AlexNetArchitecture? Architecture { get; init; }

    /// <summary>Local response normalisation after conv1 and conv2.</summary>
    public LrnParameters Lrn { get; init; } = LrnParameters.Default;

    /// <summary>The largest batch a forward pass takes: every device buffer is sized for it at load.</summary>
    public int MaxBatch { get; init; } = 32;

    /// <summary>Bytes of device memory for the convolutions' lowered input (im2col). A batch whose lowering
    /// is larger runs each convolution in chunks of images that fit.</summary>
    public long WorkspaceBytes { get; init; } = DefaultWorkspaceBytes;

    /// <summary>256 MiB: conv2 of 38 images at once (6.7 MiB each); fewer chunks than that cost nothing
    /// measurable on the GEMM and it stays small beside an H100's 80 GB.</summary>
    public const long DefaultWorkspaceBytes = 256L << 20;

    /// <summary>
    /// A workspace the size of <paramref name="device"/>'s last-level cache (<see cref="ComputeDevice.CacheBytes"/>),
    /// so that each chunk's lowered input can stay in the cache between the im2col that writes it and the GEMM
    /// that reads it (on an H100 50 MB: conv2 in chunks of 4 images); at least one image's largest lowering
    /// (conv2's 6.7 MiB) for <paramref name="architecture"/> (BVLC AlexNet's when null), and
    /// <see cref="DefaultWorkspaceBytes"/> when the device does not say. Whether it is faster than the default
    /// is for a benchmark to say (<c>alexnet bench --workspace l2</c>).
    /// </summary>
    public static long CacheSizedWorkspaceBytes(ComputeDevice device, AlexNetArchitecture? architecture = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.CacheBytes <= 0) return DefaultWorkspaceBytes;
        long largest = NetworkPlan.Create(architecture ?? AlexNetArchitecture.Default, 1, long.MaxValue).Convolutions.Max(c => c.LoweredPerImage) * sizeof(float);
        return Math.Max(device.CacheBytes, largest);
    }

    /// <summary>
    /// Whether a convolution's bias and ReLU run inside the kernel that reads its output next (norm1, norm2,
    /// conv4's and conv5's im2col, pool5) instead of as a pass of their own: the same numbers, one read and one
    /// write of every convolution's output fewer; and, in a pass that reads no layer out, each LRN and the pool
    /// after it as one kernel (norm1 and norm2 never written). Null (the default): on a GPU, and not on a CPU device, where
    /// PoCL measured the separate pass (0.2–0.3 ms over conv4's output at batch 32) cheaper than the extra
    /// arithmetic the fused LRN and pooling do per value (about 1.2 ms more each), the data being in cache.
    /// </summary>
    public bool? FuseActivations { get; init; }

    /// <summary>What a null <see cref="FuseActivations"/> means on <paramref name="device"/>: fused where the
    /// network's GPU kernels run, separate where its CPU variants do.</summary>
    public static bool FusesActivationsByDefault(ComputeDevice device) => NetworkKernels.TargetOf(device) == NetworkKernelTarget.Gpu;

    /// <summary>
    /// The number formats of the pass (<see cref="Network.Precision"/>): FP32 by default; TF32 keeps FP32 storage
    /// and rounds the GEMMs' inputs; fp16 and bf16 store weights and activations in 16 bits (converted once at
    /// load) with FP32 accumulation and FP32 probabilities. A device that lacks the GEMM for it
    /// (<see cref="Precisions.IsSupported"/>) refuses to build the model, naming why.
    /// </summary>
    public Precision Precision { get; init; } = Precision.Fp32;

    /// <summary>The weight loader's options these imply.</summary>
    public WeightLoadOptions WeightLoadOptions => new() { NumClasses = NumClasses, SkipLayers = SkipLayers, Seed = InitSeed, Architecture = Architecture };

    /// <summary>Throws an <see cref="AlexNetException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (!(KeepProbability > 0f && KeepProbability <= 1f))
            throw new AlexNetException(string.Create(CultureInfo.InvariantCulture,
                $"keep probability must be in (0, 1], not {KeepProbability}; 1 is inference (no dropout)"));
        if (MaxBatch < 1) throw new AlexNetException($"the maximum batch must be at least 1, not {MaxBatch}");
        if (WorkspaceBytes < 1) throw new AlexNetException($"the workspace must be at least 1 byte, not {WorkspaceBytes}");
        Lrn.Validate();
    }

    /// <summary>
    /// Whether <see cref="AlexNetModel.Run(int)"/> captures the whole pass as a graph per batch size and replays
    /// it with one launch (ForwardGraphs: at most 8 sizes kept, a size whose capture fails runs launch by launch).
    /// Null (the default): where the device can capture graphs (CUDA), and not elsewhere; true: the same, but a
    /// device that cannot is an error at load; false: never. Features and profiled passes always run launch by launch.
    /// </summary>
    public bool? UseGraphs { get; init; }

    /// <summary>
    /// Where fc6's and fc7's bias and ReLU are applied: <see cref="Network.GemmEpilogue.Kernel"/>, by bias_relu's pass
    /// over the GEMM's output; <see cref="Network.GemmEpilogue.CublasLt"/>, by the GEMM itself (cuBLASLt's RELU_BIAS
    /// epilogue, CUDA only: a device without it refuses to build the model, naming why), one read and one write of each
    /// [N][4096] activation and a launch fewer. <see cref="Network.GemmEpilogue.Auto"/> (the default) is the kernel until
    /// a GPU run measures cuBLASLt's pass faster (<c>alexnet bench --epilogue</c>; Bench/gpu/run-checks.sh times both).
    /// With dropout (<see cref="KeepProbability"/> below 1) the kernel path runs either way: the dropout kernel applies
    /// the bias and ReLU in its own pass. fc8 keeps its bias in the softmax kernel, which adds it to the logits in place.
    /// </summary>
    public GemmEpilogue GemmEpilogue { get; init; } = GemmEpilogue.Auto;
}

/// <summary>Where the fully connected layers' bias and ReLU run (<see cref="AlexNetOptions.GemmEpilogue"/>).</summary>
public enum GemmEpilogue
{
    /// <summary>The kernel, until a GPU measurement says otherwise.</summary>
    Auto,

    /// <summary>A bias_relu pass after each GEMM.</summary>
    Kernel,

    /// <summary>cuBLASLt's GEMM with the RELU_BIAS epilogue (<see cref="Devices.ComputeStream.GemmBias"/>).</summary>
    CublasLt,
}
