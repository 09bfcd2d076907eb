using System.Globalization;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Training;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// The backward kernels (<see cref="BackwardKernels"/>) and a fully connected layer's backward pass (two GEMMs
/// and the bias gradient) against <see cref="BackwardReference"/>: AlexNet's shapes at small batches where they
/// are cheap, and awkward ones (odd sizes, not multiples of the block, single elements, grids past the
/// grid-stride cap), on <see cref="KernelChecks.TestData"/> with its outliers plus NaN where an operation has
/// rules for it. Every output buffer is longer than the result and pre-filled with NaN (in-place buffers end in
/// NaN guards), so a missing write or a write past the end shows up. Part of <see cref="KernelChecks.All"/>.
/// </summary>
public static class BackwardChecks
{
    /// <summary>Elements after each output that the kernel must leave alone.</summary>
    private const int Guard = 5;

    /// <summary>A NaN with a payload of its own, to tell it from the NaN the output buffers are filled with.</summary>
    private static readonly float MarkedNaN = BitConverter.UInt32BitsToSingle(0x7FC0_0123);

    /// <summary>More elements than the grid-stride kernels' largest grid has threads: some threads take two.</summary>
    private const int PastGridStrideCap = BackwardKernels.MaxGridStrideBlocks * BackwardKernels.BlockSize + 1237;

    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All()
    {
        foreach ((int rows, int classes, float scale, bool inPlace, string note) in SoftmaxCases)
            yield return (string.Create(CultureInfo.InvariantCulture,
                    $"softmax_xent_backward_kernel1 {rows}x{classes} scale {scale}{(inPlace ? " in place" : "")}{note}"),
                d => SoftmaxCrossEntropy(d, rows, classes, scale, inPlace, note));
        foreach ((int count, string note) in ReluCases)
            yield return ($"relu_backward_kernel1 {count} elements{note}", d => ReluBackward(d, count));
        foreach ((int count, float keepProb, ulong seed, uint offset) in DropoutCases)
            yield return (string.Create(CultureInfo.InvariantCulture, $"dropout_backward_kernel1 {count} elements keep {keepProb} seed {seed:x} offset {offset}"),
                d => DropoutBackward(d, count, keepProb, seed, offset));
        foreach ((int count, float keepProb, ulong seed, uint offset) in DropoutMaskCases)
            yield return (string.Create(CultureInfo.InvariantCulture,
                    $"dropout_backward_kernel1 keeps dropout_kernel1's elements: {count} at offset {offset} keep {keepProb} seed {seed:x}"),
                d => DropoutMask(d, count, keepProb, seed, offset));
        foreach ((int outer, int channels, int inner, bool accumulate, string note) in BiasGradientCases)
            yield return ($"{(inner == 1 ? "bias_grad_columns_kernel1" : "bias_grad_kernel1")} ({outer}, {channels}, {inner}){(accumulate ? " accumulate" : "")}{note}",
                d => BiasGradient(d, outer, channels, inner, accumulate));
        foreach ((int count, float lr, float momentum, float decay, string note) in SgdCases)
        {
            // Both variants on whatever device runs the checks, so PoCL proves the GPU's kernel too.
            yield return (string.Create(CultureInfo.InvariantCulture, $"sgd_momentum_kernel1 {count} elements lr {lr} momentum {momentum} decay {decay}{note}"),
                d => SgdMomentum(d, count, lr, momentum, decay, NetworkKernelTarget.Gpu));
            yield return (string.Create(CultureInfo.InvariantCulture, $"sgd_momentum_kernel2 {count} elements lr {lr} momentum {momentum} decay {decay}{note}"),
                d => SgdMomentum(d, count, lr, momentum, decay, NetworkKernelTarget.Cpu));
        }
        foreach ((int batch, int inputs, int outputs, string note) in FullyConnectedCases)
            yield return ($"fc backward {batch}x{inputs}->{outputs}: dW = X^T dY, dX = dY W^T (sgemm), dB (bias_grad_columns_kernel1){note}",
                d => FullyConnectedBackward(d, batch, inputs, outputs));
    }

    /// <summary>fc8 at batch 3, awkward class counts (one class, past a block, one past 1000), and rows whose label
    /// is out of range (−1 and classes).</summary>
    internal static readonly (int Rows, int Classes, float Scale, bool InPlace, string Note)[] SoftmaxCases =
    [
        (3, 1000, 1f / 3, false, " (fc8, batch 3)"),
        (3, 1000, 1f / 3, true, " (fc8, batch 3)"),
        (2, 1001, 1f, false, ""),
        (1, 257, 0.5f, true, ""),
        (5, 1, 0.2f, false, " (one class: zero gradient, zero loss)"),
        (4, 10, 0.25f, false, " (labels -1 and 10 in rows 1 and 2)"),
        (4, 10, -2f, true, " (labels -1 and 10 in rows 1 and 2)"),
        (2, 300, 1f, false, " (the outlier logit is row 0's label)"),
    ];

    internal static readonly (int Count, string Note)[] ReluCases =
    [
        (1, ""), (7, ""), (4099, ""), (3 * 4096, " (fc6, batch 3)"), (96 * 55 * 55, " (conv1, batch 1)"),
        (PastGridStrideCap, " (past the grid-stride cap)"),
    ];

    internal static readonly (int Count, float KeepProb, ulong Seed, uint Offset)[] DropoutCases =
    [
        (1000, 0.5f, 0x0123_4567_89AB_CDEF, 0),
        (4099, 0.8f, 42, 6),
        (3, 0.3f, 7, 1),
        (257, 1f, 5, 0),
        (1, 0.5f, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF),
        (2 * 4096, 0.5f, 99, 8193),
    ];

    /// <summary>The forward kernel's mask, drawn again by the backward one: offsets inside a Philox block, and a
    /// range that runs past 2³² global indices.</summary>
    internal static readonly (int Count, float KeepProb, ulong Seed, uint Offset)[] DropoutMaskCases =
    [
        (2 * 4096, 0.5f, 0x5EED, 0), (1001, 0.7f, 0x5EED, 3), (4099, 0.1f, 1UL << 40, 4097), (77, 0.5f, 3, 0xFFFF_FFF0),
    ];

    internal static readonly (int Outer, int Channels, int Inner, bool Accumulate, string Note)[] BiasGradientCases =
    [
        (3, 4096, 1, false, " (fc6, batch 3)"),
        (5, 37, 1, false, ""),
        (1, 1, 1, false, ""),
        (70, 10, 1, true, " (more rows than a chunk)"),
        (1, 96, 55 * 55 * 2, false, " (conv1, batch 2)"),
        (1, 384, 13 * 13 * 3, true, " (conv3, batch 3)"),
        (1, 3, 200_003, false, " (200k terms per channel)"),
        (2, 5, 33, false, " (inner below the block)"),
        (3, 4, 257, true, ""),
        (1, 2, 2, false, ""),
    ];

    internal static readonly (int Count, float LearningRate, float Momentum, float WeightDecay, string Note)[] SgdCases =
    [
        (1, 0.01f, 0.9f, 5e-4f, ""),
        (7, 0.1f, 0f, 0f, " (plain SGD)"),
        (4099, 0.01f, 0.9f, 5e-4f, " (AlexNet's hyperparameters)"),
        (1000, 0f, 0.5f, 1e-3f, " (learning rate 0: weights unchanged)"),
        (PastGridStrideCap, 0.05f, 0.99f, 1e-3f, " (past the grid-stride cap)"),
    ];

    internal static readonly (int Batch, int Inputs, int Outputs, string Note)[] FullyConnectedCases =
    [
        (3, 37, 29, ""),
        (1, 1, 1, ""),
        (4, 300, 100, ""),
        (2, 9216, 16, " (fc6's 9216 inputs)"),
        (3, 4096, 1000, " (fc8, batch 3)"),
    ];

    /// <summary>The labels of a check: row r's is (7r + 3) mod classes, with the out-of-range ones its note asks for.</summary>
    private static int[] Labels(int rows, int classes, string note)
    {
        var labels = new int[rows];
        for (int r = 0; r < rows; r++) labels[r] = (7 * r + 3) % classes;
        if (note.Contains("labels -1", StringComparison.Ordinal))
        {
            labels[1] = -1;
            labels[2] = classes;
        }
        return labels;
    }

    public static ComparisonResult SoftmaxCrossEntropy(ComputeDevice device, int rows, int classes, float scale, bool inPlace, string note)
    {
        // Logits in [-8, 8), as the softmax check; the test data's outlier (3e4) in row 0 of several turns it
        // into a one-hot (its label's gradient -scale and the outlier's +scale, or, as its label, all zero).
        float[] logits = KernelChecks.TestData(rows * classes, seed: 101 + classes);
        for (int i = 0; i < logits.Length; i++) logits[i] = 8 * Math.Clamp(logits[i], -1f, 1f);
        int[] labels = Labels(rows, classes, note);
        if (rows > 1) logits[note.Contains("outlier", StringComparison.Ordinal) ? labels[0] : classes / 3 + 1] = 3.0e4f;
        int count = rows * classes;

        double[] z = BackwardReference.ToDouble(logits);
        double[] loss = BackwardReference.SoftmaxCrossEntropyLoss(z, labels, rows, classes);
        double[] grad = BackwardReference.SoftmaxCrossEntropyGradient(z, labels, rows, classes, scale);
        // Error scales (BackwardTolerances.Softmax): the softmax's own per probability, the subtraction and the
        // product; for the loss the sum's, log's and the two additions'.
        var gradMagnitude = new double[count + Guard];
        var lossMagnitude = new double[rows + Guard];
        for (int r = 0; r < rows; r++)
        {
            if (labels[r] < 0 || labels[r] >= classes) continue;
            ReadOnlySpan<double> row = z.AsSpan(r * classes, classes);
            (double max, double sum) = BackwardReference.MaxAndSumOfExp(row);
            for (int k = 0; k < classes; k++)
            {
                double p = Math.Exp(row[k] - max) / sum;
                gradMagnitude[r * classes + k] = Math.Abs(scale) *
                    (p * (classes + 4 + Math.Abs(row[k] - max)) + 2 * Math.Abs(p - (k == labels[r] ? 1 : 0)));
            }
            lossMagnitude[r] = classes + 4 + 4 * Math.Log(sum) + 2 * (max - row[labels[r]]);
        }

        using var kernels = new BackwardKernels(device);
        using DeviceBuffer<float> dLogits = device.Upload<float>(Guarded(logits));
        using DeviceBuffer<int> dLabels = device.Upload<int>(labels);
        using DeviceBuffer<float> dLoss = NaNFilled(device, rows + Guard);
        using DeviceBuffer<float>? separate = inPlace ? null : NaNFilled(device, count + Guard);
        DeviceBuffer<float> dGrad = separate ?? dLogits;
        kernels.SoftmaxCrossEntropyBackward(device.DefaultStream, dGrad, dLoss, dLogits, dLabels, rows, classes, scale);

        if (!inPlace)
        {
            ComparisonResult untouched = Comparison.Exact(device.Download(dLogits), Guarded(logits));
            if (!untouched.Passed) return untouched with { Detail = "logits changed: " + untouched.Detail };
        }
        return Both(
            ("gradLogits", Comparison.AgainstMagnitude(device.Download(dGrad), Guarded(BackwardReference.ToFloat(grad)), gradMagnitude, 0,
                BackwardTolerances.SoftmaxRtol)),
            ("loss", Comparison.AgainstMagnitude(device.Download(dLoss), Guarded(BackwardReference.ToFloat(loss)), lossMagnitude, 0,
                BackwardTolerances.SoftmaxRtol)));
    }

    public static ComparisonResult ReluBackward(ComputeDevice device, int count)
    {
        // The output of a ReLU: zeros (half the data), -0 (from the data's -0), a subnormal, +inf and NaN
        // (the forward keeps NaN); grad with NaN where the output is positive (kept) and where it is 0 (zeroed).
        float[] output = KernelChecks.TestData(count, seed: 103 + count);
        for (int i = 0; i < count; i++) output[i] = output[i] < 0 ? 0f : output[i];
        float[] grad = KernelChecks.TestData(count, seed: 107 + count);
        if (count > 8)
        {
            output[1] = 1e-45f;
            output[2] = float.PositiveInfinity;
            output[3] = float.NaN;
            output[4] = 0.5f;
            grad[4] = MarkedNaN;
            output[5] = 0f;
            grad[5] = MarkedNaN;
        }
        float[] expected = BackwardReference.ToFloat(BackwardReference.ReluBackward(BackwardReference.ToDouble(grad), BackwardReference.ToDouble(output)));
        using var kernels = new BackwardKernels(device);
        using DeviceBuffer<float> dGrad = device.Upload<float>(Guarded(grad));
        using DeviceBuffer<float> dOutput = device.Upload<float>(output);
        kernels.ReluBackward(device.DefaultStream, dGrad, dOutput, count);
        // Selection, no arithmetic: bit for bit, the marked NaN's payload included.
        return Comparison.Exact(device.Download(dGrad), Guarded(expected));
    }

    public static ComparisonResult DropoutBackward(ComputeDevice device, int count, float keepProb, ulong seed, uint offset)
    {
        float[] grad = KernelChecks.TestData(count, seed: 109 + count);
        if (count > 10) grad[count / 2] = float.NaN; // kept: NaN; dropped: 0
        float[] expected = BackwardReference.ToFloat(BackwardReference.DropoutBackward(BackwardReference.ToDouble(grad), keepProb, seed, offset));
        using var kernels = new BackwardKernels(device);
        using DeviceBuffer<float> dGrad = device.Upload<float>(Guarded(grad));
        kernels.DropoutBackward(device.DefaultStream, dGrad, count, keepProb, seed, offset);
        // One float product per kept element: the double reference rounded once, exactly (any NaN for NaN).
        return SameValues(device.Download(dGrad), Guarded(expected));
    }

    /// <summary>Ones through the forward kernel and ones through the backward one, with one seed and offset: both
    /// give 1/keepProb where the element is kept and 0 where it is dropped, so equal outputs are equal masks.</summary>
    public static ComparisonResult DropoutMask(ComputeDevice device, int count, float keepProb, ulong seed, uint offset)
    {
        float[] ones = new float[count];
        Array.Fill(ones, 1f);
        using var forwardKernels = new NetworkKernels(device);
        using var backwardKernels = new BackwardKernels(device);
        using DeviceBuffer<float> forward = device.Upload<float>(ones);
        using DeviceBuffer<float> backward = device.Upload<float>(ones);
        forwardKernels.Dropout(device.DefaultStream, forward, count, keepProb, seed, offset);
        backwardKernels.DropoutBackward(device.DefaultStream, backward, count, keepProb, seed, offset);
        float[] mask = device.Download(forward);
        int kept = mask.Count(v => v != 0);
        if (kept == 0 || (keepProb < 1 && kept == count && count > 50))
            return new ComparisonResult(false, count, double.PositiveInfinity, -1, 0, $"the forward mask keeps {kept} of {count}: nothing to compare");
        ComparisonResult result = Comparison.Exact(device.Download(backward), mask);
        return result with { Detail = $"{kept} of {count} kept; " + result.Detail };
    }

    public static ComparisonResult BiasGradient(ComputeDevice device, int outer, int channels, int inner, bool accumulate)
    {
        int count = outer * channels * inner;
        float[] grad = KernelChecks.TestData(count, seed: 113 + channels + inner);
        if (count > 3)
        {
            // Terms far above the rounding bound at both ends, so that losing the first or the last shows.
            grad[0] = 64f;
            grad[count - 1] = -64f;
        }
        float[] old = accumulate ? KernelChecks.TestData(channels, seed: 127 + channels) : new float[channels];
        double[] sum = BackwardReference.BiasGradient(BackwardReference.ToDouble(grad), outer, channels, inner);
        double[] absSum = BackwardReference.BiasGradient(Absolute(grad), outer, channels, inner);
        var expected = new double[channels];
        var magnitude = new double[channels + Guard];
        for (int c = 0; c < channels; c++)
        {
            expected[c] = old[c] + sum[c];
            magnitude[c] = absSum[c] + Math.Abs(old[c]);
            if (magnitude[c] == 0) magnitude[c] = double.Epsilon;
        }

        using var kernels = new BackwardKernels(device);
        using DeviceBuffer<float> dGrad = device.Upload<float>(grad);
        using DeviceBuffer<float> first = accumulate ? device.Upload<float>(Guarded(old)) : NaNFilled(device, channels + Guard);
        using DeviceBuffer<float> second = accumulate ? device.Upload<float>(Guarded(old)) : NaNFilled(device, channels + Guard);
        kernels.BiasGradient(device.DefaultStream, first, dGrad, outer, channels, inner, accumulate);
        kernels.BiasGradient(device.DefaultStream, second, dGrad, outer, channels, inner, accumulate);
        float[] result = device.Download(first);
        ComparisonResult again = Comparison.Exact(device.Download(second), result);
        if (!again.Passed) return again with { Detail = "a second run differs (not deterministic): " + again.Detail };
        return Comparison.AgainstMagnitude(result, Guarded(BackwardReference.ToFloat(expected)), magnitude, 0,
            BackwardTolerances.BiasGradientRtol(outer, inner));
    }

    public static ComparisonResult SgdMomentum(ComputeDevice device, int count, float learningRate, float momentum, float weightDecay,
        NetworkKernelTarget target)
    {
        float[] weights = KernelChecks.TestData(count, seed: 131 + count);
        float[] velocity = KernelChecks.TestData(count, seed: 137 + count);
        float[] grad = KernelChecks.TestData(count, seed: 139 + count);
        for (int i = 0; i < count; i++) velocity[i] *= 0.1f;
        (double[] w, double[] v) = BackwardReference.SgdMomentum(BackwardReference.ToDouble(weights), BackwardReference.ToDouble(velocity),
            BackwardReference.ToDouble(grad), learningRate, momentum, weightDecay);
        // Error scales (BackwardTolerances.Sgd*): the velocity's terms, and the weight plus the step's.
        var velocityMagnitude = new double[count + Guard];
        var weightMagnitude = new double[count + Guard];
        for (int i = 0; i < count; i++)
        {
            velocityMagnitude[i] = Math.Abs((double)momentum * velocity[i]) + Math.Abs((double)grad[i]) + Math.Abs((double)weightDecay * weights[i]);
            weightMagnitude[i] = Math.Abs((double)weights[i]) + learningRate * velocityMagnitude[i];
            if (velocityMagnitude[i] == 0) velocityMagnitude[i] = double.Epsilon;
            if (weightMagnitude[i] == 0) weightMagnitude[i] = double.Epsilon;
        }

        using var kernels = new BackwardKernels(device, target);
        using DeviceBuffer<float> dWeights = device.Upload<float>(Guarded(weights));
        using DeviceBuffer<float> dVelocity = device.Upload<float>(Guarded(velocity));
        using DeviceBuffer<float> dGrad = device.Upload<float>(grad);
        kernels.SgdMomentum(device.DefaultStream, dWeights, dVelocity, dGrad, count, learningRate, momentum, weightDecay);
        return Both(
            ("velocity", Comparison.AgainstMagnitude(device.Download(dVelocity), Guarded(BackwardReference.ToFloat(v)), velocityMagnitude, 0,
                BackwardTolerances.SgdVelocityRtol)),
            ("weights", Comparison.AgainstMagnitude(device.Download(dWeights), Guarded(BackwardReference.ToFloat(w)), weightMagnitude, 0,
                BackwardTolerances.SgdWeightsRtol)));
    }

    /// <summary>
    /// A fully connected layer's backward pass as the training loop queues it, on the engine's layouts (x [N][in],
    /// w [in][out] as in the weight file, dY [N][out], all row-major): <c>dW[in][out] = Xᵀ·dY</c> and
    /// <c>dX[N][in] = dY·Wᵀ</c> as two GEMMs through row-major views (the transposes expressed by
    /// <see cref="MatrixView.T"/>, no data moved), and <c>dB = BiasGradient(dY, N, out, 1)</c>.
    /// </summary>
    public static ComparisonResult FullyConnectedBackward(ComputeDevice device, int batch, int inputs, int outputs)
    {
        float[] x = KernelChecks.TestData(batch * inputs, seed: 149 + inputs);
        float[] w = KernelChecks.TestData(inputs * outputs, seed: 151 + outputs);
        float[] dy = KernelChecks.TestData(batch * outputs, seed: 157 + batch);
        (double[] dx, double[] dw, double[] db) = BackwardReference.FullyConnectedBackward(BackwardReference.ToDouble(x),
            BackwardReference.ToDouble(w), BackwardReference.ToDouble(dy), batch, inputs, outputs);
        // Σ|a·b| of each element: the same products of the absolute values.
        (double[] dxMagnitude, double[] dwMagnitude, double[] dbMagnitude) = BackwardReference.FullyConnectedBackward(Absolute(x),
            Absolute(w), Absolute(dy), batch, inputs, outputs);

        using var kernels = new BackwardKernels(device);
        using DeviceBuffer<float> dX = device.Upload<float>(x);
        using DeviceBuffer<float> dW = device.Upload<float>(w);
        using DeviceBuffer<float> dDy = device.Upload<float>(dy);
        using DeviceBuffer<float> gradW = NaNFilled(device, inputs * outputs + Guard);
        using DeviceBuffer<float> gradX = NaNFilled(device, batch * inputs + Guard);
        using DeviceBuffer<float> gradB = NaNFilled(device, outputs + Guard);
        ComputeStream s = device.DefaultStream;
        // dW [in][out] = Xᵀ [in][N] · dY [N][out]
        s.Gemm(MatrixView.RowMajor(dX, batch, inputs).T, MatrixView.RowMajor(dDy, batch, outputs), MatrixView.RowMajor(gradW, inputs, outputs));
        // dX [N][in] = dY [N][out] · Wᵀ [out][in]
        s.Gemm(MatrixView.RowMajor(dDy, batch, outputs), MatrixView.RowMajor(dW, inputs, outputs).T, MatrixView.RowMajor(gradX, batch, inputs));
        kernels.BiasGradient(s, gradB, dDy, batch, outputs, 1);

        return Both(
            ("dW", Comparison.AgainstMagnitude(device.Download(gradW), Guarded(BackwardReference.ToFloat(dw)), Padded(dwMagnitude),
                Tolerances.GemmAtol, Tolerances.GemmRtol(batch))),
            ("dX", Comparison.AgainstMagnitude(device.Download(gradX), Guarded(BackwardReference.ToFloat(dx)), Padded(dxMagnitude),
                Tolerances.GemmAtol, Tolerances.GemmRtol(outputs))),
            ("dB", Comparison.AgainstMagnitude(device.Download(gradB), Guarded(BackwardReference.ToFloat(db)), Padded(dbMagnitude),
                0, BackwardTolerances.BiasGradientRtol(batch, 1))));
    }

    /// <summary>The first failing comparison, named; or all passing ones' details, named.</summary>
    private static ComparisonResult Both(params ReadOnlySpan<(string Name, ComparisonResult Result)> results)
    {
        foreach ((string name, ComparisonResult result) in results)
            if (!result.Passed) return result with { Detail = $"{name}: {result.Detail}" };
        var details = new List<string>();
        foreach ((string name, ComparisonResult result) in results) details.Add($"{name}: {result.Detail}");
        return results[^1].Result with { Detail = string.Join("; ", details) };
    }

    private static double[] Absolute(float[] values)
    {
        var result = new double[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = Math.Abs((double)values[i]);
        return result;
    }

    /// <summary>Magnitudes for a guarded output: the guard's are 0 (it must stay as it was, exactly); an element
    /// whose terms are all 0 gets the smallest magnitude, so its 0 is compared, not skipped.</summary>
    private static double[] Padded(double[] magnitude)
    {
        var result = new double[magnitude.Length + Guard];
        for (int i = 0; i < magnitude.Length; i++) result[i] = magnitude[i] == 0 ? double.Epsilon : magnitude[i];
        return result;
    }

    /// <summary>Equal values: bit for bit except that any NaN matches any NaN and -0 matches +0, for results of
    /// arithmetic (a GPU returns its own canonical NaN, not the operand's payload).</summary>
    private static ComparisonResult SameValues(float[] got, float[] expected) =>
        Comparison.AgainstMagnitude(got, expected, new double[expected.Length], 0, 0);

    private static DeviceBuffer<float> NaNFilled(ComputeDevice device, int length)
    {
        DeviceBuffer<float> buffer = device.Allocate<float>(length);
        device.Fill(buffer, float.NaN);
        return buffer;
    }

    /// <summary>The values followed by <see cref="Guard"/> NaNs, as a NaN-filled output buffer ends.</summary>
    private static float[] Guarded(float[] values)
    {
        var result = new float[values.Length + Guard];
        values.CopyTo(result, 0);
        result.AsSpan(values.Length).Fill(float.NaN);
        return result;
    }
}

/// <summary>The backward kernels' tolerances against the double reference, in one place (<see cref="Tolerances"/>
/// holds the forward ones); each is twice the float rounding bound of the kernel's arithmetic.</summary>
public static class BackwardTolerances
{
    private const double U = Tolerances.Float32Roundoff;

    /// <summary>
    /// Softmax cross-entropy, per element: |error| ≤ SoftmaxRtol·magnitude. The gradient's magnitude is
    /// |scale|·(p·(classes + 4 + |z − max z|) + 2·|p − onehot|): the probability's error as the softmax check's
    /// (the sum of the exponentials (classes − 1)·u, exp 4 ulp, z − max rounded), then the subtraction and the
    /// product by scale. The loss's is classes + 4 + 4·log s + 2·(max − z_label): the sum's relative error is log's
    /// absolute one, log adds 4 ulp, and each of the two additions one rounding.
    /// </summary>
    public const double SoftmaxRtol = 2 * U;

    /// <summary>
    /// The bias gradient against the double sum, relative to Σ|terms| (+ |old| when accumulating): twice the
    /// longest chain of float additions a term passes through in bias_grad.cu — its chunk sum (CHUNK − 1), the
    /// chunk sums' total (ceil(m / CHUNK), m the thread's terms), the tree (log2 of the block, inner &gt; 1 only) and
    /// the accumulation (1), plus 1.
    /// </summary>
    public static double BiasGradientRtol(int outer, int inner)
    {
        const int chunk = BackwardKernels.BiasGradientChunk;
        long terms = inner == 1 ? outer : (long)outer * ((inner + BackwardKernels.BlockSize - 1) / BackwardKernels.BlockSize);
        double tree = inner == 1 ? 0 : Math.Log2(BackwardKernels.BlockSize);
        return 2 * ((chunk - 1) + Math.Ceiling((double)terms / chunk) + tree + 2) * U;
    }

    /// <summary>The velocity after one SGD step, relative to |momentum·v| + |grad| + |weightDecay·w|: the product
    /// and two additions give at most 3 roundings of that size.</summary>
    public const double SgdVelocityRtol = 6 * U;

    /// <summary>The weights after one SGD step, relative to |w| + learningRate·(the velocity's magnitude): the
    /// velocity's 3 roundings scaled by the learning rate, the product and the subtraction, at most 5 in all.</summary>
    public const double SgdWeightsRtol = 10 * U;
}
