using AlexNet.Cuda.Weights;
using System.Text.Json;
using AlexNet.Cli;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Network;

namespace AlexNet.Cuda.Tests.Cli;

/// <summary>`alexnet bench` on the OpenCL device: the JSON has the fields programs read, with consistent numbers.</summary>
[Collection(OpenClCollection.Name)]
public class NetworkBenchTests(OpenClFixture fixture)
{
    [SkippableFact]
    public void BatchMaxIsTheLargestBatchWhoseLoweringsFitTheWorkspaceWhole()
    {
        _ = fixture.Device;
        // conv2's lowering is the largest: 2 groups × 48·5·5 rows × 27·27 columns = 1 749 600 floats (6.67 MiB) an
        // image; conv1's 3·11·11 × 55·55 = 1 098 075. 16 MiB holds two images of it, 1 GiB 153 (306 in 16 bits).
        long perImage = AlexNetArchitecture.Default.Layers.Take(5).Select((l, i) =>
        {
            int[] outputs = [55, 27, 13, 13, 13];
            return (long)l.WeightShape[0] * l.WeightShape[1] * l.WeightShape[2] * l.Groups * outputs[i] * outputs[i];
        }).Max();
        Assert.Equal(1_749_600, perImage);
        Assert.Equal((int)((1L << 30) / (perImage * 4)), NetworkPlan.LargestUnchunkedBatch(AlexNetArchitecture.Default, 1L << 30));
        Assert.Equal(153, NetworkPlan.LargestUnchunkedBatch(AlexNetArchitecture.Default, 1L << 30));
        Assert.Equal(306, NetworkPlan.LargestUnchunkedBatch(AlexNetArchitecture.Default, 1L << 30, elementBytes: 2));
        Assert.Equal(2, NetworkPlan.LargestUnchunkedBatch(AlexNetArchitecture.Default, 16L << 20));

        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--batch", "1,max", "--workspace", "16", "--iterations", "1", "--warmup", "1",
            "--peer", "none", "--format", "json"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        Assert.Contains("alexnet: --batch max is 2: the largest batch whose every lowering fits the 16 MiB workspace in one chunk", stderr.ToString());
        using JsonDocument doc = JsonDocument.Parse(stdout.ToString());
        Assert.Equal([1, 2], doc.RootElement.GetProperty("results").EnumerateArray().Select(r => r.GetProperty("batch").GetInt32()));
    }

    [SkippableFact]
    public void BenchAtBatchOneWritesJsonWithEveryFieldAndAPerOperationBreakdown()
    {
        _ = fixture.Device;
        TestNative.Require(NativeLibraryId.ClBlast);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--batch", "1", "--iterations", "2", "--warmup", "1", "--format", "json"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        using JsonDocument doc = JsonDocument.Parse(stdout.ToString());
        JsonElement root = doc.RootElement;
        Assert.False(string.IsNullOrEmpty(root.GetProperty("device").GetString()));
        Assert.Equal("OpenCl", root.GetProperty("backend").GetString());
        Assert.False(string.IsNullOrEmpty(root.GetProperty("versions").GetProperty("compiler").GetString()));
        Assert.StartsWith("synthetic", root.GetProperty("weights").GetString());
        Assert.False(root.GetProperty("fused_activations").GetBoolean()); // a CPU device's default
        JsonElement result = Assert.Single(root.GetProperty("results").EnumerateArray());
        Assert.Equal(1, result.GetProperty("batch").GetInt32());
        double median = result.GetProperty("median_ms").GetDouble(), min = result.GetProperty("min_ms").GetDouble();
        Assert.InRange(min, double.Epsilon, median);
        Assert.Equal(1000 / median, result.GetProperty("images_per_second").GetDouble(), 0.01 * 1000 / median);
        Assert.Equal(1.4488 / (median / 1000), result.GetProperty("gflops").GetDouble(), 0.01 * 1.4488 / (median / 1000));
        Assert.True(result.GetProperty("memory_bytes").GetInt64() > 233L << 20);
        JsonElement[] layers = [.. result.GetProperty("layers").EnumerateArray()];
        Assert.Equal(["input", "conv1 im2col", "conv1 gemm", "conv1 bias+relu", "norm1", "pool1"], layers.Take(6).Select(l => l.GetProperty("name").GetString()));
        Assert.Equal("softmax", layers[^1].GetProperty("name").GetString());
        Assert.Equal(1.0, layers.Sum(l => l.GetProperty("share").GetDouble()), 1e-3);
        Assert.All(layers.Where(l => l.GetProperty("name").GetString()!.EndsWith("gemm", StringComparison.Ordinal)),
            l => Assert.True(l.GetProperty("gflops").GetDouble() > 0));
        // The memory-bound steps get a bandwidth instead: bytes moved over their own time.
        Assert.All(layers.Where(l => !l.GetProperty("name").GetString()!.EndsWith("gemm", StringComparison.Ordinal)),
            l => Assert.True(l.GetProperty("gbps").GetDouble() > 0 && !l.TryGetProperty("gflops", out _)));

        // On a CPU device this build times TorchSharp beside the engine, on the same images: its probabilities
        // must be the engine's (independent kernels: only rounding may differ).
        Assert.StartsWith("TorchSharp 0.107.0 (libtorch CPU", root.GetProperty("peer").GetString());
        JsonElement peer = result.GetProperty("peer");
        double peerMedian = peer.GetProperty("median_ms").GetDouble();
        Assert.InRange(peer.GetProperty("min_ms").GetDouble(), double.Epsilon, peerMedian);
        Assert.Equal(1000 / peerMedian, peer.GetProperty("images_per_second").GetDouble(), 0.01 * 1000 / peerMedian);
        Assert.Equal(peerMedian / median, peer.GetProperty("speedup").GetDouble(), 0.01 * peerMedian / median);
        Assert.InRange(peer.GetProperty("max_probability_difference").GetDouble(), 0, 1e-4);
        Assert.Equal(1, peer.GetProperty("top1_agreements").GetInt32());
    }

    /// <summary>`bench --format json` on OpenCL with one timed pass at <paramref name="batch"/>, no peer, and
    /// <paramref name="options"/>; it must succeed.</summary>
    private static JsonDocument QuickBenchJson(int batch, params string[] options)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--batch", batch.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--iterations", "1", "--warmup", "1", "--peer", "none", "--format", "json", .. options], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        return JsonDocument.Parse(stdout.ToString());
    }

    [SkippableTheory]
    [InlineData("on")]
    [InlineData("off")]
    public void FuseChoosesWhetherTheConvolutionsBiasAndReluArePassesOfTheirOwn(string fuse)
    {
        _ = fixture.Device;
        using JsonDocument doc = QuickBenchJson(batch: 1, "--fuse", fuse);
        Assert.Equal(fuse == "on", doc.RootElement.GetProperty("fused_activations").GetBoolean());
        string[] names = [.. Assert.Single(doc.RootElement.GetProperty("results").EnumerateArray()).GetProperty("layers").EnumerateArray()
            .Select(l => l.GetProperty("name").GetString()!)];
        Assert.Equal(fuse == "on" ? 0 : 5, names.Count(n => n.StartsWith("conv", StringComparison.Ordinal) && n.EndsWith(" bias+relu", StringComparison.Ordinal)));
        // Fused, norm1+pool1 and norm2+pool2 are one launch each too.
        Assert.Equal(fuse == "on" ? 20 : 27, names.Length);
        Assert.Equal(fuse == "on", names.Contains("norm1+pool1"));
    }

    [SkippableTheory]
    [InlineData("auto", "OpenCL has no graphs: the stream path runs")]
    [InlineData("off", "--graph off: the stream path runs")]
    public void GraphAutoOrOffOnOpenClTimesTheStreamPassAndSaysWhy(string graph, string why)
    {
        _ = fixture.Device;
        using JsonDocument doc = QuickBenchJson(batch: 1, "--graph", graph);
        Assert.False(doc.RootElement.GetProperty("graphs").GetBoolean());
        Assert.Equal(why, doc.RootElement.GetProperty("graphs_off").GetString());
        JsonElement result = Assert.Single(doc.RootElement.GetProperty("results").EnumerateArray());
        Assert.False(result.TryGetProperty("graph", out _));
        Assert.False(result.TryGetProperty("stream_median_ms", out _));
    }

    [SkippableFact]
    public void TheTextHeaderSaysWhetherGraphsRunAndTheTableHasNoGraphColumnsWithout()
    {
        _ = fixture.Device;
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--batch", "1", "--iterations", "1", "--warmup", "1", "--peer", "none"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        string[] lines = stdout.ToString().ReplaceLineEndings("\n").Split('\n');
        Assert.Contains("graph: off: OpenCL has no graphs: the stream path runs", lines);
        Assert.DoesNotContain("stream ms", stdout.ToString());
        Assert.Matches(@"^\s+1\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+ MiB$", lines.Single(l => l.TrimStart().StartsWith("1 ", StringComparison.Ordinal)));
    }

    [SkippableFact]
    public void GraphOnWhereTheDeviceHasNoGraphsIsAUsageErrorThatSaysWhy()
    {
        _ = fixture.Device;
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--batch", "1", "--graph", "on"], stdout, stderr);
        Assert.Equal(2, code);
        Assert.Equal("", stdout.ToString());
        Assert.Equal("alexnet: error: --graph on needs a device that captures graphs, but OpenCL has no graphs (--device opencl); use --graph auto or off\n" +
            "Run 'alexnet bench --help' for usage.\n", stderr.ToString().ReplaceLineEndings("\n"));
    }

    /// <summary>What bench writes where graphs are on (a GPU): its numbers made up here, the form is what is checked.</summary>
    [Fact]
    public void WithGraphsTheTableAndTheJsonCarryTheLaunchByLaunchTimesAndEachFailedCapture()
    {
        NetworkBenchResult[] results =
        [
            new(8, 2.0, 1.9, 4000, 700, 300L << 20, [new NetworkBenchStep("input", 0.01, null, 50)], null, Graph: new NetworkBenchGraph(true, 2.5, 2.4, null)),
            new(64, 9.0, 8.8, 7111, 1000, 500L << 20, [new NetworkBenchStep("input", 0.02, null, 60)], null,
                Graph: new NetworkBenchGraph(false, 9.0, 8.8, "cuStreamEndCapture(stream, out graph) failed: CUDA_ERROR_STREAM_CAPTURE_INVALIDATED (901)")),
        ];
        var text = new StringWriter();
        NetworkBench.WriteTextHeader(text, $"graph: {NetworkBench.DescribeGraphs(null)}", null, graphs: true);
        foreach (NetworkBenchResult r in results) NetworkBench.WriteTextRow(text, r, graphs: true);
        NetworkBench.WriteTextFooter(text, results, null);
        string[] lines = text.ToString().ReplaceLineEndings("\n").Split('\n');
        Assert.Equal("graph: on: each batch size captured on its first pass and replayed with one launch; the launch-by-launch pass timed beside it", lines[0]);
        Assert.Matches(@"^batch\s+images/s\s+median ms\s+min ms\s+GFLOP/s\s+memory\s+stream ms\s+graph gain$", lines[1]);
        Assert.Matches(@"^\s+8\s+4000\.0\s+2\.000\s+1\.900\s+700\.0\s+300 MiB\s+2\.500\s+1\.25x$", lines[2]);
        Assert.Matches(@"^\s+64\s+7111\.0\s+9\.000\s+8\.800\s+1000\.0\s+500 MiB\s+-\s+no graph$", lines[3]);
        Assert.Contains("batch 64: no graph, timed launch by launch: its capture failed: cuStreamEndCapture(stream, out graph) failed: CUDA_ERROR_STREAM_CAPTURE_INVALIDATED (901)", lines);

        var json = new StringWriter();
        using (var device = new RecordingDevice())
            NetworkBench.WriteJson(json, device, "synthetic", true, 1L << 20, Precision.Fp32, results, null, graphsOff: null);
        using JsonDocument doc = JsonDocument.Parse(json.ToString());
        Assert.True(doc.RootElement.GetProperty("graphs").GetBoolean());
        Assert.False(doc.RootElement.TryGetProperty("graphs_off", out _));
        JsonElement[] rows = [.. doc.RootElement.GetProperty("results").EnumerateArray()];
        Assert.True(rows[0].GetProperty("graph").GetBoolean());
        Assert.Equal(2.5, rows[0].GetProperty("stream_median_ms").GetDouble());
        Assert.Equal(2.4, rows[0].GetProperty("stream_min_ms").GetDouble());
        Assert.Equal(1.25, rows[0].GetProperty("graph_speedup").GetDouble());
        Assert.False(rows[1].GetProperty("graph").GetBoolean());
        Assert.StartsWith("cuStreamEndCapture", rows[1].GetProperty("graph_failure").GetString());
        Assert.False(rows[1].TryGetProperty("stream_median_ms", out _));
    }

    [Fact]
    public void AGraphChoiceThatIsNotOneIsAUsageErrorBeforeAnyDeviceIsOpened()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(2, Program.Run(["bench", "--device", "opencl", "--graph", "yes"], stdout, stderr));
        Assert.Equal("", stdout.ToString());
        Assert.StartsWith("alexnet: error: --graph takes one of auto, on, off, not 'yes'\n", stderr.ToString().ReplaceLineEndings("\n"));
    }

    [SkippableTheory]
    [InlineData("16")]
    [InlineData("l2")]
    [InlineData("L2")]
    public void WorkspaceSetsTheLoweringBufferInMibOrToTheDevicesCache(string workspace)
    {
        ComputeDevice device = fixture.Device;
        using JsonDocument doc = QuickBenchJson(batch: 2, "--workspace", workspace);
        long expected = workspace == "16" ? 16L << 20 : AlexNetOptions.CacheSizedWorkspaceBytes(device);
        Assert.Equal(expected, doc.RootElement.GetProperty("workspace_bytes").GetInt64());
        // The device's cache, but never less than one image's largest lowering (conv2's 1200 × 729 floats).
        if (workspace != "16")
            Assert.Equal(device.CacheBytes > 0 ? Math.Max(device.CacheBytes, 1200L * 729 * 4) : AlexNetOptions.DefaultWorkspaceBytes, expected);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    [InlineData("l3")]
    [InlineData("1.5")]
    public void AWorkspaceThatDoesNotParseIsAUsageError(string workspace)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--workspace", workspace], stdout, stderr);
        Assert.Equal(2, code);
        Assert.Contains($"--workspace takes a positive whole number of MiB or l2, not '{workspace}'", stderr.ToString());
    }

    [SkippableFact]
    public void PeerNoneTimesTheEngineAloneAndTheTextTableNamesThePeer()
    {
        _ = fixture.Device;
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--batch", "1", "--iterations", "1", "--warmup", "1", "--peer", "none", "--format", "json"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        using JsonDocument doc = JsonDocument.Parse(stdout.ToString());
        Assert.False(doc.RootElement.TryGetProperty("peer", out _));
        Assert.False(Assert.Single(doc.RootElement.GetProperty("results").EnumerateArray()).TryGetProperty("peer", out _));

        stdout = new StringWriter();
        code = Program.Run(["bench", "--device", "opencl", "--batch", "1", "--iterations", "1", "--warmup", "1", "--peer", "torchsharp"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        Assert.Matches(@"\n\s+1\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+ MiB\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+\S+\s+1/1", stdout.ToString());
        Assert.Contains("peer: TorchSharp 0.107.0", stdout.ToString());
    }

    [SkippableFact]
    public void PeerOnnxRuntimeRunsTheSameNetworkAndAgreesWithTheEngine()
    {
        // ONNX Runtime's CPU provider on the graph built from the same (synthetic, full-size) weights: every image's
        // top class agrees and no probability differs by more than 1e-4 (two FP32 computations: about 1e-5 here).
        _ = fixture.Device;
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--batch", "3", "--iterations", "1", "--warmup", "1", "--peer", "onnxruntime", "--format", "json"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        using JsonDocument doc = JsonDocument.Parse(stdout.ToString());
        Assert.StartsWith("ONNX Runtime 1.31.1 (CPU execution provider", doc.RootElement.GetProperty("peer").GetString());
        JsonElement peer = Assert.Single(doc.RootElement.GetProperty("results").EnumerateArray()).GetProperty("peer");
        Assert.Equal(3, peer.GetProperty("top1_agreements").GetInt32());
        double difference = peer.GetProperty("max_probability_difference").GetDouble();
        Assert.InRange(difference, 0, 1e-4);
        Assert.True(peer.GetProperty("images_per_second").GetDouble() > 0);
    }

    [Fact]
    public void ABadBatchListIsAUsageErrorBeforeAnyDeviceIsOpened()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(2, Program.Run(["bench", "--device", "opencl", "--batch", "1,x"], stdout, stderr));
        Assert.Equal("", stdout.ToString());
        Assert.Equal("alexnet: error: --batch takes positive whole numbers or max separated by commas (as 1,64,max); 'x' in '1,x' is not one\n" +
            "Run 'alexnet bench --help' for usage.\n", stderr.ToString().ReplaceLineEndings("\n"));
    }

    [SkippableFact]
    public void EveryBatchSkippedIsAFailureThatSaysWhatToDo()
    {
        _ = fixture.Device;
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--peer", "none", "--batch", "2000000,1000000", "--iterations", "1"], stdout, stderr);
        Assert.Equal(1, code);
        string[] errors = stderr.ToString().ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
        Assert.Matches(@"^alexnet: error: every batch size was skipped; batch 1000000: out of (device|host) memory: .*; use a smaller batch$", Assert.Single(errors));
        Assert.Matches(@"\n2000000 skipped: out of .*\n1000000 skipped: out of ", stdout.ToString().ReplaceLineEndings("\n"));
    }
}
