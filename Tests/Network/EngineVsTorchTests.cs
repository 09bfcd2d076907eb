using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Torch;
using AlexNet.Cuda.Tests.Weights;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>
/// The engine against TorchSharp (libtorch CPU, float32) running the same weights with the same semantics
/// (Tests/Torch/TorchAlexNet.cs: conv weights HWIO → OIHW, groups = 2, PyTorch's LRN with size 2r+1 and
/// alpha·size, fc6's rows in NHWC order): every listed layer within 1e-4·max|ref| and the top 5 identical, at
/// batch 1, 3 and 8 and across a chunked batch, on OpenCL and, when a GPU is present, on CUDA.
/// </summary>
[Collection(OpenClCollection.Name)]
public class EngineVsTorchTests(OpenClFixture fixture)
{
    private static readonly Lazy<AlexNetWeights> FullSize = new(() => SyntheticWeights.Create(seed: 41));

    private ComputeDevice Device(string backend)
    {
        if (backend == "cuda") return TestNative.RequireCuda();
        TestNative.Require(NativeLibraryId.ClBlast);
        return fixture.Device;
    }

    // Each device runs both forms of the pass: the convolutions' bias and ReLU fused into the next kernels
    // (the GPU's default) and as separate passes (the CPU's).
    public static TheoryData<string, int, bool, bool> Batches() => new()
    {
        { "opencl", 1, false, false }, { "opencl", 3, false, true }, { "opencl", 8, false, false }, { "opencl", 5, true, true },
        { "cuda", 1, false, true }, { "cuda", 3, false, false }, { "cuda", 8, false, true }, { "cuda", 5, true, true },
    };

    [SkippableTheory]
    [MemberData(nameof(Batches))]
    public void EveryLayerMatchesTorchSharp(string backend, int batch, bool chunked, bool fused)
    {
        ComputeDevice device = Device(backend);
        TorchReference.Require();
        float[] images = SyntheticWeights.Input(seed: 300 + batch, batch);
        // 9 MiB of workspace lowers conv1 two images at a time and conv2 one at a time: 3 and 5 chunks.
        var options = new AlexNetOptions { MaxBatch = batch, WorkspaceBytes = chunked ? 9L << 20 : AlexNetOptions.DefaultWorkspaceBytes, FuseActivations = fused };
        using AlexNetModel model = AlexNetModel.Create(device, FullSize.Value, options);
        if (chunked) Assert.All(model.Plan.Convolutions.Take(2), c => Assert.True(c.ChunkImages < batch));
        IReadOnlyDictionary<string, float[]> got = model.Features(images, batch, AlexNetModel.LayerNames.ToArray());
        Dictionary<string, float[]> expected = TorchAlexNet.Run(FullSize.Value, images, batch);
        ComparisonResult result = NetworkChecks.CompareLayers(got, expected, batch, model.NumClasses);
        Assert.True(result.Passed, result.Detail);
    }

    [SkippableTheory]
    [InlineData("opencl")]
    [InlineData("cuda")]
    public void NonDefaultLrnParametersMatchTorchSharp(string backend)
    {
        ComputeDevice device = Device(backend);
        TorchReference.Require();
        float[] images = SyntheticWeights.Input(seed: 77, 2);
        using AlexNetModel model = AlexNetModel.Create(device, FullSize.Value, new AlexNetOptions { MaxBatch = 2, Lrn = new LrnParameters(1, 1e-4f, 0.5f, 2f) });
        IReadOnlyDictionary<string, float[]> got = model.Features(images, 2, AlexNetModel.LayerNames.ToArray());
        var expected = TorchAlexNet.Run(FullSize.Value, images, 2, new TorchNetworkOptions(LrnRadius: 1, LrnAlpha: 1e-4, LrnBeta: 0.5, LrnBias: 2));
        ComparisonResult result = NetworkChecks.CompareLayers(got, expected, 2, model.NumClasses);
        Assert.True(result.Passed, result.Detail);
        // And the comparison sees the difference the parameters make: against TorchSharp's defaults it fails.
        var defaults = TorchAlexNet.Run(FullSize.Value, images, 2);
        Assert.False(NetworkChecks.CompareLayers(got, defaults, 2, model.NumClasses).Passed);
    }

    [SkippableTheory]
    [InlineData("opencl")]
    [InlineData("cuda")]
    public void SkipLayerWithTenClassesGivesATenWayOutputDeterministicForASeed(string backend)
    {
        ComputeDevice device = Device(backend);
        using var dir = new TempDir();
        string file = dir.File("weights.npy");
        // A Python-2-style file of the narrow network, whose fc8 the skip replaces.
        AlexNetWeights narrow = SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 3);
        Py2PickleWriter.WriteFile(file, narrow.Layers.Select(l => new Py2PickleWriter.Layer(l.Name, l.Weight, l.WeightShape, l.Bias)));
        float[] images = SyntheticNetwork.Images(2, 4);
        float[] Probabilities(ulong seed)
        {
            var options = new AlexNetOptions { MaxBatch = 2, NumClasses = 10, SkipLayers = ["fc8"], InitSeed = seed, Architecture = SyntheticNetwork.Narrow };
            using AlexNetModel model = AlexNetModel.Load(device, file, options);
            Assert.Equal(10, model.NumClasses);
            return model.Predict(images, 2);
        }
        float[] first = Probabilities(5), again = Probabilities(5), other = Probabilities(6);
        Assert.Equal(20, first.Length);
        Assert.Equal(first, again);
        Assert.NotEqual(first, other);
        for (int n = 0; n < 2; n++) Assert.Equal(1.0, first.Skip(n * 10).Take(10).Sum(p => (double)p), 5);
    }
}
