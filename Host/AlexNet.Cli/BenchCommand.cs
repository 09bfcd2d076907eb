using AlexNet.Cuda;
using AlexNet.Cuda.Bench;
using AlexNet.Cuda.Devices;

namespace AlexNet.Cli;

/// <summary><c>alexnet bench kernels</c>: device-timed medians of each kernel and GEMM.</summary>
internal static class BenchCommand
{
    public static int Run(string[] args, TextWriter stdout)
    {
        (List<string> positional, Dictionary<string, string> options) =
            CommandLine.Parse(args, "bench", "device", "warmup", "repeats", "size");
        string what = positional.Count > 0 ? positional[0] : "kernels";
        if (what != "kernels")
            throw new AlexNetException($"'bench {what}' is not available yet; 'bench kernels' times the kernels and GEMMs");
        DeviceChoice choice = DeviceChoiceParser.Parse(options.GetValueOrDefault("device", "auto"));
        int warmup = PositiveInt(options, "warmup", 3);
        int repeats = PositiveInt(options, "repeats", 20);
        using SelectedDevice selected = DeviceSelector.Open(choice);
        bool small = options.GetValueOrDefault("size", selected.Device.Backend == DeviceBackend.Cuda ? "full" : "small") switch
        {
            "small" => true,
            "full" => false,
            string s => throw new AlexNetException($"--size takes small or full, not '{s}'"),
        };
        stdout.WriteLine($"device: {selected.Device.Description} ({selected.Reason})");
        stdout.WriteLine($"warm-up {warmup}, repeats {repeats}, device-side timing, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        foreach (BenchmarkResult result in KernelBenchmarks.Run(selected.Device, warmup, repeats, small))
            stdout.WriteLine(result.Format());
        return 0;
    }

    private static int PositiveInt(Dictionary<string, string> options, string name, int fallback)
    {
        if (!options.TryGetValue(name, out string? text)) return fallback;
        return int.TryParse(text, out int value) && value > 0
            ? value
            : throw new AlexNetException($"--{name} takes a positive whole number, not '{text}'");
    }
}
