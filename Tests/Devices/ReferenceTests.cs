using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Reference;

namespace AlexNet.Cuda.Tests.Devices;

/// <summary>The references are the specification, so they are checked by hand, and the comparisons
/// are shown to fail when they should.</summary>
public class ReferenceTests
{
    [Fact]
    public void GemmMatchesAHandWorkedExampleWithTransposesLeadingDimensionsAndOffsets()
    {
        // A stored column-major 3×2 with ld 3 after one element of offset: columns (1,2,3), (4,5,6).
        float[] a = [99, 1, 2, 3, 4, 5, 6];
        // B stored 2×2 column-major, ld 2: columns (7,8), (9,10).
        float[] b = [7, 8, 9, 10];
        // op(A) = A (3×2), op(B) = B (2×2): C = A·B is 3×2, stored with ld 4.
        float[] c = new float[8];
        CpuReference.Gemm(MatrixOp.None, MatrixOp.None, 3, 2, 2, 1, a, 1, 3, b, 0, 2, 0, c, 0, 4);
        Assert.Equal([1 * 7 + 4 * 8, 2 * 7 + 5 * 8, 3 * 7 + 6 * 8, 0, 1 * 9 + 4 * 10, 2 * 9 + 5 * 10, 3 * 9 + 6 * 10, 0], c);

        // Aᵀ·A (2×2) with alpha 2 and beta 1 on C = 1.
        float[] d = [1, 1, 1, 1];
        CpuReference.Gemm(MatrixOp.Transpose, MatrixOp.None, 2, 2, 3, 2, a, 1, 3, a, 1, 3, 1, d, 0, 2);
        Assert.Equal([2 * 14 + 1, 2 * 32 + 1, 2 * 32 + 1, 2 * 77 + 1], d);
    }

    [Fact]
    public void TransposeReferenceMovesEachElement()
    {
        float[] input = [1, 2, 3, 4, 5, 6]; // 2×3
        Assert.Equal([1, 4, 2, 5, 3, 6], CpuReference.Transpose(input, 1, 2, 3));
    }

    [Fact]
    public void ExactComparisonCatchesOneFlippedBitAndNamesIt()
    {
        float[] expected = KernelChecks.TestData(100, seed: 1);
        float[] got = (float[])expected.Clone();
        Assert.True(Comparison.Exact(got, expected).Passed);
        got[42] = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(got[42]) ^ 1);
        ComparisonResult result = Comparison.Exact(got, expected);
        Assert.False(result.Passed);
        Assert.Equal(42, result.MaxErrorIndex);
        Assert.Contains("[42]", result.Detail);
        // -0 and +0 differ in bits: a transpose must move them exactly.
        Assert.False(Comparison.Exact([0f], [-0f]).Passed);
    }

    [Fact]
    public void GemmBoundCatchesOneWrongTermEvenNextToOutliers()
    {
        // A GEMM whose C has an outlier row: the per-element bound must still catch a small error elsewhere.
        const int m = 8, n = 8, k = 64;
        float[] a = KernelChecks.TestData(m * k, seed: 5);
        float[] b = KernelChecks.TestData(k * n, seed: 6);
        a[0] = 1e4f; // row 0 of C becomes huge
        float[] expected = new float[m * n];
        var magnitude = new double[m * n];
        CpuReference.Gemm(MatrixOp.None, MatrixOp.None, m, n, k, 1, a, 0, m, b, 0, k, 0, expected, 0, m, magnitude);
        float[] got = (float[])expected.Clone();
        Assert.True(Comparison.AgainstMagnitude(got, expected, magnitude, Tolerances.GemmAtol, Tolerances.GemmRtol(k)).Passed);
        // Drop one term a[3, 10]·b[10, 5] from C[3, 5]: an error of a typical term's size.
        got[3 + 5 * m] -= a[3 + 10 * m] * b[10 + 5 * k];
        ComparisonResult result = Comparison.AgainstMagnitude(got, expected, magnitude, Tolerances.GemmAtol, Tolerances.GemmRtol(k));
        Assert.False(result.Passed, result.Detail);
        Assert.Equal(3 + 5 * m, result.MaxErrorIndex);
    }

    [Fact]
    public void NaNWhereANumberIsDueIsAMismatch()
    {
        Assert.False(Comparison.AgainstMax([float.NaN], [1f], 1, 1).Passed);
        Assert.True(Comparison.AgainstMax([float.NaN], [float.NaN], 0, 0).Passed);
    }
}
