namespace AlexNet.Cuda.Reference;

/// <summary>
/// The specification of the backward kernels (<see cref="Training.BackwardKernels"/>) and of a fully connected
/// layer's backward pass: plain loops in <see cref="double"/>, written from each operation's definition, in the
/// kernels' layouts (<c>[N][F]</c> for fully connected layers, (outer, channels, inner) for a bias), with no
/// attempt at speed. Each backward function sits beside the forward function it is the derivative of, so the
/// tests can hold one against central finite differences of the other. Inputs and results are doubles: the
/// checks pass the float data they upload (exactly representable) and round the results once.
/// </summary>
public static class BackwardReference
{
    // ---- softmax cross-entropy ----

    /// <summary>
    /// Forward: <c>loss[r] = −log softmax(z)[labels[r]] = log Σ_k exp(z_k − m) + (m − z_label)</c> with
    /// z = logits[r], m = max z; NaN for a label outside [0, classes).
    /// </summary>
    public static double[] SoftmaxCrossEntropyLoss(ReadOnlySpan<double> logits, ReadOnlySpan<int> labels, int rows, int classes)
    {
        Require(logits.Length == (long)rows * classes, "logits length is not rows·classes");
        Require(labels.Length == rows, "labels length is not rows");
        var loss = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<double> z = logits.Slice(r * classes, classes);
            int label = labels[r];
            if (label < 0 || label >= classes)
            {
                loss[r] = double.NaN;
                continue;
            }
            (double max, double sum) = MaxAndSumOfExp(z);
            loss[r] = Math.Log(sum) + (max - z[label]);
        }
        return loss;
    }

    /// <summary>
    /// The gradient of <c>scale·Σ_r loss[r]</c> with respect to the logits:
    /// <c>scale·(softmax(z)[k] − (k == labels[r] ? 1 : 0))</c>; a zero row for a label outside [0, classes).
    /// </summary>
    public static double[] SoftmaxCrossEntropyGradient(ReadOnlySpan<double> logits, ReadOnlySpan<int> labels, int rows, int classes,
        double scale)
    {
        Require(logits.Length == (long)rows * classes, "logits length is not rows·classes");
        Require(labels.Length == rows, "labels length is not rows");
        var grad = new double[logits.Length];
        for (int r = 0; r < rows; r++)
        {
            int label = labels[r];
            if (label < 0 || label >= classes) continue;
            ReadOnlySpan<double> z = logits.Slice(r * classes, classes);
            (double max, double sum) = MaxAndSumOfExp(z);
            for (int k = 0; k < classes; k++)
                grad[r * classes + k] = scale * (Math.Exp(z[k] - max) / sum - (k == label ? 1 : 0));
        }
        return grad;
    }

    /// <summary>m = max z and s = Σ exp(z − m) (at least 1): log Σ exp(z) = m + log s, without overflow, and
    /// softmax(z) = exp(z − m) / s.</summary>
    public static (double Max, double SumOfExp) MaxAndSumOfExp(ReadOnlySpan<double> z)
    {
        double max = double.NegativeInfinity;
        foreach (double v in z) max = Math.Max(max, v);
        double sum = 0;
        foreach (double v in z) sum += Math.Exp(v - max);
        return (max, sum);
    }

    // ---- ReLU ----

    /// <summary>Forward: max(x, 0), NaN kept.</summary>
    public static double[] Relu(ReadOnlySpan<double> x)
    {
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++) y[i] = x[i] < 0 ? 0 : x[i];
        return y;
    }

    /// <summary><c>output &gt; 0 ? grad : 0</c> from the ReLU's output: its derivative is 1 where the input (and so
    /// the output) is positive, 0 where it is negative, and taken as 0 at 0 and where the output is NaN.</summary>
    public static double[] ReluBackward(ReadOnlySpan<double> grad, ReadOnlySpan<double> output)
    {
        Require(grad.Length == output.Length, "grad and output differ in length");
        var result = new double[grad.Length];
        for (int i = 0; i < grad.Length; i++) result[i] = output[i] > 0 ? grad[i] : 0;
        return result;
    }

    // ---- dropout ----

    /// <summary>
    /// Forward: <c>x·(1/keepProb)</c> where <see cref="LayerReference.DropoutUniform"/>(seed, offset + i) &lt; keepProb,
    /// else 0, with the float reciprocal the kernels use (TensorFlow's scale): a linear function of x.
    /// </summary>
    public static double[] Dropout(ReadOnlySpan<double> x, float keepProb, ulong seed, uint offset) =>
        MaskAndScale(x, keepProb, seed, offset);

    /// <summary>The gradient of <see cref="Dropout"/>: the same mask and factor applied to grad (a dropped element
    /// gets 0 whatever its gradient, NaN included).</summary>
    public static double[] DropoutBackward(ReadOnlySpan<double> grad, float keepProb, ulong seed, uint offset) =>
        MaskAndScale(grad, keepProb, seed, offset);

    private static double[] MaskAndScale(ReadOnlySpan<double> values, float keepProb, ulong seed, uint offset)
    {
        double scale = 1f / keepProb;
        var result = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
            result[i] = LayerReference.DropoutUniform(seed, (ulong)offset + (ulong)i) < keepProb ? values[i] * scale : 0;
        return result;
    }

    // ---- bias ----

    /// <summary>Forward: <c>x[o][c][s] + bias[c]</c> for x laid out as (outer, channels, inner).</summary>
    public static double[] BiasAdd(ReadOnlySpan<double> x, ReadOnlySpan<double> bias, int outer, int channels, int inner)
    {
        Require(x.Length == (long)outer * channels * inner, "x length is not outer·channels·inner");
        Require(bias.Length == channels, "bias length is not channels");
        var y = new double[x.Length];
        for (int o = 0; o < outer; o++)
        for (int c = 0; c < channels; c++)
        for (int s = 0; s < inner; s++)
            y[(o * channels + c) * inner + s] = x[(o * channels + c) * inner + s] + bias[c];
        return y;
    }

    /// <summary>The gradient of <see cref="BiasAdd"/> with respect to the bias: <c>Σ_{o, s} grad[o][c][s]</c>.</summary>
    public static double[] BiasGradient(ReadOnlySpan<double> grad, int outer, int channels, int inner)
    {
        Require(grad.Length == (long)outer * channels * inner, "grad length is not outer·channels·inner");
        var result = new double[channels];
        for (int o = 0; o < outer; o++)
        for (int c = 0; c < channels; c++)
        for (int s = 0; s < inner; s++)
            result[c] += grad[(o * channels + c) * inner + s];
        return result;
    }

    // ---- fully connected ----

    /// <summary>
    /// Forward: <c>y[n][j] = Σ_i x[n][i]·w[i][j] + b[j]</c>: x is [batch][inputs], w is [inputs][outputs] (the weight
    /// file's layout), y is [batch][outputs].
    /// </summary>
    public static double[] FullyConnected(ReadOnlySpan<double> x, ReadOnlySpan<double> w, ReadOnlySpan<double> b,
        int batch, int inputs, int outputs)
    {
        Require(x.Length == (long)batch * inputs, "x length is not batch·inputs");
        Require(w.Length == (long)inputs * outputs, "w length is not inputs·outputs");
        Require(b.Length == outputs, "b length is not outputs");
        var y = new double[batch * outputs];
        for (int n = 0; n < batch; n++)
        for (int j = 0; j < outputs; j++)
        {
            double sum = b[j];
            for (int i = 0; i < inputs; i++) sum += x[n * inputs + i] * w[i * outputs + j];
            y[n * outputs + j] = sum;
        }
        return y;
    }

    /// <summary>
    /// The gradients of <see cref="FullyConnected"/> given the gradient of its output gradOutput [batch][outputs]:
    /// <c>dX[n][i] = Σ_j dY[n][j]·w[i][j]</c> (dY·Wᵀ), <c>dW[i][j] = Σ_n x[n][i]·dY[n][j]</c> (Xᵀ·dY),
    /// <c>dB[j] = Σ_n dY[n][j]</c>.
    /// </summary>
    public static (double[] GradInput, double[] GradWeights, double[] GradBias) FullyConnectedBackward(ReadOnlySpan<double> x,
        ReadOnlySpan<double> w, ReadOnlySpan<double> gradOutput, int batch, int inputs, int outputs)
    {
        Require(x.Length == (long)batch * inputs, "x length is not batch·inputs");
        Require(w.Length == (long)inputs * outputs, "w length is not inputs·outputs");
        Require(gradOutput.Length == (long)batch * outputs, "gradOutput length is not batch·outputs");
        var dx = new double[batch * inputs];
        var dw = new double[inputs * outputs];
        for (int n = 0; n < batch; n++)
        for (int i = 0; i < inputs; i++)
        {
            double sum = 0;
            for (int j = 0; j < outputs; j++) sum += gradOutput[n * outputs + j] * w[i * outputs + j];
            dx[n * inputs + i] = sum;
        }
        for (int i = 0; i < inputs; i++)
        for (int j = 0; j < outputs; j++)
        {
            double sum = 0;
            for (int n = 0; n < batch; n++) sum += x[n * inputs + i] * gradOutput[n * outputs + j];
            dw[i * outputs + j] = sum;
        }
        return (dx, dw, BiasGradient(gradOutput, batch, outputs, 1));
    }

    // ---- SGD with momentum ----

    /// <summary>
    /// One step of TensorFlow's MomentumOptimizer on loss + weightDecay/2·|w|²: <c>g = grad + weightDecay·w</c>,
    /// <c>v' = momentum·v + g</c>, <c>w' = w − learningRate·v'</c>, exactly (in double).
    /// </summary>
    public static (double[] Weights, double[] Velocity) SgdMomentum(ReadOnlySpan<double> weights, ReadOnlySpan<double> velocity,
        ReadOnlySpan<double> grad, double learningRate, double momentum, double weightDecay)
    {
        Require(weights.Length == velocity.Length && weights.Length == grad.Length, "weights, velocity and grad differ in length");
        var w = new double[weights.Length];
        var v = new double[weights.Length];
        for (int i = 0; i < weights.Length; i++)
        {
            v[i] = momentum * velocity[i] + (grad[i] + weightDecay * weights[i]);
            w[i] = weights[i] - learningRate * v[i];
        }
        return (w, v);
    }

    // ---- conversions for the checks ----

    /// <summary>The floats as doubles (exact).</summary>
    public static double[] ToDouble(ReadOnlySpan<float> values)
    {
        var result = new double[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = values[i];
        return result;
    }

    /// <summary>The doubles rounded to float once.</summary>
    public static float[] ToFloat(ReadOnlySpan<double> values)
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
