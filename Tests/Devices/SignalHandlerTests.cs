using System.Diagnostics;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Devices;

/// <summary>
/// A managed null dereference or division by zero after the OpenCL device opened is an ordinary exception.
/// PoCL's initialisation installs LLVM's and PoCL's own signal handlers over the runtime's, which made the
/// first such fault of the process fatal (the process ended with "Fatal error", exit 134).
/// </summary>
[Collection(OpenClCollection.Name)]
public sealed class SignalHandlerTests(OpenClFixture fixture)
{
    [SkippableFact]
    public void AfterTheDeviceOpensTheRuntimeStillHoldsTheFaultSignals()
    {
        _ = fixture.Device;
        Assert.Empty(SignalHandlers.ReplacedFaultHandlers());
        foreach ((int number, string name) in SignalHandlers.FaultSignals)
            Assert.True(SignalHandlers.HandlerOwner(number) is "libcoreclr.so", $"{name} is handled in {SignalHandlers.HandlerOwner(number)}");
    }

    [SkippableFact]
    public void FaultsInManagedCodeAreCaughtAfterTheDeviceOpenedInThisProcess()
    {
        var result = FaultChecks.ManagedFaultsStayExceptions(fixture.Device);
        Assert.True(result.Passed, result.Detail);
    }

    /// <summary>
    /// The same in a fresh process, where the device's libraries are initialised for the first time and no
    /// earlier fault has been handled (LLVM's handler, once it has run, puts the previous handlers back, so a
    /// process that had already caught a fault would pass without the fix): `alexnet check` runs the fault
    /// check first, right after opening the device.
    /// </summary>
    [SkippableFact]
    public void FaultsInManagedCodeAreCaughtInAFreshProcessThatOpensTheDevice()
    {
        _ = fixture.Device; // skips (or fails, when native libraries are required) without PoCL
        string cli = Path.Combine(AppContext.BaseDirectory, "alexnet.dll");
        var psi = new ProcessStartInfo("dotnet", [cli, "check", "--device", "opencl"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using Process p = Process.Start(psi)!;
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        string? device = p.StandardOutput.ReadLine();
        string? first = p.StandardOutput.ReadLine();
        p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(300_000), "alexnet check did not finish");
        Assert.DoesNotContain("Fatal error", stderr.Result);
        Assert.NotNull(device);
        Assert.True(first is not null && first.StartsWith($"PASS {FaultChecks.Name}", StringComparison.Ordinal),
            $"first check line: {first}; exit {p.ExitCode}; stderr: {stderr.Result}");
    }
}
