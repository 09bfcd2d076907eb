using System.Reflection;
using AlexNet.Cuda.Compilation;

namespace AlexNet.Cuda.Tests.Kernels;

/// <summary>
/// The kernel cache's entry names: a managed 128-bit hash, so the NativeAOT binary never loads libssl through
/// .NET's OpenSSL shim for them, framed so that different part lists never share a key.
/// </summary>
public class KernelCacheKeyTests
{
    [Fact]
    public void TheHashIsXxHash128AsPublished()
    {
        // The xxHash project's reference value of XXH3_128bits over no bytes (seed 0), canonical byte order.
        Assert.Equal("99aa06d3014798d86001c324468d497f", KernelCache.Hex([]));
    }

    [Fact]
    public void KeysAre32HexDigitsAndEachPartIsFramed()
    {
        string key = KernelCache.Key("source", "--gpu-architecture=sm_90", "NVRTC 13.0", "sm_90");
        Assert.Matches("^[0-9a-f]{32}$", key);
        Assert.Equal(key, KernelCache.Key("source", "--gpu-architecture=sm_90", "NVRTC 13.0", "sm_90"));
        // Without the length framing these pairs would hash the same text.
        Assert.NotEqual(KernelCache.Key("ab", "c"), KernelCache.Key("a", "bc"));
        Assert.NotEqual(KernelCache.Key("a"), KernelCache.Key("a", ""));
        Assert.NotEqual(KernelCache.Key("1:a\n"), KernelCache.Key("a"));
        Assert.NotEqual(KernelCache.Key("sm_90"), KernelCache.Key("sm_80"));
    }

    [Fact]
    public void TheSourceHashIsThatOfTheExpandedText()
    {
        KernelSource a = KernelSource.FromText("a.cu", "#include \"prelude.h\"\nKERNEL void k(GLOBAL float* x) { x[0] = 1.0f; }");
        KernelSource again = KernelSource.FromText("a.cu", "#include \"prelude.h\"\nKERNEL void k(GLOBAL float* x) { x[0] = 1.0f; }");
        KernelSource otherText = KernelSource.FromText("a.cu", "#include \"prelude.h\"\nKERNEL void k(GLOBAL float* x) { x[0] = 2.0f; }");
        Assert.Matches("^[0-9a-f]{32}$", a.Hash);
        // The expanded text (prelude and #line directives included) is what the compilers see.
        Assert.Equal(KernelCache.Hex(System.Text.Encoding.UTF8.GetBytes(a.Text)), a.Hash);
        Assert.Contains("prelude.h", a.Text);
        Assert.Equal(a.Hash, again.Hash);
        Assert.NotEqual(a.Hash, otherText.Hash);
    }

    [Fact]
    public void NoEngineAssemblyReferencesTheCryptographyLibrary()
    {
        // What the NativeAOT binary is made of (the TorchSharp peer is not in it). A reference to
        // System.Security.Cryptography would bring the OpenSSL shim, which loads libssl only when first used.
        Assembly[] assemblies =
        [
            typeof(KernelCache).Assembly, typeof(AlexNet.Cuda.Interop.NativeLibraries).Assembly,
            typeof(AlexNet.Imaging.Preprocessor).Assembly, typeof(AlexNet.Cli.Program).Assembly,
            typeof(AlexNet.Cuda.Bench.BenchmarkHarness).Assembly,
        ];
        foreach (Assembly assembly in assemblies)
        {
            Assert.DoesNotContain(assembly.GetReferencedAssemblies(),
                r => r.Name!.StartsWith("System.Security.Cryptography", StringComparison.Ordinal));
        }
    }
}
