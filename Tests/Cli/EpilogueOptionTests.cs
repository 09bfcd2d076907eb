using System.Text.Json;
using AlexNet.Cli;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Network;

namespace AlexNet.Cuda.Tests.Cli;

/// <summary><c>alexnet bench --epilogue auto|kernel|cublaslt</c>: parsed, refused where the device has no cuBLASLt
/// epilogue (before anything is measured), and reported in the header and the JSON.</summary>
[Collection(OpenClCollection.Name)]
public class EpilogueOptionTests(OpenClFixture fixture)
{
    [Fact]
    public void AnEpilogueThatIsNotOneIsAUsageErrorBeforeAnyDeviceIsOpened()
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Assert.Equal(2, Program.Run(["bench", "--device", "opencl", "--epilogue", "fast"], stdout, stderr));
        Assert.Equal("", stdout.ToString());
        Assert.StartsWith("alexnet: error: --epilogue takes one of auto, kernel, cublaslt, not 'fast'\n", stderr.ToString().ReplaceLineEndings("\n"));
    }

    [SkippableFact]
    public void CublasLtOnOpenClIsAUsageErrorThatSaysWhy()
    {
        ComputeDevice device = fixture.Device;
        Assert.False(device.SupportsGemmBias(ElementFormat.Float32, GemmMath.Default, out string? reason));
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--batch", "1", "--epilogue", "cublaslt"], stdout, stderr);
        Assert.Equal(2, code);
        Assert.Equal("", stdout.ToString());
        Assert.Equal($"alexnet: error: --epilogue cublaslt needs cuBLASLt's bias epilogue, but {reason} (--device opencl); use --epilogue auto or kernel\n" +
            "Run 'alexnet bench --help' for usage.\n", stderr.ToString().ReplaceLineEndings("\n"));
        Assert.Contains("has no GEMM with a bias epilogue", reason);
    }

    [SkippableFact]
    public void KernelRunsTheBiasPassesAndTheJsonSaysSo()
    {
        _ = fixture.Device;
        TestNative.Require(NativeLibraryId.ClBlast);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["bench", "--device", "opencl", "--batch", "1", "--iterations", "1", "--warmup", "1", "--peer", "none", "--format", "json",
            "--epilogue", "kernel"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        using JsonDocument doc = JsonDocument.Parse(stdout.ToString());
        Assert.Equal("kernel", doc.RootElement.GetProperty("gemm_epilogue").GetString());
        string[] names = [.. Assert.Single(doc.RootElement.GetProperty("results").EnumerateArray()).GetProperty("layers").EnumerateArray()
            .Select(l => l.GetProperty("name").GetString()!)];
        Assert.Contains("fc6 bias+relu", names);
        Assert.Contains("fc7 bias+relu", names);
    }

    [Fact]
    public void TheHeaderAndTheJsonNameWhereTheBiasRan()
    {
        Assert.Equal("cublaslt: fc6's and fc7's bias and ReLU in their GEMM (cuBLASLt's RELU_BIAS epilogue); their \"gemm\" steps include them",
            NetworkBench.DescribeEpilogue(GemmEpilogue.CublasLt));
        Assert.Equal("kernel (auto: until a GPU run measures cublaslt faster): a bias+relu pass after fc6's and fc7's GEMMs", NetworkBench.DescribeEpilogue(GemmEpilogue.Auto));
        Assert.Equal("kernel: a bias+relu pass after fc6's and fc7's GEMMs", NetworkBench.DescribeEpilogue(GemmEpilogue.Kernel));
        foreach ((GemmEpilogue epilogue, string name) in new[] { (GemmEpilogue.Auto, "kernel"), (GemmEpilogue.Kernel, "kernel"), (GemmEpilogue.CublasLt, "cublaslt") })
        {
            var json = new StringWriter();
            using (var device = new RecordingDevice())
                NetworkBench.WriteJson(json, device, "synthetic", true, 1L << 20, Precision.Fp32, [], null, graphsOff: null, epilogue);
            using JsonDocument doc = JsonDocument.Parse(json.ToString());
            Assert.Equal(name, doc.RootElement.GetProperty("gemm_epilogue").GetString());
        }
    }

    [Fact]
    public void HelpListsTheChoices()
    {
        var stdout = new StringWriter();
        Assert.Equal(0, Program.Run(["bench", "--help"], stdout, new StringWriter()));
        Assert.Contains("--epilogue <auto|kernel|cublaslt>", stdout.ToString());
    }
}
