using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;

namespace AlexNet.Cuda.Training;

/// <summary>
/// The backward pass of the convolutional part of AlexNet in FP32, on one device: max pooling, local response
/// normalisation, and a convolution's weight and input gradients (with groups), each method checking its sizes
/// and buffers, then queueing its launches and GEMMs on the given stream, allocating nothing. Layouts are the
/// forward pass's (<see cref="AlexNetModel"/>): activations and their gradients <c>[C][N][H][W]</c>, convolution
/// weights and their gradients <c>[Cout][(ci·k + i)·k + j]</c> with ci counted inside the group, so an SGD step can
/// update the device weights in place. The kernels' head comments (Kernels/maxpool_backward.cu, lrn_backward.cu,
/// col2im.cu) give the formulas, launch shapes and costs. The bias gradient and the ReLU's backward are not here.
/// </summary>
public sealed class ConvolutionBackward : IDisposable
{
    // 256 threads = 8 warps, as the forward kernels (NetworkKernels): one kernel per operation serves both targets.
    public const int MaxPoolBackwardBlockSize = 256;
    public const int LrnBackwardBlockSize = 256;
    public const int Col2ImBlockSize = 256;

    /// <summary>The kernels of this class's own modules, as it launches them. The lowering for the weight gradient
    /// is <see cref="NetworkKernels.Im2Col"/>'s, and its GEMMs are the device's.</summary>
    public static IReadOnlyList<NetworkKernelInfo> Kernels { get; } =
    [
        new("maxpool_backward.cu", "maxpool_backward_kernel1", MaxPoolBackwardBlockSize, null),
        new("lrn_backward.cu", "lrn_backward_kernel1", LrnBackwardBlockSize, null),
        new("col2im.cu", "col2im_kernel1", Col2ImBlockSize, null),
    ];

    private readonly ComputeDevice _device;
    // The forward's kernels: im2col for the weight gradient, and the argument checks all the kernels share.
    private readonly NetworkKernels _network;
    private readonly List<KernelModule> _modules = [];
    private readonly Kernel _maxPool, _lrn, _col2im;
    private bool _disposed;

    /// <summary>
    /// Compiles (or loads from the disk cache) the backward kernels on <paramref name="device"/>, and the forward
    /// kernels whose im2col the weight gradient reuses, with the launch shapes of <paramref name="target"/> (null:
    /// <see cref="NetworkKernels.TargetOf"/> the device; it chooses only im2col's variant).
    /// </summary>
    public ConvolutionBackward(ComputeDevice device, NetworkKernelTarget? target = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        _network = new NetworkKernels(device, target);
        try
        {
            var byEntryPoint = new Dictionary<string, Kernel>(StringComparer.Ordinal);
            foreach (NetworkKernelInfo info in Kernels)
            {
                KernelModule module = device.LoadModule(info.File, info.Defines);
                _modules.Add(module);
                byEntryPoint.Add(info.EntryPoint, module.GetKernel(info.EntryPoint));
            }
            _maxPool = byEntryPoint["maxpool_backward_kernel1"];
            _lrn = byEntryPoint["lrn_backward_kernel1"];
            _col2im = byEntryPoint["col2im_kernel1"];
        }
        catch
        {
            foreach (KernelModule module in _modules) module.Dispose();
            _network.Dispose();
            throw;
        }
    }

    public ComputeDevice Device => _device;

    /// <summary>The launch shapes of the lowering (<see cref="NetworkKernels.Target"/>).</summary>
    public NetworkKernelTarget Target => _network.Target;

    /// <summary>
    /// The gradient of <see cref="NetworkKernels.MaxPool"/> with respect to its input: each element of
    /// <paramref name="gradInput"/> <c>[channels][batch][height][width]</c> is the sum of the elements of
    /// <paramref name="gradOutput"/> whose window took its maximum from it (ties: the first of the equal values in
    /// window order; a window holding NaN: its last NaN, as the forward's), 0 where no window did.
    /// <paramref name="input"/> is the forward's input; <paramref name="gradOutput"/> is laid out as the forward's
    /// output, element (c, n, y, x) at <c>c·outStrideC + n·outStrideN + y·outW + x</c> (pool5: fc6's gradient in
    /// [N][C·Ho·Wo]). With <paramref name="inputBias"/> the forward's input was a convolution's raw output read as
    /// relu(value + inputBias[channel]), and the result is the gradient with respect to that activated value.
    /// </summary>
    public void MaxPoolBackward(ComputeStream s, DeviceBuffer<float> gradInput, DeviceBuffer<float> gradOutput, DeviceBuffer<float> input,
        int channels, int batch, int height, int width, int outH, int outW, int size, int stride, int outStrideC, int outStrideN,
        DeviceBuffer<float>? inputBias = null)
    {
        const string op = "MaxPoolBackward";
        Check(s, op);
        NetworkKernels.Positive(op, ("channels", channels), ("batch", batch), ("height", height), ("width", width), ("outH", outH),
            ("outW", outW), ("size", size), ("stride", stride));
        NetworkKernels.OutputSize(op, "outH", outH, "height", height, size, stride, pad: 0);
        NetworkKernels.OutputSize(op, "outW", outW, "width", width, size, stride, pad: 0);
        int inputCount = NetworkKernels.FitsInInt(op, "channels·batch·height·width", (long)channels * batch * height * width);
        int extent = NetworkKernels.FitsInInt(op, "gradOutput's extent",
            NetworkKernels.OutputExtent(op, channels, batch, outH * outW, outStrideC, outStrideN));
        NetworkKernels.GridLimit(op, "channels", channels);
        NetworkKernels.Distinct(op, gradInput, gradOutput);
        NetworkKernels.Distinct(op, gradInput, input);
        _network.Holds(op, "gradInput", gradInput, inputCount);
        _network.Holds(op, "gradOutput", gradOutput, extent);
        _network.Holds(op, "input", input, inputCount);
        _network.InputBias(op, inputBias, channels, gradInput);

        var args = new KernelArguments();
        args.Add(gradInput);
        args.Add(gradOutput);
        args.Add(input);
        NetworkKernels.AddInputBias(ref args, inputBias, input);
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
        s.Launch(_maxPool, new Dim3(Dim3.CeilDiv((long)batch * height * width, MaxPoolBackwardBlockSize), (uint)channels),
            new Dim3(MaxPoolBackwardBlockSize), args);
    }

    /// <summary>
    /// The gradient of <see cref="NetworkKernels.Lrn"/> with respect to its input, the exact derivative of the
    /// normalisation across channels: <paramref name="gradInput"/>, <paramref name="gradOutput"/> and the forward's
    /// <paramref name="input"/> are <c>[channels][inner]</c> (inner = N·H·W). The forward's output is not needed
    /// (lrn_backward.cu recomputes each window's sum). <paramref name="inputBias"/> as in <see cref="MaxPoolBackward"/>.
    /// </summary>
    public void LrnBackward(ComputeStream s, DeviceBuffer<float> gradInput, DeviceBuffer<float> gradOutput, DeviceBuffer<float> input,
        int channels, int inner, LrnParameters p, DeviceBuffer<float>? inputBias = null)
    {
        const string op = "LrnBackward";
        Check(s, op);
        p.Validate();
        NetworkKernels.Positive(op, ("channels", channels), ("inner", inner));
        int count = NetworkKernels.FitsInInt(op, "channels·inner", (long)channels * inner);
        NetworkKernels.GridLimit(op, "channels", channels);
        NetworkKernels.Distinct(op, gradInput, gradOutput);
        NetworkKernels.Distinct(op, gradInput, input);
        _network.Holds(op, "gradInput", gradInput, count);
        _network.Holds(op, "gradOutput", gradOutput, count);
        _network.Holds(op, "input", input, count);
        _network.InputBias(op, inputBias, channels, gradInput);

        var args = new KernelArguments();
        args.Add(gradInput);
        args.Add(gradOutput);
        args.Add(input);
        NetworkKernels.AddInputBias(ref args, inputBias, input);
        args.Add(channels);
        args.Add(inner);
        args.Add(p.Radius);
        args.Add(p.Alpha);
        args.Add(p.Beta);
        args.Add(p.Bias);
        s.Launch(_lrn, new Dim3(Dim3.CeilDiv(inner, LrnBackwardBlockSize), (uint)channels), new Dim3(LrnBackwardBlockSize), args);
    }

    /// <summary>
    /// <see cref="NetworkKernels.Im2Col"/>'s adjoint: folds <c>col[channels·kernelH·kernelW][images·outH·outW]</c> (im2col's
    /// layout) back onto images [<paramref name="image0"/>, image0 + images) of <c>gradInput[channels][batch][height][width]</c>,
    /// each element the sum of the entries im2col would have copied it to (0 where none); the other images are not
    /// touched. Sizes as in <see cref="NetworkKernels.Im2Col"/>.
    /// </summary>
    public void Col2Im(ComputeStream s, DeviceBuffer<float> gradInput, DeviceBuffer<float> col, int channels, int batch, int height, int width,
        int image0, int images, int kernelH, int kernelW, int stride, int pad, int outH, int outW)
    {
        const string op = "Col2Im";
        Check(s, op);
        NetworkKernels.Positive(op, ("channels", channels), ("batch", batch), ("height", height), ("width", width), ("images", images),
            ("kernelH", kernelH), ("kernelW", kernelW), ("stride", stride), ("outH", outH), ("outW", outW));
        if (pad < 0) throw NetworkKernels.Error(op, $"pad must be 0 or more, not {pad}");
        if (image0 < 0 || (long)image0 + images > batch)
            throw NetworkKernels.Error(op, $"images [{image0}, {(long)image0 + images}) are not all inside the batch of {batch}");
        NetworkKernels.OutputSize(op, "outH", outH, "height", height, kernelH, stride, pad);
        NetworkKernels.OutputSize(op, "outW", outW, "width", width, kernelW, stride, pad);
        int gradCount = NetworkKernels.FitsInInt(op, "channels·batch·height·width", (long)channels * batch * height * width);
        long rows = (long)channels * kernelH * kernelW, columns = (long)images * outH * outW;
        int colCount = NetworkKernels.FitsInInt(op, "the col matrix (channels·kernelH·kernelW × images·outH·outW)", rows * columns);
        NetworkKernels.GridLimit(op, "channels", channels);
        NetworkKernels.Distinct(op, gradInput, col);
        _network.Holds(op, "gradInput", gradInput, gradCount);
        _network.Holds(op, "col", col, colCount);

        var args = new KernelArguments();
        args.Add(gradInput);
        args.Add(col);
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
        s.Launch(_col2im, new Dim3(Dim3.CeilDiv((long)images * height * width, Col2ImBlockSize), (uint)channels),
            new Dim3(Col2ImBlockSize), args);
    }

    /// <summary>
    /// The gradients of convolution <paramref name="layer"/> (without its bias: see the bias gradient of the
    /// training kernels) over <paramref name="batch"/> images, given <paramref name="gradOutput"/>
    /// <c>[Cout][batch][Ho][Wo]</c>, the gradient of the convolution's raw GEMM output:
    /// <list type="bullet">
    /// <item><paramref name="gradWeights"/> = per group g, dY_g · col_gᵀ, with col the forward's lowering of
    /// <paramref name="input"/> <c>[Cin][batch][H][W]</c>: <c>[Cout][Cin/groups·k·k]</c>, the layout of
    /// <paramref name="weights"/> on the device. With <paramref name="accumulate"/> it is added to what
    /// gradWeights holds (gradient accumulation), else it overwrites it (NaN there does not propagate).</item>
    /// <item><paramref name="gradInput"/> <c>[Cin][batch][H][W]</c> = col2im of W_gᵀ · dY_g; null skips it (the first
    /// trained layer needs no input gradient).</item>
    /// </list>
    /// The groups are one strided-batched GEMM each way, as in the forward pass. Images go in chunks of
    /// <see cref="ConvolutionPlan.ChunkImages"/> (0: as many as <paramref name="workspace"/> holds, rounded as
    /// <see cref="ConvolutionPlan.ChunkFor"/> does), each chunk's lowering in <paramref name="workspace"/>, which
    /// then holds its lowered input gradient: the forward's workspace will do. With <paramref name="inputBias"/> the
    /// input is the previous convolution's raw output, lowered as relu(value + inputBias[channel]) as the forward
    /// lowered it, and gradInput is the gradient with respect to that activated value.
    /// </summary>
    public void ConvolutionGradients(ComputeStream s, ConvolutionPlan layer, int batch, DeviceBuffer<float> input, DeviceBuffer<float> weights,
        DeviceBuffer<float> gradOutput, DeviceBuffer<float> gradWeights, DeviceBuffer<float>? gradInput, DeviceBuffer<float> workspace,
        DeviceBuffer<float>? inputBias = null, bool accumulate = false)
    {
        const string op = "ConvolutionGradients";
        Check(s, op);
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentNullException.ThrowIfNull(workspace);
        NetworkKernels.Positive(op, ("batch", batch), ("input channels", layer.InputChannels), ("output channels", layer.OutputChannels),
            ("groups", layer.Groups), ("kernel size", layer.KernelSize), ("stride", layer.Stride), ("input size", layer.InputSize),
            ("output size", layer.OutputSize));
        if (layer.Pad < 0) throw NetworkKernels.Error(op, $"pad must be 0 or more, not {layer.Pad}");
        if (layer.ChunkImages < 0)
            throw NetworkKernels.Error(op, $"ChunkImages must be 0 (as many as the workspace holds) or more, not {layer.ChunkImages}");
        if (layer.InputChannels % layer.Groups != 0 || layer.OutputChannels % layer.Groups != 0)
            throw NetworkKernels.Error(op, $"{layer.InputChannels} input and {layer.OutputChannels} output channels do not both split into {layer.Groups} groups");
        NetworkKernels.OutputSize(op, "OutputSize", layer.OutputSize, "height", layer.InputSize, layer.KernelSize, layer.Stride, layer.Pad);
        int pixels = layer.OutputPixels, groupK = layer.GroupK, groupOut = layer.GroupOutputChannels;
        int inputCount = NetworkKernels.FitsInInt(op, "the input (Cin·batch·H·W)", (long)layer.InputChannels * batch * layer.InputSize * layer.InputSize);
        int outputRow = NetworkKernels.FitsInInt(op, "an output row (batch·Ho·Wo)", (long)batch * pixels);
        int outputCount = NetworkKernels.FitsInInt(op, "the output (Cout·batch·Ho·Wo)", (long)layer.OutputChannels * outputRow);
        long weightCount = (long)layer.OutputChannels * groupK, perImage = layer.LoweredPerImage;

        // The chunk: the plan's, or as many images as the workspace holds (aligned as the forward's plan aligns it).
        long fit = workspace.Length / perImage;
        if (fit < 1)
            throw NetworkKernels.Error(op, $"the workspace holds {workspace.Length} floats, less than one image's lowering ({perImage}); give a larger workspace");
        int chunk = layer.ChunkImages > 0 ? Math.Min(layer.ChunkImages, batch) : ConvolutionPlan.ChunkFor(pixels, fit, batch);
        if (chunk > fit)
            throw NetworkKernels.Error(op, $"the workspace holds {workspace.Length} floats, {fit} image{(fit == 1 ? "'s" : "s'")} lowering, but chunks of {chunk} images need {chunk * perImage}; give a larger workspace or a smaller ChunkImages");
        NetworkKernels.FitsInInt(op, "a chunk's lowering", chunk * perImage);

        _network.Holds(op, "input", input, inputCount);
        _network.Holds(op, "weights", weights, weightCount);
        _network.Holds(op, "gradOutput", gradOutput, outputCount);
        _network.Holds(op, "gradWeights", gradWeights, weightCount);
        _network.Holds(op, "workspace", workspace, chunk * perImage);
        Distinct(op, gradWeights, input, weights, gradOutput, workspace);
        Distinct(op, workspace, input, weights, gradOutput);
        if (gradInput is not null)
        {
            _network.Holds(op, "gradInput", gradInput, inputCount);
            Distinct(op, gradInput, input, weights, gradOutput, gradWeights, workspace);
        }
        _network.InputBias(op, inputBias, layer.InputChannels, gradWeights);
        if (inputBias is not null)
        {
            Distinct(op, workspace, inputBias);
            if (gradInput is not null) Distinct(op, gradInput, inputBias);
        }

        int k = layer.KernelSize, size = layer.InputSize, outSize = layer.OutputSize;
        for (int image0 = 0; image0 < batch; image0 += chunk)
        {
            int images = Math.Min(chunk, batch - image0);
            int columns = images * pixels;
            // dY of the chunk's images, group g's rows: channels [g·groupOut, (g + 1)·groupOut) of the whole batch's rows.
            MatrixView dy = MatrixView.RowMajor(gradOutput, groupOut, columns, offset: (long)image0 * pixels, leadingDimension: outputRow);
            long dyStride = (long)groupOut * outputRow, colStride = (long)groupK * columns, weightStride = (long)groupOut * groupK;

            _network.Im2Col(s, workspace, input, layer.InputChannels, batch, size, size, image0, images, k, k, layer.Stride, layer.Pad,
                outSize, outSize, inputBias);
            // dW_g (+)= dY_g · col_gᵀ: the chunks' contributions are summed by GEMMs with beta 1 after the first.
            s.GemmBatched(dy, MatrixView.RowMajor(workspace, groupK, columns).T, MatrixView.RowMajor(gradWeights, groupOut, groupK),
                new GemmBatch(layer.Groups, dyStride, colStride, weightStride), beta: image0 == 0 && !accumulate ? 0f : 1f);
            if (gradInput is null) continue;
            // dcol_g = W_gᵀ · dY_g over the lowering, which the weight gradient no longer needs; then folded back.
            s.GemmBatched(MatrixView.RowMajor(weights, groupOut, groupK).T, dy, MatrixView.RowMajor(workspace, groupK, columns),
                new GemmBatch(layer.Groups, weightStride, dyStride, colStride));
            Col2Im(s, gradInput, workspace, layer.InputChannels, batch, size, size, image0, images, k, k, layer.Stride, layer.Pad,
                outSize, outSize);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (KernelModule module in _modules) module.Dispose();
        _network.Dispose();
    }

    /// <summary><paramref name="output"/> is none of <paramref name="others"/> (a span on the stack: no allocation per call).</summary>
    private static void Distinct(string op, DeviceBuffer output, params ReadOnlySpan<DeviceBuffer> others)
    {
        foreach (DeviceBuffer other in others) NetworkKernels.Distinct(op, output, other);
    }

    private void Check(ComputeStream s, string op)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _network.Check(s, op);
    }
}
