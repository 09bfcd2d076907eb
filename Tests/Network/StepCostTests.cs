using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>The work per step that benchmarks divide by: it must add up to the model's own FLOP count and name
/// exactly the steps a profiled pass reports.</summary>
[Collection(OpenClCollection.Name)]
public class StepCostTests(OpenClFixture fixture)
{
    [Theory]
    [InlineData(1)]
    [InlineData(37)]
    public void GemmFlopsAddUpToTheModelsCountAndOnlyGemmsHaveFlops(int batch)
    {
        // 2 × 724,406,816 multiply-adds per image for BVLC AlexNet (docs/model.md), counted here from the layer
        // shapes independently of the plan.
        long macs = 0;
        foreach ((int cout, int cinPerGroup, int k, int outSize) in new[] { (96, 3, 11, 55), (256, 48, 5, 27), (384, 256, 3, 13), (384, 192, 3, 13), (256, 192, 3, 13) })
            macs += (long)cout * cinPerGroup * k * k * outSize * outSize;
        macs += 9216L * 4096 + 4096L * 4096 + 4096L * 1000;
        Assert.Equal(724_406_816, macs);

        NetworkPlan plan = NetworkPlan.Create(AlexNetArchitecture.Default, batch, AlexNetOptions.DefaultWorkspaceBytes);
        IReadOnlyList<StepCost> costs = plan.StepCosts(batch);
        Assert.Equal(2.0 * macs * batch, costs.Sum(c => c.Flops));
        Assert.All(costs, c => Assert.Equal(c.Name.EndsWith(" gemm", StringComparison.Ordinal), c.Flops > 0));
        Assert.All(costs, c => Assert.True(c.Bytes > 0, c.Name));
        // conv1's lowering writes 363 × 3025 floats per image and reads the 3 × 227 × 227 input.
        Assert.Equal((363.0 * 3025 + 3 * 227 * 227) * 4 * batch, costs.Single(c => c.Name == "conv1 im2col").Bytes);
        // fc6 reads its 9216 × 4096 weights once whatever the batch.
        Assert.Equal((9216.0 * 4096 + (9216 + 4096) * batch) * 4, costs.Single(c => c.Name == "fc6 gemm").Bytes);

        // Without the fused activations each convolution has its own bias+ReLU step, which reads and writes the
        // output once more, and the LRNs write norm1 and norm2 for the pools to read: seven steps more, two
        // passes over conv1…conv5's outputs and over norm1's and norm2's.
        IReadOnlyList<StepCost> separate = plan.StepCosts(batch, fusedActivations: false);
        Assert.Equal(costs.Count + 7, separate.Count);
        Assert.Equal(2.0 * macs * batch, separate.Sum(c => c.Flops));
        double outputs = (96.0 * 55 * 55 + 256.0 * 27 * 27 + 384.0 * 13 * 13 + 384.0 * 13 * 13 + 256.0 * 13 * 13) * batch;
        double normalised = (96.0 * 55 * 55 + 256.0 * 27 * 27) * batch;
        Assert.Equal(2 * (outputs + normalised) * 4, separate.Sum(c => c.Bytes) - costs.Sum(c => c.Bytes), 1e-6 * outputs);
        // norm1+pool1 reads conv1's raw output and its bias, and writes pool1.
        Assert.Equal((96.0 * 55 * 55 * batch + 96.0 * 27 * 27 * batch + 96) * 4, costs.Single(c => c.Name == "norm1+pool1").Bytes);
    }

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void TheCostsNameEveryProfiledStepInOrder(bool fused)
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        // A workspace too small for the batch makes the convolutions run in chunks: a step is named once per chunk.
        using AlexNetModel model = AlexNetModel.Create(fixture.Device, SyntheticNetwork.Weights(SyntheticNetwork.Narrow, 1),
            new AlexNetOptions { MaxBatch = 3, WorkspaceBytes = 5L << 20, FuseActivations = fused });
        Assert.Contains(model.Plan.Convolutions, c => c.ChunkImages < 3);
        using ForwardProfile profile = model.CreateProfile();
        model.Forward(SyntheticNetwork.Images(3, 1), 3);
        model.Run(3, profile);
        string[] profiled = [.. profile.Read().Select(s => s.Name).Distinct()];
        Assert.Equal(model.StepCosts(3).Select(c => c.Name), profiled);
        Assert.Equal(fused, !profiled.Contains("conv1 bias+relu"));
    }
}
