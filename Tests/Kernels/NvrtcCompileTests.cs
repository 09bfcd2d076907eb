using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Kernels;

/// <summary>Every kernel file compiles with NVRTC for the GPUs the project targets (sm_80 A100, sm_90
/// H100/H200); no GPU is needed to compile. CI uses Debian's NVRTC 11.8.</summary>
public class NvrtcCompileTests
{
    public static TheoryData<string, int> KernelsAndArchitectures()
    {
        var data = new TheoryData<string, int>();
        foreach (string file in KernelSource.EmbeddedKernelFiles())
        foreach (int arch in new[] { 80, 90 })
            data.Add(file, arch);
        return data;
    }

    [SkippableTheory]
    [MemberData(nameof(KernelsAndArchitectures))]
    public void EveryKernelFileCompilesToACubin(string file, int architecture)
    {
        TestNative.Require(NativeLibraryId.Nvrtc);
        NvrtcOutput output = NvrtcCompiler.Compile(KernelSource.FromEmbedded(file), NvrtcTarget.Sm(architecture), null);
        // A cubin is an ELF image.
        Assert.True(output.Image.Length > 64, $"{file}: cubin of {output.Image.Length} bytes");
        Assert.Equal([0x7F, (byte)'E', (byte)'L', (byte)'F'], output.Image[..4]);
    }

    [SkippableFact]
    public void PtxForAVirtualArchitectureNamesItsTarget()
    {
        TestNative.Require(NativeLibraryId.Nvrtc);
        NvrtcOutput output = NvrtcCompiler.Compile(KernelSource.FromEmbedded("transpose.cu"), new NvrtcTarget(80, Cubin: false), null);
        string ptx = System.Text.Encoding.ASCII.GetString(output.Image).TrimEnd('\0');
        Assert.Contains(".target sm_80", ptx);
        Assert.Contains(".entry transpose_kernel1", ptx); // extern "C": the name is not mangled
        Assert.Equal(0, output.Image[^1]); // cuModuleLoadData needs the trailing NUL
    }

    [SkippableFact]
    public void DefinesReachTheCompiler()
    {
        TestNative.Require(NativeLibraryId.Nvrtc);
        KernelSource source = KernelSource.FromText("defines.cu", """
            #include "prelude.h"
            #if !defined(TILE) || TILE != 7
            #error TILE did not arrive
            #endif
            KERNEL void k(GLOBAL float* x) { x[0] = TILE; }
            """);
        NvrtcCompiler.Compile(source, NvrtcTarget.Sm(90), new Dictionary<string, string> { ["TILE"] = "7" });
        var e = Assert.Throws<NvrtcException>(() => NvrtcCompiler.Compile(source, NvrtcTarget.Sm(90), null));
        Assert.Contains("TILE did not arrive", e.Message);
    }

    [SkippableFact]
    public void ABrokenKernelFailsWithTheCompilerLogNamingFileAndLine()
    {
        TestNative.Require(NativeLibraryId.Nvrtc);
        KernelSource broken = KernelSource.FromText("broken.cu", """
            #include "prelude.h"
            KERNEL void broken(GLOBAL float* x)
            {
                x[0] = undeclared_variable;
            }
            """);
        var e = Assert.Throws<NvrtcException>(() => NvrtcCompiler.Compile(broken, NvrtcTarget.Sm(80), null));
        Assert.Equal(NvrtcResult.Compilation, e.Result);
        Assert.StartsWith("nvrtcCompileProgram(broken.cu, sm_80) failed: NVRTC_ERROR_COMPILATION (6); compiler log:", e.Message);
        // The #line directives make the log point at the kernel file's own line 4, not the expanded text's.
        Assert.Contains("broken.cu(4)", e.CompilerLog);
        Assert.Contains("undeclared_variable", e.Message);
    }

    [SkippableFact]
    public void TheTargetIsTheDevicesOwnArchitectureWhenNvrtcKnowsIt()
    {
        TestNative.Require(NativeLibraryId.Nvrtc);
        Assert.Equal(NvrtcTarget.Sm(90), NvrtcCompiler.ChooseTarget(9, 0));
        Assert.Equal(NvrtcTarget.Sm(80), NvrtcCompiler.ChooseTarget(8, 0));
        // A GPU newer than this NVRTC gets PTX of the newest architecture it knows, for the driver to JIT.
        NvrtcTarget future = NvrtcCompiler.ChooseTarget(99, 9);
        Assert.False(future.Cubin);
        Assert.Equal(NvrtcCompiler.SupportedArchitectures().Max(), future.Architecture);
    }

    [SkippableFact]
    public void ASecondCompileOfTheSameSourceComesFromTheDiskCache()
    {
        TestNative.Require(NativeLibraryId.Nvrtc);
        using FreshCache fresh = TestCache.Fresh();
        KernelCache cache = fresh.Cache;
        KernelSource source = KernelSource.FromEmbedded("transpose.cu");
        NvrtcOutput first = NvrtcCompiler.CompileCached(cache, source, NvrtcTarget.Sm(90), null);
        NvrtcOutput second = NvrtcCompiler.CompileCached(cache, source, NvrtcTarget.Sm(90), null);
        NvrtcOutput otherDefines = NvrtcCompiler.CompileCached(cache, source, NvrtcTarget.Sm(90), new Dictionary<string, string> { ["TILE_DIM"] = "16" });
        NvrtcOutput otherTarget = NvrtcCompiler.CompileCached(cache, source, NvrtcTarget.Sm(80), null);
        Assert.False(first.FromCache);
        Assert.True(second.FromCache);
        Assert.Equal(first.Image, second.Image);
        Assert.False(otherDefines.FromCache);
        Assert.False(otherTarget.FromCache);
        Assert.Equal(3, Directory.GetFiles(Path.Combine(cache.Root, "cuda"), "transpose-*.cubin").Length);
    }
}
