using System.CommandLine;
using AlexNet.Cuda;
using AlexNet.Cuda.Bench;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Labels;
using AlexNet.Cuda.Network;

namespace AlexNet.Cli;

/// <summary><c>alexnet bench</c>: the whole network per batch size; <c>alexnet bench kernels</c>: device-timed
/// medians of each kernel launch and GEMM of the forward pass.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        Option<DeviceChoice?> device = CliOptions.Device();
        Option<int> warmup = CliOptions.PositiveInt("--warmup", "Untimed launches of the transpose and untimed forward passes first", 3);
        Option<int> repeats = CliOptions.PositiveInt("--repeats", "Timed launches of the transpose and timed forward passes; the median and minimum are reported", 20);
        Option<string?> size = CliOptions.Choice("--size",
            $"small: batch {KernelBenchmarks.Batch(small: true)}, quick on a CPU; full: AlexNet's real sizes, batch {KernelBenchmarks.Batch(small: false)} (default: full on CUDA, small on OpenCL)",
            "small", "full");
        var kernels = new Command("kernels",
            "Time each kernel launch and GEMM of the forward pass at one batch size, by device events between them (input, conv1 im2col, conv1 gemm, …, softmax; " +
            "a convolution's chunks summed), and the transpose kernel alone: median, minimum, GFLOP/s or GB/s")
        {
            device, warmup, repeats, size,
        };
        kernels.SetAction(result => RunKernels(result.GetDevice(device), result.GetValue(warmup), result.GetValue(repeats),
            result.GetValue(size), result.InvocationConfiguration.Output, result.InvocationConfiguration.Error));
        Option<DeviceChoice?> netDevice = CliOptions.Device();
        var weights = new Option<string?>("--weights") { Description = "A weight file; without one, seeded synthetic weights of the real shapes", HelpName = "FILE" };
        Option<IReadOnlyList<int>?> batches = CliOptions.CommaList<int>("--batch", "N[,N]|max",
            "Batch sizes, comma-separated (default: 1,8,64,256 on CUDA, 1,8,32 on OpenCL); max: the largest whose every convolution's lowering fits the workspace in one chunk; one the device cannot hold is skipped",
            (string text, out int value) =>
            {
                value = MaxBatch;
                return text == "max" || (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out value) && value > 0);
            }, "positive whole numbers or max separated by commas (as 1,64,max)");
        Option<int> iterations = CliOptions.PositiveInt("--iterations", "Timed forward passes per batch size; the median and minimum are reported", 20);
        Option<int> netWarmup = CliOptions.PositiveInt("--warmup", "Untimed passes first", 3);
        Option<string?> format = CliOptions.Choice("--format", "text (default), or JSON for programs", "text", "json");
        Option<string?> peer = CliOptions.Choice("--peer",
            "Also time another implementation on the same weights and images: auto (the default) is torchsharp on a CPU device when this build has it, else none; " +
            "torchsharp is TorchSharp's AlexNet on the CPU; onnxruntime is ONNX Runtime's CPU provider on an ONNX graph built from the same weights",
            "auto", "torchsharp", "onnxruntime", "none");
        Option<string?> fuse = CliOptions.Choice("--fuse",
            "Whether each convolution's bias and ReLU run inside the kernel that reads its output next, and each LRN with the pool after it as one kernel: auto (the default) on a GPU and not on a CPU device, on, or off (passes of their own)",
            "auto", "on", "off");
        Option<WorkspaceSize> workspace = CliOptions.Workspace();
        Option<PrecisionChoice> precision = CliOptions.Precision();
        Option<string?> graph = CliOptions.Choice("--graph",
            "Whether each batch size's pass is captured as a CUDA graph on its first pass and replayed with one launch: auto (the default) where the device can (CUDA), on, or off (launch by launch); " +
            "with graphs the launch-by-launch pass is timed beside the replay",
            "auto", "on", "off");
        Option<string?> epilogue = CliOptions.Choice("--epilogue",
            "Where fc6's and fc7's bias and ReLU run: auto (the default) is kernel until a GPU run measures cublaslt faster; kernel, a bias_relu pass after each GEMM; " +
            "cublaslt, in the GEMM itself (cuBLASLt's RELU_BIAS epilogue, CUDA only)",
            "auto", "kernel", "cublaslt");
        var bench = new Command("bench", "Time the whole forward pass per batch size, with a per-operation breakdown; 'bench kernels' times each operation at one size")
        {
            netDevice, weights, batches, iterations, netWarmup, format, peer, fuse, workspace, precision, graph, epilogue, kernels,
        };
        bench.SetAction(result => RunNetwork(result.GetDevice(netDevice), result.GetValue(weights), result.GetValue(batches),
            result.GetValue(iterations), result.GetValue(netWarmup), result.GetValue(format) == "json", result.GetValue(peer) ?? "auto",
            result.GetValue(fuse) switch { "on" => true, "off" => false, _ => null }, result.GetValue(workspace), result.GetValue(precision),
            result.InvocationConfiguration.Output, result.InvocationConfiguration.Error,
            result.GetValue(graph) switch { "on" => true, "off" => false, _ => null },
            result.GetValue(epilogue) switch { "kernel" => GemmEpilogue.Kernel, "cublaslt" => GemmEpilogue.CublasLt, _ => GemmEpilogue.Auto }));
        return bench;
    }

    /// <summary><c>--batch max</c> as parsed, before the workspace is known.</summary>
    private const int MaxBatch = 0;

    /// <summary>The largest batch for which the workspace holds every convolution's whole lowering (no chunking), in
    /// the precision's element size: the most images one pass can take at full GEMM width.</summary>
    internal static int LargestUnchunkedBatch(long workspaceBytes, int elementBytes) =>
        Math.Max(1, NetworkPlan.LargestUnchunkedBatch(AlexNet.Cuda.Weights.AlexNetArchitecture.Default, workspaceBytes, elementBytes));

    private static int RunNetwork(DeviceChoice choice, string? weightFile, IReadOnlyList<int>? requested, int iterations, int warmup, bool json,
        string peerChoice, bool? fuse, WorkspaceSize workspace, PrecisionChoice precision, TextWriter stdout, TextWriter stderr, bool? graph,
        GemmEpilogue epilogue)
    {
        using Interruption interruption = Interruption.Listen();
        using SelectedDevice selected = DeviceSelector.Open(choice);
        ComputeDevice device = selected.Device;
        precision.RequireOn(device);
        // Known only once the device is open (--device auto may land on OpenCL), but still a command line that
        // asks for what cannot be: refused as usage, before anything is measured.
        if (graph == true && device.GraphsUnsupportedReason is string noGraphs)
            return UsageErrors.Write("bench", $"--graph on needs a device that captures graphs, but {noGraphs} ({selected.Reason}); use --graph auto or off", stderr);
        string? graphsOff = NetworkBench.GraphsOff(device, graph);
        if (epilogue == GemmEpilogue.CublasLt
            && !device.SupportsGemmBias(Precisions.Storage(precision.Value), Precisions.Math(precision.Value), out string? noEpilogue))
            return UsageErrors.Write("bench", $"--epilogue cublaslt needs cuBLASLt's bias epilogue, but {noEpilogue} ({selected.Reason}); use --epilogue auto or kernel", stderr);
        // TorchSharp and ONNX Runtime's CPU provider are CPU libraries: peers of a CPU device. On a GPU the peer is
        // PyTorch on the same GPU (Bench/gpu), since TorchSharp's CUDA build is not available to this project.
        using IBenchPeer? peer = peerChoice switch
        {
            "torchsharp" => BenchPeers.TorchSharp(),
            "onnxruntime" => BenchPeers.OnnxRuntime(),
            "auto" when device.IsCpu && BenchPeers.HasTorchSharp => BenchPeers.TorchSharp(),
            _ => null,
        };
        bool fused = fuse ?? AlexNetOptions.FusesActivationsByDefault(device);
        long workspaceBytes = workspace.For(device);
        IReadOnlyList<int> sizes = requested ?? (device.Backend == DeviceBackend.Cuda ? [1, 8, 64, 256] : [1, 8, 32]);
        if (sizes.Contains(MaxBatch))
        {
            int max = LargestUnchunkedBatch(workspaceBytes, ElementFormats.SizeOf(Precisions.Storage(precision.Value)));
            sizes = [.. sizes.Select(b => b == MaxBatch ? max : b).Distinct()];
            stderr.WriteLine($"{Program.Name}: --batch max is {max}: the largest batch whose every lowering fits the {workspaceBytes / 1048576.0:F0} MiB workspace in one chunk");
        }
        AlexNet.Cuda.Weights.AlexNetWeights w = weightFile is null
            ? AlexNet.Cuda.Checks.SyntheticNetwork.Weights(AlexNet.Cuda.Weights.AlexNetArchitecture.Default, seed: 1)
            : AlexNet.Cuda.Weights.WeightFile.Load(weightFile);
        string weights = weightFile ?? "synthetic (seeded, BVLC AlexNet's shapes)";
        // Timing needs no class names, but a labels file beside the weights that does not fit them is refused
        // as classify refuses it, and one that fits is named in the text header.
        string names = "";
        if (weightFile is not null)
        {
            ClassLabels.ForWeights(w.NumClasses, weightFile, labelsPath: null);
            string beside = ClassLabels.BesidePath(weightFile);
            if (File.Exists(beside)) names = $" ({w.NumClasses} classes named by {beside})";
        }
        var progress = ProgressLine.For(stderr);
        // Each step is a unit of work after which a stop can be honoured: the results so far are still written.
        Action<string> step = line =>
        {
            interruption.ThrowIfRequested(() => $"during {line}");
            progress?.Show(line);
        };
        if (!json)
            NetworkBench.WriteTextHeader(stdout,
                $"device: {device.Description} ({selected.Reason})\nGEMMs: {device.GemmProvider}; kernels compiled by {device.CompilerVersion}; .NET {Environment.Version}\nweights: {weights}{names}\nactivations: {(fused ? "each convolution's bias and ReLU fused into the next kernel" : "each convolution's bias and ReLU a pass of its own")}\nworkspace: {workspace.Describe(workspaceBytes, device)}\nprecision: {precision.Describe()}\ngraph: {NetworkBench.DescribeGraphs(graphsOff)}\nepilogue: {NetworkBench.DescribeEpilogue(epilogue)}\nwarm-up {warmup}, {iterations} timed passes per batch, device-side timing, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC",
                peer, graphsOff is null);
        var results = new List<NetworkBenchResult>();
        try
        {
            // Text rows go out as each batch size is done, so a long run shows its progress in a pipe or a file.
            NetworkBench.Run(device, w, sizes, warmup, iterations, peer, fused, workspaceBytes, precision.Value, step, result =>
            {
                results.Add(result);
                progress?.Clear();
                if (!json) NetworkBench.WriteTextRow(stdout, result, graphsOff is null);
            }, useGraphs: graphsOff is null, epilogue);
        }
        finally
        {
            progress?.Clear();
            // The batch sizes measured before a failure or an interruption are reported whole.
            if (json) NetworkBench.WriteJson(stdout, device, weights, fused, workspaceBytes, precision.Value, results, peer, graphsOff, epilogue);
            else NetworkBench.WriteTextFooter(stdout, results, peer);
        }
        if (results.All(r => r.Skipped is not null))
        {
            NetworkBenchResult smallest = results.MinBy(r => r.Batch)!;
            throw new AlexNetException($"every batch size was skipped; batch {smallest.Batch}: {smallest.Skipped}");
        }
        return 0;
    }

    private static int RunKernels(DeviceChoice choice, int warmup, int repeats, string? size, TextWriter stdout, TextWriter stderr)
    {
        using Interruption interruption = Interruption.Listen();
        using SelectedDevice selected = DeviceSelector.Open(choice);
        bool small = (size ?? (selected.Device.Backend == DeviceBackend.Cuda ? "full" : "small")) == "small";
        stdout.WriteLine($"device: {selected.Device.Description} ({selected.Reason}); GEMMs: {selected.Device.GemmProvider}");
        stdout.WriteLine($"batch {KernelBenchmarks.Batch(small)} ({(small ? "small" : "full")}), warm-up {warmup}, repeats {repeats}, device-side timing, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        var progress = ProgressLine.For(stderr);
        try
        {
            foreach (BenchmarkResult result in KernelBenchmarks.Run(selected.Device, warmup, repeats, small, line =>
                     {
                         interruption.ThrowIfRequested(() => $"during the {line}");
                         progress?.Show(line);
                     }))
            {
                progress?.Clear();
                stdout.WriteLine(result.Format());
            }
        }
        finally
        {
            progress?.Clear();
        }
        return 0;
    }
}

/// <summary>A progress line rewritten in place on stderr, only when stderr is the terminal.</summary>
internal sealed class ProgressLine(TextWriter stderr)
{
    private const int Width = 60;
    private bool _shown;

    public static ProgressLine? For(TextWriter stderr) =>
        ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected ? new ProgressLine(stderr) : null;

    public void Show(string line)
    {
        stderr.Write($"\r{line,-Width}");
        _shown = true;
    }

    /// <summary>Blanks the line before other output (a result row, an error) is written at its place.</summary>
    public void Clear()
    {
        if (!_shown) return;
        stderr.Write($"\r{new string(' ', Width)}\r");
        _shown = false;
    }
}
