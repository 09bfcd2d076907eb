using AlexNet.Cuda.Network;

namespace AlexNet.Cuda.Reference;

/// <summary>
/// A gradient as a reference computes it: the values accumulated in double and rounded to float once, and per
/// element the sum of the absolute values of the terms that made it, the scale of a float computation's rounding
/// error (<see cref="Comparison.AgainstMagnitude"/>); 0 where no term reached the element, which must then be
/// exactly 0 (or the fill, outside what was computed).
/// </summary>
public sealed record ReferenceGradient(float[] Values, double[] Magnitudes);

/// <summary>
/// The specification of each backward kernel of <see cref="Training.ConvolutionBackward"/>, in the same layouts
/// (<c>[C][N][H][W]</c> activations, <c>[Cout][(ci·k + i)·k + j]</c> weights with ci counted inside the group).
/// Each is written from the forward operation's definition in scatter form: every term of the forward pass
/// hands its share of the output gradient to the inputs it read (the kernels gather instead: each input sums
/// what reaches it), accumulating in <see cref="double"/>, with no attempt at speed. The tests check these against
/// central finite differences of the forward functions.
/// </summary>
public static class ConvolutionBackwardReference
{
    /// <summary>
    /// The gradient of VALID max pooling of in[c][n][h][w] with respect to its input: each window's output gradient
    /// (element (c, n, y, x) at c·outStrideC + n·outStrideN + y·outW + x of <paramref name="gradOutput"/>) goes to
    /// the element the forward took (<see cref="LayerReference.MaxPool"/>'s rule: the first of equal values, the last
    /// NaN of a window holding NaN).
    /// </summary>
    public static ReferenceGradient MaxPoolBackward(ReadOnlySpan<float> gradOutput, ReadOnlySpan<float> input, int channels, int batch,
        int height, int width, int outH, int outW, int size, int stride, int outStrideC, int outStrideN)
    {
        Require(input.Length == (long)channels * batch * height * width, "input length is not channels·batch·height·width");
        Require((outH - 1) * stride + size <= height && (outW - 1) * stride + size <= width, "windows reach outside the image");
        var sum = new double[input.Length];
        var magnitude = new double[input.Length];
        for (int c = 0; c < channels; c++)
        for (int n = 0; n < batch; n++)
        for (int y = 0; y < outH; y++)
        for (int x = 0; x < outW; x++)
        {
            int corner = ((c * batch + n) * height + y * stride) * width + x * stride;
            int picked = corner;
            float m = input[corner];
            for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++)
            {
                float v = input[corner + i * width + j];
                if (float.IsNaN(v) || v > m)
                {
                    m = v;
                    picked = corner + i * width + j;
                }
            }
            double g = gradOutput[c * outStrideC + n * outStrideN + y * outW + x];
            sum[picked] += g;
            magnitude[picked] += Math.Abs(g);
        }
        return new ReferenceGradient(Rounded(sum), magnitude);
    }

    /// <summary>
    /// The gradient of TensorFlow's local response normalisation across the channels of in[c][s]
    /// (<see cref="LayerReference.Lrn"/>): with base_c = bias + alpha·Σ_{|c'−c| ≤ radius} in[c']² and
    /// out_c = in_c·base_c^−beta, output c hands grad_c·base_c^−beta to input c and
    /// −2·alpha·beta·grad_c·in_c·in_j·base_c^(−beta−1) to every input j of its window.
    /// </summary>
    public static ReferenceGradient LrnBackward(ReadOnlySpan<float> gradOutput, ReadOnlySpan<float> input, int channels, int inner, LrnParameters p)
    {
        Require(input.Length == (long)channels * inner, "input length is not channels·inner");
        Require(gradOutput.Length == input.Length, "gradOutput length is not channels·inner");
        var sum = new double[input.Length];
        var magnitude = new double[input.Length];
        double alpha = p.Alpha, beta = p.Beta;
        for (int c = 0; c < channels; c++)
        for (int s = 0; s < inner; s++)
        {
            long first = Math.Max(0, (long)c - p.Radius), last = Math.Min(channels - 1, (long)c + p.Radius);
            double squares = 0;
            for (long cc = first; cc <= last; cc++)
            {
                double v = input[(int)(cc * inner + s)];
                squares += v * v;
            }
            double b = p.Bias + alpha * squares;
            double factor = Math.Pow(b, -beta);
            double g = gradOutput[c * inner + s], x = input[c * inner + s];
            Add(sum, magnitude, c * inner + s, g * factor);
            double common = -2 * alpha * beta * g * x * factor / b;
            for (long j = first; j <= last; j++)
                Add(sum, magnitude, (int)(j * inner + s), common * input[(int)(j * inner + s)]);
        }
        return new ReferenceGradient(Rounded(sum), magnitude);
    }

    /// <summary>
    /// <see cref="LayerReference.Im2Col"/>'s adjoint: every entry of col[channels·kernelH·kernelW][images·outH·outW]
    /// that im2col copied from an input element (not from the zero padding) is added to that element's gradient,
    /// for the images [image0, image0 + images) of the [channels][batch][height][width] result; the other images'
    /// elements are <paramref name="fill"/>, with magnitude 0.
    /// </summary>
    public static ReferenceGradient Col2Im(ReadOnlySpan<float> col, int channels, int batch, int height, int width,
        int image0, int images, int kernelH, int kernelW, int stride, int pad, int outH, int outW, float fill)
    {
        long columns = (long)images * outH * outW;
        Require(col.Length == (long)channels * kernelH * kernelW * columns, "col length is not channels·kernelH·kernelW × images·outH·outW");
        int count = checked(channels * batch * height * width);
        var sum = new double[count];
        var magnitude = new double[count];
        for (int ci = 0; ci < channels; ci++)
        for (int i = 0; i < kernelH; i++)
        for (int j = 0; j < kernelW; j++)
        {
            long row = ((long)ci * kernelH + i) * kernelW + j;
            for (int m = 0; m < images; m++)
            for (int y = 0; y < outH; y++)
            for (int x = 0; x < outW; x++)
            {
                int h = y * stride - pad + i, w = x * stride - pad + j;
                if (h < 0 || h >= height || w < 0 || w >= width) continue;
                Add(sum, magnitude, ((ci * batch + image0 + m) * height + h) * width + w, col[(int)(row * columns + ((long)m * outH + y) * outW + x)]);
            }
        }
        float[] values = Rounded(sum);
        for (int ci = 0; ci < channels; ci++)
        for (int n = 0; n < batch; n++)
        {
            if (n >= image0 && n < image0 + images) continue;
            values.AsSpan((ci * batch + n) * height * width, height * width).Fill(fill);
        }
        return new ReferenceGradient(values, magnitude);
    }

    /// <summary>
    /// The weight and input gradients of a grouped convolution, from its definition
    /// out[co][n][y][x] = Σ_{ci in co's group, i, j} W[co][(ci_g·k + i)·k + j] · in[ci][n][y·stride − pad + i][x·stride − pad + j]
    /// (zero outside the image; ci_g = ci counted inside the group; group g has input channels [g·Cin/G, (g+1)·Cin/G)
    /// and output channels [g·Cout/G, (g+1)·Cout/G)): each term hands gradOutput·in to its weight and
    /// gradOutput·W to its input element. Square kernels, as the engine's.
    /// </summary>
    public static (ReferenceGradient Weights, ReferenceGradient Input) ConvolutionGradients(ReadOnlySpan<float> input, ReadOnlySpan<float> weights,
        ReadOnlySpan<float> gradOutput, int inputChannels, int outputChannels, int groups, int batch, int height, int width,
        int kernel, int stride, int pad)
    {
        Require(inputChannels % groups == 0 && outputChannels % groups == 0, "the channels do not split into the groups");
        int outH = (height + 2 * pad - kernel) / stride + 1, outW = (width + 2 * pad - kernel) / stride + 1;
        int groupIn = inputChannels / groups, groupOut = outputChannels / groups, taps = groupIn * kernel * kernel;
        Require(input.Length == (long)inputChannels * batch * height * width, "input length is not Cin·batch·H·W");
        Require(weights.Length == (long)outputChannels * taps, "weights length is not Cout·(Cin/groups)·k·k");
        Require(gradOutput.Length == (long)outputChannels * batch * outH * outW, "gradOutput length is not Cout·batch·Ho·Wo");
        var dw = new double[weights.Length];
        var dwMagnitude = new double[weights.Length];
        var dx = new double[input.Length];
        var dxMagnitude = new double[input.Length];
        for (int co = 0; co < outputChannels; co++)
        {
            int g = co / groupOut;
            for (int n = 0; n < batch; n++)
            for (int y = 0; y < outH; y++)
            for (int x = 0; x < outW; x++)
            {
                double dy = gradOutput[((co * batch + n) * outH + y) * outW + x];
                for (int cg = 0; cg < groupIn; cg++)
                {
                    int ci = g * groupIn + cg;
                    for (int i = 0; i < kernel; i++)
                    {
                        int h = y * stride - pad + i;
                        if (h < 0 || h >= height) continue;
                        for (int j = 0; j < kernel; j++)
                        {
                            int w = x * stride - pad + j;
                            if (w < 0 || w >= width) continue;
                            int wi = co * taps + (cg * kernel + i) * kernel + j;
                            int xi = ((ci * batch + n) * height + h) * width + w;
                            Add(dw, dwMagnitude, wi, dy * input[xi]);
                            Add(dx, dxMagnitude, xi, dy * weights[wi]);
                        }
                    }
                }
            }
        }
        return (new ReferenceGradient(Rounded(dw), dwMagnitude), new ReferenceGradient(Rounded(dx), dxMagnitude));
    }

    private static void Add(double[] sum, double[] magnitude, int index, double term)
    {
        sum[index] += term;
        magnitude[index] += Math.Abs(term);
    }

    private static float[] Rounded(double[] values)
    {
        var result = new float[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = (float)values[i];
        return result;
    }

    private static void Require(bool condition, string message)
    {
        if (!condition) throw new ArgumentException(message);
    }
}
