using System.Globalization;
using System.Text;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// The GEMM with a bias(+ReLU) epilogue (<see cref="ComputeStream.GemmBias"/>: cuBLASLt's BIAS / RELU_BIAS on CUDA)
/// in the fully connected form, row-major [N][in]·[in][out] + bias[out], against a double reference on the operands'
/// stored values, at awkward sizes (odd N, outputs not a multiple of 8, an offset A, a pitched C) in every precision;
/// then the whole network with <see cref="AlexNetOptions.GemmEpilogue"/> = CublasLt against the reference network and
/// against the same network with the kernel's bias+ReLU, its graph replay bit-identical to its stream pass. Where the
/// device has no such GEMM (OpenCL) each check is not applicable, with the reason. Part of <see cref="KernelChecks.All"/>.
/// </summary>
public static class EpilogueChecks
{
    /// <summary>One GEMM check's problem: [N][K]·[K][F] + bias[F] in <see cref="Precision"/>, A
    /// <see cref="OffsetA"/> elements into its buffer, C's rows <see cref="PitchC"/> apart (F when 0).</summary>
    public sealed record GemmCase(string Name, Precision Precision, int N, int K, int F, bool Relu, long OffsetA = 0, int PitchC = 0);

    /// <summary>The GEMM checks: odd batches, outputs not a multiple of 8, with and without ReLU, an offset A and
    /// pitched Cs, in every precision.</summary>
    public static IReadOnlyList<GemmCase> GemmCases { get; } =
    [
        new("epilogue: gemm+bias+relu fp32 7x409 -> 203 (odd batch, outputs not a multiple of 8)", Precision.Fp32, 7, 409, 203, true),
        new("epilogue: gemm+bias fp32 1x53 -> 37, no ReLU", Precision.Fp32, 1, 53, 37, false),
        new("epilogue: gemm+bias+relu fp32 5x1000 -> 1001, A at an odd offset, C pitched 1004", Precision.Fp32, 5, 1000, 1001, true, OffsetA: 3, PitchC: 1004),
        .. new[] { Precision.Tf32, Precision.Fp16, Precision.Bf16 }.SelectMany(p => new GemmCase[]
        {
            new($"epilogue: gemm+bias+relu {Precisions.Name(p)} 7x409 -> 203", p, 7, 409, 203, true),
            new($"epilogue: gemm+bias {Precisions.Name(p)} 3x53 -> 37, no ReLU, C pitched 40", p, 3, 53, 37, false, PitchC: 40),
        }),
    ];

    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All()
    {
        foreach (GemmCase c in GemmCases) yield return (c.Name, d => GemmBias(d, c));
        yield return ("epilogue: narrow AlexNet, batch 3, fc6/fc7's bias+ReLU in the GEMM, 14 layers vs the reference network",
            d =>
            {
                RequireSupport(d, Precision.Fp32);
                return NetworkChecks.Compare(d, SyntheticNetwork.Narrow, batch: 3, new AlexNetOptions { MaxBatch = 3, GemmEpilogue = GemmEpilogue.CublasLt });
            });
        // The full-size weights are made once for the four precisions' checks, when the first of them runs.
        var weights = new Lazy<AlexNetWeights>(() => SyntheticNetwork.Weights(AlexNetArchitecture.Default, seed: 17));
        foreach (Precision precision in Precisions.All)
        {
            string name = Precisions.Name(precision);
            yield return (string.Create(CultureInfo.InvariantCulture,
                    $"epilogue {name}: full-size AlexNet, synthetic weights, batch 3, fc6..prob with the epilogue vs the kernel's bias+ReLU (within {ModelTolerance(precision):G2} of max|kernel|), the replay bit-identical to the stream pass"),
                d => ModelMatchesTheKernelPath(d, precision, weights));
        }
    }

    /// <summary>Two passes of the same precision each within the per-layer bound against the double reference
    /// (<see cref="Tolerances.NetworkRtol"/> for FP32, <see cref="PrecisionNetworkChecks.LayerTolerance"/> otherwise) are
    /// within twice it of each other.</summary>
    public static double ModelTolerance(Precision precision) => 2 * PrecisionNetworkChecks.LayerTolerance(precision);

    private static void RequireSupport(ComputeDevice device, Precision precision)
    {
        if (!device.SupportsGemmBias(Precisions.Storage(precision), Precisions.Math(precision), out string? reason))
            throw new CheckNotApplicableException(reason!);
    }

    /// <summary>
    /// out[N][F] = max(x[N][K]·w[K][F] + bias[F], 0) (or without the max) through <see cref="ComputeStream.GemmBias"/>,
    /// every operand a row-major view as an fc layer has it, C filled with NaN first (see <see cref="Prepare"/>), judged
    /// by <see cref="Judge"/>.
    /// </summary>
    public static ComparisonResult GemmBias(ComputeDevice device, GemmCase c)
    {
        RequireSupport(device, c.Precision);
        GemmProblem p = Prepare(c);
        ElementFormat format = p.Format;
        using DeviceBuffer dx = device.Upload(p.X, format), dw = device.Upload(p.W, format), dBias = device.Upload(p.Bias, format);
        float[] nan = new float[p.Expected.Length];
        Array.Fill(nan, float.NaN);
        using DeviceBuffer dc = device.Upload(nan, format);
        device.DefaultStream.GemmBias(MatrixView.RowMajor(dx, format, c.N, c.K, c.OffsetA), MatrixView.RowMajor(dw, format, c.K, c.F),
            MatrixView.RowMajor(dc, format, c.N, c.F, 0, p.Ldc), dBias, c.Relu, Precisions.Math(c.Precision));
        return Judge(p, ComputeDevice.Download(device.DefaultStream, dc, format, p.Expected.Length));
    }

    /// <summary>A GEMM check's data as stored (<see cref="X"/>, <see cref="W"/> and <see cref="Bias"/> hold values exactly
    /// representable in <see cref="Format"/>), the expected C with NaN wherever nothing may be written, each element's
    /// Σ|terms| and the relative bound.</summary>
    public sealed record GemmProblem(ElementFormat Format, int Ldc, float[] X, float[] W, float[] Bias, float[] Expected, double[] Magnitude, double Rtol);

    /// <summary>
    /// The data and the double reference of <paramref name="c"/>. C is NaN first, with guard elements after it: beta is
    /// 0, so C must not be read, and every element the GEMM should not write (the pitch's padding, the guards) must keep
    /// its NaN. The reference sums in double over the stored values (TF32's inputs rounded as tensor cores see them, by
    /// <see cref="ElementFormats.RoundToTf32"/>); the bound is <see cref="GemmPrecisionChecks.Gemm"/>'s: FP32
    /// accumulation, one TF32 unit per product for TF32, and half a unit of a 16-bit C's format relative to the value
    /// (the epilogue rounds the biased sum once).
    /// </summary>
    public static GemmProblem Prepare(GemmCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        ElementFormat format = Precisions.Storage(c.Precision);
        GemmMath math = Precisions.Math(c.Precision);
        (int n, int k, int f) = (c.N, c.K, c.F);
        int ldc = c.PitchC == 0 ? f : c.PitchC;
        const int guard = 7;
        // fp16 holds 65504 at most: its operands' outliers are scaled down so that no exact result overflows the format;
        // they still stand out a thousandfold.
        float scale = format == ElementFormat.Float32 ? 1f : 1f / 16;
        float[] x = GemmPrecisionChecks.Stored(Scaled(KernelChecks.TestData((int)(c.OffsetA + (long)n * k), seed: 31 + n), scale), format);
        float[] w = GemmPrecisionChecks.Stored(Scaled(KernelChecks.TestData(k * f, seed: 32 + f), scale), format);
        float[] bias = GemmPrecisionChecks.Stored(Scaled(KernelChecks.TestData(f + 3, seed: 33 + k), scale), format);
        float[] xSeen = math == GemmMath.Tf32 ? [.. x.Select(ElementFormats.RoundToTf32)] : x;
        float[] wSeen = math == GemmMath.Tf32 ? [.. w.Select(ElementFormats.RoundToTf32)] : w;

        long cLength = (long)(n - 1) * ldc + f + guard;
        var expected = new float[cLength];
        Array.Fill(expected, float.NaN);
        var magnitude = new double[cLength];
        for (int r = 0; r < n; r++)
        for (int j = 0; j < f; j++)
        {
            double sum = bias[j], abs = Math.Abs((double)bias[j]);
            for (int p = 0; p < k; p++)
            {
                double t = (double)xSeen[c.OffsetA + (long)r * k + p] * wSeen[(long)p * f + j];
                sum += t;
                abs += Math.Abs(t);
            }
            long at = (long)r * ldc + j;
            expected[at] = (float)(c.Relu && sum < 0 ? 0 : sum);
            magnitude[at] = abs == 0 ? double.Epsilon : abs;
        }
        double unit = format switch { ElementFormat.Half => Math.Pow(2, -11), ElementFormat.BFloat16 => Math.Pow(2, -8), _ => 0 };
        double rtol = Tolerances.GemmRtol(k) + (math == GemmMath.Tf32 ? Math.Pow(2, -10) : 0);
        for (int i = 0; i < magnitude.Length; i++)
            if (magnitude[i] != 0) magnitude[i] += unit / rtol * Math.Abs(expected[i]);
        return new GemmProblem(format, ldc, x, w, bias, expected, magnitude, rtol);
    }

    /// <summary>C as read back (<see cref="GemmProblem.Expected"/>'s length, as floats) against the reference.</summary>
    public static ComparisonResult Judge(GemmProblem p, float[] got)
    {
        ArgumentNullException.ThrowIfNull(p);
        return Comparison.AgainstMagnitude(got, p.Expected, p.Magnitude, Tolerances.GemmAtol, p.Rtol);
    }

    /// <summary>
    /// The full-size network in <paramref name="precision"/> with the epilogue against the same weights and images with
    /// the kernel's bias+ReLU: fc6, fc7, fc8 and the probabilities each within <see cref="ModelTolerance"/> of the
    /// kernel pass's largest value, and the same top class for every image. Then, where the device captures graphs, the
    /// epilogue model's second pass is a replay of the graph its first captured, cuBLASLt's calls with it, and must equal
    /// that first pass bit for bit.
    /// </summary>
    public static ComparisonResult ModelMatchesTheKernelPath(ComputeDevice device, Precision precision, Lazy<AlexNetWeights> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        RequireSupport(device, precision);
        const int batch = 3;
        float[] images = SyntheticNetwork.Images(batch, seed: 19);
        string[] layers = ["fc6", "fc7", "fc8", "prob"];
        IReadOnlyDictionary<string, float[]> kernel, fused;
        float[] first, second;
        string graphs;
        string? captureFailure = null;
        int classes;
        using (AlexNetModel model = AlexNetModel.Create(device, weights.Value, new AlexNetOptions { MaxBatch = batch, Precision = precision, GemmEpilogue = GemmEpilogue.Kernel }))
            kernel = model.Features(images, batch, layers);
        using (AlexNetModel model = AlexNetModel.Create(device, weights.Value, new AlexNetOptions { MaxBatch = batch, Precision = precision, GemmEpilogue = GemmEpilogue.CublasLt }))
        {
            if (!model.UsesGemmEpilogue) return Fail("the model was built with GemmEpilogue = CublasLt but does not use the epilogue");
            fused = model.Features(images, batch, layers);
            first = model.Predict(images, batch);
            second = model.Predict(images, batch);
            graphs = model.GraphStatus;
            if (model.UsesGraphs && !model.HasGraph(batch)) captureFailure = model.GraphFailure(batch) ?? "no graph was captured";
            classes = model.NumClasses;
        }
        double bound = ModelTolerance(precision);
        var detail = new StringBuilder();
        bool passed = true;
        double worst = 0;
        foreach (string layer in layers)
        {
            double scale = kernel[layer].Max(v => Math.Abs((double)v));
            ComparisonResult r = Comparison.AgainstMax(fused[layer], kernel[layer], 0, bound);
            double relative = scale == 0 ? r.MaxAbsError : r.MaxAbsError / scale;
            worst = Math.Max(worst, relative);
            passed &= r.Passed;
            if (r.Passed) detail.Append(CultureInfo.InvariantCulture, $" {layer} {relative:G2};");
            else detail.Append(CultureInfo.InvariantCulture, $" {layer} FAILED: {r.Detail};");
        }
        for (int image = 0; image < batch; image++)
        {
            int want = ClassRanking.Top(kernel["prob"].AsSpan(image * classes, classes), 1)[0], got = ClassRanking.Top(fused["prob"].AsSpan(image * classes, classes), 1)[0];
            if (want == got) continue;
            passed = false;
            detail.Append(CultureInfo.InvariantCulture, $" image {image} top-1 {got} != {want};");
        }
        ComparisonResult replay = Comparison.Exact(second, first);
        if (!replay.Passed)
        {
            passed = false;
            detail.Append(CultureInfo.InvariantCulture, $" the second pass differs from the first: {replay.Detail};");
        }
        if (captureFailure is not null)
        {
            passed = false;
            detail.Append(CultureInfo.InvariantCulture, $" the pass with the epilogue was not captured: {captureFailure};");
        }
        string again = replay.Passed ? " the second pass bit-identical to the first;" : "";
        return new ComparisonResult(passed, passed ? 0 : 1, worst, -1, bound, string.Create(CultureInfo.InvariantCulture,
            $"largest difference {worst:G3} of max|kernel| (bound {bound:G2}); per layer:{detail}{again} graphs {graphs}"));
    }

    private static ComparisonResult Fail(string detail) => new(false, 1, double.PositiveInfinity, -1, 0, detail);

    private static float[] Scaled(float[] values, float scale)
    {
        if (scale != 1f) for (int i = 0; i < values.Length; i++) values[i] *= scale;
        return values;
    }

}
