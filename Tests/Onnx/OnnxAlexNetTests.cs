using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Onnx;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Onnx;

/// <summary>
/// The CPU target (Bench/Onnx/OnnxAlexNet.cs: an ONNX graph built from the weights, run by ONNX Runtime) computes
/// what the engine computes: its logits (fc8) and probabilities within <see cref="Tolerances.NetworkRtol"/> (1e-4)
/// of the reference's largest magnitude and the top 5 of every image identical — on the narrow architecture
/// against the C# reference in double (every layer's geometry, the group split, fc6's row order), and on
/// full-size weights against <see cref="AlexNetModel"/> on OpenCL. The graph's LRN, group and row-order
/// conventions are each made to fail once, so a match is not an accident of the data.
/// </summary>
[Collection(OpenClCollection.Name)]
public class OnnxAlexNetTests(OpenClFixture fixture)
{
    private const int Batch = 3;

    private static readonly Lazy<AlexNetWeights> Narrow = new(() => SyntheticNetwork.Weights(SyntheticNetwork.Narrow, seed: 31));
    private static readonly Lazy<float[]> Images = new(() => SyntheticNetwork.Images(Batch, seed: 32));
    private static readonly Lazy<Dictionary<string, float[]>> NarrowReference = new(() => ReferenceNetwork.Run(Narrow.Value, Images.Value, Batch));

    private static (float[] Logits, float[] Probabilities) RunOnnx(AlexNetWeights weights, LrnParameters? lrn = null)
    {
        using OnnxAlexNet network = OnnxAlexNet.Create(weights, maxBatch: 4, lrn, threads: 2);
        // A pass at another size first: each batch size binds its own values over the same arrays.
        network.Forward(SyntheticNetwork.Images(1, seed: 99), 1);
        float[] probabilities = network.Predict(Images.Value, Batch);
        var logits = new float[Batch * network.NumClasses];
        network.ReadLogits(logits);
        return (logits, probabilities);
    }

    private static void AssertMatches(float[] logits, float[] probabilities, IReadOnlyDictionary<string, float[]> expected, int classes, string against)
    {
        ComparisonResult fc8 = Comparison.AgainstMax(logits, expected["fc8"], 0, Tolerances.NetworkRtol);
        Assert.True(fc8.Passed, $"fc8 against {against}: {fc8.Detail}");
        ComparisonResult prob = Comparison.AgainstMax(probabilities, expected["prob"], 0, Tolerances.NetworkRtol);
        Assert.True(prob.Passed, $"prob against {against}: {prob.Detail}");
        for (int n = 0; n < Batch; n++)
            Assert.Equal(ClassRanking.Top(expected["prob"].AsSpan(n * classes, classes), 5), ClassRanking.Top(probabilities.AsSpan(n * classes, classes), 5));
    }

    [Fact]
    public void MatchesTheReferenceNetworkOnTheNarrowArchitecture()
    {
        (float[] logits, float[] probabilities) = RunOnnx(Narrow.Value);
        AssertMatches(logits, probabilities, NarrowReference.Value, SyntheticNetwork.Narrow.NumClasses, "the C# reference");
    }

    [SkippableFact]
    public void MatchesTheEngineOnOpenClAtFullSize()
    {
        TestNative.Require(NativeLibraryId.ClBlast);
        AlexNetWeights weights = SyntheticNetwork.Weights(AlexNetArchitecture.Default, seed: 33);
        using AlexNetModel model = AlexNetModel.Create(fixture.Device, weights, new AlexNetOptions { MaxBatch = Batch });
        float[] probabilities = model.Predict(Images.Value, Batch);
        var expected = new Dictionary<string, float[]> { ["fc8"] = model.ReadActivation("fc8"), ["prob"] = probabilities };
        (float[] logits, float[] onnxProbabilities) = RunOnnx(weights);
        AssertMatches(logits, onnxProbabilities, expected, AlexNetArchitecture.Default.NumClasses, "the engine on OpenCL");
    }

    [Fact]
    public void OtherLrnParametersAreNotMistakenForAMatch()
    {
        // ONNX's alpha is TensorFlow's times the window: the graph with TensorFlow's alpha ten times larger misses.
        (float[] logits, _) = RunOnnx(Narrow.Value, new LrnParameters { Alpha = 2e-4f });
        Assert.False(Comparison.AgainstMax(logits, NarrowReference.Value["fc8"], 0, Tolerances.NetworkRtol).Passed);
    }

    [Fact]
    public void AWrongFc6RowOrderIsNotMistakenForAMatch()
    {
        // fc6 as the file stores it, in the graph that flattens NCHW: the reorder at build time is what makes it match.
        AlexNetWeights w = Narrow.Value;
        LayerWeights fc6 = w.Layers[5];
        var layers = w.Layers.ToArray();
        int rows = fc6.Spec.WeightShape[0], columns = fc6.Spec.WeightShape[1], channels = w.Architecture.Layers[4].OutputChannels, pixels = rows / channels;
        // Undo the reorder the graph applies, so the graph's own reorder brings the rows back to the wrong order.
        var scrambled = new float[fc6.Weight.Length];
        for (int p = 0; p < pixels; p++)
            for (int c = 0; c < channels; c++)
                Array.Copy(fc6.Weight, (long)(c * pixels + p) * columns, scrambled, (long)(p * channels + c) * columns, columns);
        layers[5] = new LayerWeights(fc6.Spec, scrambled, fc6.Bias, "scrambled");
        (float[] logits, _) = RunOnnx(new AlexNetWeights(w.Architecture, layers));
        Assert.False(Comparison.AgainstMax(logits, NarrowReference.Value["fc8"], 0, Tolerances.NetworkRtol).Passed);
    }

    [Fact]
    public void TheGraphIsRefusedForWeightsItCannotMean()
    {
        AlexNetWeights w = Narrow.Value;
        using var network = OnnxAlexNet.Create(w, maxBatch: 1, threads: 1);
        var e = Assert.Throws<AlexNetException>(() => network.Run(2));
        Assert.Contains("built for 1 to 1", e.Message);
        Assert.Throws<AlexNetException>(() => OnnxAlexNet.Create(w, maxBatch: 0));
        Assert.Throws<AlexNetException>(() => OnnxAlexNet.Create(w, maxBatch: 1, threads: 0));
    }
}
