using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Torch;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Torch;

/// <summary>
/// The benchmark peer (Bench/Torch/TorchSharpAlexNet.cs) computes what the engine computes: its logits (fc8)
/// and probabilities at batch 2, on full-size weights from <see cref="SyntheticNetwork"/>, against the C#
/// reference in double and against <see cref="AlexNetModel"/> on OpenCL, each within
/// <see cref="Tolerances.NetworkRtol"/> (1e-4) of the reference's largest magnitude, with the top 5 of every
/// image identical — in both layouts the peer offers.
/// </summary>
[Collection(OpenClCollection.Name)]
public class TorchSharpAlexNetTests(OpenClFixture fixture)
{
    private const int Batch = 2;

    private static readonly Lazy<AlexNetWeights> Weights = new(() => SyntheticNetwork.Weights(AlexNetArchitecture.Default, seed: 23));
    private static readonly Lazy<float[]> Images = new(() => SyntheticNetwork.Images(Batch, seed: 24));

    /// <summary>The C# reference's outputs, computed once (about half a minute on two cores).</summary>
    private static readonly Lazy<Dictionary<string, float[]>> Reference = new(() => ReferenceNetwork.Run(Weights.Value, Images.Value, Batch));

    private static (float[] Logits, float[] Probabilities) RunPeer(TorchLayout layout, LrnParameters? lrn = null)
    {
        using TorchSharpAlexNet peer = TorchSharpAlexNet.Create(Weights.Value, maxBatch: 3, lrn, layout);
        // Twice, through both entry points, so reuse of the input tensor and of the result tensors is covered.
        peer.Forward(SyntheticNetwork.Images(1, seed: 99), 1);
        float[] probabilities = peer.Predict(Images.Value, Batch);
        var logits = new float[Batch * peer.NumClasses];
        peer.ReadLogits(logits);
        return (logits, probabilities);
    }

    private static void AssertMatches(float[] logits, float[] probabilities, IReadOnlyDictionary<string, float[]> expected, string against)
    {
        ComparisonResult fc8 = Comparison.AgainstMax(logits, expected["fc8"], 0, Tolerances.NetworkRtol);
        Assert.True(fc8.Passed, $"fc8 against {against}: {fc8.Detail}");
        ComparisonResult prob = Comparison.AgainstMax(probabilities, expected["prob"], 0, Tolerances.NetworkRtol);
        Assert.True(prob.Passed, $"prob against {against}: {prob.Detail}");
        int classes = AlexNetArchitecture.Default.NumClasses;
        for (int n = 0; n < Batch; n++)
            Assert.Equal(ClassRanking.Top(expected["prob"].AsSpan(n * classes, classes), 5), ClassRanking.Top(probabilities.AsSpan(n * classes, classes), 5));
    }

    [SkippableTheory]
    [InlineData(TorchLayout.ChannelsLast)]
    [InlineData(TorchLayout.Nchw)]
    public void MatchesTheReferenceNetwork(TorchLayout layout)
    {
        TorchReference.Require();
        (float[] logits, float[] probabilities) = RunPeer(layout);
        AssertMatches(logits, probabilities, Reference.Value, "the C# reference");
    }

    [SkippableFact]
    public void MatchesTheEngineOnOpenCl()
    {
        TestNative.Require(NativeLibraryId.ClBlast);
        TorchReference.Require();
        using AlexNetModel model = AlexNetModel.Create(fixture.Device, Weights.Value, new AlexNetOptions { MaxBatch = Batch });
        float[] probabilities = model.Predict(Images.Value, Batch);
        var expected = new Dictionary<string, float[]> { ["fc8"] = model.ReadActivation("fc8"), ["prob"] = probabilities };
        (float[] peerLogits, float[] peerProbabilities) = RunPeer(TorchLayout.ChannelsLast);
        AssertMatches(peerLogits, peerProbabilities, expected, "the engine on OpenCL");
    }

    [SkippableFact]
    public void OtherLrnParametersAreNotMistakenForAMatch()
    {
        // The check can fail: the peer with LRN's alpha ten times larger is caught at the logits.
        TorchReference.Require();
        (float[] logits, _) = RunPeer(TorchLayout.ChannelsLast, new LrnParameters { Alpha = 2e-4f });
        Assert.False(Comparison.AgainstMax(logits, Reference.Value["fc8"], 0, Tolerances.NetworkRtol).Passed);
    }

    [SkippableFact]
    public void BadBatchesAndImagesAreClearErrors()
    {
        TorchReference.Require();
        using TorchSharpAlexNet peer = TorchSharpAlexNet.Create(Weights.Value, maxBatch: 2);
        Assert.Contains("built for 1 to 2", Assert.Throws<AlexNetException>(() => peer.Run(3)).Message);
        Assert.Contains("need 154587 floats", Assert.Throws<AlexNetException>(() => peer.Forward(new float[10], 1)).Message);
        Assert.Throws<InvalidOperationException>(() => peer.ReadProbabilities(new float[1000]));
        Assert.Throws<AlexNetException>(() => TorchSharpAlexNet.Create(Weights.Value, maxBatch: 0));
        peer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => peer.Run(1));
    }
}
