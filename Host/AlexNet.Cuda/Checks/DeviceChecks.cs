using System.Diagnostics;
using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Reference;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// The device layer's own promises, checked on a real device: argument checking against declared kernel
/// signatures (and, on CUDA 12.4+ drivers, against the compiled kernels), dynamic shared memory, recovery
/// from a corrupt kernel cache entry, event timing and ordering, GEMM output overlap, and disposal in any
/// order. They run in the tests on OpenCL and, through <c>alexnet check</c>, on the GPU validation machine,
/// which has no .NET to run the tests.
/// </summary>
public static class DeviceChecks
{
    /// <summary>The checks, the corrupt cache entry last: it is the one that feeds the loader bad bytes on
    /// purpose, so were anything to crash the process there, every other check has already reported.</summary>
    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All()
    {
        yield return ("device: every kernel's declared signature loads (and matches the compiled one where the driver can tell)", EverySignatureLoads);
        yield return ("device: launch arguments are checked against the declared signature", ArgumentsAreChecked);
        yield return ("device: dynamic shared memory (block-wise reverse, 3 blocks of 100 threads)", d => DynamicSharedMemory(d, 300, 100));
        yield return ("device: timing events measure queued work; ordering events refuse to be timed", TimingEvents);
        yield return ("device: GEMM batch outputs that overlap are refused", OverlappingBatchRefused);
        yield return ("device: buffers, modules and events may outlive their device", DisposalInAnyOrder);
        yield return (CorruptCacheCheckName, CorruptCacheEntryIsRebuilt);
    }

    public const string CorruptCacheCheckName = "device: a corrupt kernel cache entry is discarded and rebuilt";

    /// <summary>What the corrupt-cache check writes over an entry: neither ELF (no magic) nor PTX (no NUL),
    /// so the validation refuses it before the driver, which takes no length, could read past it.</summary>
    internal static ReadOnlySpan<byte> CorruptEntry => "not a kernel binary: written over a cache entry on purpose"u8;

    private static ComparisonResult Pass(string detail) => new(true, 0, 0, -1, 0, detail);

    private static ComparisonResult Fail(string detail) => new(false, 1, double.PositiveInfinity, -1, 0, detail);

    public static ComparisonResult EverySignatureLoads(ComputeDevice device)
    {
        int kernels = 0, compared = 0;
        string? firstFailure = null;
        foreach (string file in KernelSource.EmbeddedKernelFiles())
        {
            using KernelModule module = device.LoadModule(file);
            foreach (string name in KernelSource.FromEmbedded(file).Signatures.Keys)
            {
                Kernel kernel = module.GetKernel(name);
                kernels++;
                if (device is not CudaDevice) continue;
                CudaResult? answer = CudaDevice.ParameterInfoResult(kernel);
                if (answer == CudaResult.Success) compared++;
                else if (answer is CudaResult failed) firstFailure ??= $"{CudaDriver.ErrorName(failed)} for {kernel}";
            }
        }
        return Pass(device is CudaDevice
            ? SignatureComparison(kernels, compared, CudaDriver.HasFuncGetParamInfo, firstFailure)
            : $"{kernels} kernels; OpenCL enforces the declared sizes at every launch");
    }

    /// <summary>
    /// The CUDA detail of <see cref="EverySignatureLoads"/>: how many of <paramref name="kernels"/> had their
    /// compiled parameters compared with cuFuncGetParamInfo, never more than it did, and why the rest were not.
    /// </summary>
    internal static string SignatureComparison(int kernels, int compared, bool driverHasEntryPoint, string? firstFailure)
    {
        string counted = $"{kernels} kernels; {compared} compared with cuFuncGetParamInfo";
        if (compared == kernels) return counted;
        if (!driverHasEntryPoint) return $"{counted}: the driver predates it (CUDA 12.4), so only the declared signatures were read";
        return $"{counted}, {kernels - compared} not: the driver answered {firstFailure ?? "nothing usable"}, so only their declared signatures were read";
    }

    private const string ReverseSource = """
        #include "prelude.h"
        // Reverses each block's slice of x through dynamic shared memory.
        KERNEL void block_reverse(GLOBAL float* out, const GLOBAL float* in, int count DYNAMIC_SHARED_PARAM(float, cache))
        {
            DYNAMIC_SHARED_DECL(float, cache)
            int t = (int)threadIdx.x;
            int i = (int)(blockIdx.x * blockDim.x) + t;
            cache[t] = i < count ? in[i] : 0.0f;
            __syncthreads();
            int from = (int)blockDim.x - 1 - t;
            int j = (int)(blockIdx.x * blockDim.x) + from;
            if (i < count && j < count) out[i] = cache[from];
        }
        """;

    public static ComparisonResult ArgumentsAreChecked(ComputeDevice device)
    {
        using KernelModule module = device.LoadModule(KernelSource.FromText("block_reverse.cu", ReverseSource));
        Kernel kernel = module.GetKernel("block_reverse");
        using DeviceBuffer<float> buffer = device.Allocate<float>(4);
        var wrongSize = new KernelArguments();
        wrongSize.Add(buffer);
        wrongSize.Add(buffer);
        wrongSize.Add(4L); // 8 bytes where the kernel declares 'int count'
        var scalarForPointer = new KernelArguments();
        scalarForPointer.Add(buffer);
        scalarForPointer.Add((ulong)buffer.Handle);
        scalarForPointer.Add(4);
        var tooFew = new KernelArguments();
        tooFew.Add(buffer);
        var messages = new List<string>();
        foreach (KernelArguments args in new[] { wrongSize, scalarForPointer, tooFew })
        {
            try
            {
                device.Launch(kernel, new Dim3(1), new Dim3(4), args, sharedMemoryBytes: 16);
                return Fail($"a launch with wrong arguments was queued ({args.Count} arguments)");
            }
            catch (ArgumentException e)
            {
                messages.Add(e.Message);
            }
        }
        bool named = messages[0].Contains("'int count'", StringComparison.Ordinal)
            && messages[1].Contains("'const GLOBAL float* in'", StringComparison.Ordinal)
            && messages[2].Contains("takes 3 arguments", StringComparison.Ordinal);
        return named ? Pass("three wrong launches refused before reaching the driver") : Fail($"unexpected messages: {string.Join(" | ", messages)}");
    }

    public static ComparisonResult DynamicSharedMemory(ComputeDevice device, int count, int block)
    {
        float[] input = KernelChecks.TestData(count, seed: count);
        var expected = new float[count];
        for (int b = 0; b * block < count; b++)
        for (int t = 0; t < block; t++)
        {
            int i = b * block + t, j = b * block + block - 1 - t;
            if (i < count && j < count) expected[i] = input[j];
            else if (i < count) expected[i] = float.NaN;
        }
        using KernelModule module = device.LoadModule(KernelSource.FromText("block_reverse.cu", ReverseSource));
        using DeviceBuffer<float> src = device.Upload<float>(input);
        using DeviceBuffer<float> dst = device.Allocate<float>(count);
        device.Fill(dst, float.NaN);
        var args = new KernelArguments();
        args.Add(dst);
        args.Add(src);
        args.Add(count);
        device.Launch(module.GetKernel("block_reverse"), new Dim3(Dim3.CeilDiv(count, (uint)block)), new Dim3((uint)block), args,
            sharedMemoryBytes: block * sizeof(float));
        return Comparison.Exact(device.Download(dst), expected);
    }

    public static ComparisonResult CorruptCacheEntryIsRebuilt(ComputeDevice device)
    {
        // A source of its own (a unique comment), so this never disturbs the entries of real kernels.
        KernelSource source = KernelSource.FromText("cache_probe.cu", $"// probe {Guid.NewGuid():N}\n{ReverseSource}");
        string key;
        using (KernelModule first = device.LoadModule(source)) key = first.CacheKey;
        string folder = Path.Combine(device.Cache.Root, device.Backend == DeviceBackend.Cuda ? "cuda" : "opencl");
        string[] entries = Directory.Exists(folder) ? Directory.GetFiles(folder, $"cache_probe-{key}.*") : [];
        if (entries.Length == 0) return Fail($"the first load wrote no cache entry under {folder}");
        if (CudaImage.Problem(CorruptEntry, cubin: true) is null || CudaImage.Problem(CorruptEntry, cubin: false) is null)
            return Fail("the junk written over the entry would pass for a cubin or PTX");
        try
        {
            foreach (string entry in entries) File.WriteAllBytes(entry, CorruptEntry);
            using KernelModule second = device.LoadModule(source);
            if (second.FromCache) return Fail("the corrupt entry was reported as loaded from the cache");
            ComparisonResult works = DynamicSharedMemory(device, 10, 4);
            using KernelModule third = device.LoadModule(source);
            return !works.Passed ? works
                : third.FromCache ? Pass("rebuilt from source, the rebuilt entry then loaded from the cache")
                : Fail("the rebuilt entry was not written back to the cache");
        }
        finally
        {
            foreach (string entry in Directory.GetFiles(folder, $"cache_probe-{key}.*")) File.Delete(entry);
        }
    }

    public static ComparisonResult TimingEvents(ComputeDevice device)
    {
        using DeviceEvent start = device.CreateEvent(timing: true);
        using DeviceEvent end = device.CreateEvent(timing: true);
        using DeviceEvent ordering = device.CreateEvent();
        using DeviceBuffer<float> a = device.Upload<float>(KernelChecks.TestData(192 * 192, 5));
        using DeviceBuffer<float> c = device.Allocate<float>(192 * 192);
        MatrixView va = MatrixView.ColumnMajor(a, 192, 192), vc = MatrixView.ColumnMajor(c, 192, 192);
        device.Gemm(va, va, vc); // warm-up: the first GEMM may compile
        device.Synchronize();
        var wall = Stopwatch.StartNew();
        device.DefaultStream.Record(start);
        for (int i = 0; i < 8; i++) device.Gemm(va, va, vc);
        device.DefaultStream.Record(end);
        double ms = device.ElapsedMilliseconds(start, end);
        double wallMs = wall.Elapsed.TotalMilliseconds;
        device.DefaultStream.Record(ordering);
        try
        {
            device.ElapsedMilliseconds(start, ordering);
            return Fail("an ordering-only event was accepted for timing");
        }
        catch (ArgumentException) { }
        // Eight 192³ GEMMs (113 MFLOP) take measurable time on any device, and device time between the
        // events cannot exceed the host's wall-clock time around them.
        return ms > 0 && ms <= wallMs + 1
            ? Pass($"8 GEMMs of 192³: {ms:F3} ms device time, {wallMs:F1} ms wall")
            : Fail($"8 GEMMs of 192³ measured {ms} ms device time against {wallMs:F1} ms wall");
    }

    public static ComparisonResult OverlappingBatchRefused(ComputeDevice device)
    {
        using DeviceBuffer<float> a = device.Allocate<float>(64);
        using DeviceBuffer<float> c = device.Allocate<float>(64);
        MatrixView m = MatrixView.ColumnMajor(a, 4, 4), out4 = MatrixView.ColumnMajor(c, 4, 4, leadingDimension: 5);
        // One 4×4 C with ld 5 spans 5·3 + 4 = 19 elements: stride 18 overlaps, 19 does not.
        try
        {
            device.GemmBatched(m, m, out4, new GemmBatch(2, 0, 0, 18));
            return Fail("strideC 18 < 19 was accepted");
        }
        catch (ArgumentOutOfRangeException e) when (e.Message.Contains("overlap", StringComparison.Ordinal)) { }
        device.Fill(a, 1f);
        device.GemmBatched(m, m, out4, new GemmBatch(2, 0, 0, 19));
        float[] result = device.Download(c);
        return result[19] == 4f && result[0] == 4f ? Pass("stride 18 refused, 19 computed") : Fail($"stride 19 computed {result[0]}, {result[19]}");
    }

    public static ComparisonResult DisposalInAnyOrder(ComputeDevice device)
    {
        ComputeDevice second = device switch
        {
            CudaDevice => CudaDevice.Open(0, device.Cache),
            OpenClDevice cl => OpenClDevice.Open(cl.Info.Index, device.Cache),
            _ => throw new AlexNetException($"no second device of {device.Backend}"),
        };
        DeviceBuffer<float> buffer = second.Upload<float>([1f, 2f, 3f]);
        KernelModule module = second.LoadModule(KernelSource.FromText("block_reverse.cu", ReverseSource));
        DeviceEvent ev = second.RecordEvent();
        ComputeStream stream = second.CreateStream();
        int live = second.LiveResources;
        second.Dispose();
        bool refusesWork;
        try
        {
            second.Allocate<float>(1);
            refusesWork = false;
        }
        catch (ObjectDisposedException)
        {
            refusesWork = true;
        }
        // The context must still be there for these frees: each returns its memory to a live context.
        module.Dispose();
        ev.Dispose();
        buffer.Dispose();
        stream.Dispose();
        buffer.Dispose(); // a second release is harmless
        int left = second.LiveResources;
        return live == 3 && left == 0 && refusesWork
            ? Pass("3 resources freed after their device; new work refused once it was disposed")
            : Fail($"live resources {live} before, {left} after; refuses new work: {refusesWork}");
    }
}
