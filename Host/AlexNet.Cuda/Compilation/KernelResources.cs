using System.Globalization;
using System.Text.RegularExpressions;

namespace AlexNet.Cuda.Compilation;

/// <summary>What ptxas reports for one kernel entry point compiled for one architecture.</summary>
public sealed record KernelResourceUsage(string Kernel, NvrtcTarget Target, int Registers, int SharedMemoryBytes,
    int StackFrameBytes, int SpillStoreBytes, int SpillLoadBytes)
{
    public bool Spills => SpillStoreBytes > 0 || SpillLoadBytes > 0;
}

/// <summary>
/// The per-SM limits that decide occupancy (CUDA C++ Programming Guide, "Technical Specifications per
/// Compute Capability"; the Ampere and Hopper tuning guides for the shared-memory capacities).
/// </summary>
/// <param name="MaxThreads">Resident threads per SM.</param>
/// <param name="MaxBlocks">Resident blocks per SM.</param>
/// <param name="Registers">32-bit registers per SM.</param>
/// <param name="MaxRegistersPerThread">Registers one thread may use.</param>
/// <param name="RegisterUnit">Registers are allocated per warp, in units of this many.</param>
/// <param name="SharedMemoryBytes">The largest shared-memory carve-out per SM.</param>
/// <param name="SharedMemoryUnit">Shared memory is allocated per block in units of this many bytes.</param>
/// <param name="ReservedSharedMemoryPerBlock">Shared memory the CUDA runtime reserves for each block.</param>
public sealed record SmLimits(int Architecture, int MaxThreads, int MaxBlocks, int Registers, int MaxRegistersPerThread,
    int RegisterUnit, int SharedMemoryBytes, int SharedMemoryUnit, int ReservedSharedMemoryPerBlock)
{
    public const int WarpSize = 32;

    /// <summary>sm_80 (A100): 2048 threads, 32 blocks, 64K registers, 164 KiB of shared memory per SM.</summary>
    public static SmLimits Sm80 { get; } = new(80, 2048, 32, 65536, 255, 256, 164 * 1024, 128, 1024);

    /// <summary>sm_90 (H100, H200): as sm_80 but 228 KiB of shared memory per SM.</summary>
    public static SmLimits Sm90 { get; } = new(90, 2048, 32, 65536, 255, 256, 228 * 1024, 128, 1024);

    public static SmLimits For(int architecture) => architecture switch
    {
        80 => Sm80,
        90 => Sm90,
        _ => throw new AlexNetException($"no SM limits are recorded for sm_{architecture}; known: sm_80, sm_90"),
    };
}

/// <summary>How many blocks of one kernel fit on an SM at once, and what stops more.</summary>
/// <param name="ThreadsPerSm">Resident threads counted in whole warps (a partly filled warp takes a warp's slot).</param>
/// <param name="Fraction">Resident warps over the SM's maximum: the occupancy.</param>
/// <param name="Limiter">The resource that bounds the block count: threads, blocks, registers or shared memory.</param>
public readonly record struct KernelOccupancy(int BlocksPerSm, int ThreadsPerSm, double Fraction, string Limiter);

/// <summary>
/// Resource figures of compiled kernels: NVRTC compiles with <c>--ptxas-options=-v</c> (no GPU needed)
/// and the log is read per entry point; <see cref="Occupancy"/> then does the occupancy calculator's
/// arithmetic for a block size.
/// </summary>
public static partial class KernelResources
{
    public static IReadOnlyList<string> PtxasVerbose { get; } = ["--ptxas-options=-v"];

    /// <summary>Compiles <paramref name="source"/> for <paramref name="target"/> (a cubin) and returns every entry point's figures.</summary>
    public static IReadOnlyList<KernelResourceUsage> Measure(KernelSource source, NvrtcTarget target,
        IReadOnlyDictionary<string, string>? defines, IReadOnlyList<string>? extraOptions = null)
    {
        if (!target.Cubin)
            throw new AlexNetException($"ptxas reports resources only for a real architecture (sm_XY), not {target}");
        IReadOnlyList<string> options = extraOptions is null ? PtxasVerbose : [.. PtxasVerbose, .. extraOptions];
        NvrtcOutput output = NvrtcCompiler.Compile(source, target, defines, options);
        IReadOnlyList<KernelResourceUsage> usages = Parse(output.Log, target);
        if (usages.Count == 0)
            throw new AlexNetException($"the ptxas log of {source.Name} for {target} names no entry function: {output.Log.ReplaceLineEndings(" | ")}");
        return usages;
    }

    [GeneratedRegex(@"Compiling entry function '([^']+)' for '([^']+)'")]
    private static partial Regex EntryLine();

    [GeneratedRegex(@"Function properties for (\S+)")]
    private static partial Regex PropertiesLine();

    [GeneratedRegex(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")]
    private static partial Regex StackLine();

    [GeneratedRegex(@"Used (\d+) registers")]
    private static partial Regex RegistersLine();

    [GeneratedRegex(@"(\d+) bytes smem")]
    private static partial Regex SharedMemory();

    /// <summary>
    /// Reads a ptxas <c>-v</c> log. Per entry function ptxas prints "Compiling entry function 'k' for
    /// 'sm_90'", then "Function properties for k" with the stack and spill line, then "Used N registers,
    /// M bytes smem, …" (smem left out when 0). Properties of device functions that were not inlined are
    /// skipped: their figures are part of the calling kernel's.
    /// </summary>
    public static IReadOnlyList<KernelResourceUsage> Parse(string log, NvrtcTarget target)
    {
        var result = new List<KernelResourceUsage>();
        string? entry = null, properties = null;
        (int Stack, int Stores, int Loads) stack = default;
        foreach (string line in log.Split('\n'))
        {
            Match m;
            if ((m = EntryLine().Match(line)).Success)
            {
                entry = m.Groups[1].Value;
                stack = default;
            }
            else if ((m = PropertiesLine().Match(line)).Success)
            {
                properties = m.Groups[1].Value;
            }
            else if ((m = StackLine().Match(line)).Success)
            {
                if (properties == entry) stack = (Int(m, 1), Int(m, 2), Int(m, 3));
            }
            else if ((m = RegistersLine().Match(line)).Success && entry is not null)
            {
                Match smem = SharedMemory().Match(line);
                result.Add(new KernelResourceUsage(entry, target, Int(m, 1), smem.Success ? Int(smem, 1) : 0,
                    stack.Stack, stack.Stores, stack.Loads));
                entry = null;
            }
        }
        return result;
    }

    /// <summary>
    /// The occupancy calculator's arithmetic: blocks of <paramref name="blockSize"/> threads per SM are
    /// limited by threads (whole warps), by the block count, by registers (per warp, rounded up to the
    /// allocation unit) and by shared memory (per block, with the runtime's reservation, rounded up to
    /// the allocation unit).
    /// </summary>
    public static KernelOccupancy Occupancy(KernelResourceUsage usage, int blockSize, SmLimits limits)
    {
        if (blockSize < 1 || blockSize > 1024)
            throw new AlexNetException($"a block of {blockSize} threads is outside 1..1024");
        if (usage.Registers > limits.MaxRegistersPerThread)
            throw new AlexNetException($"{usage.Kernel} uses {usage.Registers} registers, more than sm_{limits.Architecture}'s {limits.MaxRegistersPerThread}");
        int warpsPerBlock = (blockSize + SmLimits.WarpSize - 1) / SmLimits.WarpSize;

        int byThreads = limits.MaxThreads / SmLimits.WarpSize / warpsPerBlock;
        int byBlocks = limits.MaxBlocks;
        int registersPerWarp = RoundUp(usage.Registers * SmLimits.WarpSize, limits.RegisterUnit);
        int byRegisters = registersPerWarp == 0 ? int.MaxValue : limits.Registers / (registersPerWarp * warpsPerBlock);
        int sharedPerBlock = RoundUp(usage.SharedMemoryBytes + limits.ReservedSharedMemoryPerBlock, limits.SharedMemoryUnit);
        int bySharedMemory = limits.SharedMemoryBytes / sharedPerBlock;

        (int blocks, string limiter) = (byThreads, "threads");
        if (byBlocks < blocks) (blocks, limiter) = (byBlocks, "blocks");
        if (byRegisters < blocks) (blocks, limiter) = (byRegisters, "registers");
        if (bySharedMemory < blocks) (blocks, limiter) = (bySharedMemory, "shared memory");
        int threads = blocks * warpsPerBlock * SmLimits.WarpSize;
        return new KernelOccupancy(blocks, threads, (double)threads / limits.MaxThreads, limiter);
    }

    private static int RoundUp(int value, int unit) => (value + unit - 1) / unit * unit;

    private static int Int(Match m, int group) => int.Parse(m.Groups[group].ValueSpan, CultureInfo.InvariantCulture);
}
