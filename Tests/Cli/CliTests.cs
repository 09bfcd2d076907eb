using System.CommandLine;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cli;

namespace AlexNet.Cuda.Tests.Cli;

/// <summary>The <c>alexnet</c> command line: help, refused command lines (exit 2), errors (1), bugs (70).</summary>
public class CliTests
{
    private sealed record Result(int Code, string Out, string Err)
    {
        public string[] ErrLines => Err.Length == 0 ? [] : Err.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
    }

    private static Result Run(params string[] args) => RunWith(null, args);

    private static Result RunWith(Func<Command>[]? commands, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = commands is null
            ? Program.Run(args, stdout, stderr)
            : Program.Run(args, stdout, stderr, commands);
        return new Result(code, stdout.ToString(), stderr.ToString());
    }

    private static string[] Split(string commandLine) => commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>A refused command line: exactly the error line and the hint, nothing on stdout.</summary>
    private static void AssertUsageError(Result r, string error, string helpFor)
    {
        Assert.Equal(2, r.Code);
        Assert.Equal("", r.Out);
        Assert.Equal([$"alexnet: error: {error}", $"Run '{helpFor} --help' for usage."], r.ErrLines);
    }

    [Fact]
    public void HelpListsEveryCommandAndTheGlobalOptions()
    {
        Result r = Run("--help");
        Assert.Equal(0, r.Code);
        Assert.Equal("", r.Err);
        string help = r.Out.ReplaceLineEndings("\n");
        Assert.Contains("Usage:\n  alexnet [command] [options]\n", help);
        foreach (string command in new[] { "info", "check", "bench", "weights <FILE>", "test" })
            Assert.Matches($@"\n  {command} +\S", help);
        Assert.Matches(@"\n  --verbose +Print the stack trace", help);
        Assert.Contains("--help", help);
    }

    [Fact]
    public void NoCommandPrintsTheHelpAndExitsWithTheUsageErrorCode()
    {
        Result r = Run();
        Assert.Equal(2, r.Code);
        Assert.Equal(Run("-h").Out, r.Out);
        Assert.Equal("", r.Err);
    }

    [Theory]
    [InlineData("check --help", "alexnet check [options]", "--device <auto|cuda|opencl>")]
    [InlineData("bench kernels -h", "alexnet bench kernels [options]", "--repeats <N>")]
    [InlineData("bench kernels --help", "alexnet bench kernels [options]", "--size <small|full>")]
    [InlineData("weights --help", "alexnet weights <FILE> [options]", "--skip-layer <LAYER[,LAYER]>")]
    [InlineData("weights --help", "alexnet weights <FILE> [options]", "--format <text|json>")]
    [InlineData("bench --help", "alexnet bench [command] [options]", "kernels")]
    public void EachCommandHasHelp(string commandLine, string usage, string listed)
    {
        Result r = Run(Split(commandLine));
        Assert.Equal(0, r.Code);
        Assert.Equal("", r.Err);
        Assert.Contains($"Usage:\n  {usage}\n", r.Out.ReplaceLineEndings("\n"));
        Assert.Matches($@"\n  {System.Text.RegularExpressions.Regex.Escape(listed)} +\S", r.Out.ReplaceLineEndings("\n"));
    }

    [Theory]
    [InlineData("chek", "chek", "check", "alexnet")]
    [InlineData("inof", "inof", "info", "alexnet")]
    [InlineData("bench kernel", "kernel", "kernels", "alexnet bench")]
    [InlineData("check --devcie cuda", "--devcie", "--device", "alexnet check")]
    [InlineData("bench kernels --repeat 3", "--repeat", "--repeats", "alexnet bench kernels")]
    [InlineData("weights f.npy --fromat json", "--fromat", "--format", "alexnet weights")]
    [InlineData("info --verbos", "--verbos", "--verbose", "alexnet info")]
    public void AnUnknownWordGetsTheNearestKnownName(string commandLine, string word, string suggestion, string helpFor)
    {
        AssertUsageError(Run(Split(commandLine)),
            $"Unrecognized command or argument '{word}'. Did you mean '{suggestion}'?", helpFor);
    }

    [Theory]
    [InlineData("frobnicate", "frobnicate", "alexnet")]
    [InlineData("weights a.npy b.npy", "b.npy", "alexnet weights")]
    [InlineData("info extra", "extra", "alexnet info")]
    [InlineData("check --gpu", "--gpu", "alexnet check")]
    public void AWordFarFromEveryNameGetsNoSuggestion(string commandLine, string word, string helpFor)
    {
        AssertUsageError(Run(Split(commandLine)), $"Unrecognized command or argument '{word}'.", helpFor);
    }

    [Theory]
    [InlineData("check --device", "Required argument missing for option: '--device'.", "alexnet check")]
    [InlineData("bench kernels --repeats", "Required argument missing for option: '--repeats'.", "alexnet bench kernels")]
    [InlineData("weights", "Required argument 'FILE' missing for command: 'weights'.", "alexnet weights")]
    public void AMissingValueIsAUsageError(string commandLine, string error, string helpFor)
    {
        AssertUsageError(Run(Split(commandLine)), error, helpFor);
    }

    [Theory]
    [InlineData("check --device tpu", "unknown device 'tpu'; use --device auto, cuda or opencl", "alexnet check")]
    [InlineData("bench kernels --device gpu0", "unknown device 'gpu0'; use --device auto, cuda or opencl", "alexnet bench kernels")]
    [InlineData("bench kernels --repeats 0", "--repeats takes a positive whole number, not '0'", "alexnet bench kernels")]
    [InlineData("bench kernels --warmup=x", "--warmup takes a positive whole number, not 'x'", "alexnet bench kernels")]
    [InlineData("bench kernels --size medium", "--size takes small or full, not 'medium'", "alexnet bench kernels")]
    [InlineData("weights f.npy --format xml", "--format takes text or json, not 'xml'", "alexnet weights")]
    [InlineData("weights f.npy --num-classes -3", "--num-classes takes a positive whole number, not '-3'", "alexnet weights")]
    [InlineData("weights f.npy --num-classes 1e3", "--num-classes takes a positive whole number, not '1e3'", "alexnet weights")]
    [InlineData("weights f.npy --seed -1", "--seed takes a non-negative whole number, not '-1'", "alexnet weights")]
    public void ABadValueNamesTheOptionWhatItTakesAndTheValue(string commandLine, string error, string helpFor)
    {
        AssertUsageError(Run(Split(commandLine)), error, helpFor);
    }

    [Fact]
    public void MainReportsThroughTheConsoleWithTheSameExitCodes()
    {
        TextWriter saved = Console.Error;
        var captured = new StringWriter();
        Console.SetError(captured);
        int code;
        try
        {
            code = Program.Main(["check", "--device", "tpu"]);
        }
        finally
        {
            Console.SetError(saved);
        }
        Assert.Equal(2, code);
        Assert.Equal("alexnet: error: unknown device 'tpu'; use --device auto, cuda or opencl" + Environment.NewLine +
            "Run 'alexnet check --help' for usage." + Environment.NewLine, captured.ToString());
    }

    [Theory]
    [InlineData("test")]
    [InlineData("test --filter FullyQualifiedName~Cli")]
    public void TestOnlyPointsAtTheLauncher(string commandLine)
    {
        Result r = Run(Split(commandLine));
        Assert.Equal(1, r.Code);
        Assert.Equal("", r.Out);
        Assert.Equal(["alexnet: error: 'alexnet test' runs through the ./alexnet launcher at the repository root (it needs the .NET SDK); run ./alexnet test"], r.ErrLines);
    }

    [Fact]
    public void AFailureIsOneLineWithExitCode1AndVerboseAddsTheStackTraceWhereverItStands()
    {
        Result plain = Run("weights", "no-such-file.npy");
        Assert.Equal(1, plain.Code);
        Assert.Equal(["alexnet: error: weight file 'no-such-file.npy' does not exist; download bvlc_alexnet.npy or give its path"], plain.ErrLines);

        foreach (string[] args in new[] { new[] { "--verbose", "weights", "no-such-file.npy" }, ["weights", "no-such-file.npy", "--verbose"] })
        {
            Result verbose = Run(args);
            Assert.Equal(1, verbose.Code);
            Assert.Equal(plain.ErrLines[0], verbose.ErrLines[0]);
            Assert.Contains("WeightFileException", verbose.ErrLines[1]);
            Assert.Contains(verbose.ErrLines, l => l.StartsWith("   at AlexNet.Cuda.Weights.WeightFile.", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void AFileNameStartingWithAtIsAPathNotAResponseFile()
    {
        Result r = Run("weights", "@no-such-file.npy");
        Assert.Equal(1, r.Code);
        Assert.Equal(["alexnet: error: weight file '@no-such-file.npy' does not exist; download bvlc_alexnet.npy or give its path"], r.ErrLines);
    }

    private static Func<Command> Command(string name, Func<ParseResult, int> action) => () =>
    {
        var command = new Command(name);
        command.SetAction(action);
        return command;
    };

    [Fact]
    public void ACommandWritesToTheGivenOutputAndItsExitCodeIsKept()
    {
        Func<Command>[] commands =
        [
            Command("ok", result => { result.InvocationConfiguration.Output.WriteLine("done"); return 0; }),
            Command("fails", _ => 1),
        ];
        Result ok = RunWith(commands, "ok");
        Assert.Equal((0, "done" + Environment.NewLine, ""), (ok.Code, ok.Out, ok.Err));
        Result fails = RunWith(commands, "fails");
        Assert.Equal((1, "", ""), (fails.Code, fails.Out, fails.Err));
    }

    [Fact]
    public void AnUnexpectedExceptionIsAnInternalErrorWithExitCode70()
    {
        Func<Command>[] commands = [Command("boom", _ => throw new InvalidOperationException("the impossible happened"))];
        Result r = RunWith(commands, "boom");
        Assert.Equal(70, r.Code);
        Assert.Equal(["alexnet: internal error: InvalidOperationException: the impossible happened (run again with --verbose for the stack trace and report it)"], r.ErrLines);

        Result verbose = RunWith(commands, "boom", "--verbose");
        Assert.Equal(70, verbose.Code);
        Assert.Equal("alexnet: internal error: InvalidOperationException: the impossible happened", verbose.ErrLines[0]);
        Assert.StartsWith("System.InvalidOperationException: the impossible happened", verbose.ErrLines[1]);
        Assert.Contains(verbose.ErrLines, l => l.StartsWith("   at ", StringComparison.Ordinal));
    }

    /// <summary>The textbook recursive definition, exponential but independent of the table the CLI uses.</summary>
    private static int ReferenceDistance(string a, string b)
    {
        if (a.Length == 0) return b.Length;
        if (b.Length == 0) return a.Length;
        int substitute = ReferenceDistance(a[1..], b[1..]) + (a[0] == b[0] ? 0 : 1);
        return Math.Min(substitute, Math.Min(ReferenceDistance(a[1..], b), ReferenceDistance(a, b[1..])) + 1);
    }

    [Fact]
    public void EditDistanceMatchesTheRecursiveDefinition()
    {
        Assert.Equal(3, UsageErrors.EditDistance("kitten", "sitting"));
        Assert.Equal(2, UsageErrors.EditDistance("--devcie", "--device"));
        var random = new Random(7);
        for (int i = 0; i < 500; i++)
        {
            string a = RandomWord(random), b = RandomWord(random);
            Assert.True(ReferenceDistance(a, b) == UsageErrors.EditDistance(a, b), $"'{a}' vs '{b}'");
        }

        static string RandomWord(Random random) =>
            new(Enumerable.Range(0, random.Next(0, 7)).Select(_ => "ab-c"[random.Next(4)]).ToArray());
    }

    [SkippableFact]
    public void InfoListsTheOpenClDeviceNvrtcAndTheCache()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        TestNative.Require(NativeLibraryId.Nvrtc);
        var output = new StringWriter();
        Assert.Equal(0, Program.Run(["info"], output));
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
        int code = Program.Run(["check", "--device", "opencl"], output);
        Assert.True(code == 0, output.ToString());
        Assert.Matches(@"checks: \d+ passed, 0 failed", output.ToString());
    }

    [SkippableFact]
    public void BenchKernelsReportsMediansAndRatesForEachOperation()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        TestNative.Require(NativeLibraryId.ClBlast);
        var output = new StringWriter();
        Assert.Equal(0, Program.Run(["bench", "kernels", "--device", "opencl", "--warmup", "1", "--repeats", "3"], output));
        string text = output.ToString();
        Assert.Contains("device: opencl:0 ", text);
        Assert.Contains("warm-up 1, repeats 3, device-side timing", text);
        Assert.Matches(@"transpose_kernel1 \d+x729x96 +median +\d+\.\d+ ms +min +\d+\.\d+ ms +\d+\.\d+ GB/s", text);
        Assert.Matches(@"sgemm fc6 4096x\d+x9216 +median .* GFLOP/s", text);
    }
}
