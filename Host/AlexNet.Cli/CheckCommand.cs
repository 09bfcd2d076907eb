using System.CommandLine;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;

namespace AlexNet.Cli;

/// <summary><c>alexnet check</c>: every kernel, GEMM, device promise and the whole network on the chosen device
/// against the C# references.</summary>
internal static class CheckCommand
{
    public static Command Create()
    {
        Option<DeviceChoice?> device = CliOptions.Device();
        Option<PrecisionChoice?> precision = CliOptions.OptionalPrecision(
            "Check the whole network in this precision only (fp32, tf32, fp16, bf16) beside FP32; without it, in every precision, " +
            "those the device lacks reported as skipped with the reason");
        var command = new Command("check",
            "Run every kernel, GEMM, device promise and the whole network on a device against the C# references (in double); exit status 1 when one fails")
        {
            device, precision,
        };
        command.SetAction(result => Run(result.GetDevice(device), result.GetValue(precision), Program.IsVerbose(result), result.InvocationConfiguration.Output));
        return command;
    }

    private static int Run(DeviceChoice choice, PrecisionChoice? precision, bool verbose, TextWriter stdout)
    {
        using Interruption interruption = Interruption.Listen();
        using SelectedDevice selected = DeviceSelector.Open(choice);
        // A precision asked for by name must be one the device has; without a name, those it lacks are skipped.
        precision?.RequireOn(selected.Device);
        Precision[]? only = precision is PrecisionChoice p ? [p.Value] : null;
        stdout.WriteLine($"device: {selected.Device.Description} ({selected.Reason}); GEMMs: {selected.Device.GemmProvider}; precisions: " +
            string.Join(", ", Precisions.SupportedBy(selected.Device).Select(Precisions.Name)));
        int passed = 0, failed = 0, skipped = 0, total = KernelChecks.All(only).Count();
        // A stop is honoured between checks: each one is seconds at most, and its line is written whole.
        foreach (CheckResult result in KernelChecks.RunAll(selected.Device, stackTraces: verbose, only))
        {
            if (result.Passed) passed++; else if (result.Skipped) skipped++; else failed++;
            string verdict = result.Passed ? "PASS" : result.Skipped ? "SKIP" : "FAIL";
            stdout.WriteLine($"{verdict} {result.Name}: {result.Detail.ReplaceLineEndings(" | ")} ({result.Time.TotalMilliseconds:F0} ms)");
            interruption.ThrowIfRequested(() => $"after {passed + failed + skipped} of {total} checks ({passed} passed, {failed} failed, {skipped} skipped)");
        }
        (int compiled, int fromCache) = selected.Device.ModuleLoads;
        stdout.WriteLine($"kernel modules: {compiled} compiled, {fromCache} loaded from the disk cache ({selected.Device.Cache.Root})");
        stdout.WriteLine(skipped == 0 ? $"checks: {passed} passed, {failed} failed" : $"checks: {passed} passed, {failed} failed, {skipped} skipped");
        return failed == 0 ? 0 : Program.Failure;
    }
}
