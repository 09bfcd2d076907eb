using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Training;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Training;

/// <summary>
/// The fully connected head's training steps on the OpenCL device against a reference written here in double:
/// forward with the dropout masks of <see cref="LayerReference.DropoutUniform"/>, softmax cross-entropy, the
/// backward pass by the chain rule, and SGD with momentum and weight decay, over several steps (so the momentum
/// counts), on the narrow network's head (432 → 40 → 40 → 11) at an odd batch. Frozen layers must come back bit for
/// bit; trained ones within 1e-4 of the largest value of their array (float against double over three steps).
/// </summary>
[Collection(OpenClCollection.Name)]
public sealed class FullyConnectedHeadTests(OpenClFixture fixture)
{
    private const double Tolerance = 1e-4;
    private static readonly ActivationPlan Pool5 = new("pool5", 12, 6, 6, 0, "[N][C][H][W]");
    private const int Batch = 7;

    public static TheoryData<string, float> Cases() => new()
    {
        { "fc6,fc7,fc8", 0.6f },
        { "fc6,fc7,fc8", 1f },
        { "fc8", 0.5f },
        { "fc7", 0.5f },
        { "fc6,fc8", 0.7f },
    };

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void StepsMatchTheDoubleReference(string trained, float keep)
    {
        AlexNetWeights weights = SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 5);
        string[] layers = trained.Split(',');
        var random = new Random(11);
        int d0 = 432, classes = 11;
        var sgd = new SgdStep(0.05f, 0.9f, 1e-3f);
        var reference = new ReferenceHead(weights, layers, keep);
        using var head = new FullyConnectedHead(fixture.Device, weights, Pool5, layers, Batch, keep);
        var losses = new float[Batch];
        for (int step = 0; step < 3; step++)
        {
            // Engine order of pool5 ([C][H][W]); the reference takes the file's NHWC order, as the weight file does.
            var features = new float[Batch * d0];
            for (int i = 0; i < features.Length; i++) features[i] = (float)(random.NextDouble() * 3 - 0.5);
            int[] labels = [.. Enumerable.Range(0, Batch).Select(_ => random.Next(classes))];
            ulong seed = 0x1234_5678_9abcul + (ulong)step;
            double mean = head.Step(features, labels, Batch, sgd, seed, losses);
            double[] expectedLosses = reference.Step(ToFileOrder(features), labels, sgd, seed);
            for (int i = 0; i < Batch; i++)
                Assert.True(Math.Abs(losses[i] - expectedLosses[i]) <= 1e-4 * Math.Max(1, Math.Abs(expectedLosses[i])),
                    $"step {step} image {i}: loss {losses[i]}, reference {expectedLosses[i]}");
            Assert.Equal(expectedLosses.Average(), mean, 1e-4);
        }
        AlexNetWeights after = head.ExportWeights();
        IReadOnlyDictionary<string, float[]> velocity = head.ExportVelocity();
        for (int l = 0; l < 3; l++)
        {
            string name = FullyConnectedHead.LayerNames[l];
            LayerWeights got = after[name];
            if (!layers.Contains(name))
            {
                Assert.Equal(weights[name].Weight, got.Weight);
                Assert.Equal(weights[name].Bias, got.Bias);
                Assert.False(velocity.ContainsKey(name + ".weight"));
                continue;
            }
            AssertClose($"{name} weights", reference.Weights[l], got.Weight);
            AssertClose($"{name} biases", reference.Biases[l], got.Bias);
            AssertClose($"{name} weight momentum", reference.WeightVelocity[l], velocity[name + ".weight"]);
            AssertClose($"{name} bias momentum", reference.BiasVelocity[l], velocity[name + ".bias"]);
            // A layer that trained has moved: the comparison above is not of two unchanged copies.
            Assert.NotEqual(weights[name].Weight, got.Weight);
        }
    }

    [SkippableFact]
    public void EvaluateIsTheForwardPassWithoutDropoutAndVelocityRoundTrips()
    {
        AlexNetWeights weights = SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 8);
        using var head = new FullyConnectedHead(fixture.Device, weights, Pool5, ["fc6", "fc8"], Batch, 0.5f);
        var random = new Random(3);
        var features = new float[5 * 432];
        for (int i = 0; i < features.Length; i++) features[i] = (float)(random.NextDouble() * 2 - 0.3);
        var logits = new float[5 * 11];
        head.Evaluate(features, 5, logits);
        double[] expected = new ReferenceHead(weights, [], 1f).Forward(ToFileOrder(features), 5, null).Logits;
        AssertClose("logits", expected, logits);

        head.Step(features, [1, 2, 3, 4, 5], 5, new SgdStep(0.1f, 0.9f, 0f), 7, new float[5]);
        IReadOnlyDictionary<string, float[]> velocity = head.ExportVelocity();
        using var other = new FullyConnectedHead(fixture.Device, weights, Pool5, ["fc6", "fc8"], Batch, 0.5f);
        other.ImportVelocity(velocity);
        foreach ((string name, float[] values) in other.ExportVelocity()) Assert.Equal(velocity[name], values);
        var e = Assert.Throws<AlexNetException>(() => other.ImportVelocity(new Dictionary<string, float[]> { ["fc6.weight"] = velocity["fc6.weight"] }));
        Assert.Equal("the optimiser state has no momentum for fc6.bias", e.Message);
    }

    [SkippableFact]
    public void BadInputIsOneLine()
    {
        AlexNetWeights weights = SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 8);
        using var head = new FullyConnectedHead(fixture.Device, weights, Pool5, ["fc8"], 4, 0.5f);
        var features = new float[4 * 432];
        var e = Assert.Throws<AlexNetException>(() => head.Step(features, [0, 11, 0, 0], 4, new SgdStep(0.1f, 0, 0), 1, new float[4]));
        Assert.Equal("label 11 of image 1 is not a class of this head (0…10)", e.Message);
        e = Assert.Throws<AlexNetException>(() => head.Step(features, [0, 0, 0, 0, 0], 5, new SgdStep(0.1f, 0, 0), 1, new float[5]));
        Assert.Equal("a batch of the head holds 1…4 images, not 5", e.Message);
        e = Assert.Throws<AlexNetException>(() => new FullyConnectedHead(fixture.Device, weights, Pool5, ["conv5"], 4, 0.5f));
        Assert.Equal("the fully connected head has fc6, fc7 and fc8, not 'conv5'", e.Message);
    }

    /// <summary>[N][C][H][W] features to the file's [N][H][W][C] flatten.</summary>
    private static double[] ToFileOrder(float[] features)
    {
        int channels = Pool5.Channels, pixels = 36, per = channels * pixels, n = features.Length / per;
        var result = new double[features.Length];
        for (int i = 0; i < n; i++)
        for (int c = 0; c < channels; c++)
        for (int p = 0; p < pixels; p++)
            result[i * per + p * channels + c] = features[i * per + c * pixels + p];
        return result;
    }

    private static void AssertClose(string what, double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(Math.Abs), worst = 0;
        int at = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs(expected[i] - actual[i]);
            if (!(d <= worst)) (worst, at) = (d, i);
        }
        Assert.True(worst <= Tolerance * Math.Max(scale, 1e-30), $"{what}: |Δ| {worst:G3} at {at} (reference {expected[at]}, engine {actual[at]}), bound {Tolerance} × {scale:G3}");
    }

    /// <summary>The head in double, in the file's layouts, by the textbook chain rule.</summary>
    private sealed class ReferenceHead
    {
        private readonly bool[] _trained = new bool[3];
        private readonly int[] _widths;
        private readonly float _keep;

        public ReferenceHead(AlexNetWeights weights, string[] trained, float keep)
        {
            _keep = keep;
            _widths = [weights.Fc6.WeightShape[0], weights.Fc6.WeightShape[1], weights.Fc7.WeightShape[1], weights.Fc8.WeightShape[1]];
            for (int l = 0; l < 3; l++)
            {
                LayerWeights layer = weights.Layers[5 + l];
                Weights[l] = [.. layer.Weight.Select(v => (double)v)];
                Biases[l] = [.. layer.Bias.Select(v => (double)v)];
                WeightVelocity[l] = new double[layer.Weight.Length];
                BiasVelocity[l] = new double[layer.Bias.Length];
                _trained[l] = trained.Contains(FullyConnectedHead.LayerNames[l]);
            }
        }

        public double[][] Weights { get; } = new double[3][];
        public double[][] Biases { get; } = new double[3][];
        public double[][] WeightVelocity { get; } = new double[3][];
        public double[][] BiasVelocity { get; } = new double[3][];

        /// <summary>Activations [input, fc6, fc7] and the logits; dropout with <paramref name="seed"/> (null: none).</summary>
        public (double[][] Activations, double[] Logits) Forward(double[] x, int n, ulong? seed)
        {
            var acts = new double[3][];
            acts[0] = x;
            double[] current = x;
            for (int l = 0; l < 3; l++)
            {
                int inputs = _widths[l], outputs = _widths[l + 1];
                var y = new double[n * outputs];
                for (int i = 0; i < n; i++)
                for (int o = 0; o < outputs; o++)
                {
                    double sum = Biases[l][o];
                    for (int k = 0; k < inputs; k++) sum += current[i * inputs + k] * Weights[l][k * outputs + o];
                    if (l < 2)
                    {
                        sum = Math.Max(0, sum);
                        if (seed is ulong s && _keep < 1)
                        {
                            ulong e = (l == 0 ? 0ul : 1ul << 31) + (ulong)(i * outputs + o);
                            sum = LayerReference.DropoutUniform(s, e) < _keep ? sum / _keep : 0;
                        }
                    }
                    y[i * outputs + o] = sum;
                }
                if (l < 2) acts[l + 1] = y;
                current = y;
            }
            return (acts, current);
        }

        public double[] Step(double[] x, int[] labels, SgdStep sgd, ulong seed)
        {
            int n = labels.Length, classes = _widths[3];
            (double[][] acts, double[] logits) = Forward(x, n, seed);
            var losses = new double[n];
            var g = new double[n * classes];
            for (int i = 0; i < n; i++)
            {
                double max = double.NegativeInfinity;
                for (int c = 0; c < classes; c++) max = Math.Max(max, logits[i * classes + c]);
                double sum = 0;
                for (int c = 0; c < classes; c++) sum += Math.Exp(logits[i * classes + c] - max);
                losses[i] = Math.Log(sum) + max - logits[i * classes + labels[i]];
                for (int c = 0; c < classes; c++)
                    g[i * classes + c] = (Math.Exp(logits[i * classes + c] - max) / sum - (c == labels[i] ? 1 : 0)) / n;
            }
            var weightGrads = new double[3][];
            var biasGrads = new double[3][];
            int lowest = Array.IndexOf(_trained, true);
            for (int l = 2; l >= lowest; l--)
            {
                int inputs = _widths[l], outputs = _widths[l + 1];
                double[] xin = acts[l];
                weightGrads[l] = new double[inputs * outputs];
                biasGrads[l] = new double[outputs];
                for (int i = 0; i < n; i++)
                for (int o = 0; o < outputs; o++)
                {
                    double go = g[i * outputs + o];
                    biasGrads[l][o] += go;
                    for (int k = 0; k < inputs; k++) weightGrads[l][k * outputs + o] += xin[i * inputs + k] * go;
                }
                if (l == 0) break;
                // Through X = dropout(relu(z)): dz = dX · [kept] / keep · [z > 0], and z > 0 exactly where the stored X > 0.
                var dx = new double[n * inputs];
                for (int i = 0; i < n; i++)
                for (int k = 0; k < inputs; k++)
                {
                    if (!(xin[i * inputs + k] > 0)) continue;
                    double sum = 0;
                    for (int o = 0; o < outputs; o++) sum += g[i * outputs + o] * Weights[l][k * outputs + o];
                    dx[i * inputs + k] = _keep < 1 ? sum / _keep : sum;
                }
                g = dx;
            }
            for (int l = 0; l < 3; l++)
            {
                if (!_trained[l]) continue;
                for (int i = 0; i < Weights[l].Length; i++)
                {
                    WeightVelocity[l][i] = sgd.Momentum * WeightVelocity[l][i] + weightGrads[l][i] + sgd.WeightDecay * Weights[l][i];
                    Weights[l][i] -= sgd.LearningRate * WeightVelocity[l][i];
                }
                for (int i = 0; i < Biases[l].Length; i++)
                {
                    BiasVelocity[l][i] = sgd.Momentum * BiasVelocity[l][i] + biasGrads[l][i];
                    Biases[l][i] -= sgd.LearningRate * BiasVelocity[l][i];
                }
            }
            return losses;
        }
    }
}
