using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// The mixed-precision GEMMs the reduced precisions run (<see cref="ComputeStream.GemmBatched"/> with fp16, bf16
/// or TF32 math: cublasGemmEx / cublasGemmStridedBatchedEx on CUDA, converted operands and OpenBLAS on PoCL)
/// against a double reference computed on the operands' exact stored values (the 16-bit values, or the FP32
/// values rounded to TF32 here by <see cref="ElementFormats.RoundToTf32"/>): FP32 accumulation within
/// <see cref="Tolerances.GemmRtol"/> (and one TF32 unit per product for TF32, whose hardware rounding may not be
/// to nearest even), plus one rounding of C to its format for 16-bit C. Transposes, padded leading
/// dimensions, offsets, a strided batch and beta ≠ 0; every element outside the m×n blocks must keep its bits.
/// Part of <see cref="KernelChecks.All"/>.
/// </summary>
public static class GemmPrecisionChecks
{
    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All()
    {
        foreach (Precision precision in new[] { Precision.Tf32, Precision.Fp16, Precision.Bf16 })
        {
            string name = Precisions.Name(precision);
            yield return ($"gemm {name} NN 37x29x53 padded ld, offsets, beta -0.5", d => Gemm(d, precision, MatrixOp.None, MatrixOp.None, 37, 29, 53, 1));
            yield return ($"gemm {name} TN 96x128x363 (conv1's shape)", d => Gemm(d, precision, MatrixOp.Transpose, MatrixOp.None, 96, 128, 363, 1));
            yield return ($"gemm_strided_batched {name} NT 2x(19x23x31) padded ld, offsets, strides", d => Gemm(d, precision, MatrixOp.None, MatrixOp.Transpose, 19, 23, 31, 2));
            // fc8's form: 16-bit inputs, the FP32 accumulation written whole to an FP32 C.
            if (precision != Precision.Tf32)
                yield return ($"gemm {name} inputs, fp32 C, NN 10x1000x409 (fc8's form)", d => Gemm(d, precision, MatrixOp.None, MatrixOp.None, 10, 1000, 409, 1, floatC: true));
        }
    }

    /// <summary>
    /// One GEMM or strided batch in <paramref name="precision"/> (FP32 for <see cref="KernelChecks.Gemm"/>): padded
    /// leading dimensions, non-zero offsets, padding between batch entries, alpha ≠ 1 and beta ≠ 0; with
    /// <paramref name="floatC"/> a 16-bit A and B with an FP32 C. <paramref name="seed"/> picks the test data.
    /// </summary>
    public static ComparisonResult Gemm(ComputeDevice device, Precision precision, MatrixOp ta, MatrixOp tb, int m, int n, int k, int batch,
        bool floatC = false, int seed = 21)
    {
        if (!Precisions.IsSupported(device, precision, out string? reason)) throw new CheckNotApplicableException(reason!);
        ElementFormat format = Precisions.Storage(precision);
        GemmMath math = Precisions.Math(precision);
        (int aRows, int aCols) = ta == MatrixOp.None ? (m, k) : (k, m);
        (int bRows, int bCols) = tb == MatrixOp.None ? (k, n) : (n, k);
        int lda = aRows + 3, ldb = bRows + 1, ldc = m + 2;
        long aOffset = 5, bOffset = 7, cOffset = 3;
        long strideA = (long)lda * aCols + 11, strideB = (long)ldb * bCols + 13, strideC = (long)ldc * n + 17;
        // The operands as the GEMM sees them: stored in the format (so exactly representable), TF32's inputs rounded.
        float[] a = Stored(KernelChecks.TestData((int)(aOffset + strideA * batch), seed: seed + m), format);
        float[] b = Stored(KernelChecks.TestData((int)(bOffset + strideB * batch), seed: seed + 1 + n), format);
        ElementFormat cFormat = floatC ? ElementFormat.Float32 : format;
        float[] c = Stored(KernelChecks.TestData((int)(cOffset + strideC * batch), seed: seed + 2 + k), cFormat);
        float[] aSeen = math == GemmMath.Tf32 ? [.. a.Select(ElementFormats.RoundToTf32)] : a;
        float[] bSeen = math == GemmMath.Tf32 ? [.. b.Select(ElementFormats.RoundToTf32)] : b;
        const float alpha = 0.75f, beta = -0.5f;

        float[] expected = (float[])c.Clone();
        var magnitude = new double[c.Length];
        for (int i = 0; i < batch; i++)
            CpuReference.Gemm(ta, tb, m, n, k, alpha, aSeen, aOffset + i * strideA, lda, bSeen, bOffset + i * strideB, ldb,
                beta, expected, cOffset + i * strideC, ldc, magnitude);

        using DeviceBuffer da = device.Upload(a, format), db = device.Upload(b, format), dc = device.Upload(c, cFormat);
        MatrixView va = MatrixView.ColumnMajor(da, format, aRows, aCols, aOffset, lda);
        MatrixView vb = MatrixView.ColumnMajor(db, format, bRows, bCols, bOffset, ldb);
        if (ta == MatrixOp.Transpose) va = va.T;
        if (tb == MatrixOp.Transpose) vb = vb.T;
        MatrixView vc = MatrixView.ColumnMajor(dc, cFormat, m, n, cOffset, ldc);
        device.DefaultStream.GemmBatched(va, vb, vc, new GemmBatch(batch, strideA, strideB, strideC), alpha, beta, math);
        // The whole C buffer is compared: elements outside the m×n blocks (magnitude 0) must be untouched.
        float[] got = ComputeDevice.Download(device.DefaultStream, dc, cFormat, dc.Length);
        // A 16-bit C is the FP32 result rounded once more: half a unit of its last place, relative to the value.
        double unit = cFormat switch { ElementFormat.Half => Math.Pow(2, -11), ElementFormat.BFloat16 => Math.Pow(2, -8), _ => 0 };
        // TF32: the reference rounds the inputs to nearest even; tensor cores may round otherwise (one TF32 unit,
        // 2⁻¹⁰ relative, per product at most), which the bound allows for on top of FP32 accumulation.
        double rtol = Tolerances.GemmRtol(k) + (math == GemmMath.Tf32 ? Math.Pow(2, -10) : 0);
        for (int i = 0; i < magnitude.Length; i++)
            if (magnitude[i] != 0) magnitude[i] += unit / rtol * Math.Abs(expected[i]);
        return Comparison.AgainstMagnitude(got, expected, magnitude, Tolerances.GemmAtol, rtol);
    }

    /// <summary><paramref name="values"/> as <paramref name="format"/> stores them (unchanged for FP32).</summary>
    internal static float[] Stored(float[] values, ElementFormat format)
    {
        if (format == ElementFormat.Float32) return values;
        return [.. values.Select(v => ElementFormats.ToFloat(ElementFormats.ToBits(v, format), format))];
    }
}
