using System.Diagnostics;
using System.Runtime.InteropServices;
using AlexNet.Cuda.Tests.Infrastructure;
using TorchSharp;

namespace AlexNet.Cuda.Tests.Torch;

/// <summary>
/// Whether TorchSharp's native library loads here. On Debian 12 it loads only after the build marks one
/// libstdc++ version requirement weak (Bench/Torch/TorchSharpNative.targets, docs/platform.md); when it does
/// not load, tests that need it skip with the reason, or fail under <c>ALEXNET_REQUIRE_NATIVE=1</c>.
/// </summary>
public static class TorchReference
{
    private static readonly Lazy<(bool Available, string? Reason, TimeSpan LoadTime)> State = new(() =>
    {
        var sw = Stopwatch.StartNew();
        try
        {
            // The first tensor operation loads libLibTorchSharp.so and libtorch_cpu.so.
            using var t = torch.ones(2, 2).sum();
            if (t.item<float>() != 4f) return (false, "TorchSharp loaded but computed a wrong sum of ones", sw.Elapsed);
            return (true, null, sw.Elapsed);
        }
        catch (Exception e) when (e is NotSupportedException or DllNotFoundException or TypeInitializationException
                                      or EntryPointNotFoundException or BadImageFormatException)
        {
            string message = e.GetBaseException().Message.Split('\n')[0].Trim();
            return (false, $"TorchSharp does not load: {message}{LoaderDiagnosis()}", sw.Elapsed);
        }
    });

    /// <summary>What the dynamic loader itself says about libLibTorchSharp.so: TorchSharp's own message blames a
    /// missing package reference whatever the cause.</summary>
    private static string LoaderDiagnosis()
    {
        if (!OperatingSystem.IsLinux()) return "";
        string path = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (!File.Exists(path)) return $" ({path} is missing)";
        try
        {
            NativeLibrary.Free(NativeLibrary.Load(path));
            return "";
        }
        catch (DllNotFoundException e)
        {
            // .NET's message puts the loader's own words after its advice on LD_DEBUG.
            string said = e.Message.ReplaceLineEndings(" ");
            int advice = said.LastIndexOf("environment variable:", StringComparison.Ordinal);
            return $" (the loader says: {(advice >= 0 ? said[(advice + "environment variable:".Length)..] : said).Trim()})";
        }
    }

    public static bool Available => State.Value.Available;

    /// <summary>Why TorchSharp is unavailable; null when it works.</summary>
    public static string? UnavailableReason => State.Value.Reason;

    /// <summary>How long the first load took (native libraries and the first operation).</summary>
    public static TimeSpan LoadTime => State.Value.LoadTime;

    /// <summary>Skips the test when TorchSharp cannot load, or fails it under ALEXNET_REQUIRE_NATIVE=1.</summary>
    public static void Require()
    {
        if (Available) return;
        if (TestNative.Required)
            throw new InvalidOperationException($"{UnavailableReason} (ALEXNET_REQUIRE_NATIVE=1 requires it)");
        Skip.If(true, UnavailableReason);
    }
}
