using System.CommandLine;
using AlexNet.Cuda.Bench;
using AlexNet.Cuda.Devices;

namespace AlexNet.Cli;

/// <summary><c>alexnet bench</c>: the whole network per batch size; <c>alexnet bench kernels</c>: device-timed
/// medians of each kernel and GEMM.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        Option<DeviceChoice?> device = CliOptions.Device();
        Option<int> warmup = CliOptions.PositiveInt("--warmup", "Untimed launches before the timed ones", 3);
        Option<int> repeats = CliOptions.PositiveInt("--repeats", "Timed launches; the median and minimum are reported", 20);
        Option<string?> size = CliOptions.Choice("--size",
            "small: batch 4, quick on a CPU; full: AlexNet's real sizes, batch 128 (default: full on CUDA, small on OpenCL)",
            "small", "full");
        var kernels = new Command("kernels", "Time each kernel and GEMM on a device with device events (warm-up, repeats, median)")
        {
            device, warmup, repeats, size,
        };
        kernels.SetAction(result => Run(result.GetDevice(device), result.GetValue(warmup), result.GetValue(repeats),
            result.GetValue(size), result.InvocationConfiguration.Output));
        Option<DeviceChoice?> netDevice = CliOptions.Device();
        var weights = new Option<string?>("--weights") { Description = "A weight file; without one, seeded synthetic weights of the real shapes", HelpName = "FILE" };
        var batches = new Option<string?>("--batch") { Description = "Batch sizes, comma-separated (default: 1,8,64,256 on CUDA, 1,8,32 on OpenCL)", HelpName = "N[,N]" };
        Option<int> iterations = CliOptions.PositiveInt("--iterations", "Timed forward passes per batch size; the median and minimum are reported", 20);
        Option<int> netWarmup = CliOptions.PositiveInt("--warmup", "Untimed passes first", 3);
        Option<string?> format = CliOptions.Choice("--format", "text (default), or JSON for programs", "text", "json");
        Option<string?> peer = CliOptions.Choice("--peer",
            "Also time another implementation on the same weights and images: torchsharp (TorchSharp's AlexNet on the CPU), or none (default: torchsharp on a CPU device when this build has it)",
            "auto", "torchsharp", "none");
        var bench = new Command("bench", "Time the whole forward pass per batch size, with a per-operation breakdown; 'bench kernels' times single kernels")
        {
            netDevice, weights, batches, iterations, netWarmup, format, peer, kernels,
        };
        bench.SetAction(result => RunNetwork(result.GetDevice(netDevice), result.GetValue(weights), result.GetValue(batches),
            result.GetValue(iterations), result.GetValue(netWarmup), result.GetValue(format) == "json", result.GetValue(peer) ?? "auto",
            result.InvocationConfiguration.Output, result.InvocationConfiguration.Error));
        return bench;
    }

    internal static IReadOnlyList<int> ParseBatches(string text)
    {
        var sizes = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n) || n < 1)
                throw new AlexNet.Cuda.AlexNetException($"--batch takes positive whole numbers separated by commas (as 1,8,64), not '{text}'");
            sizes.Add(n);
        }
        return sizes;
    }

    private static int RunNetwork(DeviceChoice choice, string? weightFile, string? batchText, int iterations, int warmup, bool json,
        string peerChoice, TextWriter stdout, TextWriter stderr)
    {
        IReadOnlyList<int>? requested = batchText is null ? null : ParseBatches(batchText);
        using SelectedDevice selected = DeviceSelector.Open(choice);
        ComputeDevice device = selected.Device;
        // TorchSharp is a CPU library: the peer of a CPU device. On a GPU the peer is PyTorch on the same GPU
        // (Bench/gpu), since TorchSharp's CUDA build is not available to this project.
        using IBenchPeer? peer = peerChoice switch
        {
            "torchsharp" => BenchPeers.TorchSharp(),
            "auto" when device.IsCpu && BenchPeers.HasTorchSharp => BenchPeers.TorchSharp(),
            _ => null,
        };
        IReadOnlyList<int> sizes = requested ?? (device.Backend == DeviceBackend.Cuda ? [1, 8, 64, 256] : [1, 8, 32]);
        AlexNet.Cuda.Weights.AlexNetWeights w = weightFile is null
            ? AlexNet.Cuda.Checks.SyntheticNetwork.Weights(AlexNet.Cuda.Weights.AlexNetArchitecture.Default, seed: 1)
            : AlexNet.Cuda.Weights.WeightFile.Load(weightFile);
        string weights = weightFile ?? "synthetic (seeded, BVLC AlexNet's shapes)";
        bool terminal = ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected;
        Action<string>? progress = terminal ? line => stderr.Write($"\r{line,-60}") : null;
        IReadOnlyList<NetworkBenchResult> results = NetworkBench.Run(device, w, sizes, warmup, iterations, peer, progress);
        if (terminal) stderr.Write($"\r{new string(' ', 60)}\r");
        if (json) NetworkBench.WriteJson(stdout, device, weights, results, peer);
        else NetworkBench.WriteText(stdout,
            $"device: {device.Description} ({selected.Reason})\nGEMMs: {device.GemmProvider}; kernels compiled by {device.CompilerVersion}; .NET {Environment.Version}\nweights: {weights}\nwarm-up {warmup}, {iterations} timed passes per batch, device-side timing, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC",
            results, peer);
        return 0;
    }

    private static int Run(DeviceChoice choice, int warmup, int repeats, string? size, TextWriter stdout)
    {
        using SelectedDevice selected = DeviceSelector.Open(choice);
        bool small = (size ?? (selected.Device.Backend == DeviceBackend.Cuda ? "full" : "small")) == "small";
        stdout.WriteLine($"device: {selected.Device.Description} ({selected.Reason})");
        stdout.WriteLine($"warm-up {warmup}, repeats {repeats}, device-side timing, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        foreach (BenchmarkResult result in KernelBenchmarks.Run(selected.Device, warmup, repeats, small))
            stdout.WriteLine(result.Format());
        return 0;
    }
}
