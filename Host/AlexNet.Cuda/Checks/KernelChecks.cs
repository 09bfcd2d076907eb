using System.Diagnostics;
using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;

namespace AlexNet.Cuda.Checks;

/// <summary>One check of one operation on one device.</summary>
/// <summary>One check's outcome. <see cref="Skipped"/>: it does not apply to the device (the detail says why), and
/// <see cref="Passed"/> is then false without it being a failure.</summary>
public sealed record CheckResult(string Name, bool Passed, string Detail, TimeSpan Time, bool Skipped = false)
{
    public bool Failed => !Passed && !Skipped;
}

/// <summary>
/// Every kernel and GEMM the engine has, run on a device and compared with <see cref="CpuReference"/>,
/// at awkward sizes (odd, not multiples of the block, a single element), with outliers in the data.
/// The same list runs in the tests (on OpenCL, and on CUDA when there is a GPU) and from
/// <c>alexnet check</c>, which is what the GPU machine runs.
/// </summary>
public static class KernelChecks
{
    /// <summary>Every check, in order; the reduced-precision network checks only for <paramref name="precisions"/>
    /// (null: all of them; FP32 is always checked).</summary>
    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All(IReadOnlyCollection<Precision>? precisions = null)
    {
        // First: it is only meaningful before any other fault of the process has been handled (FaultChecks).
        yield return (FaultChecks.Name, FaultChecks.ManagedFaultsStayExceptions);
        foreach ((int batch, int rows, int cols) in TransposeShapes)
            yield return ($"transpose_kernel1 {batch}x{rows}x{cols}", d => Transpose(d, batch, rows, cols, null));
        yield return ("transpose_kernel1 2x45x70 TILE_DIM=16 BLOCK_ROWS=4",
            d => Transpose(d, 2, 45, 70, new Dictionary<string, string> { ["TILE_DIM"] = "16", ["BLOCK_ROWS"] = "4" }));
        foreach (MatrixOp ta in new[] { MatrixOp.None, MatrixOp.Transpose })
        foreach (MatrixOp tb in new[] { MatrixOp.None, MatrixOp.Transpose })
        {
            yield return ($"sgemm {Name(ta)}{Name(tb)} 37x29x53 padded ld, offsets", d => Gemm(d, ta, tb, 37, 29, 53, batch: 1));
            yield return ($"sgemm_strided_batched {Name(ta)}{Name(tb)} 2x(19x23x31) padded ld, offsets, strides", d => Gemm(d, ta, tb, 19, 23, 31, batch: 2));
        }
        yield return ("sgemm NN 1x1x1", d => Gemm(d, MatrixOp.None, MatrixOp.None, 1, 1, 1, batch: 1));
        yield return ("sgemm TN 96x128x363 (conv1 im2col shape, N=128 pixels)", d => Gemm(d, MatrixOp.Transpose, MatrixOp.None, 96, 128, 363, batch: 1));
        yield return ("sgemm row-major views 2x(13x37x29) pitched, offset output (grouped convolution form)", d => GemmRowMajor(d, 13, 37, 29, batch: 2));
        yield return ("sgemm row-major views 10x3x50 (fully connected form)", d => GemmRowMajor(d, 10, 3, 50, batch: 1));
        foreach (var check in GemmPrecisionChecks.All()) yield return check;
        yield return ("streams: pinned async copies, a slow producer, transpose on a second stream ordered by events", d => Streams(d, 3, 45, 77));
        foreach (var check in LayerChecks.All()) yield return check;
        foreach (var check in BackwardChecks.All()) yield return check;
        foreach (var check in ConvolutionBackwardChecks.All()) yield return check;
        foreach (var check in PrecisionChecks.All()) yield return check;
        foreach (var check in NetworkChecks.All()) yield return check;
        foreach (var check in PrecisionNetworkChecks.All(precisions)) yield return check;
        foreach (var check in GraphChecks.All()) yield return check;
        foreach (var check in OverlapChecks.All()) yield return check;
        foreach (var check in EpilogueChecks.All()) yield return check;
        // Last, so that their own last check, the corrupt cache entry, is the last of all.
        foreach (var check in DeviceChecks.All()) yield return check;
    }

    /// <summary>Runs every check; one that throws is a failure with the error's message, not a crash.</summary>
    public static IEnumerable<CheckResult> RunAll(ComputeDevice device, bool stackTraces = false, IReadOnlyCollection<Precision>? precisions = null) =>
        Run(device, All(precisions), stackTraces);

    /// <summary>
    /// Runs <paramref name="checks"/> in order. A check that throws fails with the reason and the rest still
    /// run: an <see cref="AlexNetException"/> is its one line; anything else is a bug, named by its type
    /// (with the stack trace when <paramref name="stackTraces"/>), so one unexpected exception on a new device
    /// costs one check, not the run. Running out of memory ends the run.
    /// </summary>
    internal static IEnumerable<CheckResult> Run(ComputeDevice device, IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> checks,
        bool stackTraces)
    {
        foreach ((string name, Func<ComputeDevice, ComparisonResult> run) in checks)
        {
            var clock = Stopwatch.StartNew();
            CheckResult result;
            try
            {
                ComparisonResult comparison = run(device);
                result = new CheckResult(name, comparison.Passed, comparison.Detail, clock.Elapsed);
            }
            catch (CheckNotApplicableException e)
            {
                result = new CheckResult(name, false, e.Message, clock.Elapsed, Skipped: true);
            }
            catch (AlexNetException e)
            {
                result = new CheckResult(name, false, e.Message, clock.Elapsed);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                string detail = $"unexpected {e.GetType().Name}: {e.Message}";
                result = new CheckResult(name, false, stackTraces ? $"{detail}\n{e.StackTrace}" : detail, clock.Elapsed);
            }
            yield return result;
        }
    }

    internal static readonly (int Batch, int Rows, int Cols)[] TransposeShapes =
    [
        (1, 1, 1), (1, 33, 65), (3, 100, 7), (2, 64, 64), (1, 1, 1000), (1, 729, 96),
    ];

    private static string Name(MatrixOp op) => op == MatrixOp.None ? "N" : "T";

    /// <summary>Deterministic data in [-1, 1) with a few outliers (huge, tiny, negative zero).</summary>
    public static float[] TestData(int length, int seed)
    {
        var random = new Random(seed);
        var data = new float[length];
        for (int i = 0; i < length; i++) data[i] = (float)(random.NextDouble() * 2 - 1);
        if (length > 3)
        {
            data[random.Next(length)] = 3.0e4f;
            data[random.Next(length)] = -1.0e-30f;
            data[random.Next(length)] = -0.0f;
        }
        return data;
    }

    public static ComparisonResult Transpose(ComputeDevice device, int batch, int rows, int cols, IReadOnlyDictionary<string, string>? defines)
    {
        float[] input = TestData(batch * rows * cols, seed: rows * 31 + cols);
        uint tile = defines is not null && defines.TryGetValue("TILE_DIM", out string? t) ? uint.Parse(t) : 32;
        uint blockRows = defines is not null && defines.TryGetValue("BLOCK_ROWS", out string? r) ? uint.Parse(r) : 8;
        using KernelModule module = device.LoadModule("transpose.cu", defines);
        Kernel kernel = module.GetKernel("transpose_kernel1");
        using DeviceBuffer<float> src = device.Upload<float>(input);
        using DeviceBuffer<float> dst = device.Allocate<float>(input.Length);
        device.Fill(dst, float.NaN); // anything the kernel fails to write shows up
        var args = new KernelArguments();
        args.Add(dst);
        args.Add(src);
        args.Add(rows);
        args.Add(cols);
        device.Launch(kernel, new Dim3(Dim3.CeilDiv(cols, tile), Dim3.CeilDiv(rows, tile), (uint)batch), new Dim3(tile, blockRows), args);
        return Comparison.Exact(device.Download(dst), CpuReference.Transpose(input, batch, rows, cols));
    }

    /// <summary>One GEMM (batch 1) or a strided batch, with padded leading dimensions, non-zero offsets,
    /// padding between batch entries, alpha ≠ 1 and beta ≠ 0, so every parameter's handling is observed.</summary>
    public static ComparisonResult Gemm(ComputeDevice device, MatrixOp ta, MatrixOp tb, int m, int n, int k, int batch) =>
        GemmPrecisionChecks.Gemm(device, Precision.Fp32, ta, tb, m, n, k, batch, seed: 1);

    /// <summary>
    /// GEMM through row-major views, as the network calls it (out[Cout × P] = W[Cout × K] · col[K × P] with
    /// a row pitch and offset on the output, and a batch of two groups): the views turn it into cuBLAS's
    /// column-major Cᵀ = Bᵀ·Aᵀ. The reference is written in row-major terms, independently of that swap.
    /// </summary>
    public static ComparisonResult GemmRowMajor(ComputeDevice device, int m, int n, int k, int batch)
    {
        int pitchA = k + 2, pitchB = n + 1, pitchC = n + 5;
        long offsetC = 4, strideA = (long)m * pitchA + 3, strideB = (long)k * pitchB, strideC = (long)m * pitchC + 7;
        float[] a = TestData((int)(strideA * batch), seed: 11 + m);
        float[] b = TestData((int)(strideB * batch), seed: 12 + n);
        float[] c = TestData((int)(offsetC + strideC * batch), seed: 13 + k);
        float[] expected = (float[])c.Clone();
        var magnitude = new double[c.Length];
        for (int g = 0; g < batch; g++)
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            double sum = 0, abs = 0;
            for (int p = 0; p < k; p++)
            {
                double t = (double)a[g * strideA + i * pitchA + p] * b[g * strideB + p * pitchB + j];
                sum += t;
                abs += Math.Abs(t);
            }
            long at = offsetC + g * strideC + (long)i * pitchC + j;
            expected[at] = (float)sum;
            magnitude[at] = abs == 0 ? double.Epsilon : abs;
        }
        using DeviceBuffer<float> da = device.Upload<float>(a);
        using DeviceBuffer<float> db = device.Upload<float>(b);
        using DeviceBuffer<float> dc = device.Upload<float>(c);
        device.GemmBatched(MatrixView.RowMajor(da, m, k, 0, pitchA), MatrixView.RowMajor(db, k, n, 0, pitchB),
            MatrixView.RowMajor(dc, m, n, offsetC, pitchC), new GemmBatch(batch, strideA, strideB, strideC));
        return Comparison.AgainstMagnitude(device.Download(dc), expected, magnitude, Tolerances.GemmAtol, Tolerances.GemmRtol(k));
    }

    /// <summary>A kernel that is deliberately slow: each element runs <c>spins</c> steps of an integer
    /// recurrence whose result it adds, so its output cannot be produced early and cannot be optimised away.</summary>
    private const string DelayedCopySource = """
        #include "prelude.h"
        KERNEL void delayed_copy(GLOBAL float* out, const GLOBAL float* in, int count, int spins)
        {
            int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
            if (i >= count) return;
            uint h = (uint)i;
            for (int s = 0; s < spins; s++) h = h * 1664525u + 1013904223u;
            out[i] = in[i] + (float)(h % 7u);
        }
        """;

    /// <summary>What <c>delayed_copy</c> adds to element <paramref name="i"/>.</summary>
    private static float DelayedCopyAddend(int i, int spins)
    {
        uint h = (uint)i;
        for (int s = 0; s < spins; s++) h = unchecked(h * 1664525u + 1013904223u);
        return h % 7u;
    }

    /// <summary>
    /// The pipeline pattern of batch inference, on two streams, arranged so that a missing or ineffective
    /// wait gives a wrong answer rather than a lucky pass: stream 1 uploads from pinned memory and then
    /// produces the input slowly (<c>delayed_copy</c>, a few hundred milliseconds on a CPU device, into a
    /// NaN-filled buffer); stream 2 waits on an event and transposes it; stream 1 waits on stream 2's event
    /// and downloads. Were either wait ignored, the transpose would read NaN or the download would find NaN.
    /// </summary>
    public static ComparisonResult Streams(ComputeDevice device, int batch, int rows, int cols, int spins = 20_000)
    {
        int count = batch * rows * cols;
        float[] input = TestData(count, seed: 77);
        float[] produced = new float[count];
        for (int i = 0; i < count; i++) produced[i] = input[i] + DelayedCopyAddend(i, spins);
        using KernelModule module = device.LoadModule("transpose.cu");
        using KernelModule delayed = device.LoadModule(KernelSource.FromText("delayed_copy.cu", DelayedCopySource));
        Kernel kernel = module.GetKernel("transpose_kernel1");
        using ComputeStream copies = device.CreateStream();
        using ComputeStream compute = device.CreateStream();
        using PinnedHostBuffer<float> staging = device.AllocatePinned<float>(count + 5);
        using PinnedHostBuffer<float> result = device.AllocatePinned<float>(count + 3);
        using DeviceBuffer<float> uploaded = device.Allocate<float>(count);
        using DeviceBuffer<float> src = device.Allocate<float>(count);
        using DeviceBuffer<float> dst = device.Allocate<float>(count);
        using DeviceEvent ready = device.CreateEvent();
        using DeviceEvent transposed = device.CreateEvent();
        staging.Span.Fill(float.NaN);
        input.CopyTo(staging.Span[5..]);
        result.Span.Fill(float.NaN);
        device.Fill(src, float.NaN);
        device.Fill(dst, float.NaN);
        device.Synchronize();

        copies.CopyToDeviceAsync(staging, 5, uploaded, 0, count);
        var slow = new KernelArguments();
        slow.Add(src);
        slow.Add(uploaded);
        slow.Add(count);
        slow.Add(spins);
        copies.Launch(delayed.GetKernel("delayed_copy"), new Dim3(Dim3.CeilDiv(count, 64)), new Dim3(64), slow);
        copies.Record(ready);
        compute.Wait(ready);
        var args = new KernelArguments();
        args.Add(dst);
        args.Add(src);
        args.Add(rows);
        args.Add(cols);
        compute.Launch(kernel, new Dim3(Dim3.CeilDiv(cols, 32), Dim3.CeilDiv(rows, 32), (uint)batch), new Dim3(32, 8), args);
        compute.Record(transposed);
        copies.Wait(transposed);
        copies.CopyToHostAsync(dst, 0, result, 3, count);
        copies.Synchronize();
        return Comparison.Exact(result.Span.Slice(3, count), CpuReference.Transpose(produced, batch, rows, cols));
    }
}
