using AlexNet.Cuda.Network;

namespace AlexNet.Cuda.Reference;

/// <summary>
/// The specification of each network kernel: plain loops written from the operation's definition, in the
/// same layouts as the kernels (<c>[C][N][H][W]</c> activations, <c>[N][F]</c> for fully connected layers),
/// accumulating in <see cref="double"/>, with no attempt at speed. Where an operation is a single float
/// rounding (a bias addition, a scaling) the double result rounded to float is exactly what a float
/// kernel must produce, so those are compared bit for bit.
/// </summary>
public static class LayerReference
{
    /// <summary><c>out[c][n][p] = in[n][p][c]</c>.</summary>
    public static float[] ConvertInput(ReadOnlySpan<float> input, int images, int pixels, int channels)
    {
        Require(input.Length == (long)images * pixels * channels, "input length is not images·pixels·channels");
        var output = new float[input.Length];
        for (int n = 0; n < images; n++)
        for (int p = 0; p < pixels; p++)
        for (int c = 0; c < channels; c++)
            output[((long)c * images + n) * pixels + p] = input[(int)(((long)n * pixels + p) * channels + c)];
        return output;
    }

    /// <summary>
    /// The im2col matrix of images [image0, image0 + images): row (ci·kernelH + i)·kernelW + j, column
    /// ((n − image0)·outH + y)·outW + x holds in[ci][n][y·stride − pad + i][x·stride − pad + j], 0 outside.
    /// </summary>
    public static float[] Im2Col(ReadOnlySpan<float> input, int channels, int batch, int height, int width,
        int image0, int images, int kernelH, int kernelW, int stride, int pad, int outH, int outW)
    {
        Require(input.Length == (long)channels * batch * height * width, "input length is not channels·batch·height·width");
        long columns = (long)images * outH * outW;
        var col = new float[checked((long)channels * kernelH * kernelW * columns)];
        for (int ci = 0; ci < channels; ci++)
        for (int i = 0; i < kernelH; i++)
        for (int j = 0; j < kernelW; j++)
        {
            long row = ((long)ci * kernelH + i) * kernelW + j;
            for (int n = image0; n < image0 + images; n++)
            for (int y = 0; y < outH; y++)
            for (int x = 0; x < outW; x++)
            {
                int h = y * stride - pad + i, w = x * stride - pad + j;
                bool inside = h >= 0 && h < height && w >= 0 && w < width;
                long column = ((long)(n - image0) * outH + y) * outW + x;
                col[row * columns + column] = inside ? input[(int)((((long)ci * batch + n) * height + h) * width + w)] : 0f;
            }
        }
        return col;
    }

    /// <summary>x[o][c][s] + bias[c], then max(·, 0) when <paramref name="relu"/>, keeping NaN.</summary>
    public static float[] BiasRelu(ReadOnlySpan<float> x, ReadOnlySpan<float> bias, int outer, int channels, int inner, bool relu)
    {
        Require(x.Length == (long)outer * channels * inner, "x length is not outer·channels·inner");
        Require(bias.Length == channels, "bias length is not channels");
        var result = new float[x.Length];
        for (int o = 0; o < outer; o++)
        for (int c = 0; c < channels; c++)
        for (int s = 0; s < inner; s++)
        {
            int index = (o * channels + c) * inner + s;
            double value = (double)x[index] + bias[c];
            if (relu && value < 0) value = 0;
            result[index] = (float)value;
        }
        return result;
    }

    /// <summary>
    /// TensorFlow's local response normalisation across channels of in[c][s]:
    /// in / (bias + alpha·Σ_{|c'−c| ≤ radius} in[c'][s]²)^beta.
    /// </summary>
    public static float[] Lrn(ReadOnlySpan<float> input, int channels, int inner, LrnParameters p)
    {
        Require(input.Length == (long)channels * inner, "input length is not channels·inner");
        var output = new float[input.Length];
        for (int c = 0; c < channels; c++)
        for (int s = 0; s < inner; s++)
        {
            double sum = 0;
            for (long cc = Math.Max(0, (long)c - p.Radius); cc <= Math.Min(channels - 1, (long)c + p.Radius); cc++)
            {
                double v = input[(int)(cc * inner + s)];
                sum += v * v;
            }
            double x = input[c * inner + s];
            output[c * inner + s] = (float)(x / Math.Pow((double)p.Bias + (double)p.Alpha * sum, p.Beta));
        }
        return output;
    }

    /// <summary>
    /// VALID max pooling of in[c][n][h][w] into a buffer of <paramref name="outputLength"/> floats, element
    /// (c, n, y, x) at c·outStrideC + n·outStrideN + y·outW + x; every other element is <paramref name="fill"/>.
    /// A window holding NaN gives NaN (the last one in window order: a NaN always replaces the running
    /// value, and no number compares greater than NaN); otherwise the maximum, ties keeping the first.
    /// </summary>
    public static float[] MaxPool(ReadOnlySpan<float> input, int channels, int batch, int height, int width,
        int outH, int outW, int size, int stride, int outStrideC, int outStrideN, int outputLength, float fill)
    {
        Require(input.Length == (long)channels * batch * height * width, "input length is not channels·batch·height·width");
        Require((outH - 1) * stride + size <= height && (outW - 1) * stride + size <= width, "windows reach outside the image");
        var output = new float[outputLength];
        Array.Fill(output, fill);
        for (int c = 0; c < channels; c++)
        for (int n = 0; n < batch; n++)
        for (int y = 0; y < outH; y++)
        for (int x = 0; x < outW; x++)
        {
            int corner = ((c * batch + n) * height + y * stride) * width + x * stride;
            float m = input[corner];
            for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++)
            {
                float v = input[corner + i * width + j];
                if (float.IsNaN(v) || v > m) m = v;
            }
            output[c * outStrideC + n * outStrideN + y * outW + x] = m;
        }
        return output;
    }

    /// <summary>
    /// Inverted dropout: element i is kept, as x·(1/keepProb), when u(offset + i) &lt; keepProb, else 0, where
    /// u(e) = (word e mod 4 of Philox4x32_10((⌊e/4⌋ low, ⌊e/4⌋ high, 0, 0), (seed low, seed high)) &gt;&gt; 8)·2⁻²⁴.
    /// </summary>
    public static float[] Dropout(ReadOnlySpan<float> x, float keepProb, ulong seed, uint offset)
    {
        var result = new float[x.Length];
        float scale = 1f / keepProb; // the kernel's float reciprocal; x·scale is then one float rounding
        for (int i = 0; i < x.Length; i++)
            result[i] = DropoutUniform(seed, (ulong)offset + (ulong)i) < keepProb ? (float)((double)x[i] * scale) : 0f;
        return result;
    }

    /// <summary>The uniform in [0, 1) that decides whether dropout keeps the element of global index <paramref name="e"/>.</summary>
    public static float DropoutUniform(ulong seed, ulong e)
    {
        ulong block = e / 4;
        (uint x0, uint x1, uint x2, uint x3) = Philox4x32_10(((uint)block, (uint)(block >> 32), 0u, 0u), ((uint)seed, (uint)(seed >> 32)));
        uint word = (e % 4) switch { 0 => x0, 1 => x1, 2 => x2, _ => x3 };
        return (word >> 8) * (1f / (1 << 24));
    }

    /// <summary>
    /// Philox-4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3",
    /// SC 2011), written from the paper's definition: ten rounds of
    /// (x0, x1, x2, x3) → (hi(M1·x2) ⊕ x1 ⊕ k0, lo(M1·x2), hi(M0·x0) ⊕ x3 ⊕ k1, lo(M0·x0)),
    /// the key incremented by the Weyl constants (W0, W1) between rounds.
    /// </summary>
    public static (uint X0, uint X1, uint X2, uint X3) Philox4x32_10((uint X0, uint X1, uint X2, uint X3) counter, (uint K0, uint K1) key)
    {
        const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;
        (uint x0, uint x1, uint x2, uint x3) = counter;
        (uint k0, uint k1) = key;
        for (int round = 0; round < 10; round++)
        {
            if (round > 0)
            {
                k0 += W0;
                k1 += W1;
            }
            ulong p0 = (ulong)M0 * x0, p1 = (ulong)M1 * x2;
            (x0, x1, x2, x3) = ((uint)(p1 >> 32) ^ x1 ^ k0, (uint)p1, (uint)(p0 >> 32) ^ x3 ^ k1, (uint)p0);
        }
        return (x0, x1, x2, x3);
    }

    /// <summary>
    /// fc8's epilogue: z = logits + bias (per row), and prob = exp(z − max z) / Σ exp(z − max z) per row,
    /// computed in double from the float z (the logits the kernel exports are what its softmax is of).
    /// </summary>
    public static (float[] Logits, float[] Prob) Softmax(ReadOnlySpan<float> logits, ReadOnlySpan<float> bias, int rows, int classes)
    {
        Require(logits.Length == (long)rows * classes, "logits length is not rows·classes");
        Require(bias.Length == classes, "bias length is not classes");
        var z = new float[logits.Length];
        var prob = new float[logits.Length];
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity;
            for (int k = 0; k < classes; k++)
            {
                z[r * classes + k] = (float)((double)logits[r * classes + k] + bias[k]);
                max = Math.Max(max, z[r * classes + k]);
            }
            double sum = 0;
            for (int k = 0; k < classes; k++) sum += Math.Exp(z[r * classes + k] - max);
            for (int k = 0; k < classes; k++) prob[r * classes + k] = (float)(Math.Exp(z[r * classes + k] - max) / sum);
        }
        return (z, prob);
    }

    private static void Require(bool condition, string message)
    {
        if (!condition) throw new ArgumentException(message);
    }
}
