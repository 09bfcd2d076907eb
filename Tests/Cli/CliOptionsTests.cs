using System.CommandLine;
using System.Runtime.InteropServices;
using AlexNet.Cli;

namespace AlexNet.Cuda.Tests.Cli;

/// <summary>The shared option parsers of <see cref="CliOptions"/>, the positional argument that refuses options,
/// and the exit statuses a command gets from <see cref="Program"/> for an interruption (130) and a closed
/// stdout (141), each on a command made for the test.</summary>
public class CliOptionsTests
{
    private sealed record Result(int Code, string Out, string Err)
    {
        public string[] ErrLines => Err.Length == 0 ? [] : Err.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
    }

    private static Result Run(Func<Command> command, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr, [command]);
        return new Result(code, stdout.ToString(), stderr.ToString());
    }

    private static void AssertUsageError(Result r, string error, string helpFor = "alexnet demo")
    {
        Assert.Equal(2, r.Code);
        Assert.Equal("", r.Out);
        Assert.Equal([$"alexnet: error: {error}", $"Run '{helpFor} --help' for usage."], r.ErrLines);
    }

    /// <summary>"demo" with one option of each shared kind and a positional argument; its action prints the
    /// values it was given, one per line.</summary>
    private static Command Demo()
    {
        Option<float> alpha = CliOptions.FiniteFloat("--alpha", "A number", 2e-5f);
        Option<float> bias = CliOptions.FiniteFloat("--bias", "A number above 0", 1f, b => b > 0, "a number above 0");
        Option<long> pixels = CliOptions.PositiveLong("--max-pixels", "Pixels", 100_000_000);
        Option<ByteSize> memory = CliOptions.ByteSizeOption("--memory", "Bytes", new ByteSize(512L << 20));
        Option<IReadOnlyList<int>?> batch = CliOptions.PositiveIntList("--batch", "Batch sizes");
        Option<IReadOnlyList<string>?> layer = CliOptions.NameList("--layer", "NAME[,NAME]", "Layers", "layer names", ["conv1", "fc7", "prob"]);
        var inputs = new Argument<string[]>("IMAGE") { Arity = ArgumentArity.ZeroOrMore }.RefuseOptions();
        var command = new Command("demo") { alpha, bias, pixels, memory, batch, layer, inputs };
        command.SetAction(result =>
        {
            TextWriter o = result.InvocationConfiguration.Output;
            o.WriteLine(FormattableString.Invariant($"alpha {result.GetValue(alpha):R}"));
            o.WriteLine(FormattableString.Invariant($"bias {result.GetValue(bias):R}"));
            o.WriteLine($"max-pixels {result.GetValue(pixels)}");
            o.WriteLine($"memory {result.GetValue(memory).Bytes}");
            o.WriteLine($"batch {(result.GetValue(batch) is { } b ? string.Join(",", b) : "none")}");
            o.WriteLine($"layer {(result.GetValue(layer) is { } l ? string.Join(",", l) : "none")}");
            o.WriteLine($"inputs {string.Join(",", result.GetValue(inputs) ?? [])}");
            return 0;
        });
        return command;
    }

    [Fact]
    public void AbsentOptionsTakeTheirDefaultsAndGivenOnesTheirValues()
    {
        Result absent = Run(Demo, "demo");
        Assert.Equal(0, absent.Code);
        Assert.Equal(["alpha 2E-05", "bias 1", "max-pixels 100000000", "memory 536870912", "batch none", "layer none", "inputs "],
            absent.Out.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n'));

        Result given = Run(Demo, "demo", "--alpha", "-1.5e-3", "--bias", "0.5", "--max-pixels", "5000000000", "--memory", "4G",
            "--batch", "1, 8,64", "--layer", "prob,conv1", "a.png", "./-b.png", "-");
        Assert.Equal(0, given.Code);
        Assert.Equal(["alpha -0.0015", "bias 0.5", "max-pixels 5000000000", "memory 4294967296", "batch 1,8,64", "layer prob,conv1", "inputs a.png,./-b.png,-"],
            given.Out.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n'));
    }

    [Theory]
    [InlineData("--alpha", "abc", "--alpha takes a number, not 'abc'")]
    [InlineData("--alpha", "NaN", "--alpha takes a number, not 'NaN'")]
    [InlineData("--alpha", "1e39", "--alpha takes a number, not '1e39'")]
    [InlineData("--alpha", "1,5", "--alpha takes a number, not '1,5'")]
    [InlineData("--bias", "0", "--bias takes a number above 0, not '0'")]
    [InlineData("--max-pixels", "abc", "--max-pixels takes a positive whole number, not 'abc'")]
    [InlineData("--max-pixels", "0", "--max-pixels takes a positive whole number, not '0'")]
    [InlineData("--max-pixels", "9223372036854775808", "--max-pixels takes a positive whole number, not '9223372036854775808'")]
    [InlineData("--memory", "512MB", "--memory takes a size in bytes, as 65536, or with K, M, G or T for KiB, MiB, GiB or TiB (as 512M), not '512MB'")]
    [InlineData("--memory", "0", "--memory takes a size in bytes, as 65536, or with K, M, G or T for KiB, MiB, GiB or TiB (as 512M), not '0'")]
    [InlineData("--layer", "fc9", "--layer takes layer names separated by commas, from conv1, fc7, prob, not 'fc9'")]
    [InlineData("--layer", "fc7,fc7", "--layer names fc7 twice")]
    [InlineData("--layer", "fc7,", "--layer takes layer names separated by commas, from conv1, fc7, prob; 'fc7,' has an empty item")]
    [InlineData("--layer", "", "--layer takes layer names separated by commas, from conv1, fc7, prob, not ''")]
    [InlineData("--layer", "FC7", "--layer takes layer names separated by commas, from conv1, fc7, prob, not 'FC7'")]
    public void ABadValueIsAParseErrorNamingTheOptionAndWhatItTakes(string option, string value, string error)
    {
        AssertUsageError(Run(Demo, "demo", option, value), error);
    }

    [Theory]
    [InlineData("--bogus", "demo has no option --bogus")]
    [InlineData("--batc", "demo has no option --batc. Did you mean '--batch'?")]
    [InlineData("-x", "demo has no option -x")]
    public void APositionalArgumentRefusesWhatLooksLikeAnOption(string word, string error)
    {
        AssertUsageError(Run(Demo, "demo", "a.png", word, "b.png"), error);
        AssertUsageError(Run(Demo, "demo", word), error);
    }

    [Fact]
    public void AnOptionWithoutACustomParserNamesWhatItTakesNotANetType()
    {
        Func<Command> command = () => new Command("demo") { new Option<long?>("--max-pixels") };
        AssertUsageError(Run(command, "demo", "--max-pixels", "abc"), "--max-pixels takes a whole number, not 'abc'");
    }

    [Theory]
    [InlineData("1", 1L, "1")]
    [InlineData("65536", 65536L, "64K")]
    [InlineData("1000", 1000L, "1000")]
    [InlineData("64K", 64L << 10, "64K")]
    [InlineData("64k", 64L << 10, "64K")]
    [InlineData("512M", 512L << 20, "512M")]
    [InlineData("512MiB", 512L << 20, "512M")]
    [InlineData("1536M", 1536L << 20, "1536M")]
    [InlineData("4G", 4L << 30, "4G")]
    [InlineData("2T", 2L << 40, "2T")]
    [InlineData("8388607T", 8388607L << 40, "8388607T")]
    public void AByteSizeIsBytesOrAPowerOf1024AndShowsInTheLargestExactUnit(string text, long bytes, string shown)
    {
        Assert.True(ByteSize.TryParse(text, out ByteSize size));
        Assert.Equal(bytes, size.Bytes);
        Assert.Equal(shown, size.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("M")]
    [InlineData("0")]
    [InlineData("0G")]
    [InlineData("-1")]
    [InlineData("1.5G")]
    [InlineData("512MB")]
    [InlineData("512iB")]
    [InlineData("1P")]
    [InlineData("8388608T")]
    [InlineData("4 G")]
    public void AByteSizeRefusesWhatIsNotOne(string text)
    {
        Assert.False(ByteSize.TryParse(text, out _));
    }

    [Fact]
    public void HelpShowsAByteSizeDefaultAsWritten()
    {
        string help = Run(Demo, "demo", "--help").Out;
        Assert.Matches(@"--memory <SIZE> +Bytes \[default: 512M\]", help);
    }

    [Fact]
    public void AnInterruptedCommandPrintsOneLineAndExitsWith130()
    {
        Func<Command> command = () =>
        {
            var c = new Command("long");
            c.SetAction(result =>
            {
                using Interruption interruption = Interruption.Unregistered();
                for (int step = 1; step <= 3; step++)
                {
                    interruption.ThrowIfRequested($"before step {step}");
                    result.InvocationConfiguration.Output.WriteLine($"step {step}");
                    if (step == 2)
                    {
                        Assert.True(interruption.Request(PosixSignal.SIGINT));
                        Assert.False(interruption.Request(PosixSignal.SIGTERM)); // the first request stands
                        Assert.True(interruption.Token.IsCancellationRequested);
                    }
                }
                return 0;
            });
            return c;
        };
        Result r = Run(command, "long");
        Assert.Equal(130, r.Code);
        Assert.Equal("step 1\nstep 2\n", r.Out.ReplaceLineEndings("\n"));
        Assert.Equal(["alexnet: interrupted by SIGINT before step 3"], r.ErrLines);
    }

    [Fact]
    public void AClosedStdoutEndsTheCommandQuietlyWith141()
    {
        Func<Command> command = () =>
        {
            var c = new Command("write");
            c.SetAction(int (_) => throw new OutputClosedException(new IOException("Broken pipe", 32)));
            return c;
        };
        Result r = Run(command, "write");
        Assert.Equal((141, "", ""), (r.Code, r.Out, r.Err));
    }
}
