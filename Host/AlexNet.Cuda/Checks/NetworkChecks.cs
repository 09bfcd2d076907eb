using System.Globalization;
using System.Text;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// The whole network on a device against <see cref="ReferenceNetwork"/> (double, NHWC, the weight file's
/// layouts): every one of the 14 layers within <see cref="Tolerances.NetworkRtol"/>·max|ref| and the top 5
/// classes of every image identical. Part of <c>alexnet check</c>, so it also runs on the GPU validation machine.
/// </summary>
public static class NetworkChecks
{
    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All()
    {
        yield return ("network: narrow AlexNet (the real geometry, 16-40 channels), batch 3, 14 layers vs the reference network",
            d => Compare(d, SyntheticNetwork.Narrow, batch: 3, new AlexNetOptions { MaxBatch = 3 }));
        // Both forms of the pass on every device: the convolutions' bias and ReLU fused into the kernels that read
        // their outputs (the GPU's default), and as passes of their own (the CPU's).
        yield return ("network: narrow AlexNet, batch 3, the convolutions' bias+ReLU fused into the next kernels",
            d => Compare(d, SyntheticNetwork.Narrow, batch: 3, new AlexNetOptions { MaxBatch = 3, FuseActivations = true }));
        yield return ("network: narrow AlexNet, batch 3, the convolutions' bias+ReLU as separate passes",
            d => Compare(d, SyntheticNetwork.Narrow, batch: 3, new AlexNetOptions { MaxBatch = 3, FuseActivations = false }));
        yield return ("network: narrow AlexNet with dropout (keep 0.6) fused with fc6/fc7's bias+ReLU and the convolutions' fused, batch 2",
            d => Compare(d, SyntheticNetwork.Narrow, batch: 2, new AlexNetOptions { MaxBatch = 2, KeepProbability = 0.6f, DropoutSeed = 77, FuseActivations = true }));
        yield return ("network: narrow AlexNet, batch 3, the fused throughput pass (LRN and pooling one kernel) against the pass that writes every layer",
            d => ThroughputPassMatchesTheLayerPass(d, SyntheticNetwork.Narrow, batch: 3));
        yield return ("network: narrow AlexNet, LRN radius 1 alpha 1e-4 beta 0.5 bias 2, batch 2",
            d => Compare(d, SyntheticNetwork.Narrow, batch: 2, new AlexNetOptions { MaxBatch = 2, Lrn = new LrnParameters(1, 1e-4f, 0.5f, 2f) }));
        yield return ("network: narrow AlexNet with dropout (keep 0.6), batch 2, against the reference given the same Philox mask",
            d => Compare(d, SyntheticNetwork.Narrow, batch: 2, new AlexNetOptions { MaxBatch = 2, KeepProbability = 0.6f, DropoutSeed = 77 }));
        yield return ("network: full-size AlexNet, synthetic weights, batch 2 in two workspace chunks, 14 layers vs the reference network",
            d => Compare(d, AlexNetArchitecture.Default, batch: 2, new AlexNetOptions { MaxBatch = 2, WorkspaceBytes = 7L << 20 }));
    }

    /// <summary>Runs <paramref name="batch"/> synthetic images through the engine and the reference and
    /// compares every layer.</summary>
    public static ComparisonResult Compare(ComputeDevice device, AlexNetArchitecture architecture, int batch, AlexNetOptions options)
    {
        AlexNetWeights weights = SyntheticNetwork.Weights(architecture, seed: batch + architecture.NumClasses);
        float[] images = SyntheticNetwork.Images(batch, seed: batch);
        using AlexNetModel model = AlexNetModel.Create(device, weights, options);
        IReadOnlyDictionary<string, float[]> got = model.Features(images, batch, AlexNetModel.LayerNames.ToArray());
        var referenceOptions = new ReferenceNetworkOptions
        {
            LrnRadius = options.Lrn.Radius, LrnAlpha = options.Lrn.Alpha, LrnBeta = options.Lrn.Beta, LrnBias = options.Lrn.Bias,
            DropoutScale = options.KeepProbability < 1f ? DropoutScale(options.KeepProbability, options.DropoutSeed) : null,
        };
        Dictionary<string, float[]> expected = ReferenceNetwork.Run(weights, images, batch, referenceOptions);
        return CompareLayers(got, expected, batch, model.NumClasses);
    }

    /// <summary>
    /// With fused activations the pass that nothing reads out (<see cref="AlexNetModel.Predict"/>) runs each LRN
    /// and the pool after it as one kernel, while <see cref="AlexNetModel.Features"/> writes norm1 and norm2: the
    /// probabilities must agree (the two share the LRN's arithmetic; 1e-6 of the largest allows for a compiler
    /// that contracts the two kernels differently).
    /// </summary>
    public static ComparisonResult ThroughputPassMatchesTheLayerPass(ComputeDevice device, AlexNetArchitecture architecture, int batch)
    {
        AlexNetWeights weights = SyntheticNetwork.Weights(architecture, seed: 5 + batch);
        float[] images = SyntheticNetwork.Images(batch, seed: 6 + batch);
        using AlexNetModel model = AlexNetModel.Create(device, weights, new AlexNetOptions { MaxBatch = batch, FuseActivations = true });
        float[] throughput = model.Predict(images, batch);
        float[] layers = model.Features(images, batch, ["prob"])["prob"];
        return Comparison.AgainstMax(throughput, layers, 0, 1e-6);
    }

    /// <summary>
    /// The engine's dropout as the reference applies it: element i of fc6 (counter offset 0) or fc7 (offset
    /// 2³¹) is kept, ×1/keep, when its Philox uniform is below keep (see dropout.cu).
    /// </summary>
    public static Func<string, long, double> DropoutScale(float keep, ulong seed) => (layer, index) =>
    {
        ulong counter = (layer == "fc6" ? 0UL : 1UL << 31) + (ulong)index;
        return LayerReference.DropoutUniform(seed, counter) < keep ? 1.0 / keep : 0.0;
    };

    /// <summary>Every layer within <see cref="Tolerances.NetworkRtol"/>·max|ref|, and the top-5 classes of each
    /// image identical; the detail names each layer's largest error relative to its scale.</summary>
    public static ComparisonResult CompareLayers(IReadOnlyDictionary<string, float[]> got, IReadOnlyDictionary<string, float[]> expected,
        int batch, int classes)
    {
        var detail = new StringBuilder();
        bool passed = true;
        double worst = 0;
        foreach (string layer in AlexNetModel.LayerNames)
        {
            if (!got.TryGetValue(layer, out float[]? g) || !expected.TryGetValue(layer, out float[]? e))
            {
                passed = false;
                detail.Append(CultureInfo.InvariantCulture, $" {layer}: missing;");
                continue;
            }
            ComparisonResult r = Comparison.AgainstMax(g, e, 0, Tolerances.NetworkRtol);
            double scale = 0;
            foreach (float v in e) scale = Math.Max(scale, Math.Abs((double)v));
            double relative = scale == 0 ? r.MaxAbsError : r.MaxAbsError / scale;
            worst = Math.Max(worst, relative);
            if (!r.Passed)
            {
                passed = false;
                detail.Append(CultureInfo.InvariantCulture, $" {layer} FAILED: {r.Detail};");
            }
            else detail.Append(CultureInfo.InvariantCulture, $" {layer} {relative:G2};");
        }
        for (int n = 0; n < batch; n++)
        {
            int[] top = ClassRanking.Top(got["prob"].AsSpan(n * classes, classes), 5), want = ClassRanking.Top(expected["prob"].AsSpan(n * classes, classes), 5);
            if (!top.SequenceEqual(want))
            {
                passed = false;
                detail.Append(CultureInfo.InvariantCulture, $" image {n} top-5 {string.Join(",", top)} != {string.Join(",", want)};");
            }
        }
        string summary = string.Create(CultureInfo.InvariantCulture, $"14 layers, largest error {worst:G3} of max|ref| (bound {Tolerances.NetworkRtol:G2}); top-5 {(passed ? "identical" : "checked")}; per layer:{detail}");
        return new ComparisonResult(passed, passed ? 0 : 1, worst, -1, Tolerances.NetworkRtol, summary);
    }
}
