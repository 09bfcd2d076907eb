using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Kernels;

/// <summary>
/// Register and shared-memory use of the network's kernels as ptxas reports it (NVRTC with
/// <c>--ptxas-options=-v</c>, no GPU needed) for sm_80 and sm_90: no spills, no local memory, and at
/// the block size <see cref="NetworkKernels"/> launches with, at least half of an SM's threads resident.
/// docs/kernels.md records the figures.
/// </summary>
public class KernelResourceTests(ITestOutputHelper output)
{
    public static TheoryData<string, int, string> NetworkKernelsAndArchitectures()
    {
        var data = new TheoryData<string, int, string>();
        foreach (NetworkKernelInfo kernel in NetworkKernels.Kernels)
        foreach (int arch in new[] { 80, 90 })
        foreach (ElementFormat storage in new[] { ElementFormat.Float32, ElementFormat.Half, ElementFormat.BFloat16 })
        {
            // convert.cu takes no storage define: one build serves every precision.
            if (kernel.File == "convert.cu" && storage != ElementFormat.Float32) continue;
            data.Add(kernel.EntryPoint, arch, ElementFormats.Name(storage));
        }
        return data;
    }

    [SkippableTheory]
    [MemberData(nameof(NetworkKernelsAndArchitectures))]
    public void NoSpillsAndAtLeastHalfOccupancyAtTheLaunchBlockSize(string entryPoint, int architecture, string storage)
    {
        NetworkKernelInfo info = NetworkKernels.Kernels.Single(k => k.EntryPoint == entryPoint);
        ElementFormat format = storage switch { "fp16" => ElementFormat.Half, "bf16" => ElementFormat.BFloat16, _ => ElementFormat.Float32 };
        AssertNoSpillsAndHalfOccupancy(output, info, NetworkKernels.ModuleDefines(info, format), architecture, storage);
    }

    /// <summary>
    /// Compiles <paramref name="info"/>'s file with <paramref name="defines"/> for sm_<paramref name="architecture"/>
    /// and asserts what the theory above does for its kernel (no spills, no stack frame, at least half of an SM's
    /// threads resident at the launch block size), printing its row of the figures table. Shared by every list of
    /// kernels (the training kernels' too).
    /// </summary>
    internal static void AssertNoSpillsAndHalfOccupancy(ITestOutputHelper output, NetworkKernelInfo info,
        IReadOnlyDictionary<string, string>? defines, int architecture, string storage)
    {
        TestNative.Require(NativeLibraryId.Nvrtc);
        string entryPoint = info.EntryPoint;
        KernelResourceUsage usage = KernelResources.Measure(KernelSource.FromEmbedded(info.File), NvrtcTarget.Sm(architecture), defines)
            .Single(u => u.Kernel == entryPoint);
        KernelOccupancy occupancy = KernelResources.Occupancy(usage, info.BlockSize, SmLimits.For(architecture));
        output.WriteLine($"| {entryPoint} | {storage} | sm_{architecture} | {info.BlockSize} | {usage.Registers} | {usage.SharedMemoryBytes} | " +
            $"{usage.StackFrameBytes} | {usage.SpillStoreBytes}/{usage.SpillLoadBytes} | {occupancy.BlocksPerSm} | " +
            $"{occupancy.Fraction:P0} ({occupancy.Limiter}) |");

        Assert.False(usage.Spills, $"{entryPoint} on sm_{architecture} spills {usage.SpillStoreBytes} bytes (stores) / {usage.SpillLoadBytes} (loads)");
        // No local memory at all: the kernels' small arrays (dropout's four Philox words) must live in registers.
        Assert.Equal(0, usage.StackFrameBytes);
        Assert.True(occupancy.Fraction >= 0.5,
            $"{entryPoint} on sm_{architecture} at block {info.BlockSize}: {occupancy.ThreadsPerSm} resident threads, limited by {occupancy.Limiter}");
    }

    [SkippableFact]
    public void APressedKernelsSpillsAreSeenAndANonInlinedDeviceFunctionIsNotMistakenForAKernel()
    {
        TestNative.Require(NativeLibraryId.Nvrtc);
        // 64 live floats per thread under a cap of 32 registers must spill.
        KernelSource source = KernelSource.FromText("pressure.cu", """
            #include "prelude.h"
            KERNEL void pressed(GLOBAL float* x, int n)
            {
                float a[64];
                for (int i = 0; i < 64; i++) a[i] = x[i * n + threadIdx.x];
                for (int k = 0; k < 8; k++)
                    for (int i = 0; i < 64; i++) a[(i * 7 + k) & 63] += a[i] * 1.5f;
                for (int i = 0; i < 64; i++) x[i * n + threadIdx.x] = a[i];
            }
            __device__ __noinline__ float twice(float v) { return 2.0f * v; }
            KERNEL void calls(GLOBAL float* x) { x[threadIdx.x] = twice(x[threadIdx.x]); }
            """);
        IReadOnlyList<KernelResourceUsage> usages = KernelResources.Measure(source, NvrtcTarget.Sm(90), null, ["--maxrregcount=32"]);
        string[] kernels = [.. usages.Select(u => u.Kernel).Order()];
        Assert.Equal(["calls", "pressed"], kernels);
        KernelResourceUsage pressed = usages.Single(u => u.Kernel == "pressed");
        Assert.True(pressed.Spills);
        Assert.True(pressed.SpillStoreBytes > 0 && pressed.SpillLoadBytes > 0 && pressed.StackFrameBytes > 0, pressed.ToString());
        Assert.True(pressed.Registers <= 32, pressed.ToString());
        Assert.False(usages.Single(u => u.Kernel == "calls").Spills);
    }

    [Fact]
    public void TheLogParserReadsEveryFigure()
    {
        // As NVRTC 11.8 prints it for sm_80 (cmem present; smem left out when 0) and as newer ptxas
        // versions add "used N barriers" before the shared memory.
        const string log = """
            ptxas info    : 0 bytes gmem
            ptxas info    : Compiling entry function 'first' for 'sm_80'
            ptxas info    : Function properties for first
            ptxas         .     16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
            ptxas info    : Used 40 registers, 380 bytes cmem[0]
            ptxas info    : Function properties for _Z5twicef
            ptxas         .     99 bytes stack frame, 99 bytes spill stores, 99 bytes spill loads
            ptxas info    : Compiling entry function 'second' for 'sm_80'
            ptxas info    : Function properties for second
            ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Used 30 registers, used 1 barriers, 4224 bytes smem, 384 bytes cmem[0]
            """;
        IReadOnlyList<KernelResourceUsage> usages = KernelResources.Parse(log, NvrtcTarget.Sm(80));
        KernelResourceUsage[] expected =
        [
            new("first", NvrtcTarget.Sm(80), 40, 0, 16, 8, 4),
            new("second", NvrtcTarget.Sm(80), 30, 4224, 0, 0, 0),
        ];
        Assert.Equal(expected, usages);
    }

    [Theory]
    // 32 registers, 256 threads: 8 blocks fill the SM's 2048 threads.
    [InlineData(80, 256, 32, 0, 8, 1.0, "threads")]
    // 64 registers: 64·32 = 2048 per warp, 8 warps per block -> 65536 / 16384 = 4 blocks, half the SM.
    [InlineData(90, 256, 64, 0, 4, 0.5, "registers")]
    // 65 registers: 2080 per warp rounds up to 2304 -> 65536 / 18432 = 3 blocks.
    [InlineData(80, 256, 65, 0, 3, 0.375, "registers")]
    // 48 KiB of shared memory (+1 KiB reserved) per block of 128: 164 KiB / 49 KiB = 3 blocks on sm_80 ...
    [InlineData(80, 128, 16, 48 * 1024, 3, 0.1875, "shared memory")]
    // ... and 228 KiB / 49 KiB = 4 on sm_90.
    [InlineData(90, 128, 16, 48 * 1024, 4, 0.25, "shared memory")]
    // 32-thread blocks: the 32-block limit leaves half of the 64 warps empty.
    [InlineData(90, 32, 16, 0, 32, 0.5, "blocks")]
    // 100 threads take 4 warps (the last one partly empty): 16 blocks fill the 64 warp slots.
    [InlineData(80, 100, 16, 0, 16, 1.0, "threads")]
    public void OccupancyFollowsTheCalculatorsArithmetic(int architecture, int block, int registers, int smem,
        int expectedBlocks, double expectedFraction, string expectedLimiter)
    {
        var usage = new KernelResourceUsage("k", NvrtcTarget.Sm(architecture), registers, smem, 0, 0, 0);
        KernelOccupancy occupancy = KernelResources.Occupancy(usage, block, SmLimits.For(architecture));
        Assert.Equal(expectedBlocks, occupancy.BlocksPerSm);
        Assert.Equal(expectedLimiter, occupancy.Limiter);
        Assert.Equal(expectedFraction, occupancy.Fraction, 6);
    }

    [Fact]
    public void UnknownArchitecturesAndImpossibleBlocksAreRefused()
    {
        Assert.StartsWith("no SM limits are recorded for sm_75", Assert.Throws<AlexNetException>(() => SmLimits.For(75)).Message);
        var usage = new KernelResourceUsage("k", NvrtcTarget.Sm(80), 16, 0, 0, 0, 0);
        Assert.StartsWith("a block of 2048 threads", Assert.Throws<AlexNetException>(() => KernelResources.Occupancy(usage, 2048, SmLimits.Sm80)).Message);
    }
}
