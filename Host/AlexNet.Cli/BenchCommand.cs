using System.CommandLine;
using AlexNet.Cuda.Bench;
using AlexNet.Cuda.Devices;

namespace AlexNet.Cli;

/// <summary><c>alexnet bench kernels</c>: device-timed medians of each kernel and GEMM.</summary>
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
        return new Command("bench", "Time the engine's operations on a device") { kernels };
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
