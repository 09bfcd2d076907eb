using System.Globalization;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// The forward pass replayed as a graph (<see cref="AlexNetModel.Run(int)"/> on CUDA) against the same pass
/// launch by launch (<see cref="AlexNetModel.RunStream"/>): the same kernels and GEMMs on the same buffers, so
/// fc8 and the probabilities must be bit-identical. Each batch size is captured on its first pass with one set of
/// images and replayed on another (a graph reads its input buffer, it does not keep the images it was captured
/// with), after the activations were filled with NaN (a node the replay skipped shows). On a device without
/// graphs the same calls run the stream pass, and the check says so.
/// </summary>
public static class GraphChecks
{
    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All()
    {
        yield return ("graph: narrow AlexNet, batch 3 and 1 in one model, the replayed graph's fc8 and probabilities bit-identical to the stream pass's",
            d => ReplayMatchesTheStreamPass(d, SyntheticNetwork.Narrow, [3, 1, 3], new AlexNetOptions { MaxBatch = 3 }));
        // 16-bit activations: the conversions at the pass's ends and the GemmEx calls are captured too.
        yield return ("graph: narrow AlexNet in fp16 storage, batch 2 and 1, the replay bit-identical to the stream pass",
            d => ReplayMatchesTheStreamPass(d, SyntheticNetwork.Narrow, [2, 1], new AlexNetOptions { MaxBatch = 2, Precision = Precision.Fp16 }));
        yield return ("graph: full-size AlexNet, synthetic weights, batch 2 and 1 in two workspace chunks, the replay bit-identical to the stream pass",
            d => ReplayMatchesTheStreamPass(d, AlexNetArchitecture.Default, [2, 1], new AlexNetOptions { MaxBatch = 2, WorkspaceBytes = 7L << 20 }));
    }

    /// <summary>For each of <paramref name="batches"/> in turn (a size seen before is replayed straight away):
    /// capture, then the stream pass and the replay on new images, compared bit for bit.</summary>
    public static ComparisonResult ReplayMatchesTheStreamPass(ComputeDevice device, AlexNetArchitecture architecture, int[] batches, AlexNetOptions options)
    {
        if (device.GraphsUnsupportedReason is string reason && architecture != SyntheticNetwork.Narrow)
            throw new CheckNotApplicableException($"{reason}: the stream path runs (the narrow network's check shows that it does)");
        if (!Precisions.IsSupported(device, options.Precision, out string? unsupported))
            throw new CheckNotApplicableException($"{Precisions.Name(options.Precision)} is not available on {device.Name}: {unsupported}");
        AlexNetWeights weights = SyntheticNetwork.Weights(architecture, seed: 11);
        using AlexNetModel model = AlexNetModel.Create(device, weights, options);
        var compared = new List<string>();
        long elements = 0;
        for (int i = 0; i < batches.Length; i++)
        {
            int n = batches[i];
            bool seen = batches.Take(i).Contains(n);
            if (!seen)
            {
                // The size's first pass: launch by launch, then captured where graphs are on.
                model.Forward(SyntheticNetwork.Images(n, seed: 100 + n), n);
                if (model.UsesGraphs && !model.HasGraph(n))
                    return Fail($"batch {n} was not captured: {model.GraphFailure(n)}");
            }
            float[] images = SyntheticNetwork.Images(n, seed: 200 + n + i);
            model.Stream.CopyToDevice<float>(images, model.InputBuffer);
            model.RunStream(n);
            float[] streamFc8 = model.ReadActivation("fc8"), streamProbabilities = model.ReadActivation("prob");
            model.PoisonActivations();
            model.Run(n);
            float[] graphFc8 = model.ReadActivation("fc8"), graphProbabilities = model.ReadActivation("prob");
            foreach ((string layer, float[] got, float[] want) in new[] { ("fc8", graphFc8, streamFc8), ("prob", graphProbabilities, streamProbabilities) })
            {
                ComparisonResult exact = Comparison.Exact(got, want);
                if (!exact.Passed) return Fail($"batch {n}{(seen ? " (replayed after another size)" : "")}, {layer}: {exact.Detail}");
                elements += got.Length;
            }
            compared.Add(seen ? $"{n} again" : $"{n}");
        }
        string how = model.UsesGraphs ? "the replayed graph's" : "Run's (the stream pass: graphs are off)";
        return new ComparisonResult(true, 0, 0, -1, 0, string.Create(CultureInfo.InvariantCulture,
            $"batch {string.Join(", ", compared)}: {how} fc8 and probabilities bit-identical to RunStream's ({elements} elements); graphs {model.GraphStatus}"));
    }

    private static ComparisonResult Fail(string detail) => new(false, 1, double.PositiveInfinity, -1, 0, detail);
}
