using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Training;
using AlexNet.Cuda.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace AlexNet.Cuda.Tests.Torch;

/// <summary>
/// Training steps of the fully connected head (fc6…fc8, dropout off) on the OpenCL device against TorchSharp: the
/// same batch through torch's linear layers and ReLU, <c>cross_entropy</c> (mean over the batch), autograd, and
/// <c>torch.optim.SGD</c> with momentum (weight decay on the weights only, so two optimisers), for two steps. The
/// weights after them agree to 1e-4 of each array's largest value (float32 on both sides, different summation
/// orders); the first step's loss to 1e-5.
/// </summary>
[Collection(OpenClCollection.Name)]
public sealed class HeadTrainingTorchTests(OpenClFixture fixture)
{
    private static readonly ActivationPlan Pool5 = new("pool5", 12, 6, 6, 0, "[N][C][H][W]");

    [SkippableFact]
    public void TwoStepsEqualTorchAutogradAndSgd()
    {
        _ = fixture.Device;
        TorchReference.Require();
        AlexNetWeights weights = SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 13);
        const int n = 9, d0 = 432, classes = 11;
        const float lr = 0.02f, momentum = 0.9f, decay = 5e-4f;
        var random = new Random(21);
        var batches = new List<(float[] Features, int[] Labels)>();
        for (int step = 0; step < 2; step++)
        {
            var f = new float[n * d0];
            for (int i = 0; i < f.Length; i++) f[i] = (float)(random.NextDouble() * 2.5 - 0.4);
            batches.Add((f, [.. Enumerable.Range(0, n).Select(_ => random.Next(classes))]));
        }

        using var head = new FullyConnectedHead(fixture.Device, weights, Pool5, ["fc6", "fc7", "fc8"], n, keepProbability: 1f);
        var losses = new float[n];
        double firstLoss = 0;
        for (int step = 0; step < 2; step++)
        {
            double mean = head.Step(batches[step].Features, batches[step].Labels, n, new SgdStep(lr, momentum, decay), 0, losses);
            if (step == 0) firstLoss = mean;
        }
        AlexNetWeights engine = head.ExportWeights();

        using var scope = NewDisposeScope();
        var w = new TorchSharp.Modules.Parameter[3];
        var b = new TorchSharp.Modules.Parameter[3];
        for (int l = 0; l < 3; l++)
        {
            LayerWeights layer = weights.Layers[5 + l];
            w[l] = new TorchSharp.Modules.Parameter(tensor(layer.Weight, [layer.WeightShape[0], layer.WeightShape[1]]));
            b[l] = new TorchSharp.Modules.Parameter(tensor(layer.Bias, [layer.Bias.Length]));
        }
        var weightSgd = optim.SGD(w, lr, momentum, weight_decay: decay);
        var biasSgd = optim.SGD(b, lr, momentum);
        double torchFirstLoss = 0;
        for (int step = 0; step < 2; step++)
        {
            // The head's features are in the engine's [C][H][W] order; the file's fc6 rows take [H][W][C].
            Tensor x = tensor(FileOrder(batches[step].Features, n), [n, d0]);
            Tensor y = nn.functional.relu(x.matmul(w[0]) + b[0]);
            y = nn.functional.relu(y.matmul(w[1]) + b[1]);
            Tensor logits = y.matmul(w[2]) + b[2];
            Tensor loss = nn.functional.cross_entropy(logits, tensor(batches[step].Labels.Select(v => (long)v).ToArray(), [n]));
            if (step == 0) torchFirstLoss = loss.item<float>();
            weightSgd.zero_grad();
            biasSgd.zero_grad();
            loss.backward();
            weightSgd.step();
            biasSgd.step();
        }
        Assert.True(Math.Abs(firstLoss - torchFirstLoss) <= 1e-5 * Math.Max(1, torchFirstLoss), $"first loss: engine {firstLoss}, torch {torchFirstLoss}");
        for (int l = 0; l < 3; l++)
        {
            string name = FullyConnectedHead.LayerNames[l];
            AssertClose($"{name} weights", w[l].data<float>().ToArray(), engine[name].Weight);
            AssertClose($"{name} biases", b[l].data<float>().ToArray(), engine[name].Bias);
            Assert.NotEqual(weights[name].Weight, engine[name].Weight);
        }
    }

    private static float[] FileOrder(float[] features, int n)
    {
        int channels = Pool5.Channels, pixels = 36, per = channels * pixels;
        var result = new float[features.Length];
        for (int i = 0; i < n; i++)
        for (int c = 0; c < channels; c++)
        for (int p = 0; p < pixels; p++)
            result[i * per + p * channels + c] = features[i * per + c * pixels + p];
        return result;
    }

    private static void AssertClose(string what, float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(v => Math.Abs((double)v)), worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs((double)expected[i] - actual[i]));
        Assert.True(worst <= 1e-4 * scale, $"{what}: max |Δ| {worst:G3} against torch, bound 1e-4 × {scale:G3}");
    }
}
