using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Training;
using AlexNet.Cuda.Weights;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AlexNet.Cuda.Tests.Torch;

/// <summary>
/// Training steps through the convolutions (<see cref="NetworkTrainer"/>) on the OpenCL device against TorchSharp
/// autograd and <c>torch.optim.SGD</c>, on the narrow network (every layer kind, both group splits, the fc6 reorder):
/// conv1 from the image, LRN and pooling backward, frozen layers between trained ones passing the gradient on, dropout
/// off, two steps with momentum and weight decay. What is compared is each trained array's change over the two steps
/// (the weights themselves would hide a wrong update under their own size), within 2e-3 of its largest value: float32
/// on both sides, summed in different orders through eight layers. Frozen layers must come back bit for bit.
/// </summary>
[Collection(OpenClCollection.Name)]
public sealed class NetworkTrainingTorchTests(OpenClFixture fixture)
{
    private const double Tolerance = 2e-3;

    public static TheoryData<string> Cases() => new()
    {
        "conv1,conv3,conv5,fc7",
        "conv2,fc8",
        "conv4,conv5,fc6,fc7,fc8",
    };

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void TwoStepsEqualTorchAutogradAndSgd(string trained)
    {
        _ = fixture.Device;
        TorchReference.Require();
        string[] layers = trained.Split(',');
        AlexNetWeights weights = SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 17);
        const int n = 3, classes = 11;
        const float lr = 0.002f, momentum = 0.9f, decay = 5e-4f;
        var random = new Random(5);
        var batches = new List<(float[] Images, int[] Labels)>();
        for (int step = 0; step < 2; step++)
        {
            float[] images = SyntheticNetwork.Images(n, 40 + step);
            for (int i = 0; i < images.Length; i++) images[i] *= 0.05f;
            batches.Add((images, [.. Enumerable.Range(0, n).Select(_ => random.Next(classes))]));
        }

        using var trainer = new NetworkTrainer(fixture.Device, weights, layers, n, keepProbability: 1f);
        int lowest = layers.Min(l => Array.IndexOf([.. AlexNetArchitecture.LayerNames], l));
        string[] features = ["input", "pool1", "pool2", "conv3", "conv4", "pool5", "pool5", "pool5"];
        Assert.Equal(features[lowest], trainer.InputLayer);
        using var model = AlexNetModel.Create(fixture.Device, weights, new AlexNetOptions { MaxBatch = n, Architecture = SyntheticNetwork.Narrow });
        var losses = new float[n];
        double[] engineLosses = new double[2];
        for (int step = 0; step < 2; step++)
        {
            // The frozen part's output, as finetune keeps it.
            float[] input = trainer.InputLayer == "input" ? batches[step].Images
                : model.Features(batches[step].Images, n, [trainer.InputLayer])[trainer.InputLayer];
            engineLosses[step] = trainer.Step(input, batches[step].Labels, n, new SgdStep(lr, momentum, decay), 0, losses);
        }
        AlexNetWeights engine = trainer.ExportWeights();

        using var scope = NewDisposeScope();
        var parameters = new Dictionary<string, (TorchSharp.Modules.Parameter W, TorchSharp.Modules.Parameter B)>();
        foreach (LayerWeights layer in weights.Layers)
        {
            int[] s = layer.WeightShape;
            Tensor w = layer.Spec.Kind == LayerKind.Convolution
                ? tensor(layer.Weight, [s[0], s[1], s[2], s[3]]).permute(3, 2, 0, 1).contiguous()
                : tensor(layer.Weight, [s[0], s[1]]).t().contiguous();
            parameters[layer.Name] = (new TorchSharp.Modules.Parameter(w, requires_grad: layers.Contains(layer.Name)),
                new TorchSharp.Modules.Parameter(tensor(layer.Bias), requires_grad: layers.Contains(layer.Name)));
        }
        var weightSgd = optim.SGD(layers.Select(l => parameters[l].W), lr, momentum, weight_decay: decay);
        var biasSgd = optim.SGD(layers.Select(l => parameters[l].B), lr, momentum);
        for (int step = 0; step < 2; step++)
        {
            Tensor logits = Forward(parameters, weights, batches[step].Images, n);
            Tensor loss = F.cross_entropy(logits, tensor(batches[step].Labels.Select(v => (long)v).ToArray(), [n]));
            Assert.True(Math.Abs(loss.item<float>() - engineLosses[step]) <= 1e-4 * Math.Max(1, Math.Abs(engineLosses[step])),
                $"step {step}: loss {engineLosses[step]} against torch's {loss.item<float>()}");
            weightSgd.zero_grad();
            biasSgd.zero_grad();
            loss.backward();
            weightSgd.step();
            biasSgd.step();
        }

        foreach (LayerWeights before in weights.Layers)
        {
            LayerWeights after = engine[before.Name];
            if (!layers.Contains(before.Name))
            {
                Assert.Equal(before.Weight, after.Weight);
                Assert.Equal(before.Bias, after.Bias);
                continue;
            }
            int[] s = before.WeightShape;
            Tensor w = parameters[before.Name].W.detach();
            // Back to the file's layout: OIHW → HWIO, (out, in) → (in, out).
            float[] torchWeight = (before.Spec.Kind == LayerKind.Convolution ? w.permute(2, 3, 1, 0) : w.t()).contiguous().data<float>().ToArray();
            AssertSameChange($"{before.Name} weights", before.Weight, torchWeight, after.Weight);
            AssertSameChange($"{before.Name} biases", before.Bias, parameters[before.Name].B.detach().data<float>().ToArray(), after.Bias);
        }
    }

    /// <summary>The network in TorchSharp with TensorFlow's semantics (as Tests/Torch/TorchAlexNet.cs): HWIO → OIHW,
    /// SAME padding, LRN's alpha times the window, the NHWC flatten before fc6, channels-last convolution input.</summary>
    private static Tensor Forward(Dictionary<string, (TorchSharp.Modules.Parameter W, TorchSharp.Modules.Parameter B)> p, AlexNetWeights weights, float[] images, int n)
    {
        Tensor x = tensor(images, [n, 227, 227, 3]).permute(0, 3, 1, 2);
        Tensor Conv(Tensor t, string name, int stride, int pad)
        {
            t = t.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
            return F.relu(F.conv2d(t, p[name].W, p[name].B, strides: [stride, stride], padding: [pad, pad], groups: weights[name].Spec.Groups));
        }
        LrnParameters lrn = LrnParameters.Default;
        Tensor Lrn(Tensor t) => F.local_response_norm(t, 2 * lrn.Radius + 1, lrn.Alpha * (2 * lrn.Radius + 1), lrn.Beta, lrn.Bias);
        Tensor Pool(Tensor t) => F.max_pool2d(t, kernel_size: 3, stride: 2);
        x = Pool(Lrn(Conv(x, "conv1", 4, 0)));
        x = Pool(Lrn(Conv(x, "conv2", 1, 2)));
        x = Conv(x, "conv3", 1, 1);
        x = Conv(x, "conv4", 1, 1);
        x = Pool(Conv(x, "conv5", 1, 1));
        x = x.permute(0, 2, 3, 1).reshape(n, -1);
        x = F.relu(F.linear(x, p["fc6"].W, p["fc6"].B));
        x = F.relu(F.linear(x, p["fc7"].W, p["fc7"].B));
        return F.linear(x, p["fc8"].W, p["fc8"].B);
    }

    private static void AssertSameChange(string what, float[] before, float[] torchAfter, float[] engineAfter)
    {
        Assert.Equal(before.Length, engineAfter.Length);
        double scale = 0, worst = 0;
        int at = 0;
        for (int i = 0; i < before.Length; i++) scale = Math.Max(scale, Math.Abs((double)torchAfter[i] - before[i]));
        for (int i = 0; i < before.Length; i++)
        {
            double d = Math.Abs(((double)engineAfter[i] - before[i]) - ((double)torchAfter[i] - before[i]));
            if (d > worst) (worst, at) = (d, i);
        }
        Assert.True(scale > 0, $"{what}: torch did not change them");
        Assert.True(worst <= Tolerance * scale,
            $"{what}: the change differs by {worst:G3} at {at} (torch {torchAfter[at] - before[at]:G6}, engine {engineAfter[at] - before[at]:G6}), bound {Tolerance} × {scale:G3}");
    }
}
