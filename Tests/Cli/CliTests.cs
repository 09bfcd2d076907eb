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
    public void AnUnknownCommandGetsTheNearestKnownName(string commandLine, string word, string suggestion, string helpFor)
    {
        AssertUsageError(Run(Split(commandLine)),
            $"Unrecognized command or argument '{word}'. Did you mean '{suggestion}'?", helpFor);
    }

    [Theory]
    [InlineData("check --devcie cuda", "check has no option --devcie. Did you mean '--device'?", "alexnet check")]
    [InlineData("bench kernels --repeat 3", "bench kernels has no option --repeat. Did you mean '--repeats'?", "alexnet bench kernels")]
    [InlineData("weights f.npy --fromat json", "weights has no option --fromat. Did you mean '--format'?", "alexnet weights")]
    [InlineData("info --verbos", "info has no option --verbos. Did you mean '--verbose'?", "alexnet info")]
    // Before the file, the parser hands the unknown option to FILE: it is still refused as an option.
    [InlineData("weights --fromat json f.npy", "weights has no option --fromat. Did you mean '--format'?", "alexnet weights")]
    [InlineData("bench --iteration 3", "bench has no option --iteration. Did you mean '--iterations'?", "alexnet bench")]
    public void AnUnknownOptionGetsTheNearestKnownName(string commandLine, string error, string helpFor)
    {
        AssertUsageError(Run(Split(commandLine)), error, helpFor);
    }

    /// <summary>The one rule for an unknown option, on every command this program runs (the ./alexnet launcher
    /// answers for <c>test</c>: LauncherTests).</summary>
    [Theory]
    [InlineData("--bogus", "alexnet", "alexnet")]
    [InlineData("info --bogus", "info", "alexnet info")]
    [InlineData("check --bogus", "check", "alexnet check")]
    [InlineData("check --device opencl --bogus", "check", "alexnet check")]
    [InlineData("bench --bogus", "bench", "alexnet bench")]
    [InlineData("bench --batch 1 --bogus", "bench", "alexnet bench")]
    [InlineData("bench kernels --bogus", "bench kernels", "alexnet bench kernels")]
    [InlineData("weights --bogus", "weights", "alexnet weights")]
    [InlineData("weights --bogus f.npy", "weights", "alexnet weights")]
    [InlineData("weights f.npy --bogus", "weights", "alexnet weights")]
    [InlineData("features --weights w.npy --layer fc7 --out o --bogus x.png", "features", "alexnet features")]
    [InlineData("features --weights w.npy --layer fc7 --out o x.png --bogus", "features", "alexnet features")]
    [InlineData("classify --weights w.npy --bogus x.png", "classify", "alexnet classify")]
    [InlineData("classify --weights w.npy x.png --bogus", "classify", "alexnet classify")]
    public void EveryCommandRefusesAnUnknownOptionWithExitCode2AndTheUsageHint(string commandLine, string command, string helpFor)
    {
        AssertUsageError(Run(Split(commandLine)), $"{command} has no option --bogus", helpFor);
    }

    [Theory]
    [InlineData("frobnicate", "Unrecognized command or argument 'frobnicate'.", "alexnet")]
    [InlineData("weights a.npy b.npy", "Unrecognized command or argument 'b.npy'.", "alexnet weights")]
    [InlineData("info extra", "Unrecognized command or argument 'extra'.", "alexnet info")]
    [InlineData("check --gpu", "check has no option --gpu", "alexnet check")]
    [InlineData("weights -x.npy", "weights has no option -x.npy", "alexnet weights")]
    public void AWordFarFromEveryNameGetsNoSuggestion(string commandLine, string error, string helpFor)
    {
        AssertUsageError(Run(Split(commandLine)), error, helpFor);
    }

    [Fact]
    public void APathThatStartsWithADashIsWrittenDotSlash()
    {
        Result r = Run("weights", "./-x.npy");
        Assert.Equal(1, r.Code);
        Assert.Equal(["alexnet: error: weight file './-x.npy' does not exist; download bvlc_alexnet.npy or give its path"], r.ErrLines);
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
    [InlineData("bench --batch 0", "--batch takes positive whole numbers or max separated by commas (as 1,64,max), not '0'", "alexnet bench")]
    [InlineData("bench --batch -1", "--batch takes positive whole numbers or max separated by commas (as 1,64,max), not '-1'", "alexnet bench")]
    [InlineData("bench --batch abc", "--batch takes positive whole numbers or max separated by commas (as 1,64,max), not 'abc'", "alexnet bench")]
    [InlineData("bench --batch 1,x", "--batch takes positive whole numbers or max separated by commas (as 1,64,max); 'x' in '1,x' is not one", "alexnet bench")]
    [InlineData("bench --batch 1,,2", "--batch takes positive whole numbers or max separated by commas (as 1,64,max); '1,,2' has an empty item", "alexnet bench")]
    [InlineData("bench --batch max,max", "--batch names max twice", "alexnet bench")]
    [InlineData("bench --batch 8,", "--batch takes positive whole numbers or max separated by commas (as 1,64,max); '8,' has an empty item", "alexnet bench")]
    [InlineData("bench --batch ,", "--batch takes positive whole numbers or max separated by commas (as 1,64,max), not ','", "alexnet bench")]
    [InlineData("bench --batch 1,8,8", "--batch names 8 twice", "alexnet bench")]
    [InlineData("bench --batch 99999999999", "--batch takes positive whole numbers or max separated by commas (as 1,64,max), not '99999999999'", "alexnet bench")]
    [InlineData("bench --iterations 0", "--iterations takes a positive whole number, not '0'", "alexnet bench")]
    [InlineData("bench --peer pytorch", "--peer takes one of auto, torchsharp, onnxruntime, none, not 'pytorch'", "alexnet bench")]
    [InlineData("weights f.npy --skip-layer fc9",
        "--skip-layer takes layer names separated by commas, from conv1, conv2, conv3, conv4, conv5, fc6, fc7, fc8, not 'fc9'", "alexnet weights")]
    [InlineData("weights f.npy --skip-layer fc7,pool5",
        "--skip-layer takes layer names separated by commas, from conv1, conv2, conv3, conv4, conv5, fc6, fc7, fc8; 'pool5' in 'fc7,pool5' is not one", "alexnet weights")]
    [InlineData("weights f.npy --skip-layer fc8,fc8", "--skip-layer names fc8 twice", "alexnet weights")]
    public void ABadValueNamesTheOptionWhatItTakesAndTheValue(string commandLine, string error, string helpFor)
    {
        AssertUsageError(Run(Split(commandLine)), error, helpFor);
    }

    [Fact]
    public void AnEmptyListIsRefusedWhereverItStands()
    {
        AssertUsageError(Run("bench", "--batch", ""), "--batch takes positive whole numbers or max separated by commas (as 1,64,max), not ''", "alexnet bench");
        AssertUsageError(Run("weights", "f.npy", "--skip-layer", ""),
            "--skip-layer takes layer names separated by commas, from conv1, conv2, conv3, conv4, conv5, fc6, fc7, fc8, not ''", "alexnet weights");
    }

    [Fact]
    public void TheTopLevelHelpNamesTheGemmProvidersAsTheyAre()
    {
        string help = Run("--help").Out;
        Assert.Contains("on PoCL, with oneDNN or OpenBLAS for the GEMMs (CLBlast on an OpenCL GPU)", help);
        Assert.DoesNotContain("PoCL, with CLBlast", help);
    }

    [Fact]
    public void BenchKernelsHelpSaysItTimesEveryOperationOfThePass()
    {
        string help = Run("bench", "kernels", "--help").Out.ReplaceLineEndings(" ");
        Assert.Contains("Time each kernel launch and GEMM of the forward pass", help);
        Assert.Contains("the transpose kernel alone", help);
    }

    /// <summary>An option whose default is a value has it shown by help as "[default: …]"; a description that
    /// also states a default could disagree with it, so only options without a default value say one in words.</summary>
    [Fact]
    public void OnlyOptionsWithoutADefaultValueStateADefaultInTheirDescription()
    {
        var offenders = new List<string>();
        foreach ((string path, Option option) in AllOptions(Program.Parse(["info"]).RootCommandResult.Command, "alexnet"))
        {
            if (!option.HasDefaultValue || option.GetDefaultValue() is null) continue;
            if ((option.Description ?? "").Contains("default", StringComparison.OrdinalIgnoreCase))
                offenders.Add($"{path} {option.Name}: {option.Description} [default: {option.GetDefaultValue()}]");
        }
        Assert.True(offenders.Count == 0, string.Join("\n", offenders));

        static IEnumerable<(string, Option)> AllOptions(Command command, string path)
        {
            foreach (Option o in command.Options) yield return (path, o);
            foreach (Command sub in command.Subcommands)
            foreach ((string, Option) o in AllOptions(sub, $"{path} {sub.Name}"))
                yield return o;
        }
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
    public void BenchKernelsTimesEveryOperationOfThePassAndTheTranspose()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        TestNative.Require(NativeLibraryId.ClBlast);
        var output = new StringWriter();
        Assert.Equal(0, Program.Run(["bench", "kernels", "--device", "opencl", "--warmup", "1", "--repeats", "3"], output));
        string[] lines = output.ToString().ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
        Assert.StartsWith("device: opencl:0 ", lines[0]);
        // Without --size, an OpenCL device gets the small size.
        Assert.Matches(@"^batch 4 \(small\), warm-up 1, repeats 3, device-side timing", lines[1]);
        Assert.Matches(@"^transpose_kernel1 4x729x96 \(not in the pass\) +median +\d+\.\d+ ms +min +\d+\.\d+ ms +\d+\.\d+ GB/s$", lines[2]);
        // Every step of the inference pass, in its order (as the forward pass queues them; dropout is off).
        string[] steps =
        [
            "input",
            "conv1 im2col", "conv1 gemm", "conv1 bias+relu", "norm1", "pool1",
            "conv2 im2col", "conv2 gemm", "conv2 bias+relu", "norm2", "pool2",
            "conv3 im2col", "conv3 gemm", "conv3 bias+relu",
            "conv4 im2col", "conv4 gemm", "conv4 bias+relu",
            "conv5 im2col", "conv5 gemm", "conv5 bias+relu", "pool5",
            "fc6 gemm", "fc6 bias+relu", "fc7 gemm", "fc7 bias+relu", "fc8 gemm", "softmax",
        ];
        Assert.Equal(steps.Length + 3, lines.Length);
        for (int i = 0; i < steps.Length; i++)
        {
            string rate = steps[i].EndsWith("gemm", StringComparison.Ordinal) ? "GFLOP/s" : "GB/s";
            Assert.Matches($@"^{System.Text.RegularExpressions.Regex.Escape(steps[i])} +median +\d+\.\d+ ms +min +\d+\.\d+ ms +\d+\.\d+ {rate}$", lines[i + 3]);
        }
    }
}
