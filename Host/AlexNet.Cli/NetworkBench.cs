using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using AlexNet.Cuda;
using AlexNet.Cuda.Bench;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cli;

/// <summary>One batch size's measurement of the whole forward pass.</summary>
internal sealed record NetworkBenchResult(int Batch, double MedianMs, double MinMs, double ImagesPerSecond, double Gflops,
    long MemoryBytes, IReadOnlyList<NetworkBenchStep> Layers, string? Skipped, BenchPeerResult? Peer = null, NetworkBenchGraph? Graph = null);

/// <summary>How a batch size ran where graphs were on: <see cref="Replayed"/>, the headline times are replays of its
/// graph, and the launch-by-launch pass was timed beside them (<see cref="StreamMedianMs"/>, <see cref="StreamMinMs"/>);
/// otherwise its capture failed (<see cref="Failure"/>) and the headline is the launch-by-launch pass.</summary>
internal sealed record NetworkBenchGraph(bool Replayed, double StreamMedianMs, double StreamMinMs, string? Failure);

/// <summary>One step of the per-operation breakdown: median time, and the rate its work (<see cref="StepCost"/>)
/// gives: GFLOP/s for a GEMM, GB/s for the memory-bound steps.</summary>
internal sealed record NetworkBenchStep(string Name, double MedianMs, double? Gflops, double? GBps);

/// <summary>
/// <c>alexnet bench</c>: the whole forward pass per batch size, timed with device events after a warm-up
/// (median and minimum of the timed passes), and a per-operation breakdown from separate profiled passes
/// (events between the operations add a little device time, so they are not in the headline numbers).
/// </summary>
internal static class NetworkBench
{
    /// <summary>
    /// Measures each batch size in turn, telling <paramref name="measured"/> of each result as it is done.
    /// <paramref name="step"/> is told of each unit of work before it starts ("batch 8: pass 3/20"): for a
    /// progress line, and to stop the run by throwing. A batch the device has no memory for is skipped, with
    /// the reason in its result.
    /// </summary>
    public static IReadOnlyList<NetworkBenchResult> Run(ComputeDevice device, AlexNetWeights weights, IReadOnlyList<int> batches,
        int warmup, int iterations, IBenchPeer? peer, bool fuseActivations, long workspaceBytes, Precision precision, Action<string> step,
        Action<NetworkBenchResult>? measured = null, bool useGraphs = false, GemmEpilogue epilogue = GemmEpilogue.Auto)
    {
        var results = new List<NetworkBenchResult>();
        foreach (int batch in batches)
        {
            step($"batch {batch}: building the model");
            NetworkBenchResult result;
            AlexNetModel? model = TryCreate(device, weights, batch, fuseActivations, workspaceBytes, precision, useGraphs, epilogue, out string? skipped);
            if (model is null)
            {
                result = new NetworkBenchResult(batch, 0, 0, 0, 0, 0, [], skipped);
            }
            else
            {
                using (model) result = Measure(model, weights, batch, warmup, iterations, peer, step);
            }
            results.Add(result);
            measured?.Invoke(result);
        }
        return results;
    }

    /// <summary>The model for <paramref name="batch"/>, or null with the reason when the device cannot hold it.</summary>
    private static AlexNetModel? TryCreate(ComputeDevice device, AlexNetWeights weights, int batch, bool fuseActivations, long workspaceBytes,
        Precision precision, bool useGraphs, GemmEpilogue epilogue, out string? skipped)
    {
        skipped = null;
        try
        {
            return AlexNetModel.Create(device, weights,
                new AlexNetOptions
                {
                    MaxBatch = batch, FuseActivations = fuseActivations, WorkspaceBytes = workspaceBytes, Precision = precision, UseGraphs = useGraphs,
                    GemmEpilogue = epilogue,
                });
        }
        catch (AlexNetException e) when (e.Message.StartsWith("out of", StringComparison.Ordinal))
        {
            skipped = e.Message;
            return null;
        }
    }

    private static NetworkBenchResult Measure(AlexNetModel model, AlexNetWeights weights, int batch, int warmup, int iterations,
        IBenchPeer? peer, Action<string> step)
    {
        float[] images = SyntheticNetwork.Images(batch, seed: batch);
        // With graphs on, this first pass at the size is also the one captured: every pass timed below is a replay.
        model.Forward(images, batch);
        var probabilities = new float[batch * model.NumClasses];
        model.ReadProbabilities(probabilities);
        bool replayed = model.HasGraph(batch);
        BenchmarkResult passes = BenchmarkHarness.Measure(model.Stream, "forward", () => model.Run(batch), warmup, iterations,
            beforeRepeat: i => step($"batch {batch}: {(replayed ? "graph " : "")}pass {i + 1}/{iterations}"),
            beforeWarmup: i => step($"batch {batch}: warm-up pass {i + 1}/{warmup}"));
        double median = passes.MedianMs, min = passes.MinMs;
        NetworkBenchGraph? graph = null;
        if (replayed)
        {
            // The same pass launch by launch, in the same process and run, so the ratio holds on a noisy machine.
            BenchmarkResult stream = BenchmarkHarness.Measure(model.Stream, "forward launch by launch", () => model.RunStream(batch), warmup, iterations,
                beforeRepeat: i => step($"batch {batch}: launch-by-launch pass {i + 1}/{iterations}"),
                beforeWarmup: i => step($"batch {batch}: launch-by-launch warm-up pass {i + 1}/{warmup}"));
            graph = new NetworkBenchGraph(true, stream.MedianMs, stream.MinMs, null);
        }
        else if (model.UsesGraphs)
        {
            graph = new NetworkBenchGraph(false, median, min, model.GraphFailure(batch));
        }

        using ForwardProfile profile = model.CreateProfile();
        int profiled = Math.Max(1, Math.Min(iterations, 5));
        var perStep = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        var order = new List<string>();
        for (int i = 0; i < profiled; i++)
        {
            step($"batch {batch}: profiled pass {i + 1}/{profiled}");
            model.Run(batch, profile);
            foreach ((string name, double ms) in profile.Read())
            {
                if (!perStep.TryGetValue(name, out List<double>? list)) { perStep[name] = list = []; order.Add(name); }
                list.Add(ms);
            }
        }
        double flops = 2.0 * model.Plan.MacsPerImage * batch;
        Dictionary<string, StepCost> costs = model.StepCosts(batch).ToDictionary(c => c.Name, StringComparer.Ordinal);
        return new NetworkBenchResult(batch, median, min, batch / (median / 1000), flops / (median * 1e6), model.Plan.PeakBytes,
            order.Select(n =>
            {
                double ms = BenchmarkHarness.Median(perStep[n]);
                StepCost? cost = costs.GetValueOrDefault(n);
                return new NetworkBenchStep(n, ms,
                    cost is { Flops: > 0 } ? cost.Flops / (ms * 1e6) : null,
                    cost is { Flops: 0 } ? cost.Bytes / (ms * 1e6) : null);
            }).ToList(), null,
            peer?.Measure(weights, images, batch, warmup, iterations, probabilities, step), graph);
    }

    /// <summary>Why bench's passes run launch by launch, or null when each batch size is captured and replayed:
    /// <paramref name="graph"/> is --graph (null for auto).</summary>
    public static string? GraphsOff(ComputeDevice device, bool? graph) =>
        graph == false ? "--graph off: the stream path runs"
        : device.GraphsUnsupportedReason is string reason ? $"{reason}: the stream path runs"
        : null;

    /// <summary>The header's line on graphs.</summary>
    public static string DescribeGraphs(string? graphsOff) => graphsOff is null
        ? "on: each batch size captured on its first pass and replayed with one launch; the launch-by-launch pass timed beside it"
        : $"off: {graphsOff}";

    /// <summary>The header's line on where fc6's and fc7's bias and ReLU run.</summary>
    public static string DescribeEpilogue(GemmEpilogue epilogue) => epilogue == GemmEpilogue.CublasLt
        ? "cublaslt: fc6's and fc7's bias and ReLU in their GEMM (cuBLASLt's RELU_BIAS epilogue); their \"gemm\" steps include them"
        : $"kernel{(epilogue == GemmEpilogue.Auto ? " (auto: until a GPU run measures cublaslt faster)" : "")}: a bias+relu pass after fc6's and fc7's GEMMs";

    /// <summary>"kernel" or "cublaslt": where the epilogue ran, as JSON names it (auto is the kernel).</summary>
    public static string EpilogueName(GemmEpilogue epilogue) => epilogue == GemmEpilogue.CublasLt ? "cublaslt" : "kernel";

    /// <summary>The header lines and the table's column names, before anything is measured.</summary>
    public static void WriteTextHeader(TextWriter o, string header, IBenchPeer? peer, bool graphs = false)
    {
        o.WriteLine(header);
        o.WriteLine($"{"batch",5} {"images/s",10} {"median ms",10} {"min ms",9} {"GFLOP/s",8} {"memory",10}" +
            (graphs ? $" {"stream ms",10} {"graph gain",10}" : "") +
            (peer is null ? "" : $" {"peer img/s",10} {"peer ms",9} {"speed-up",8} {"max |dp|",9} {"top-1",7}"));
    }

    /// <summary>One batch size's row of the table.</summary>
    public static void WriteTextRow(TextWriter o, NetworkBenchResult r, bool graphs = false)
    {
        CultureInfo c = CultureInfo.InvariantCulture;
        if (r.Skipped is not null)
        {
            o.WriteLine($"{r.Batch,5} skipped: {r.Skipped}");
            return;
        }
        o.WriteLine(string.Create(c, $"{r.Batch,5} {r.ImagesPerSecond,10:F1} {r.MedianMs,10:F3} {r.MinMs,9:F3} {r.Gflops,8:F1} {r.MemoryBytes / 1048576.0,6:F0} MiB") +
            (!graphs ? ""
                : r.Graph is { Replayed: true } g ? string.Create(c, $" {g.StreamMedianMs,10:F3} {g.StreamMedianMs / r.MedianMs,9:F2}x")
                : $" {"-",10} {"no graph",10}") +
            (r.Peer is BenchPeerResult p
                ? string.Create(c, $" {p.ImagesPerSecond,10:F1} {p.MedianMs,9:F3} {r.ImagesPerSecond / p.ImagesPerSecond,7:F2}x {p.MaxProbabilityDifference,9:0.0e+0} {p.Top1Agreements,3}/{r.Batch,-3}")
                : ""));
    }

    /// <summary>What the peer columns mean, and each measured batch size's per-operation breakdown.</summary>
    public static void WriteTextFooter(TextWriter o, IReadOnlyList<NetworkBenchResult> results, IBenchPeer? peer)
    {
        CultureInfo c = CultureInfo.InvariantCulture;
        if (peer is not null)
            o.WriteLine($"peer: {peer.Name}, timed by the wall clock (its operations return when done): the same weights and images, the same warm-up and number of passes, in this process; " +
                "speed-up = ours / peer images/s; max |dp| = largest difference of a probability; top-1 = images whose top class agrees");
        if (results.Any(r => r.Graph is not null))
            o.WriteLine("graph: median ms and min ms are replays of each batch size's graph; stream ms = the median of the same pass launch by launch, graph gain = stream ms / median ms");
        foreach (NetworkBenchResult r in results.Where(r => r.Graph is { Replayed: false }))
            o.WriteLine($"batch {r.Batch}: no graph, timed launch by launch: its capture failed: {r.Graph!.Failure}");
        foreach (NetworkBenchResult r in results.Where(r => r.Skipped is null))
        {
            double total = r.Layers.Sum(l => l.MedianMs);
            o.WriteLine(string.Create(c, $"batch {r.Batch}: per operation (median of profiled passes, {total:F3} ms in all)"));
            foreach (NetworkBenchStep l in r.Layers)
                o.WriteLine(string.Create(c, $"  {l.Name,-18} {l.MedianMs,10:F4} ms {100 * l.MedianMs / total,6:F1} %{(l.Gflops is double g ? $"  {g,8:F1} GFLOP/s" : "")}{(l.GBps is double b ? $"  {b,8:F1} GB/s" : "")}"));
        }
    }

    public static void WriteJson(TextWriter o, ComputeDevice device, string weights, bool fusedActivations, long workspaceBytes, Precision precision,
        IReadOnlyList<NetworkBenchResult> results, IBenchPeer? peer, string? graphsOff, GemmEpilogue epilogue = GemmEpilogue.Auto)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("device", device.Name);
            w.WriteString("description", device.Description);
            w.WriteString("backend", device.Backend.ToString());
            w.WriteStartObject("versions");
            w.WriteString("engine", typeof(AlexNetModel).Assembly.GetName().Version?.ToString());
            w.WriteString("dotnet", Environment.Version.ToString());
            w.WriteString("compiler", device.CompilerVersion);
            w.WriteString("gemm", device.GemmProvider);
            if (Cuda.Interop.NativeLibraries.DriverCudaVersion() is int v) w.WriteString("cuda_driver", $"{v / 1000}.{v % 1000 / 10}");
            w.WriteEndObject();
            w.WriteString("weights", weights);
            w.WriteBoolean("fused_activations", fusedActivations);
            w.WriteString("precision", Precisions.Name(precision));
            w.WriteNumber("workspace_bytes", workspaceBytes);
            w.WriteBoolean("graphs", graphsOff is null);
            if (graphsOff is not null) w.WriteString("graphs_off", graphsOff);
            w.WriteString("gemm_epilogue", EpilogueName(epilogue));
            if (peer is not null) w.WriteString("peer", peer.Name);
            w.WriteStartArray("results");
            foreach (NetworkBenchResult r in results)
            {
                w.WriteStartObject();
                w.WriteNumber("batch", r.Batch);
                if (r.Skipped is not null)
                {
                    w.WriteString("skipped", r.Skipped);
                    w.WriteEndObject();
                    continue;
                }
                w.WriteNumber("images_per_second", Math.Round(r.ImagesPerSecond, 3));
                w.WriteNumber("median_ms", Math.Round(r.MedianMs, 5));
                w.WriteNumber("min_ms", Math.Round(r.MinMs, 5));
                w.WriteNumber("gflops", Math.Round(r.Gflops, 3));
                w.WriteNumber("memory_bytes", r.MemoryBytes);
                if (r.Graph is NetworkBenchGraph graph)
                {
                    // The headline numbers above are the graph's replays when "graph" is true.
                    w.WriteBoolean("graph", graph.Replayed);
                    if (graph.Failure is not null) w.WriteString("graph_failure", graph.Failure);
                    if (graph.Replayed)
                    {
                        w.WriteNumber("stream_median_ms", Math.Round(graph.StreamMedianMs, 5));
                        w.WriteNumber("stream_min_ms", Math.Round(graph.StreamMinMs, 5));
                        w.WriteNumber("graph_speedup", Math.Round(graph.StreamMedianMs / r.MedianMs, 4));
                    }
                }
                if (r.Peer is BenchPeerResult p)
                {
                    w.WriteStartObject("peer");
                    w.WriteNumber("images_per_second", Math.Round(p.ImagesPerSecond, 3));
                    w.WriteNumber("median_ms", Math.Round(p.MedianMs, 5));
                    w.WriteNumber("min_ms", Math.Round(p.MinMs, 5));
                    w.WriteNumber("speedup", Math.Round(r.ImagesPerSecond / p.ImagesPerSecond, 4));
                    w.WriteNumber("max_probability_difference", p.MaxProbabilityDifference);
                    w.WriteNumber("top1_agreements", p.Top1Agreements);
                    w.WriteEndObject();
                }
                w.WriteStartArray("layers");
                double total = r.Layers.Sum(l => l.MedianMs);
                foreach (NetworkBenchStep l in r.Layers)
                {
                    w.WriteStartObject();
                    w.WriteString("name", l.Name);
                    w.WriteNumber("median_ms", Math.Round(l.MedianMs, 5));
                    w.WriteNumber("share", Math.Round(l.MedianMs / total, 5));
                    if (l.Gflops is double g) w.WriteNumber("gflops", Math.Round(g, 3));
                    if (l.GBps is double b) w.WriteNumber("gbps", Math.Round(b, 3));
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        o.WriteLine(Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
    }
}
