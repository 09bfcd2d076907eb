using AlexNet.Cuda.Devices;

namespace AlexNet.Cuda.Reference;

/// <summary>
/// Plain CPU implementations that are the specification of each device operation: written straight
/// from the definition, accumulating in <see cref="double"/>, with no attempt at speed.
/// </summary>
public static class CpuReference
{
    /// <summary>out[b][c][r] = in[b][r][c] for input (batch, rows, cols).</summary>
    public static float[] Transpose(ReadOnlySpan<float> input, int batch, int rows, int cols)
    {
        if (input.Length != (long)batch * rows * cols) throw new ArgumentException("input length is not batch·rows·cols");
        var output = new float[input.Length];
        for (int b = 0; b < batch; b++)
        for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            output[((long)b * cols + c) * rows + r] = input[(int)(((long)b * rows + r) * cols + c)];
        return output;
    }

    /// <summary>
    /// C = alpha·op(A)·op(B) + beta·C, column-major with leading dimensions and element offsets exactly as
    /// cuBLAS defines SGEMM; <paramref name="c"/> is updated in place (elements outside the m×n block untouched).
    /// When given, <paramref name="magnitude"/> (indexed like <paramref name="c"/>) receives
    /// |alpha|·Σ|a·b| + |beta·c| for each element written: the scale of its floating-point rounding error.
    /// </summary>
    public static void Gemm(MatrixOp transA, MatrixOp transB, int m, int n, int k,
        double alpha, ReadOnlySpan<float> a, long aOffset, int lda,
        ReadOnlySpan<float> b, long bOffset, int ldb,
        double beta, Span<float> c, long cOffset, int ldc, Span<double> magnitude = default)
    {
        for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++)
        {
            double sum = 0, absSum = 0;
            for (int p = 0; p < k; p++)
            {
                double av = transA == MatrixOp.None ? a[(int)(aOffset + i + (long)p * lda)] : a[(int)(aOffset + p + (long)i * lda)];
                double bv = transB == MatrixOp.None ? b[(int)(bOffset + p + (long)j * ldb)] : b[(int)(bOffset + j + (long)p * ldb)];
                sum += av * bv;
                absSum += Math.Abs(av * bv);
            }
            int ci = (int)(cOffset + i + (long)j * ldc);
            if (!magnitude.IsEmpty) magnitude[ci] = Math.Abs(alpha) * absSum + (beta == 0 ? 0 : Math.Abs(beta * c[ci]));
            // BLAS semantics: with beta = 0, C is not read (so NaN in C does not propagate).
            c[ci] = (float)(beta == 0 ? alpha * sum : alpha * sum + beta * c[ci]);
        }
    }
}
