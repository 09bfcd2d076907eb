using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>The engine's own promises on the OpenCL device: a forward pass that allocates and launches
/// only what it must, chunking that changes nothing, dropout as specified, the memory plan.</summary>
[Collection(OpenClCollection.Name)]
public class AlexNetModelTests(OpenClFixture fixture)
{
    private ComputeDevice Device
    {
        get
        {
            TestNative.Require(NativeLibraryId.ClBlast);
            return fixture.Device;
        }
    }

    private ComputeDevice On(string backend) => backend == "cuda" ? TestNative.RequireCuda() : Device;

    [SkippableTheory]
    [InlineData("opencl", false)]
    [InlineData("opencl", true)]
    [InlineData("cuda", false)]
    [InlineData("cuda", true)]
    public void AForwardPassAllocatesNoManagedMemoryAfterWarmUp(string backend, bool fused)
    {
        using AlexNetModel model = AlexNetModel.Create(On(backend), SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 1),
            new AlexNetOptions { MaxBatch = 3, KeepProbability = 0.5f, FuseActivations = fused });
        float[] images = SyntheticNetwork.Images(3, 2);
        var probabilities = new float[3 * model.NumClasses];
        model.Forward(images, 3); // warm-up: first launches, CLBlast's kernels
        model.ReadProbabilities(probabilities);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 3; i++) model.Forward(images, 3);
        model.ReadProbabilities(probabilities);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.All(probabilities, p => Assert.InRange(p, 0f, 1f));
    }

    [SkippableTheory]
    [InlineData("opencl")]
    [InlineData("cuda")]
    public void DropoutIsLaunchedOnlyWhenKeepProbabilityIsBelowOne(string backend)
    {
        ComputeDevice device = On(backend);
        AlexNetWeights weights = SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 3);
        float[] images = SyntheticNetwork.Images(2, 4);
        (long launches, long gemms) Count(float keep, bool fused = false)
        {
            using AlexNetModel model = AlexNetModel.Create(device, weights, new AlexNetOptions { MaxBatch = 2, KeepProbability = keep, FuseActivations = fused });
            ComputeStream s = device.DefaultStream;
            long l0 = s.Launches, g0 = s.Gemms;
            model.Forward(images, 2);
            return (s.Launches - l0, s.Gemms - g0);
        }
        (long inference, long gemms) = Count(1f);
        (long training, long trainingGemms) = Count(0.5f);
        // input, 5 × (im2col + bias/ReLU), 2 LRN, 3 pools, 2 fc bias/ReLU, softmax = 19 launches; 8 GEMMs.
        // In training fc6/fc7's bias, ReLU and dropout are one launch each, as their bias and ReLU are in inference.
        Assert.Equal(19, inference);
        Assert.Equal(8, gemms);
        Assert.Equal(inference, training);
        Assert.Equal(gemms, trainingGemms);
        // Fused, the convolutions' bias and ReLU run inside the LRN, im2col and pool kernels, and each LRN with
        // the pool after it is one kernel: 12 launches.
        Assert.Equal((12L, 8L), Count(1f, fused: true));
        Assert.Equal((12L, 8L), Count(0.5f, fused: true));
    }

    [SkippableTheory]
    [InlineData("opencl", 1f)]
    [InlineData("opencl", 0.6f)]
    [InlineData("cuda", 1f)]
    [InlineData("cuda", 0.6f)]
    public void FusedActivationsGiveEveryLayerBitForBitWhatSeparatePassesGive(string backend, float keep)
    {
        // The fused kernels apply the same float addition and comparison as bias_relu.cu, so all 14 layers,
        // the exported conv activations (activated on the way out) included, must be identical, not close.
        ComputeDevice device = On(backend);
        AlexNetWeights weights = SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 8);
        float[] images = SyntheticNetwork.Images(3, 9);
        images[5] = float.NaN; // a NaN input travels through both forms the same way
        IReadOnlyDictionary<string, float[]> Layers(bool fused)
        {
            using AlexNetModel model = AlexNetModel.Create(device, weights,
                new AlexNetOptions { MaxBatch = 3, KeepProbability = keep, DropoutSeed = 3, FuseActivations = fused, WorkspaceBytes = 5L << 20 });
            Assert.Equal(fused, model.FusesActivations);
            return model.Features(images, 3, AlexNetModel.LayerNames.ToArray());
        }
        IReadOnlyDictionary<string, float[]> fusedLayers = Layers(true), separate = Layers(false);
        foreach (string layer in AlexNetModel.LayerNames)
        {
            float[] a = fusedLayers[layer], b = separate[layer];
            Assert.Equal(b.Length, a.Length);
            int differ = Enumerable.Range(0, a.Length).Count(i => BitConverter.SingleToInt32Bits(a[i]) != BitConverter.SingleToInt32Bits(b[i]) && !(float.IsNaN(a[i]) && float.IsNaN(b[i])));
            Assert.True(differ == 0, $"{layer}: {differ} of {a.Length} values differ");
        }
        Assert.Contains(separate["conv1"], v => v == 0f); // the ReLU did cut something

        // The throughput pass (nothing read out) runs LRN and pooling as one kernel: the same probabilities.
        using AlexNetModel fusedModel = AlexNetModel.Create(device, weights,
            new AlexNetOptions { MaxBatch = 3, KeepProbability = keep, DropoutSeed = 3, FuseActivations = true, WorkspaceBytes = 5L << 20 });
        float[] predicted = fusedModel.Predict(images, 3);
        float[] read = separate["prob"];
        int probDiffer = Enumerable.Range(0, read.Length).Count(i => BitConverter.SingleToInt32Bits(predicted[i]) != BitConverter.SingleToInt32Bits(read[i]));
        Assert.True(probDiffer == 0, $"prob: {probDiffer} of {read.Length} differ, largest by {Enumerable.Range(0, read.Length).Max(i => Math.Abs(predicted[i] - read[i])):E2}");
        Assert.Equal(fusedModel.ReadActivation("prob"), predicted);
    }

    [SkippableFact]
    public void DropoutKeepsAboutKeepProbabilityOfFc6ScaledAndIsDeterministicForASeed()
    {
        AlexNetWeights weights = SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 5);
        float[] images = SyntheticNetwork.Images(3, 6);
        float[] Fc6(float keep, ulong seed)
        {
            using AlexNetModel model = AlexNetModel.Create(Device, weights, new AlexNetOptions { MaxBatch = 3, KeepProbability = keep, DropoutSeed = seed });
            return model.Features(images, 3, ["fc6"])["fc6"];
        }
        float[] full = Fc6(1f, 0), dropped = Fc6(0.75f, 42), again = Fc6(0.75f, 42), other = Fc6(0.75f, 43);
        Assert.Equal(dropped, again);
        Assert.NotEqual(dropped, other);
        int positive = 0, kept = 0;
        for (int i = 0; i < full.Length; i++)
        {
            if (full[i] == 0) { Assert.Equal(0f, dropped[i]); continue; }
            positive++;
            if (dropped[i] == 0) continue;
            kept++;
            Assert.Equal(full[i] * (1f / 0.75f), dropped[i]); // kept values scaled by 1/keep (as TF: x · (1/keep))
        }
        Assert.True(positive > 40, $"only {positive} positive fc6 values to sample");
        Assert.InRange(kept / (double)positive, 0.55, 0.95);
    }

    [SkippableFact]
    public void ChunkingABatchThroughASmallWorkspaceGivesTheSameResults()
    {
        AlexNetWeights weights = SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 7);
        float[] images = SyntheticNetwork.Images(5, 8);
        string[] layers = [.. AlexNetModel.LayerNames];
        IReadOnlyDictionary<string, float[]> Run(long workspace)
        {
            using AlexNetModel model = AlexNetModel.Create(Device, weights, new AlexNetOptions { MaxBatch = 5, WorkspaceBytes = workspace });
            if (workspace < AlexNetOptions.DefaultWorkspaceBytes)
                Assert.Contains(model.Plan.Convolutions, c => c.ChunkImages < 5);
            return model.Features(images, 5, layers);
        }
        IReadOnlyDictionary<string, float[]> whole = Run(AlexNetOptions.DefaultWorkspaceBytes);
        // conv1 lowers 363 rows × 3025 pixels = 4.2 MiB per image: 9 MiB makes chunks of 2, 2 and 1; 17 MiB
        // holds 4, a multiple of 4, so chunks of 4 and 1.
        foreach (long workspace in new[] { 9L << 20, 17L << 20 })
        {
            IReadOnlyDictionary<string, float[]> chunked = Run(workspace);
            foreach (string layer in layers)
            {
                var result = Reference.Comparison.AgainstMax(chunked[layer], whole[layer], 0, 1e-5);
                Assert.True(result.Passed, $"{layer} with a {workspace >> 20} MiB workspace: {result.Detail}");
            }
        }
    }

    [SkippableFact]
    public void ThePlanSharesTwoArenasAndNamesItsPeak()
    {
        using AlexNetModel model = AlexNetModel.Create(Device, SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 9), new AlexNetOptions { MaxBatch = 4 });
        NetworkPlan plan = model.Plan;
        Assert.Equal(AlexNetModel.LayerNames, plan.Activations.Select(a => a.Name));
        // Consecutive activations alternate arenas, so a layer never reads and writes the same buffer.
        for (int i = 1; i < plan.Activations.Count; i++) Assert.NotEqual(plan.Activations[i - 1].Arena, plan.Activations[i].Arena);
        Assert.True(plan.ActivationBytes < plan.UnsharedActivationBytes, $"{plan.ActivationBytes} shared against {plan.UnsharedActivationBytes} unshared");
        Assert.Equal(plan.ActivationBytes + SyntheticNetwork.Narrow.ParameterCount * 4, plan.PeakBytes);
        Assert.Equal([4, 16, 55, 55], plan.Activation("conv1").ExportShape(4));
        Assert.Equal([4, 12, 6, 6], plan.Activation("pool5").ExportShape(4));
        Assert.Equal([4, 11], plan.Activation("prob").ExportShape(4));
        string text = plan.ToString();
        Assert.Contains("conv2: GEMM M=12 N=4x729 K=200 batch 2", text);
        Assert.Contains("peak", text);
    }

    [SkippableFact]
    public void BadBatchesAndLayersAreOneLineErrors()
    {
        using AlexNetModel model = AlexNetModel.Create(Device, SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 10), new AlexNetOptions { MaxBatch = 2 });
        float[] three = SyntheticNetwork.Images(3, 1);
        Assert.Contains("planned for 1 to 2", Assert.Throws<AlexNetException>(() => model.Forward(three, 3)).Message);
        Assert.Contains("need 309174 floats", Assert.Throws<AlexNetException>(() => model.Forward(three, 2)).Message);
        Assert.Contains("no layer 'fc9'", Assert.Throws<AlexNetException>(() => model.Features(three.AsSpan(0, 2 * AlexNetModel.InputFloatsPerImage), 2, ["fc9"])).Message);
        var tooSmall = Assert.Throws<AlexNetException>(() => AlexNetModel.Create(Device, SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 10), new AlexNetOptions { WorkspaceBytes = 1 << 20 }));
        Assert.Contains("cannot hold one image's lowered input", tooSmall.Message);
        Assert.Contains("keep probability", Assert.Throws<AlexNetException>(() => new AlexNetOptions { KeepProbability = 0 }.Validate()).Message);
        Assert.Contains("LRN bias", Assert.Throws<AlexNetException>(() => new AlexNetOptions { Lrn = LrnParameters.Default with { Bias = 0 } }.Validate()).Message);
    }
}
