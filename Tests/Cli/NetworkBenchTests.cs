using System.Text.Json;
using AlexNet.Cli;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Cli;

/// <summary>`alexnet bench` on the OpenCL device: the JSON has the fields programs read, with consistent numbers.</summary>
[Collection(OpenClCollection.Name)]
public class NetworkBenchTests(OpenClFixture fixture)
{
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

    [Fact]
    public void ABadBatchListIsAUsageErrorBeforeAnyDeviceIsOpened()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(2, Program.Run(["bench", "--device", "opencl", "--batch", "1,x"], stdout, stderr));
        Assert.Equal("", stdout.ToString());
        Assert.Equal("alexnet: error: --batch takes positive whole numbers separated by commas (as 1,8,64); 'x' in '1,x' is not one\n" +
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
