using System.Globalization;
using AlexNet.Cuda.Devices;

namespace AlexNet.Cuda.Network;

/// <summary>
/// Which launch shapes the network's kernels use. A GPU wants one thread per element, consecutive threads
/// on consecutive addresses; a CPU (PoCL runs each work-group as a loop over its work-items, with a cost
/// per work-group) wants each work-item to own a contiguous run with its index arithmetic hoisted out of
/// the loop. Where an operation has a CPU variant (see docs/kernels.md) the target picks it; elsewhere
/// both targets launch the same kernel.
/// </summary>
public enum NetworkKernelTarget
{
    Gpu,
    Cpu,
}

/// <summary>One kernel the network launches: its file, entry point, the block size of its launches, the
/// <c>-D</c> defines its module is compiled with (null: none) and the targets that launch it.</summary>
public sealed record NetworkKernelInfo(string File, string EntryPoint, int BlockSize, IReadOnlyDictionary<string, string>? Defines,
    NetworkKernelTarget? OnlyFor = null)
{
    public bool LaunchedFor(NetworkKernelTarget target) => OnlyFor is not NetworkKernelTarget only || only == target;
}

/// <summary>
/// The network's own kernels (everything but the GEMMs) on one device, compiled once: each method checks
/// its sizes and buffers, computes the launch geometry and queues one launch on the given stream,
/// allocating nothing. Layouts (see the kernel files' head comments): activations of convolutional layers
/// are <c>[C][N][H][W]</c>, those of fully connected layers <c>[N][F]</c>.
/// </summary>
public sealed class NetworkKernels : IDisposable
{
    // Block sizes of the GPU launches. 256 threads = 8 warps: with at most 32 registers per thread (see
    // docs/kernels.md) 8 such blocks fill an SM's 2048 threads on sm_80/sm_90. The CPU variants' work-items
    // each walk a run of elements, so their work-groups are small (16, 64): enough work-groups to share
    // among the cores, few enough that PoCL's per-work-group cost does not count.
    public const int InputBlockSize = 256;
    /// <summary>The CPU variants that walk runs of elements (input, bias+ReLU): work-items per work-group
    /// and elements per work-item (16 KB of floats: PoCL's per-work-group cost is paid once per 256 KB).</summary>
    public const int RunBlockSize = 16;
    public const int RunSegment = 4096;
    public const int Im2ColBlockSize = 256;
    /// <summary>im2col_kernel2's work-items are rows of col: 64 keeps conv1's 363 rows in 6 mostly full work-groups.</summary>
    public const int Im2ColRowBlockSize = 64;
    public const int BiasReluBlockSize = 256;
    public const int LrnBlockSize = 256;
    /// <summary>lrn_kernel2's work-items each take a run of <see cref="LrnSegment"/> elements of one channel.</summary>
    public const int LrnRunBlockSize = 16;
    /// <summary>Elements per lrn_kernel2 work-item: 4 KB, which stays in L1 across the window's passes.</summary>
    public const int LrnSegment = 1024;
    public const int MaxPoolBlockSize = 256;
    /// <summary>maxpool_kernel2's work-items are (image, channel) planes; 16 images per work-group.</summary>
    public const int MaxPoolPlaneBlockSize = 16;
    public const int DropoutBlockSize = 256;
    /// <summary>softmax.cu's BLOCK_SIZE (its shared-memory reduction is sized by it).</summary>
    public const int SoftmaxBlockSize = 256;
    public const int ConvertBlockSize = 256;

    /// <summary>CUDA's limit on a grid's y and z sizes; the kernels put channels, rows, images there.</summary>
    public const int MaxGridYZ = 65535;

    /// <summary>Every kernel the class launches, as it launches it.</summary>
    public static IReadOnlyList<NetworkKernelInfo> Kernels { get; } =
    [
        new("input.cu", "input_nhwc_to_cnhw", InputBlockSize, null, NetworkKernelTarget.Gpu),
        new("input.cu", "input_nhwc_to_cnhw2", RunBlockSize, null, NetworkKernelTarget.Cpu),
        new("im2col.cu", "im2col_kernel1", Im2ColBlockSize, null, NetworkKernelTarget.Gpu),
        new("im2col.cu", "im2col_kernel2", Im2ColRowBlockSize, null, NetworkKernelTarget.Cpu),
        new("bias_relu.cu", "bias_relu_kernel1", BiasReluBlockSize, null),
        new("bias_relu.cu", "bias_relu_kernel2", RunBlockSize, null, NetworkKernelTarget.Cpu),
        new("lrn.cu", "lrn_kernel1", LrnBlockSize, null, NetworkKernelTarget.Gpu),
        new("lrn.cu", "lrn_kernel2", LrnRunBlockSize, null, NetworkKernelTarget.Cpu),
        new("lrn.cu", "lrn_maxpool_kernel1", LrnBlockSize, null),
        new("maxpool.cu", "maxpool_kernel1", MaxPoolBlockSize, null, NetworkKernelTarget.Gpu),
        new("maxpool.cu", "maxpool_kernel2", MaxPoolPlaneBlockSize, null, NetworkKernelTarget.Cpu),
        new("dropout.cu", "dropout_kernel1", DropoutBlockSize, null),
        new("convert.cu", "float_to_half_kernel1", ConvertBlockSize, null),
        new("convert.cu", "half_to_float_kernel1", ConvertBlockSize, null),
        new("convert.cu", "float_to_bf16_kernel1", ConvertBlockSize, null),
        new("convert.cu", "bf16_to_float_kernel1", ConvertBlockSize, null),
        new("softmax.cu", "softmax_kernel1", SoftmaxBlockSize,
            new Dictionary<string, string> { ["BLOCK_SIZE"] = SoftmaxBlockSize.ToString(CultureInfo.InvariantCulture) }),
    ];

    private readonly ComputeDevice _device;
    private readonly List<KernelModule> _modules = [];
    private readonly Dictionary<string, Kernel> _byEntryPoint = [];
    private readonly Kernel _input, _im2col, _biasRelu, _lrn, _maxPool, _dropout, _softmax;
    private readonly Kernel? _biasReluRuns;
    private bool _disposed;

    /// <summary>
    /// Compiles (or loads from the disk cache) every kernel module of the network on <paramref name="device"/>,
    /// with the launch shapes of <paramref name="target"/> (null: <see cref="TargetOf"/> the device; the
    /// checks and tests pass each target to prove both variants on one device).
    /// </summary>
    public NetworkKernels(ComputeDevice device, NetworkKernelTarget? target = null, ElementFormat activations = ElementFormat.Float32)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        Target = target ?? TargetOf(device);
        Activations = activations;
        try
        {
            var modules = new Dictionary<string, KernelModule>();
            foreach (NetworkKernelInfo info in Kernels)
            {
                if (!info.LaunchedFor(Target)) continue;
                IReadOnlyDictionary<string, string>? defines = ModuleDefines(info, activations);
                // One module per file and defines: a file's variants share it.
                string key = info.File + string.Concat((defines ?? new Dictionary<string, string>()).Select(d => $" -D{d.Key}={d.Value}"));
                if (!modules.TryGetValue(key, out KernelModule? module))
                {
                    module = device.LoadModule(info.File, defines);
                    _modules.Add(module);
                    modules.Add(key, module);
                }
                _byEntryPoint.Add(info.EntryPoint, module.GetKernel(info.EntryPoint));
            }
        }
        catch
        {
            foreach (KernelModule module in _modules) module.Dispose();
            throw;
        }
        bool cpu = Target == NetworkKernelTarget.Cpu;
        Kernel For(string gpu, string cpuVariant) => _byEntryPoint[cpu ? cpuVariant : gpu];
        _input = For("input_nhwc_to_cnhw", "input_nhwc_to_cnhw2");
        _im2col = For("im2col_kernel1", "im2col_kernel2");
        _biasRelu = _byEntryPoint["bias_relu_kernel1"];
        _biasReluRuns = cpu ? _byEntryPoint["bias_relu_kernel2"] : null;
        _lrn = For("lrn_kernel1", "lrn_kernel2");
        _maxPool = For("maxpool_kernel1", "maxpool_kernel2");
        _dropout = _byEntryPoint["dropout_kernel1"];
        _softmax = _byEntryPoint["softmax_kernel1"];
    }

    /// <summary>
    /// Converts the first <paramref name="count"/> floats of <paramref name="input"/> to <paramref name="format"/>'s
    /// 16-bit storage (<see cref="ElementFormat.Half"/> or <see cref="ElementFormat.BFloat16"/>) in
    /// <paramref name="output"/>, rounding to nearest, ties to even (a NaN stays NaN).
    /// </summary>
    public void ToSixteenBits(ComputeStream s, DeviceBuffer<ushort> output, DeviceBuffer<float> input, int count, ElementFormat format) =>
        Convert(s, "ToSixteenBits", SixteenBits("ToSixteenBits", format) == ElementFormat.BFloat16 ? "float_to_bf16_kernel1" : "float_to_half_kernel1",
            output, input, count);

    /// <summary>The floats of the first <paramref name="count"/> 16-bit values of <paramref name="input"/> (exact).</summary>
    public void FromSixteenBits(ComputeStream s, DeviceBuffer<float> output, DeviceBuffer<ushort> input, int count, ElementFormat format) =>
        Convert(s, "FromSixteenBits", SixteenBits("FromSixteenBits", format) == ElementFormat.BFloat16 ? "bf16_to_float_kernel1" : "half_to_float_kernel1",
            output, input, count);

    private static ElementFormat SixteenBits(string op, ElementFormat format) =>
        format == ElementFormat.Float32 ? throw Error(op, "the format must be a 16-bit one (fp16 or bf16), not fp32") : format;

    /// <summary>One of convert.cu's element-by-element kernels over the first <paramref name="count"/> values.</summary>
    private void Convert(ComputeStream s, string op, string entryPoint, DeviceBuffer output, DeviceBuffer input, int count)
    {
        Check(s, op);
        Positive(op, ("count", count));
        Holds(op, "output", output, count);
        Holds(op, "input", input, count);
        var args = new KernelArguments();
        args.Add(output);
        args.Add(input);
        args.Add(count);
        s.Launch(_byEntryPoint[entryPoint], new Dim3(Dim3.CeilDiv(count, ConvertBlockSize)), new Dim3(ConvertBlockSize), args);
    }

    /// <summary>The activations' storage these kernels were compiled for (prelude.h's act_t).</summary>
    public ElementFormat Activations { get; }

    /// <summary>The define that selects prelude.h's act_t for <paramref name="activations"/>, or null for floats.</summary>
    public static string? ActivationDefine(ElementFormat activations) => activations switch
    {
        ElementFormat.Half => "ACT_HALF",
        ElementFormat.BFloat16 => "ACT_BF16",
        _ => null,
    };

    /// <summary>The defines kernel <paramref name="info"/>'s module is compiled with for <paramref name="activations"/>:
    /// its own, plus the activation format's (convert.cu converts between formats and takes none).</summary>
    public static IReadOnlyDictionary<string, string>? ModuleDefines(NetworkKernelInfo info, ElementFormat activations)
    {
        ArgumentNullException.ThrowIfNull(info);
        if (ActivationDefine(activations) is not string define || info.File == "convert.cu") return info.Defines;
        var defines = new Dictionary<string, string>(info.Defines ?? new Dictionary<string, string>()) { [define] = "1" };
        return defines;
    }

    /// <summary>The launch shapes a device gets by default: <see cref="NetworkKernelTarget.Cpu"/> for an OpenCL
    /// CPU device (PoCL), <see cref="NetworkKernelTarget.Gpu"/> for everything else.</summary>
    public static NetworkKernelTarget TargetOf(ComputeDevice device) =>
        device.IsCpu ? NetworkKernelTarget.Cpu : NetworkKernelTarget.Gpu;

    public ComputeDevice Device => _device;

    /// <summary>The launch shapes these kernels use.</summary>
    public NetworkKernelTarget Target { get; }

    /// <summary>
    /// The user's batch, <c>input[n][p][c]</c> (N×227×227×3, BGR, mean subtracted), to the engine's
    /// channel-major <c>output[c][n][p]</c>.
    /// </summary>
    public void ConvertInput(ComputeStream s, DeviceBuffer output, DeviceBuffer<float> input, int images, int pixels, int channels)
    {
        const string op = "ConvertInput";
        Check(s, op);
        Positive(op, ("images", images), ("pixels", pixels), ("channels", channels));
        int total = FitsInInt(op, "images·pixels·channels", (long)images * pixels * channels);
        Distinct(op, output, input);
        HoldsActivations(op, "output", output, total);
        Holds(op, "input", input, total);

        var args = new KernelArguments();
        args.Add(output);
        args.Add(input);
        args.Add(images);
        args.Add(pixels);
        args.Add(channels);
        if (Target == NetworkKernelTarget.Cpu)
        {
            args.Add(RunSegment);
            s.Launch(_input, new Dim3(Dim3.CeilDiv(Dim3.CeilDiv((long)images * pixels, RunSegment), RunBlockSize)), new Dim3(RunBlockSize), args);
        }
        else
        {
            s.Launch(_input, new Dim3(Dim3.CeilDiv((long)images * pixels, InputBlockSize)), new Dim3(InputBlockSize), args);
        }
    }

    /// <summary>
    /// Unfolds the convolution windows of images [<paramref name="image0"/>, image0 + images) of
    /// <c>input[channels][batch][height][width]</c> into <c>col[channels·kernelH·kernelW][images·outH·outW]</c>
    /// (zero padding), so the convolution is one GEMM; <paramref name="outH"/>/<paramref name="outW"/> must be
    /// (height + 2·pad − kernelH)/stride + 1 and likewise for the width. With <paramref name="inputBias"/> the
    /// input is a convolution's raw output and each value is unfolded as relu(value + inputBias[channel]).
    /// </summary>
    public void Im2Col(ComputeStream s, DeviceBuffer col, DeviceBuffer input, int channels, int batch, int height, int width,
        int image0, int images, int kernelH, int kernelW, int stride, int pad, int outH, int outW, DeviceBuffer<float>? inputBias = null)
    {
        const string op = "Im2Col";
        Check(s, op);
        Positive(op, ("channels", channels), ("batch", batch), ("height", height), ("width", width), ("images", images),
            ("kernelH", kernelH), ("kernelW", kernelW), ("stride", stride), ("outH", outH), ("outW", outW));
        if (pad < 0) throw Error(op, $"pad must be 0 or more, not {pad}");
        if (image0 < 0 || (long)image0 + images > batch)
            throw Error(op, $"images [{image0}, {(long)image0 + images}) are not all inside the batch of {batch}");
        OutputSize(op, "outH", outH, "height", height, kernelH, stride, pad);
        OutputSize(op, "outW", outW, "width", width, kernelW, stride, pad);
        int inputCount = FitsInInt(op, "channels·batch·height·width", (long)channels * batch * height * width);
        long rows = (long)channels * kernelH * kernelW;
        if (rows > MaxGridYZ)
            throw Error(op, $"channels·kernelH·kernelW = {rows} exceeds {MaxGridYZ} rows (the grid's y limit); unfold fewer channels per call");
        GridLimit(op, "images", images);
        long columns = (long)images * outH * outW;
        int colCount = FitsInInt(op, "the col matrix (channels·kernelH·kernelW × images·outH·outW)", rows * columns);
        Distinct(op, col, input);
        HoldsActivations(op, "col", col, colCount);
        HoldsActivations(op, "input", input, inputCount);
        InputBias(op, inputBias, channels, col);

        var args = new KernelArguments();
        args.Add(col);
        args.Add(input);
        AddInputBias(ref args, inputBias, input);
        args.Add(channels);
        args.Add(batch);
        args.Add(height);
        args.Add(width);
        args.Add(image0);
        args.Add(images);
        args.Add(kernelH);
        args.Add(kernelW);
        args.Add(stride);
        args.Add(pad);
        args.Add(outH);
        args.Add(outW);
        if (Target == NetworkKernelTarget.Cpu)
            s.Launch(_im2col, new Dim3(Dim3.CeilDiv(rows, Im2ColRowBlockSize), (uint)images), new Dim3(Im2ColRowBlockSize), args);
        else
            s.Launch(_im2col, new Dim3(Dim3.CeilDiv((long)outH * outW, Im2ColBlockSize), (uint)rows, (uint)images), new Dim3(Im2ColBlockSize), args);
    }

    /// <summary>
    /// <c>x[o][c][s] += bias[c]</c> for x viewed as (outer, channels, inner), then ReLU when <paramref name="relu"/>
    /// (NaN stays NaN). After a convolution: (1, C, N·H·W); after a fully connected layer: (N, F, 1).
    /// </summary>
    public void BiasRelu(ComputeStream s, DeviceBuffer x, DeviceBuffer<float> bias, int outer, int channels, int inner, bool relu)
    {
        const string op = "BiasRelu";
        Check(s, op);
        Positive(op, ("outer", outer), ("channels", channels), ("inner", inner));
        int count = FitsInInt(op, "outer·channels·inner", (long)outer * channels * inner);
        GridLimit(op, "outer", outer);
        if (inner > 1) GridLimit(op, "channels", channels);
        Distinct(op, x, bias);
        HoldsActivations(op, "x", x, count);
        Holds(op, "bias", bias, channels);

        var args = new KernelArguments();
        args.Add(x);
        args.Add(bias);
        args.Add(outer);
        args.Add(channels);
        args.Add(inner);
        args.Add(relu ? 1 : 0);
        if (_biasReluRuns is not null && inner > 1)
        {
            args.Add(RunSegment);
            s.Launch(_biasReluRuns, new Dim3(Dim3.CeilDiv(Dim3.CeilDiv(inner, RunSegment), RunBlockSize), (uint)channels, (uint)outer),
                new Dim3(RunBlockSize), args);
            return;
        }
        // Threads along inner, or along the channels when inner is 1 (see bias_relu.cu).
        Dim3 grid = inner == 1
            ? new Dim3(Dim3.CeilDiv(channels, BiasReluBlockSize), (uint)outer)
            : new Dim3(Dim3.CeilDiv(inner, BiasReluBlockSize), (uint)channels, (uint)outer);
        s.Launch(_biasRelu, grid, new Dim3(BiasReluBlockSize), args);
    }

    /// <summary>
    /// Local response normalisation across the channels of <c>input[channels][inner]</c> (inner = N·H·W) into
    /// a different buffer <paramref name="output"/> (each output reads its neighbours' inputs). With
    /// <paramref name="inputBias"/> the input is a convolution's raw output and each value is read as
    /// relu(value + inputBias[channel]): the convolution's bias and ReLU fused into the normalisation.
    /// </summary>
    public void Lrn(ComputeStream s, DeviceBuffer output, DeviceBuffer input, int channels, int inner, LrnParameters p,
        DeviceBuffer<float>? inputBias = null)
    {
        const string op = "Lrn";
        Check(s, op);
        p.Validate();
        Positive(op, ("channels", channels), ("inner", inner));
        int count = FitsInInt(op, "channels·inner", (long)channels * inner);
        GridLimit(op, "channels", channels);
        Distinct(op, output, input);
        HoldsActivations(op, "output", output, count);
        HoldsActivations(op, "input", input, count);
        InputBias(op, inputBias, channels, output);

        var args = new KernelArguments();
        args.Add(output);
        args.Add(input);
        AddInputBias(ref args, inputBias, input);
        args.Add(channels);
        args.Add(inner);
        args.Add(p.Radius);
        args.Add(p.Alpha);
        args.Add(p.Beta);
        args.Add(p.Bias);
        if (Target == NetworkKernelTarget.Cpu)
        {
            args.Add(LrnSegment);
            s.Launch(_lrn, new Dim3(Dim3.CeilDiv(Dim3.CeilDiv(inner, LrnSegment), LrnRunBlockSize), (uint)channels), new Dim3(LrnRunBlockSize), args);
        }
        else
        {
            s.Launch(_lrn, new Dim3(Dim3.CeilDiv(inner, LrnBlockSize), (uint)channels), new Dim3(LrnBlockSize), args);
        }
    }

    /// <summary>
    /// Local response normalisation of <c>input[channels][batch][height][width]</c> and the VALID max pooling of
    /// the result in one pass (<c>lrn_maxpool_kernel1</c>): <see cref="Lrn"/> then <see cref="MaxPool"/>, the same
    /// numbers, without writing the normalised tensor. Output layout and <paramref name="inputBias"/> as there.
    /// </summary>
    public void LrnMaxPool(ComputeStream s, DeviceBuffer output, DeviceBuffer input, int channels, int batch, int height, int width,
        int outH, int outW, int size, int stride, int outStrideC, int outStrideN, LrnParameters p, DeviceBuffer<float>? inputBias = null)
    {
        const string op = "LrnMaxPool";
        Check(s, op);
        p.Validate();
        KernelArguments args = PoolingArguments(op, output, input, channels, batch, height, width, outH, outW, size, stride, outStrideC, outStrideN, inputBias);
        args.Add(p.Radius);
        args.Add(p.Alpha);
        args.Add(p.Beta);
        args.Add(p.Bias);
        s.Launch(_byEntryPoint["lrn_maxpool_kernel1"], new Dim3(Dim3.CeilDiv((long)batch * outH * outW, LrnBlockSize), (uint)channels),
            new Dim3(LrnBlockSize), args);
    }

    /// <summary>The checks and leading arguments <see cref="MaxPool"/> and <see cref="LrnMaxPool"/> share: the
    /// windows fit, the sizes fit an int, the planes of the output do not overlap, the buffers are large enough.</summary>
    private KernelArguments PoolingArguments(string op, DeviceBuffer output, DeviceBuffer input, int channels, int batch, int height,
        int width, int outH, int outW, int size, int stride, int outStrideC, int outStrideN, DeviceBuffer<float>? inputBias)
    {
        Positive(op, ("channels", channels), ("batch", batch), ("height", height), ("width", width), ("outH", outH), ("outW", outW),
            ("size", size), ("stride", stride));
        OutputSize(op, "outH", outH, "height", height, size, stride, pad: 0);
        OutputSize(op, "outW", outW, "width", width, size, stride, pad: 0);
        int inputCount = FitsInInt(op, "channels·batch·height·width", (long)channels * batch * height * width);
        FitsInInt(op, "channels·batch·outH·outW", (long)channels * batch * outH * outW);
        int extent = FitsInInt(op, "the output's extent", OutputExtent(op, channels, batch, outH * outW, outStrideC, outStrideN));
        GridLimit(op, "channels", channels);
        Distinct(op, output, input);
        HoldsActivations(op, "output", output, extent);
        HoldsActivations(op, "input", input, inputCount);
        InputBias(op, inputBias, channels, output);

        var args = new KernelArguments();
        args.Add(output);
        args.Add(input);
        AddInputBias(ref args, inputBias, input);
        args.Add(channels);
        args.Add(batch);
        args.Add(height);
        args.Add(width);
        args.Add(outH);
        args.Add(outW);
        args.Add(size);
        args.Add(stride);
        args.Add(outStrideC);
        args.Add(outStrideN);
        return args;
    }

    /// <summary>
    /// VALID max pooling of <c>input[channels][batch][height][width]</c>; element (c, n, y, x) goes to
    /// <c>c·outStrideC + n·outStrideN + y·outW + x</c>: (N·Ho·Wo, Ho·Wo) gives [C][N][Ho][Wo], (Ho·Wo, C·Ho·Wo)
    /// gives pool5's [N][C·Ho·Wo] flatten. A window holding NaN gives NaN. With <paramref name="inputBias"/> the
    /// input is a convolution's raw output and each value is compared as relu(value + inputBias[channel]).
    /// </summary>
    public void MaxPool(ComputeStream s, DeviceBuffer output, DeviceBuffer input, int channels, int batch, int height, int width,
        int outH, int outW, int size, int stride, int outStrideC, int outStrideN, DeviceBuffer<float>? inputBias = null)
    {
        const string op = "MaxPool";
        Check(s, op);
        KernelArguments args = PoolingArguments(op, output, input, channels, batch, height, width, outH, outW, size, stride, outStrideC, outStrideN, inputBias);
        if (Target == NetworkKernelTarget.Cpu)
            s.Launch(_maxPool, new Dim3(Dim3.CeilDiv(batch, MaxPoolPlaneBlockSize), (uint)channels), new Dim3(MaxPoolPlaneBlockSize), args);
        else
            s.Launch(_maxPool, new Dim3(Dim3.CeilDiv((long)batch * outH * outW, MaxPoolBlockSize), (uint)channels), new Dim3(MaxPoolBlockSize), args);
    }

    /// <summary>
    /// Inverted dropout of the first <paramref name="count"/> elements of <paramref name="x"/>, in place: element i
    /// is kept (and scaled by 1/keepProb) when the uniform drawn by Philox-4x32-10 for global index
    /// <paramref name="offset"/> + i under <paramref name="seed"/> is below <paramref name="keepProb"/>, else set
    /// to 0. The mask depends only on (seed, offset + i); see dropout.cu. With <paramref name="bias"/>, x is
    /// [rows][<paramref name="features"/>] raw GEMM output and each element is relu(x + bias[feature]) first:
    /// a fully connected layer's bias, ReLU and dropout in one pass.
    /// </summary>
    public void Dropout(ComputeStream s, DeviceBuffer x, int count, float keepProb, ulong seed, uint offset,
        DeviceBuffer<float>? bias = null, int features = 0)
    {
        const string op = "Dropout";
        Check(s, op);
        Positive(op, ("count", count));
        if (!(keepProb > 0 && keepProb <= 1))
            throw Error(op, string.Create(CultureInfo.InvariantCulture,
                $"keepProb must be in (0, 1], not {keepProb}; use 1 (the identity) for inference"));
        HoldsActivations(op, "x", x, count);
        if (bias is not null)
        {
            if (features <= 0 || count % features != 0)
                throw Error(op, $"with a bias, count ({count}) must be a whole number of rows of features ({features})");
            Holds(op, "bias", bias, features);
            Distinct(op, x, bias);
        }
        else if (features != 0)
        {
            throw Error(op, $"features ({features}) is given without a bias");
        }

        // Philox blocks of four consecutive global indices that the elements touch.
        long blocks = ((long)offset + count - 1) / 4 - offset / 4 + 1;
        var args = new KernelArguments();
        args.Add(x);
        args.Add(bias ?? x);
        args.Add(bias is null ? 0 : features);
        args.Add(count);
        args.Add(keepProb);
        args.Add((uint)seed);
        args.Add((uint)(seed >> 32));
        args.Add(offset);
        s.Launch(_dropout, new Dim3(Dim3.CeilDiv(blocks, DropoutBlockSize)), new Dim3(DropoutBlockSize), args);
    }

    /// <summary>
    /// fc8's epilogue: <c>logits[r][k] += bias[k]</c> (written back: the exported logits), then
    /// <c>prob[r]</c> = softmax of that row, with the row maximum subtracted first.
    /// </summary>
    public void Softmax(ComputeStream s, DeviceBuffer<float> prob, DeviceBuffer<float> logits, DeviceBuffer<float> bias, int rows, int classes)
    {
        const string op = "Softmax";
        Check(s, op);
        Positive(op, ("rows", rows), ("classes", classes));
        int count = FitsInInt(op, "rows·classes", (long)rows * classes);
        Distinct(op, prob, logits);
        Distinct(op, prob, bias);
        Distinct(op, logits, bias);
        Holds(op, "prob", prob, count);
        Holds(op, "logits", logits, count);
        Holds(op, "bias", bias, classes);

        var args = new KernelArguments();
        args.Add(prob);
        args.Add(logits);
        args.Add(bias);
        args.Add(rows);
        args.Add(classes);
        s.Launch(_softmax, new Dim3((uint)rows), new Dim3(SoftmaxBlockSize), args);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (KernelModule module in _modules) module.Dispose();
    }

    // ---- checks: each throws an AlexNetException whose one line names the operation and the problem ----
    // (internal: the training kernels check their arguments with these same methods and messages)

    internal static AlexNetException Error(string op, string problem) => new($"{op}: {problem}");

    internal void Check(ComputeStream s, string op)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckStream(_device, s, op);
    }

    /// <summary>The stream is given and belongs to <paramref name="device"/>, the kernels' device.</summary>
    internal static void CheckStream(ComputeDevice device, ComputeStream s, string op)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (!ReferenceEquals(s.Device, device))
            throw Error(op, $"the stream belongs to another device ({s.Device.Description}) than these kernels ({device.Description})");
    }

    internal static void Positive(string op, params ReadOnlySpan<(string Name, int Value)> sizes)
    {
        foreach ((string name, int value) in sizes)
            if (value <= 0) throw Error(op, $"{name} must be positive, not {value}");
    }

    internal static int FitsInInt(string op, string what, long value) =>
        value <= int.MaxValue ? (int)value
            : throw Error(op, $"{what} = {value} elements exceeds {int.MaxValue}, the kernels' index range; process fewer images per call");

    internal static void GridLimit(string op, string name, int value)
    {
        if (value > MaxGridYZ)
            throw Error(op, $"{name} = {value} exceeds {MaxGridYZ}, the grid's y/z limit that the launch puts it in; split the call");
    }

    internal void Holds(string op, string name, DeviceBuffer buffer, long needed) => Holds(_device, op, name, buffer, needed);

    /// <summary>The buffer is given, on <paramref name="device"/>, and holds at least <paramref name="needed"/> elements.</summary>
    internal static void Holds(ComputeDevice device, string op, string name, DeviceBuffer buffer, long needed)
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        if (!ReferenceEquals(buffer.Device, device))
            throw Error(op, $"{name} belongs to another device ({buffer.Device.Description})");
        if (buffer.Length < needed)
            throw Error(op, $"{name} holds {buffer.Length} {(buffer is DeviceBuffer<float> ? "floats" : "values")} but the operation needs {needed}");
    }

    /// <summary>An activation buffer: as <see cref="Holds"/>, and its elements are <see cref="Activations"/>' size
    /// (16-bit kernels given a float buffer would read it as twice as many halves).</summary>
    private void HoldsActivations(string op, string name, DeviceBuffer buffer, long needed)
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        if (buffer.ElementSize != ElementFormats.SizeOf(Activations))
            throw Error(op, $"{name} has {buffer.ElementSize}-byte elements but these kernels store {ElementFormats.Name(Activations)} activations ({ElementFormats.SizeOf(Activations)} bytes); allocate it for that format");
        Holds(op, name, buffer, needed);
    }

    internal static void Distinct(string op, DeviceBuffer a, DeviceBuffer b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (ReferenceEquals(a, b))
            throw Error(op, "the output must not be one of the inputs (the kernel reads inputs other elements overwrite); pass separate buffers");
    }

    /// <summary>A fused input activation's bias: one float per input channel, on this device, not the output.</summary>
    internal void InputBias(string op, DeviceBuffer<float>? inputBias, int channels, DeviceBuffer output)
    {
        if (inputBias is null) return;
        Holds(op, "inputBias", inputBias, channels);
        if (ReferenceEquals(inputBias, output))
            throw Error(op, "the input bias must not be the output buffer; pass separate buffers");
    }

    /// <summary>The kernels' (input_bias, biased) pair: without a bias the input itself stands in for the
    /// pointer, which the kernel then never reads.</summary>
    internal static void AddInputBias(ref KernelArguments args, DeviceBuffer<float>? inputBias, DeviceBuffer input)
    {
        args.Add(inputBias ?? input);
        args.Add(inputBias is null ? 0 : 1);
    }

    /// <summary>The window-count formula of a convolution or pooling: the size must be exactly what it gives.</summary>
    internal static void OutputSize(string op, string name, int value, string dimension, int length, int window, int stride, int pad)
    {
        long padded = (long)length + 2L * pad;
        if (window > padded)
            throw Error(op, $"a window of {window} does not fit in the {dimension} of {length}{(pad > 0 ? $" padded by {pad}" : "")}");
        long expected = (padded - window) / stride + 1;
        if (value != expected)
            throw Error(op, $"{name} is {value} but windows of {window} with stride {stride}{(pad > 0 ? $" and padding {pad}" : "")} over a {dimension} of {length} give {expected}");
    }

    /// <summary>
    /// One past the last output element of a pooling with element (c, n) planes of <paramref name="plane"/>
    /// floats at c·strideC + n·strideN; throws when two planes would overlap.
    /// </summary>
    internal static long OutputExtent(string op, int channels, int batch, int plane, int strideC, int strideN)
    {
        if (strideC < 0 || strideN < 0)
            throw Error(op, $"output strides must not be negative (outStrideC {strideC}, outStrideN {strideN})");
        // Order the two dimensions by stride (a dimension of size 1 has no stride that matters): the inner
        // one's planes must not overlap each other, and the outer one's blocks of inner planes neither.
        (int innerCount, long innerStride, int outerCount, long outerStride) = strideN <= strideC
            ? (batch, strideN, channels, strideC)
            : (channels, strideC, batch, strideN);
        if (innerCount == 1) innerStride = plane;
        long innerExtent = (innerCount - 1) * innerStride + plane;
        if ((innerCount > 1 && innerStride < plane) || (outerCount > 1 && outerStride < innerExtent))
            throw Error(op, $"output strides outStrideC {strideC} and outStrideN {strideN} make the {plane}-float planes of different (channel, image) pairs overlap; use (N·outH·outW, outH·outW) or (outH·outW, C·outH·outW)");
        return (outerCount - 1) * outerStride + innerExtent;
    }
}
