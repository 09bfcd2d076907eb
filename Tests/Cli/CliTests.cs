using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Cli;

public class CliTests
{
    [Fact]
    public void UnknownCommandIsAOneLineError()
    {
        var e = Assert.Throws<AlexNetException>(() => AlexNet.Cli.Program.Run(["frobnicate"], TextWriter.Null));
        Assert.Equal("unknown command 'frobnicate'; run 'alexnet --help' for the list", e.Message);
    }

    [Fact]
    public void UnknownOptionIsNamed()
    {
        var e = Assert.Throws<AlexNetException>(() => AlexNet.Cli.Program.Run(["check", "--devcie", "cuda"], TextWriter.Null));
        Assert.StartsWith("'check' has no option --devcie", e.Message);
    }

    [Fact]
    public void MainPrintsErrorsAsOneLineAndExitsNonZero()
    {
        TextWriter saved = Console.Error;
        var captured = new StringWriter();
        Console.SetError(captured);
        try
        {
            int code = AlexNet.Cli.Program.Main(["check", "--device", "tpu"]);
            Assert.Equal(1, code);
        }
        finally
        {
            Console.SetError(saved);
        }
        Assert.Equal("alexnet: error: unknown device 'tpu'; use --device auto, cuda or opencl" + Environment.NewLine, captured.ToString());
    }

    [SkippableFact]
    public void InfoListsTheOpenClDeviceNvrtcAndTheCache()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        TestNative.Require(NativeLibraryId.Nvrtc);
        var output = new StringWriter();
        Assert.Equal(0, AlexNet.Cli.Program.Run(["info"], output));
        string text = output.ToString();
        Assert.Contains("kernel cache:", text);
        Assert.Matches(@"NVRTC:\s+NVRTC \d+\.\d+, builds sm_\d+\.\.sm_\d+", text);
        Assert.Matches(@"OpenCL devices:\n  opencl:0 ", text.ReplaceLineEndings("\n"));
        Assert.Contains("--device auto: ", text);
    }

    [SkippableFact]
    public void CheckRunsEveryKernelOnOpenClAndPasses()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        TestNative.Require(NativeLibraryId.ClBlast);
        var output = new StringWriter();
        int code = AlexNet.Cli.Program.Run(["check", "--device", "opencl"], output);
        Assert.True(code == 0, output.ToString());
        Assert.Matches(@"checks: \d+ passed, 0 failed", output.ToString());
    }

    [SkippableFact]
    public void BenchKernelsReportsMediansAndRatesForEachOperation()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        TestNative.Require(NativeLibraryId.ClBlast);
        var output = new StringWriter();
        Assert.Equal(0, AlexNet.Cli.Program.Run(["bench", "kernels", "--device", "opencl", "--warmup", "1", "--repeats", "3"], output));
        string text = output.ToString();
        Assert.Contains("device: opencl:0 ", text);
        Assert.Contains("warm-up 1, repeats 3, device-side timing", text);
        Assert.Matches(@"transpose_kernel1 \d+x729x96 +median +\d+\.\d+ ms +min +\d+\.\d+ ms +\d+\.\d+ GB/s", text);
        Assert.Matches(@"sgemm fc6 4096x\d+x9216 +median .* GFLOP/s", text);
        var e = Assert.Throws<AlexNetException>(() => AlexNet.Cli.Program.Run(["bench", "kernels", "--repeats", "0"], TextWriter.Null));
        Assert.Equal("--repeats takes a positive whole number, not '0'", e.Message);
    }
}
