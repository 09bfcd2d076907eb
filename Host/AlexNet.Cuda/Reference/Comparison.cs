using System.Globalization;
using System.Text;

namespace AlexNet.Cuda.Reference;

/// <summary>The outcome of comparing a device result with a reference.</summary>
public sealed record ComparisonResult(bool Passed, int Mismatches, double MaxAbsError, int MaxErrorIndex,
    double Bound, string Detail)
{
    public override string ToString() => Detail;
}

/// <summary>
/// Compares device output with a reference, in the style of llm.c's <c>validate_result</c>: pass when
/// every |got − ref| ≤ atol + rtol·scale, where scale is |ref| elementwise or max|ref| for long sums;
/// on failure the detail names the first mismatches and the largest error with its index.
/// </summary>
public static class Comparison
{
    /// <summary>Bit-for-bit equality (data movement: transposes, copies), NaN payloads included.</summary>
    public static ComparisonResult Exact(ReadOnlySpan<float> got, ReadOnlySpan<float> expected)
    {
        if (got.Length != expected.Length) return LengthMismatch(got.Length, expected.Length);
        int mismatches = 0, worst = -1;
        double maxError = 0;
        var first = new StringBuilder();
        for (int i = 0; i < got.Length; i++)
        {
            if (BitConverter.SingleToUInt32Bits(got[i]) == BitConverter.SingleToUInt32Bits(expected[i])) continue;
            double error = Math.Abs((double)got[i] - expected[i]);
            if (double.IsNaN(error)) error = double.PositiveInfinity;
            if (worst < 0 || error > maxError) { maxError = error; worst = i; }
            if (mismatches++ < 5) first.Append(CultureInfo.InvariantCulture, $" [{i}] got {got[i]:R} want {expected[i]:R};");
        }
        return mismatches == 0
            ? new ComparisonResult(true, 0, 0, -1, 0, $"{got.Length} elements bit-identical")
            : new ComparisonResult(false, mismatches, maxError, worst, 0,
                $"{mismatches} of {got.Length} elements differ (exact compare); first:{first}");
    }

    /// <summary>|got − ref| ≤ atol + rtol·max|ref| for every element: the test for sums of many terms,
    /// whose rounding error scales with the largest magnitudes, not with each element's own.</summary>
    public static ComparisonResult AgainstMax(ReadOnlySpan<float> got, ReadOnlySpan<float> expected, double atol, double rtol)
    {
        double scale = 0;
        foreach (float v in expected) scale = Math.Max(scale, Math.Abs((double)v));
        return Within(got, expected, atol + rtol * scale);
    }

    /// <summary>
    /// |got − ref| ≤ atol + rtol·magnitude[i] for every element, where magnitude is the sum of the absolute
    /// values of the terms that made the element (Σ|a·b| for a dot product): the classic floating-point
    /// error bound, tight per element, so an outlier in one row does not loosen the check of the others.
    /// Elements whose magnitude is 0 (never written) must match exactly.
    /// </summary>
    public static ComparisonResult AgainstMagnitude(ReadOnlySpan<float> got, ReadOnlySpan<float> expected,
        ReadOnlySpan<double> magnitude, double atol, double rtol)
    {
        if (magnitude.Length != expected.Length) throw new ArgumentException("magnitude must be indexed like the reference");
        return Within(got, expected, magnitude, atol, rtol);
    }

    private static ComparisonResult Within(ReadOnlySpan<float> got, ReadOnlySpan<float> expected, double bound) =>
        Within(got, expected, default, bound, 0);

    /// <summary>The bound at element i is atol + rtol·magnitude[i] when a magnitude is given (0 where
    /// magnitude is 0), else atol.</summary>
    private static ComparisonResult Within(ReadOnlySpan<float> got, ReadOnlySpan<float> expected,
        ReadOnlySpan<double> magnitude, double atol, double rtol)
    {
        if (got.Length != expected.Length) return LengthMismatch(got.Length, expected.Length);
        int mismatches = 0, worst = -1;
        double maxError = 0, boundAtWorst = 0;
        var first = new StringBuilder();
        for (int i = 0; i < got.Length; i++)
        {
            double allowed = magnitude.IsEmpty ? atol : magnitude[i] == 0 ? 0 : atol + rtol * magnitude[i];
            double error = Math.Abs((double)got[i] - expected[i]);
            if (float.IsNaN(got[i]) && float.IsNaN(expected[i])) error = 0;
            else if (double.IsNaN(error)) error = double.PositiveInfinity; // NaN where a number was due
            if (worst < 0 || error > maxError) { maxError = error; worst = i; boundAtWorst = allowed; }
            if (error > allowed && mismatches++ < 5)
                first.Append(CultureInfo.InvariantCulture, $" [{i}] got {got[i]:G9} want {expected[i]:G9} (bound {allowed:G3});");
        }
        string summary = string.Create(CultureInfo.InvariantCulture,
            $"max |error| {maxError:G3} at [{worst}] (bound there {boundAtWorst:G3})");
        return mismatches == 0
            ? new ComparisonResult(true, 0, maxError, worst, boundAtWorst, summary)
            : new ComparisonResult(false, mismatches, maxError, worst, boundAtWorst,
                $"{mismatches} of {got.Length} elements exceed the bound; {summary}; first:{first}");
    }

    private static ComparisonResult LengthMismatch(int got, int expected) =>
        new(false, Math.Max(got, expected), double.PositiveInfinity, -1, 0, $"length {got}, expected {expected}");
}

/// <summary>Tolerances per operation, in one place.</summary>
public static class Tolerances
{
    /// <summary>Unit roundoff of float32 (2^-24).</summary>
    public const double Float32Roundoff = 1.0 / (1 << 24);

    /// <summary>
    /// SGEMM against the double reference, per element: |error| ≤ atol + rtol·(|alpha|Σ|a·b| + |beta·c|)
    /// with rtol = 2·(k+2)·u, twice the worst-case bound of a k-term float32 dot product (blocked and
    /// FMA summation only do better). One wrong term of the size of a typical one exceeds it.
    /// </summary>
    public static double GemmRtol(int k) => 2.0 * (k + 2) * Float32Roundoff;

    public const double GemmAtol = 1e-30;

    /// <summary>
    /// A whole network against its reference, per layer: |error| ≤ 1e-4·max|ref| of that layer. The float32
    /// engine against a double reference lands near 1e-6 on He-scaled weights; a bias on the wrong channel, a
    /// wrong group split, flatten order or LRN parameter misses by orders of magnitude more.
    /// </summary>
    public const double NetworkRtol = 1e-4;

    /// <summary>
    /// LRN against the double reference, relative to each element: |error| ≤ LrnRtol·|ref|. The float sum
    /// of the 2r+1 squares is off by at most (2r+1)·u relatively (all terms are positive), the base
    /// bias + alpha·sum by 2u more, and the power multiplies the base's relative error by |beta|; the power
    /// function itself is allowed 16 ulp (OpenCL's bound for pow; CUDA's powf and the rsqrt·sqrt fast path
    /// stay well inside it), the final product 1 ulp, and 1 more for rounding. A window one channel too
    /// wide or too narrow, or a wrong alpha, exceeds it wherever a large value (the test data's outliers)
    /// enters the sum.
    /// </summary>
    public static double LrnRtol(int radius, float beta) => (Math.Abs(beta) * (2.0 * radius + 3) + 18) * Float32Roundoff;

    /// <summary>
    /// Softmax probabilities against the double reference: |error| ≤ SoftmaxAtol + SoftmaxRtol·p·(classes + 4 + |z − max z|).
    /// The float sum of the exponentials is off by at most (classes − 1)·u relatively, exp by a few ulp
    /// (4 allowed), the division by 1; and z − max is rounded, which exp turns into a relative error of
    /// |z − max|·u. SoftmaxRtol is twice the unit roundoff, so the bound is twice that worst case.
    /// </summary>
    public const double SoftmaxRtol = 2 * Float32Roundoff;

    /// <summary>Probabilities below float's normal range (exp(z − max) &lt; 1.2e-38) may flush to 0 on a device.</summary>
    public const double SoftmaxAtol = 2e-38;
}
