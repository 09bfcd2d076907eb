using System.Globalization;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using static AlexNet.Cuda.Network.NetworkKernels;

namespace AlexNet.Cuda.Training;

/// <summary>
/// The backward pass's element-wise and reduction kernels, and the optimiser step, on one device (FP32),
/// compiled once. As <see cref="NetworkKernels"/>: each method checks its sizes and buffers (a one-line
/// <see cref="AlexNetException"/> naming the operation and the problem), computes the launch geometry and
/// queues one launch on the given stream, allocating nothing. Layouts as the forward pass's: fully connected
/// activations and their gradients <c>[N][F]</c>, convolutional ones <c>[C][N][H][W]</c>. A fully connected
/// layer's own backward is two GEMMs the caller queues (<c>dW = Xᵀ·dY</c>, <c>dX = dY·Wᵀ</c>) plus
/// <see cref="BiasGradient"/>.
/// </summary>
public sealed class BackwardKernels : IDisposable
{
    /// <summary>Threads per block of every launch here: 8 warps, as the forward kernels (see <see cref="NetworkKernels"/>).</summary>
    public const int BlockSize = 256;

    /// <summary>
    /// The grid-stride kernels' (ReLU backward, SGD) largest grid: 4096 blocks of 256 threads, about four
    /// waves of an H100/H200 (132 SMs × 2048 threads), so bandwidth is saturated while each thread of fc6's
    /// 37.7 M-weight step takes 36 elements; and on PoCL few enough work-groups that their fixed cost does
    /// not count.
    /// </summary>
    public const int MaxGridStrideBlocks = 4096;

    /// <summary>bias_grad.cu's BIAS_GRAD_CHUNK: terms per chunk sum of its blocked summation (the error bound
    /// of <see cref="BiasGradient"/> follows from it).</summary>
    public const int BiasGradientChunk = 32;

    private static readonly IReadOnlyDictionary<string, string> BlockDefine =
        new Dictionary<string, string> { ["BLOCK_SIZE"] = BlockSize.ToString(CultureInfo.InvariantCulture) };

    private static readonly IReadOnlyDictionary<string, string> BiasGradientDefines = new Dictionary<string, string>
    {
        ["BLOCK_SIZE"] = BlockSize.ToString(CultureInfo.InvariantCulture),
        ["BIAS_GRAD_CHUNK"] = BiasGradientChunk.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>Every kernel this class launches, as it launches it (the same record as <see cref="NetworkKernels.Kernels"/>;
    /// all but the SGD step's CPU variant serve both targets).</summary>
    public static IReadOnlyList<NetworkKernelInfo> Kernels { get; } =
    [
        new("softmax_xent_backward.cu", "softmax_xent_backward_kernel1", BlockSize, BlockDefine),
        new("relu_backward.cu", "relu_backward_kernel1", BlockSize, null),
        new("dropout_backward.cu", "dropout_backward_kernel1", BlockSize, null),
        new("bias_grad.cu", "bias_grad_kernel1", BlockSize, BiasGradientDefines),
        new("bias_grad.cu", "bias_grad_columns_kernel1", BlockSize, BiasGradientDefines),
        new("sgd.cu", "sgd_momentum_kernel1", BlockSize, null, NetworkKernelTarget.Gpu),
        new("sgd.cu", "sgd_momentum_kernel2", RunBlockSize, null, NetworkKernelTarget.Cpu),
    ];

    private readonly ComputeDevice _device;
    private readonly List<KernelModule> _modules = [];
    private readonly Kernel _softmaxXent, _reluBackward, _dropoutBackward, _biasGradient, _biasGradientColumns, _sgd;
    private bool _disposed;

    /// <summary>Compiles (or loads from the disk cache) the kernels on <paramref name="device"/>, with the launch
    /// shapes of <paramref name="target"/> (null: the device's own, <see cref="NetworkKernels.TargetOf"/>; the checks
    /// pass each target to prove both variants on one device).</summary>
    public BackwardKernels(ComputeDevice device, NetworkKernelTarget? target = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        Target = target ?? TargetOf(device);
        var byEntryPoint = new Dictionary<string, Kernel>();
        try
        {
            // One module per file: bias_grad.cu's two kernels share one (and its defines).
            var modules = new Dictionary<string, KernelModule>();
            foreach (NetworkKernelInfo info in Kernels)
            {
                if (!info.LaunchedFor(Target)) continue;
                if (!modules.TryGetValue(info.File, out KernelModule? module))
                {
                    module = device.LoadModule(info.File, info.Defines);
                    _modules.Add(module);
                    modules.Add(info.File, module);
                }
                byEntryPoint.Add(info.EntryPoint, module.GetKernel(info.EntryPoint));
            }
        }
        catch
        {
            foreach (KernelModule module in _modules) module.Dispose();
            throw;
        }
        _softmaxXent = byEntryPoint["softmax_xent_backward_kernel1"];
        _reluBackward = byEntryPoint["relu_backward_kernel1"];
        _dropoutBackward = byEntryPoint["dropout_backward_kernel1"];
        _biasGradient = byEntryPoint["bias_grad_kernel1"];
        _biasGradientColumns = byEntryPoint["bias_grad_columns_kernel1"];
        _sgd = byEntryPoint[Target == NetworkKernelTarget.Cpu ? "sgd_momentum_kernel2" : "sgd_momentum_kernel1"];
    }

    public ComputeDevice Device => _device;

    /// <summary>The launch shapes these kernels use.</summary>
    public NetworkKernelTarget Target { get; }

    /// <summary>
    /// Softmax cross-entropy over <paramref name="rows"/> rows of <paramref name="classes"/> logits: writes
    /// <c>loss[r] = −log softmax(logits[r])[labels[r]]</c> and
    /// <c>gradLogits[r][c] = scale·(softmax(logits[r])[c] − (c == labels[r] ? 1 : 0))</c>, the gradient of
    /// <c>scale·Σ loss</c> (scale 1/rows: the batch mean), stably (the row maximum subtracted before the
    /// log-sum-exp). <paramref name="gradLogits"/> may be <paramref name="logits"/> itself (in place); the loss
    /// must be a buffer of its own. A label outside [0, classes) gets loss NaN and a zero gradient row (the
    /// kernel reads and writes nothing out of bounds). Labels are int32.
    /// </summary>
    public void SoftmaxCrossEntropyBackward(ComputeStream s, DeviceBuffer<float> gradLogits, DeviceBuffer<float> loss,
        DeviceBuffer<float> logits, DeviceBuffer<int> labels, int rows, int classes, float scale)
    {
        const string op = "SoftmaxCrossEntropyBackward";
        Check(s, op);
        Positive(op, ("rows", rows), ("classes", classes));
        int count = FitsInInt(op, "rows·classes", (long)rows * classes);
        Finite(op, "scale", scale);
        Holds(_device, op, "gradLogits", gradLogits, count);
        Holds(_device, op, "loss", loss, rows);
        Holds(_device, op, "logits", logits, count);
        Holds(_device, op, "labels", labels, rows);
        if (ReferenceEquals(loss, logits) || ReferenceEquals(loss, gradLogits))
            throw Error(op, "the loss must be a buffer of its own (only gradLogits may be the logits buffer); pass separate buffers");

        var args = new KernelArguments();
        args.Add(gradLogits);
        args.Add(loss);
        args.Add(logits);
        args.Add(labels);
        args.Add(rows);
        args.Add(classes);
        args.Add(scale);
        s.Launch(_softmaxXent, new Dim3((uint)rows), new Dim3(BlockSize), args);
    }

    /// <summary>
    /// In place: <c>grad[i] = output[i] &gt; 0 ? grad[i] : 0</c> for the first <paramref name="count"/> elements,
    /// where <paramref name="output"/> is the ReLU's output (positive exactly where its input was), so the
    /// input need not be kept; the gradient at 0 is 0. After fc6/fc7's fused bias, ReLU and dropout, the
    /// dropout's output serves once <see cref="DropoutBackward"/> has run.
    /// </summary>
    public void ReluBackward(ComputeStream s, DeviceBuffer<float> grad, DeviceBuffer<float> output, int count)
    {
        const string op = "ReluBackward";
        Check(s, op);
        Positive(op, ("count", count));
        Holds(_device, op, "grad", grad, count);
        Holds(_device, op, "output", output, count);
        if (ReferenceEquals(grad, output))
            throw Error(op, "grad must not be the ReLU's output buffer (it would be overwritten by its own gradient); pass separate buffers");

        var args = new KernelArguments();
        args.Add(grad);
        args.Add(output);
        args.Add(count);
        s.Launch(_reluBackward, GridStride(count), new Dim3(BlockSize), args);
    }

    /// <summary>
    /// In place: <c>grad[i] = kept(i) ? grad[i]·(1/keepProb) : 0</c> for the first <paramref name="count"/>
    /// elements, with exactly the mask <see cref="NetworkKernels.Dropout"/> drew for the same
    /// <paramref name="seed"/> and <paramref name="offset"/> (dropout.cu's Philox-4x32-10 scheme, from the one
    /// definition in philox.h), and its float factor 1/keepProb.
    /// </summary>
    public void DropoutBackward(ComputeStream s, DeviceBuffer<float> grad, int count, float keepProb, ulong seed, uint offset)
    {
        const string op = "DropoutBackward";
        Check(s, op);
        Positive(op, ("count", count));
        if (!(keepProb > 0 && keepProb <= 1))
            throw Error(op, string.Create(CultureInfo.InvariantCulture,
                $"keepProb must be in (0, 1], not {keepProb}; use the forward pass's"));
        Holds(_device, op, "grad", grad, count);

        // Philox blocks of four consecutive global indices that the elements touch (as the forward's launch).
        long blocks = ((long)offset + count - 1) / 4 - offset / 4 + 1;
        var args = new KernelArguments();
        args.Add(grad);
        args.Add(count);
        args.Add(keepProb);
        args.Add((uint)seed);
        args.Add((uint)(seed >> 32));
        args.Add(offset);
        s.Launch(_dropoutBackward, new Dim3(Dim3.CeilDiv(blocks, BlockSize)), new Dim3(BlockSize), args);
    }

    /// <summary>
    /// <c>gradBias[c] = (accumulate ? gradBias[c] : 0) + Σ_{o &lt; outer, i &lt; inner} grad[(o·channels + c)·inner + i]</c>:
    /// a fully connected layer's bias gradient with (N, F, 1), a convolution's with (1, C, N·H·W). Deterministic
    /// (a fixed summation order, no atomics: the same bits every run), in float with blocked summation and a
    /// tree (see bias_grad.cu for the error bound). Without <paramref name="accumulate"/> gradBias is only written.
    /// </summary>
    public void BiasGradient(ComputeStream s, DeviceBuffer<float> gradBias, DeviceBuffer<float> grad, int outer, int channels, int inner,
        bool accumulate = false)
    {
        const string op = "BiasGradient";
        Check(s, op);
        Positive(op, ("outer", outer), ("channels", channels), ("inner", inner));
        int count = FitsInInt(op, "outer·channels·inner", (long)outer * channels * inner);
        Distinct(op, gradBias, grad);
        Holds(_device, op, "gradBias", gradBias, channels);
        Holds(_device, op, "grad", grad, count);

        var args = new KernelArguments();
        args.Add(gradBias);
        args.Add(grad);
        args.Add(outer);
        args.Add(channels);
        if (inner == 1)
        {
            args.Add(accumulate ? 1 : 0);
            s.Launch(_biasGradientColumns, new Dim3(Dim3.CeilDiv(channels, BlockSize)), new Dim3(BlockSize), args);
            return;
        }
        args.Add(inner);
        args.Add(accumulate ? 1 : 0);
        s.Launch(_biasGradient, new Dim3((uint)channels), new Dim3(BlockSize), args);
    }

    /// <summary>
    /// One step of SGD with momentum over <paramref name="count"/> parameters, TensorFlow's MomentumOptimizer with
    /// L2 weight decay folded into the gradient: <c>g = grad + weightDecay·weights</c>;
    /// <c>velocity = momentum·velocity + g</c>; <c>weights −= learningRate·velocity</c>. The velocity starts at 0.
    /// </summary>
    public void SgdMomentum(ComputeStream s, DeviceBuffer<float> weights, DeviceBuffer<float> velocity, DeviceBuffer<float> grad,
        int count, float learningRate, float momentum, float weightDecay)
    {
        const string op = "SgdMomentum";
        Check(s, op);
        Positive(op, ("count", count));
        NonNegative(op, "learningRate", learningRate);
        NonNegative(op, "weightDecay", weightDecay);
        if (!(momentum >= 0 && momentum < 1))
            throw Error(op, string.Create(CultureInfo.InvariantCulture,
                $"momentum must be in [0, 1), not {momentum} (1 or more never forgets a gradient)"));
        Holds(_device, op, "weights", weights, count);
        Holds(_device, op, "velocity", velocity, count);
        Holds(_device, op, "grad", grad, count);
        if (ReferenceEquals(weights, velocity) || ReferenceEquals(weights, grad) || ReferenceEquals(velocity, grad))
            throw Error(op, "weights, velocity and grad must be three separate buffers");

        var args = new KernelArguments();
        args.Add(weights);
        args.Add(velocity);
        args.Add(grad);
        args.Add(count);
        args.Add(learningRate);
        args.Add(momentum);
        args.Add(weightDecay);
        if (Target == NetworkKernelTarget.Cpu)
        {
            args.Add(RunSegment);
            s.Launch(_sgd, new Dim3(Dim3.CeilDiv(Dim3.CeilDiv(count, RunSegment), RunBlockSize)), new Dim3(RunBlockSize), args);
            return;
        }
        s.Launch(_sgd, GridStride(count), new Dim3(BlockSize), args);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (KernelModule module in _modules) module.Dispose();
    }

    /// <summary>The grid of a grid-stride kernel over <paramref name="count"/> elements: one thread per element
    /// up to <see cref="MaxGridStrideBlocks"/> blocks.</summary>
    private static Dim3 GridStride(int count) => new(Math.Min(Dim3.CeilDiv(count, BlockSize), (uint)MaxGridStrideBlocks));

    private void Check(ComputeStream s, string op)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckStream(_device, s, op);
    }

    private static void Finite(string op, string name, float value)
    {
        if (!float.IsFinite(value))
            throw Error(op, string.Create(CultureInfo.InvariantCulture, $"{name} must be a finite number, not {value}"));
    }

    private static void NonNegative(string op, string name, float value)
    {
        if (!(float.IsFinite(value) && value >= 0))
            throw Error(op, string.Create(CultureInfo.InvariantCulture, $"{name} must be a finite number of 0 or more, not {value}"));
    }
}
