using System.Diagnostics;
using System.Globalization;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Weights;
using TorchSharp;
using Xunit.Abstractions;
using F = TorchSharp.torch.nn.functional;

namespace AlexNet.Cuda.Tests.Torch;

/// <summary>
/// The C# reference network (double) against TorchSharp's (float32), layer by layer, on full-size synthetic
/// weights: two independent implementations of docs/model.md that must agree. Each layer passes when every
/// |torch − reference| ≤ 1e-4 · max|reference| (a float32 network against a double one: rounding grows with the
/// largest magnitudes, docs/platform.md). The fault tests show the comparison fails, at the layer broken.
/// </summary>
public class ReferenceNetworkTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;
    private const int WeightSeed = 7;

    private static readonly Lazy<AlexNetWeights> Weights = new(() => SyntheticWeights.Create(WeightSeed));

    /// <summary>The reference outputs of batch 1 and 2 with the default options, computed once and shared.</summary>
    private static readonly Lazy<(float[] Input, Dictionary<string, float[]> Outputs, TimeSpan Time)>[] ReferenceRuns =
        [new(() => RunReference(1)), new(() => RunReference(2))];

    private static (float[], Dictionary<string, float[]>, TimeSpan) RunReference(int batch)
    {
        float[] input = SyntheticWeights.Input(seed: 100 + batch, batch);
        var sw = Stopwatch.StartNew();
        var outputs = ReferenceNetwork.Run(Weights.Value, input, batch);
        return (input, outputs, sw.Elapsed);
    }

    [SkippableTheory]
    [InlineData(1)]
    [InlineData(2)]
    public void TorchAndReferenceAgreeOnEveryLayer(int batch)
    {
        TorchReference.Require();
        output.WriteLine($"TorchSharp first load: {TorchReference.LoadTime.TotalSeconds:F2} s");
        (float[] input, var expected, TimeSpan referenceTime) = ReferenceRuns[batch - 1].Value;
        TorchAlexNet.Run(Weights.Value, input, batch); // warm-up: the first run allocates and picks kernels
        var sw = Stopwatch.StartNew();
        var got = TorchAlexNet.Run(Weights.Value, input, batch);
        TimeSpan torchTime = sw.Elapsed;
        output.WriteLine(Invariant($"batch {batch}: reference {referenceTime.TotalSeconds / batch:F2} s/image, TorchSharp {torchTime.TotalMilliseconds / batch:F1} ms/image"));

        AssertAllLayersAgree(expected, got);
        float[] logits = expected["fc8"];
        output.WriteLine(Invariant($"fc8 logits span [{logits.Min():F1}, {logits.Max():F1}]"));
        for (int n = 0; n < batch; n++)
        {
            int[] want = Top5(expected["prob"], n, batch), have = Top5(got["prob"], n, batch);
            output.WriteLine($"image {n}: top-5 {string.Join(", ", want)}");
            Assert.Equal(want, have);
        }
    }

    [SkippableFact]
    public void TorchAndReferenceAgreeWithOtherLrnParameters()
    {
        TorchReference.Require();
        (float[] input, _, _) = ReferenceRuns[0].Value;
        var expected = ReferenceNetwork.Run(Weights.Value, input, 1,
            new ReferenceNetworkOptions { LrnRadius = 1, LrnAlpha = 1e-4, LrnBeta = 0.5, LrnBias = 2 });
        var got = TorchAlexNet.Run(Weights.Value, input, 1, new TorchNetworkOptions(LrnRadius: 1, LrnAlpha: 1e-4, LrnBeta: 0.5, LrnBias: 2));
        AssertAllLayersAgree(expected, got);
        // The parameters must matter: the default network's norm1 differs beyond the tolerance.
        Assert.False(Compare(ReferenceRuns[0].Value.Outputs["norm1"], expected["norm1"]).Passed);
    }

    /// <summary>
    /// PyTorch's LRN (Caffe's convention) with alpha = alpha_tf·size equals TensorFlow's definition, written out
    /// here by hand, at every channel including the first and last two, where PyTorch's zero padding of the
    /// squares adds nothing to TensorFlow's clipped window sum.
    /// </summary>
    [SkippableTheory]
    [InlineData(2, 2e-05, 0.75, 1.0)]
    [InlineData(1, 1e-4, 0.5, 2.0)]
    [InlineData(3, 1e-3, 0.75, 0.5)]
    public void TorchLrnEqualsTensorFlowsDefinitionIncludingTheChannelEdges(int radius, double alpha, double beta, double bias)
    {
        TorchReference.Require();
        const int c = 7, h = 2, w = 3;
        var random = new Random(radius);
        float[] x = new float[c * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)((random.NextDouble() * 2 - 1) * 200);
        x[0] = 900; // an outlier in the first channel: its neighbours' denominators must see it
        long size = 2 * radius + 1;
        using var input = torch.tensor(x, [1, c, h, w]);
        using var normalised = F.local_response_norm(input, size, alpha * size, beta, bias);
        float[] got = normalised.data<float>().ToArray();
        var expected = new float[x.Length];
        for (int ch = 0; ch < c; ch++)
        for (int p = 0; p < h * w; p++)
        {
            double sum = 0;
            for (int k = Math.Max(0, ch - radius); k <= Math.Min(c - 1, ch + radius); k++)
                sum += (double)x[k * h * w + p] * x[k * h * w + p];
            expected[ch * h * w + p] = (float)(x[ch * h * w + p] / Math.Pow(bias + alpha * sum, beta));
        }
        var result = Comparison.AgainstMax(got, expected, 0, 1e-6);
        Assert.True(result.Passed, result.Detail);
    }

    /// <summary>Each fault in the TorchSharp network makes the comparison fail at the layer it breaks, and
    /// every layer before it still passes: the comparison can fail, and says where.</summary>
    [SkippableTheory]
    [InlineData(TorchFault.NchwFlatten, "fc6")]
    [InlineData(TorchFault.SwappedGroupInputs, "conv2")]
    [InlineData(TorchFault.LrnAlphaNotScaled, "norm1")]
    [InlineData(TorchFault.PoolBeforeNorm, "pool1")]
    public void AFaultInTheTorchNetworkFailsAtTheLayerItBreaks(TorchFault fault, string brokenLayer)
    {
        TorchReference.Require();
        (float[] input, var expected, _) = ReferenceRuns[0].Value;
        var got = TorchAlexNet.Run(Weights.Value, input, 1, new TorchNetworkOptions(), fault);
        Assert.Equal(brokenLayer, FirstFailingLayer(expected, got));
    }

    /// <summary>
    /// The same the other way round: a reference that reads the weights or parameters wrongly (expressed as
    /// wrongly arranged weights given to the right network) fails against the TorchSharp network at that layer.
    /// </summary>
    [SkippableTheory]
    [InlineData("fc6 rows read in NCHW flatten order", "fc6")]
    [InlineData("conv1 weights read as (kw, kh, cin, cout)", "conv1")]
    [InlineData("conv2's filter halves swapped between the groups", "conv2")]
    [InlineData("LRN alpha of 1e-4 instead of 2e-05", "norm1")]
    public void AFaultInTheReferenceFailsAgainstTorchAtTheLayerItBreaks(string fault, string brokenLayer)
    {
        TorchReference.Require();
        AlexNetWeights w = Weights.Value;
        (float[] input, _, _) = ReferenceRuns[0].Value;
        var options = ReferenceNetworkOptions.Default;
        switch (brokenLayer)
        {
            case "fc6":
                // Row (h·6 + w)·256 + c gets the row an NCHW flatten would use there, c·36 + h·6 + w.
                w = Replace(w, "fc6", (from, to) =>
                {
                    int f = w.Fc6.WeightShape[1];
                    for (int h = 0; h < 6; h++)
                    for (int x = 0; x < 6; x++)
                    for (int c = 0; c < 256; c++)
                        Array.Copy(from, (c * 36 + h * 6 + x) * f, to, ((h * 6 + x) * 256 + c) * f, f);
                });
                break;
            case "conv1":
                w = Replace(w, "conv1", (from, to) =>
                {
                    int[] s = w.Conv1.WeightShape;
                    int inner = s[2] * s[3];
                    for (int ky = 0; ky < s[0]; ky++)
                    for (int kx = 0; kx < s[1]; kx++)
                        Array.Copy(from, (kx * s[0] + ky) * inner, to, (ky * s[1] + kx) * inner, inner);
                });
                break;
            case "conv2":
                w = Replace(w, "conv2", (from, to) =>
                {
                    int cout = w.Conv2.WeightShape[3], half = cout / 2;
                    for (int row = 0; row < from.Length / cout; row++)
                    {
                        Array.Copy(from, row * cout + half, to, row * cout, half);
                        Array.Copy(from, row * cout, to, row * cout + half, half);
                    }
                });
                break;
            case "norm1":
                options = new ReferenceNetworkOptions { LrnAlpha = 1e-4 };
                break;
        }
        output.WriteLine(fault);
        var faulty = ReferenceNetwork.Run(w, input, 1, options);
        var torchOutputs = TorchAlexNet.Run(Weights.Value, input, 1);
        Assert.Equal(brokenLayer, FirstFailingLayer(faulty, torchOutputs));
    }

    /// <summary>A given dropout mask (0 or 1/keep_prob per element of fc6 and fc7) is applied after the ReLU
    /// by both networks alike; on a network with fewer channels, which the reference also runs.</summary>
    [SkippableFact]
    public void TorchAndReferenceAgreeWithDropoutOnANarrowNetwork()
    {
        TorchReference.Require();
        var narrow = new AlexNetArchitecture(
        [
            new("conv1", LayerKind.Convolution, [11, 11, 3, 24]),
            new("conv2", LayerKind.Convolution, [5, 5, 12, 34], Groups: 2),
            new("conv3", LayerKind.Convolution, [3, 3, 34, 40]),
            new("conv4", LayerKind.Convolution, [3, 3, 20, 38], Groups: 2),
            new("conv5", LayerKind.Convolution, [3, 3, 19, 30], Groups: 2),
            new("fc6", LayerKind.FullyConnected, [36 * 30, 100]),
            new("fc7", LayerKind.FullyConnected, [100, 90]),
            new("fc8", LayerKind.FullyConnected, [90, 17]),
        ]);
        var weights = SyntheticWeights.Create(narrow, seed: 3);
        const int batch = 2;
        float[] input = SyntheticWeights.Input(seed: 4, batch);
        // keep_prob 0.5: a fixed pseudo-random half of the values dropped, the rest doubled.
        double Dropout(string layer, long i) => ((i * 2654435761L + layer[^1]) >> 7) % 2 == 0 ? 0.0 : 2.0;

        var expected = ReferenceNetwork.Run(weights, input, batch, new ReferenceNetworkOptions { DropoutScale = Dropout });
        var got = TorchAlexNet.Run(weights, input, batch, new TorchNetworkOptions { DropoutScale = Dropout });
        AssertAllLayersAgree(expected, got);

        var shapes = ReferenceNetwork.OutputShapes(narrow, batch);
        Assert.Equal([batch, 30, 6, 6], shapes["pool5"]);
        Assert.Equal([batch, 17], shapes["prob"]);
        Assert.Contains(expected["fc6"], v => v == 0);
        var inference = ReferenceNetwork.Run(weights, input, batch);
        Assert.Equal("fc6", FirstFailingLayer(inference, expected));
    }

    [Fact]
    public void ReferenceRejectsLayersThatDoNotChainWithAOneLineReason()
    {
        var architecture = AlexNetArchitecture.Default;
        var badFc6 = new AlexNetArchitecture(architecture.Layers.Select(l => l.Name == "fc6" ? l with { WeightShape = [9000, 4096] } : l));
        var e = Assert.Throws<AlexNetException>(() => ReferenceNetwork.OutputShapes(badFc6, 1));
        Assert.Contains("fc6", e.Message);
        Assert.Contains("9216", e.Message);
        Assert.DoesNotContain('\n', e.Message);

        var badConv3 = new AlexNetArchitecture(architecture.Layers.Select(l => l.Name == "conv3" ? l with { WeightShape = [3, 3, 128, 384] } : l));
        e = Assert.Throws<AlexNetException>(() => ReferenceNetwork.OutputShapes(badConv3, 1));
        Assert.Contains("conv3", e.Message);

        var shapes = ReferenceNetwork.OutputShapes(architecture, 2);
        Assert.Equal(ReferenceNetwork.Layers, shapes.Keys);
        Assert.Equal([2, 96, 55, 55], shapes["conv1"]);
        Assert.Equal([2, 256, 13, 13], shapes["pool2"]);
        Assert.Equal([2, 256, 6, 6], shapes["pool5"]);
        Assert.Equal([2, 1000], shapes["prob"]);

        var weights = SyntheticWeights.Create(architecture, seed: 1);
        var wrongInput = Assert.Throws<ArgumentException>(() => ReferenceNetwork.Run(weights, new float[227 * 227 * 3], 2));
        Assert.Contains("2 image(s)", wrongInput.Message);
    }

    private static AlexNetWeights Replace(AlexNetWeights weights, string layer, Action<float[], float[]> rearrange)
    {
        var layers = weights.Layers.Select(l =>
        {
            if (l.Name != layer) return l;
            var weight = new float[l.Weight.Length];
            rearrange(l.Weight, weight);
            return new LayerWeights(l.Spec, weight, l.Bias, l.Source);
        }).ToList();
        return new AlexNetWeights(weights.Architecture, layers);
    }

    private static ComparisonResult Compare(float[] expected, float[] got) => Comparison.AgainstMax(got, expected, 0, Tolerance);

    /// <summary>The first layer, in network order, present in both whose outputs differ beyond the tolerance.</summary>
    private static string? FirstFailingLayer(Dictionary<string, float[]> expected, Dictionary<string, float[]> got) =>
        ReferenceNetwork.Layers.FirstOrDefault(l => expected.ContainsKey(l) && got.ContainsKey(l) && !Compare(expected[l], got[l]).Passed);

    private void AssertAllLayersAgree(Dictionary<string, float[]> expected, Dictionary<string, float[]> got)
    {
        Assert.Equal(ReferenceNetwork.Layers, expected.Keys);
        Assert.Equal(ReferenceNetwork.Layers.Order(), got.Keys.Order());
        var failures = new List<string>();
        foreach (string layer in ReferenceNetwork.Layers)
        {
            var result = Compare(expected[layer], got[layer]);
            double scale = expected[layer].Max(v => Math.Abs(v));
            output.WriteLine(Invariant($"{layer,-5} max|ref| {scale,10:G4}  {result.Detail}"));
            if (!result.Passed) failures.Add($"{layer}: {result.Detail}");
        }
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    /// <summary>The five most probable classes of one image, most probable first.</summary>
    private static int[] Top5(float[] prob, int image, int batch)
    {
        int classes = prob.Length / batch;
        return AlexNet.Cuda.Network.ClassRanking.Top(prob.AsSpan(image * classes, classes), 5);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
