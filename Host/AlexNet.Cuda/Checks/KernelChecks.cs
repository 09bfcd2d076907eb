using System.Diagnostics;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Reference;

namespace AlexNet.Cuda.Checks;

/// <summary>One check of one operation on one device.</summary>
public sealed record CheckResult(string Name, bool Passed, string Detail, TimeSpan Time);

/// <summary>
/// Every kernel and GEMM the engine has, run on a device and compared with <see cref="CpuReference"/>,
/// at awkward sizes (odd, not multiples of the block, a single element), with outliers in the data.
/// The same list runs in the tests (on OpenCL, and on CUDA when there is a GPU) and from
/// <c>alexnet check</c>, which is what the GPU machine runs.
/// </summary>
public static class KernelChecks
{
    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All()
    {
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
        yield return ("streams: pinned async copies, transpose on a second stream ordered by events", d => Streams(d, 3, 45, 77));
        foreach ((string Name, Func<ComputeDevice, ComparisonResult> Run) check in LayerChecks.All()) yield return check;
    }

    /// <summary>Runs every check; one that throws is a failure with the error's message, not a crash.</summary>
    public static IEnumerable<CheckResult> RunAll(ComputeDevice device)
    {
        foreach ((string name, Func<ComputeDevice, ComparisonResult> run) in All())
        {
            var clock = Stopwatch.StartNew();
            CheckResult result;
            try
            {
                ComparisonResult comparison = run(device);
                result = new CheckResult(name, comparison.Passed, comparison.Detail, clock.Elapsed);
            }
            catch (AlexNetException e)
            {
                result = new CheckResult(name, false, e.Message, clock.Elapsed);
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
    public static ComparisonResult Gemm(ComputeDevice device, MatrixOp ta, MatrixOp tb, int m, int n, int k, int batch)
    {
        (int aRows, int aCols) = ta == MatrixOp.None ? (m, k) : (k, m);
        (int bRows, int bCols) = tb == MatrixOp.None ? (k, n) : (n, k);
        int lda = aRows + 3, ldb = bRows + 1, ldc = m + 2;
        long aOffset = 5, bOffset = 7, cOffset = 3;
        long strideA = (long)lda * aCols + 11, strideB = (long)ldb * bCols + 13, strideC = (long)ldc * n + 17;
        float[] a = TestData((int)(aOffset + strideA * batch), seed: 1 + m);
        float[] b = TestData((int)(bOffset + strideB * batch), seed: 2 + n);
        float[] c = TestData((int)(cOffset + strideC * batch), seed: 3 + k);
        const float alpha = 0.75f, beta = -0.5f;

        float[] expected = (float[])c.Clone();
        var magnitude = new double[c.Length];
        for (int i = 0; i < batch; i++)
            CpuReference.Gemm(ta, tb, m, n, k, alpha, a, aOffset + i * strideA, lda, b, bOffset + i * strideB, ldb,
                beta, expected, cOffset + i * strideC, ldc, magnitude);

        using DeviceBuffer<float> da = device.Upload<float>(a);
        using DeviceBuffer<float> db = device.Upload<float>(b);
        using DeviceBuffer<float> dc = device.Upload<float>(c);
        if (batch == 1)
            device.Gemm(ta, tb, m, n, k, alpha, da, aOffset, lda, db, bOffset, ldb, beta, dc, cOffset, ldc);
        else
            device.GemmStridedBatched(ta, tb, m, n, k, alpha, da, aOffset, lda, strideA, db, bOffset, ldb, strideB,
                beta, dc, cOffset, ldc, strideC, batch);
        // The whole C buffer is compared: elements outside the m×n blocks (magnitude 0) must be untouched.
        return Comparison.AgainstMagnitude(device.Download(dc), expected, magnitude, Tolerances.GemmAtol, Tolerances.GemmRtol(k));
    }

    /// <summary>
    /// The pipeline pattern of batch inference, on two streams: stream 1 uploads from pinned memory, an
    /// event orders stream 2's transpose after the upload, another orders stream 1's download after the
    /// transpose. Any missing ordering or a wrong offset shows up as NaN or misplaced elements.
    /// </summary>
    public static ComparisonResult Streams(ComputeDevice device, int batch, int rows, int cols)
    {
        int count = batch * rows * cols;
        float[] input = TestData(count, seed: 77);
        using KernelModule module = device.LoadModule("transpose.cu");
        Kernel kernel = module.GetKernel("transpose_kernel1");
        using ComputeStream copies = device.CreateStream();
        using ComputeStream compute = device.CreateStream();
        using PinnedHostBuffer<float> staging = device.AllocatePinned<float>(count + 5);
        using PinnedHostBuffer<float> result = device.AllocatePinned<float>(count + 3);
        using DeviceBuffer<float> src = device.Allocate<float>(count);
        using DeviceBuffer<float> dst = device.Allocate<float>(count);
        staging.Span.Fill(float.NaN);
        input.CopyTo(staging.Span[5..]);
        result.Span.Fill(float.NaN);
        compute.Fill(dst, float.NaN);

        copies.CopyToDeviceAsync(staging, 5, src, 0, count);
        using DeviceEvent uploaded = copies.RecordEvent();
        compute.Wait(uploaded);
        var args = new KernelArguments();
        args.Add(dst);
        args.Add(src);
        args.Add(rows);
        args.Add(cols);
        compute.Launch(kernel, new Dim3(Dim3.CeilDiv(cols, 32), Dim3.CeilDiv(rows, 32), (uint)batch), new Dim3(32, 8), args);
        using DeviceEvent transposed = compute.RecordEvent();
        copies.Wait(transposed);
        copies.CopyToHostAsync(dst, 0, result, 3, count);
        copies.Synchronize();
        return Comparison.Exact(result.Span.Slice(3, count), CpuReference.Transpose(input, batch, rows, cols));
    }
}
