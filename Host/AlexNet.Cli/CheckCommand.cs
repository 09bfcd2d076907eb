using System.CommandLine;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;

namespace AlexNet.Cli;

/// <summary><c>alexnet check</c>: every kernel, GEMM, device promise and the whole network on the chosen device
/// against the C# references.</summary>
internal static class CheckCommand
{
    public static Command Create()
    {
        Option<DeviceChoice?> device = CliOptions.Device();
        var command = new Command("check",
            "Run every kernel, GEMM, device promise and the whole network on a device against the C# references (in double); exit status 1 when one fails")
        {
            device,
        };
        command.SetAction(result => Run(result.GetDevice(device), Program.IsVerbose(result), result.InvocationConfiguration.Output));
        return command;
    }

    private static int Run(DeviceChoice choice, bool verbose, TextWriter stdout)
    {
        using Interruption interruption = Interruption.Listen();
        using SelectedDevice selected = DeviceSelector.Open(choice);
        stdout.WriteLine($"device: {selected.Device.Description} ({selected.Reason}); GEMMs: {selected.Device.GemmProvider}");
        int passed = 0, failed = 0, total = KernelChecks.All().Count();
        // A stop is honoured between checks: each one is seconds at most, and its line is written whole.
        foreach (CheckResult result in KernelChecks.RunAll(selected.Device, stackTraces: verbose))
        {
            if (result.Passed) passed++; else failed++;
            stdout.WriteLine($"{(result.Passed ? "PASS" : "FAIL")} {result.Name}: {result.Detail.ReplaceLineEndings(" | ")} ({result.Time.TotalMilliseconds:F0} ms)");
            interruption.ThrowIfRequested(() => $"after {passed + failed} of {total} checks ({passed} passed, {failed} failed)");
        }
        (int compiled, int fromCache) = selected.Device.ModuleLoads;
        stdout.WriteLine($"kernel modules: {compiled} compiled, {fromCache} loaded from the disk cache ({selected.Device.Cache.Root})");
        stdout.WriteLine($"checks: {passed} passed, {failed} failed");
        return failed == 0 ? 0 : Program.Failure;
    }
}
