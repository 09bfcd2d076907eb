using System.Globalization;
using System.Text;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Checks;

/// <summary>How one precision's pass compares with the FP32 pass on the same weights and images.</summary>
/// <param name="MaxProbabilityError">The largest |Δ| of any probability of any image.</param>
/// <param name="TopOneAgreement">The share of images whose most probable class is FP32's.</param>
/// <param name="TopFiveAgreement">The share of images whose five most probable classes are FP32's (as a set).</param>
/// <param name="LayerErrors">Per layer (with <c>features</c>' names), the largest |Δ| relative to FP32's max |value|;
/// empty when only the probabilities were compared.</param>
public sealed record PrecisionAccuracy(Precision Precision, int Images, double MaxProbabilityError, double TopOneAgreement,
    double TopFiveAgreement, IReadOnlyDictionary<string, double> LayerErrors)
{
    public bool WithinTolerance
    {
        get
        {
            (double maxError, double topOne) = Precisions.Tolerance(Precision);
            return MaxProbabilityError <= maxError && TopOneAgreement >= topOne;
        }
    }

    public override string ToString()
    {
        (double maxError, double topOne) = Precisions.Tolerance(Precision);
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"{Images} images: max |Δprob| {MaxProbabilityError:G3} (bound {maxError:G2}), top-1 agreement {TopOneAgreement:P1} (bound {topOne:P0}), top-5 set agreement {TopFiveAgreement:P1}");
        if (LayerErrors.Count > 0)
        {
            text.Append("; per layer max|Δ|/max|fp32|:");
            foreach ((string layer, double error) in LayerErrors) text.Append(CultureInfo.InvariantCulture, $" {layer} {error:G2}");
        }
        return text.ToString();
    }
}

/// <summary>
/// Each reduced precision's whole pass against the FP32 pass of the same engine, on the full-size network with
/// synthetic weights (the largest |Δ| of a probability, top-1 and top-5 agreement, within
/// <see cref="Precisions.Tolerance"/>), and on the narrow network layer by layer against the double reference in
/// both the fused and the separate forms of the pass: every kernel and GEMM of the network in every precision.
/// A precision the device lacks is reported as not applicable, with the reason. Part of <see cref="KernelChecks.All"/>.
/// </summary>
public static class PrecisionNetworkChecks
{
    /// <summary>Images of the full-size comparison in <c>alexnet check</c> and the tests (docs/performance.md has 256).</summary>
    public const int CheckImages = 8;

    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All(IReadOnlyCollection<Precision>? precisions = null)
    {
        foreach (Precision precision in Precisions.All)
        {
            if (precision == Precision.Fp32 || (precisions is not null && !precisions.Contains(precision))) continue;
            string name = Precisions.Name(precision);
            (double maxError, double topOne) = Precisions.Tolerance(precision);
            foreach (bool fused in new[] { false, true })
                yield return (string.Create(CultureInfo.InvariantCulture,
                        $"network {name}: narrow AlexNet, batch 3, {(fused ? "fused" : "separate")} activations, 14 layers vs the reference network within {LayerTolerance(precision):G2} of max|ref|"),
                    d => Layers(d, precision, fused));
            yield return (string.Create(CultureInfo.InvariantCulture,
                    $"network {name}: full-size AlexNet, synthetic weights, {CheckImages} images, probabilities vs FP32 (max |Δ| ≤ {maxError:G2}, top-1 ≥ {topOne:P0})"),
                d => Probabilities(d, precision, CheckImages));
        }
    }

    /// <summary>
    /// The per-layer bound against the double reference on the narrow network: a few roundings of the format's
    /// unit (2⁻¹¹ fp16, 2⁻⁸ bf16, 2⁻¹¹ for TF32's inputs) carried through eight layers, relative to each layer's
    /// largest value.
    /// </summary>
    public static double LayerTolerance(Precision precision) => precision switch
    {
        Precision.Tf32 => 5e-3,
        Precision.Fp16 => 5e-3,
        Precision.Bf16 => 4e-2,
        _ => Tolerances.NetworkRtol,
    };

    private static void RequireSupport(ComputeDevice device, Precision precision)
    {
        if (!Precisions.IsSupported(device, precision, out string? reason)) throw new CheckNotApplicableException(reason!);
    }

    /// <summary>The narrow network's 14 layers in <paramref name="precision"/> against the double reference.</summary>
    public static ComparisonResult Layers(ComputeDevice device, Precision precision, bool fused)
    {
        RequireSupport(device, precision);
        AlexNetArchitecture architecture = SyntheticNetwork.Narrow;
        const int batch = 3;
        AlexNetWeights weights = SyntheticNetwork.Weights(architecture, seed: batch + architecture.NumClasses);
        float[] images = SyntheticNetwork.Images(batch, seed: batch);
        using AlexNetModel model = AlexNetModel.Create(device, weights, new AlexNetOptions { MaxBatch = batch, FuseActivations = fused, Precision = precision });
        IReadOnlyDictionary<string, float[]> got = model.Features(images, batch, AlexNetModel.LayerNames.ToArray());
        Dictionary<string, float[]> expected = ReferenceNetwork.Run(weights, images, batch, new ReferenceNetworkOptions());
        double bound = LayerTolerance(precision);
        var detail = new StringBuilder();
        bool passed = true;
        double worst = 0;
        foreach (string layer in AlexNetModel.LayerNames)
        {
            double error = RelativeError(got[layer], expected[layer]);
            worst = Math.Max(worst, error);
            bool ok = error <= bound;
            passed &= ok;
            detail.Append(CultureInfo.InvariantCulture, $" {layer} {error:G2}{(ok ? "" : " FAILED")};");
        }
        string summary = string.Create(CultureInfo.InvariantCulture, $"largest error {worst:G3} of max|ref| (bound {bound:G2}); per layer:{detail}");
        return new ComparisonResult(passed, passed ? 0 : 1, worst, -1, bound, summary);
    }

    /// <summary>The full-size network's probabilities in <paramref name="precision"/> against FP32's.</summary>
    public static ComparisonResult Probabilities(ComputeDevice device, Precision precision, int images)
    {
        RequireSupport(device, precision);
        PrecisionAccuracy accuracy = Measure(device, precision, images, layers: false);
        (double maxError, _) = Precisions.Tolerance(precision);
        return new ComparisonResult(accuracy.WithinTolerance, accuracy.WithinTolerance ? 0 : 1, accuracy.MaxProbabilityError, -1, maxError, accuracy.ToString());
    }

    /// <summary>
    /// Runs <paramref name="images"/> synthetic images through the full-size network with synthetic weights in FP32
    /// and in <paramref name="precision"/> on <paramref name="device"/>, in batches of up to 32, and compares them;
    /// with <paramref name="layers"/> also every layer of the first batch (through <c>Features</c>).
    /// </summary>
    public static PrecisionAccuracy Measure(ComputeDevice device, Precision precision, int images, bool layers, int seed = 2026)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(images, 1);
        AlexNetWeights weights = SyntheticNetwork.Weights(AlexNetArchitecture.Default, seed);
        int batch = Math.Min(images, 32);
        using AlexNetModel reference = AlexNetModel.Create(device, weights, new AlexNetOptions { MaxBatch = batch });
        using AlexNetModel reduced = AlexNetModel.Create(device, weights, new AlexNetOptions { MaxBatch = batch, Precision = precision });
        int classes = reference.NumClasses;
        double maxError = 0;
        int topOne = 0, topFive = 0;
        var layerErrors = new Dictionary<string, double>(StringComparer.Ordinal);
        for (int first = 0; first < images; first += batch)
        {
            int n = Math.Min(batch, images - first);
            float[] x = SyntheticNetwork.Images(n, seed: seed + first);
            float[] want, got;
            if (layers && first == 0)
            {
                IReadOnlyDictionary<string, float[]> a = reference.Features(x, n, AlexNetModel.LayerNames.ToArray());
                IReadOnlyDictionary<string, float[]> b = reduced.Features(x, n, AlexNetModel.LayerNames.ToArray());
                foreach (string layer in AlexNetModel.LayerNames) layerErrors[layer] = RelativeError(b[layer], a[layer]);
                want = a["prob"];
                got = b["prob"];
            }
            else
            {
                want = reference.Predict(x, n);
                got = reduced.Predict(x, n);
            }
            for (int i = 0; i < want.Length; i++) maxError = Math.Max(maxError, Math.Abs((double)got[i] - want[i]));
            for (int image = 0; image < n; image++)
            {
                int[] w = ClassRanking.Top(want.AsSpan(image * classes, classes), 5), g = ClassRanking.Top(got.AsSpan(image * classes, classes), 5);
                if (w[0] == g[0]) topOne++;
                if (w.Order().SequenceEqual(g.Order())) topFive++;
            }
        }
        return new PrecisionAccuracy(precision, images, maxError, (double)topOne / images, (double)topFive / images, layerErrors);
    }

    /// <summary>max |got − expected| / max |expected| (NaN anywhere counts as infinitely wrong).</summary>
    private static double RelativeError(float[] got, float[] expected)
    {
        double scale = 0, error = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            scale = Math.Max(scale, Math.Abs((double)expected[i]));
            double d = Math.Abs((double)got[i] - expected[i]);
            error = double.IsNaN(d) ? double.PositiveInfinity : Math.Max(error, d);
        }
        return scale == 0 ? error : error / scale;
    }
}

/// <summary>Thrown by a check that does not apply to the device (a precision it lacks, graphs on OpenCL): the
/// check is reported as skipped with this reason, neither passed nor failed.</summary>
public sealed class CheckNotApplicableException(string reason) : AlexNetException(reason);
