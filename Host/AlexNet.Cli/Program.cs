using System.CommandLine;
using System.CommandLine.Invocation;
using AlexNet.Cuda;

namespace AlexNet.Cli;

/// <summary>
/// The <c>alexnet</c> command-line program. Each command is one file with a <c>Create()</c> that builds its
/// <see cref="Command"/> (arguments, options, action); <see cref="Commands"/> lists them.
/// Exit status, the same for every command (README, "Exit status"): 0 success; 1 the work failed (an
/// <see cref="AlexNetException"/>: a one-line <c>alexnet: error: …</c>, or a check that failed); 2 a command
/// line the parser refused (<see cref="UsageErrors"/>: unknown options, values that do not parse or are out of
/// range); 130 interrupted (<see cref="Interruption"/>); 141 stdout's reader went away (quietly, as a program
/// that SIGPIPE ended); 70 an internal error.
/// </summary>
internal static class Program
{
    /// <summary>The program's name in messages and help, whatever the running binary is called.</summary>
    public const string Name = "alexnet";

    public const int Failure = 1;

    /// <summary>128 + SIGPIPE: what a shell reports for a program that wrote to a pipe no one reads.</summary>
    public const int OutputClosed = 141;

    /// <summary>EX_SOFTWARE from sysexits.h: a bug, not something the user can fix.</summary>
    public const int InternalError = 70;

    /// <summary>Every command, in the order help lists them; adding a command is one file and one entry here.</summary>
    private static readonly Func<Command>[] Commands =
    [
        InfoCommand.Create,
        CheckCommand.Create,
        BenchCommand.Create,
        WeightsCommand.Create,
        FeaturesCommand.Create,
        Classify.ClassifyCommand.Create,
        Finetune.FinetuneCommand.Create,
        TestCommand.Create,
        WorkerCommand.Create,
    ];

    public static int Main(string[] args) => Run(args, StandardOutput.Open(), Console.Error);

    internal static int Run(string[] args, TextWriter stdout) => Run(args, stdout, Console.Error);

    /// <summary>Whether the command line asked for details (<c>--verbose</c>, on any command).</summary>
    internal static bool IsVerbose(ParseResult result) => result.GetValue<bool>("--verbose");

    internal static int Run(string[] args, TextWriter stdout, TextWriter stderr) => Run(args, stdout, stderr, Commands);

    /// <summary>Parses a command line as the program does, without running it (tests check that the command
    /// lines in deploy/ parse).</summary>
    internal static ParseResult Parse(string[] args) => Parse(args, Commands, out _);

    private static ParseResult Parse(string[] args, IEnumerable<Func<Command>> commands, out Option<bool> verbose)
    {
        verbose = new Option<bool>("--verbose")
        {
            Description = "Print the stack trace of an error",
            Recursive = true,
        };
        var root = new RootCommand("Runs AlexNet through CUDA C kernels compiled at run time with NVRTC, and cuBLAS; " +
            "without a GPU the same kernels run as OpenCL C on PoCL, with oneDNN or OpenBLAS for the GEMMs (CLBlast on an OpenCL GPU).")
        {
            HelpName = Name,
        };
        root.Options.Add(verbose);
        foreach (Func<Command> create in commands) root.Subcommands.Add(create());
        // Response files (@file) are off: a weight file's path is taken as written.
        return root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
    }

    /// <summary>Parses <paramref name="args"/> against <paramref name="commands"/> and runs the chosen one;
    /// tests pass commands of their own to see each way a command can end.</summary>
    internal static int Run(string[] args, TextWriter stdout, TextWriter stderr, IEnumerable<Func<Command>> commands)
    {
        // With no command at all the help is the useful answer, but the exit status still says "usage error".
        ParseResult parsed = Parse(args.Length == 0 ? ["--help"] : args, commands, out Option<bool> verbose);
        if (parsed.Action is ParseErrorAction) return UsageErrors.Write(parsed, stderr);

        var invocation = new InvocationConfiguration
        {
            Output = stdout,
            Error = stderr,
            // Errors are reported below, in the program's one-line form and with its exit statuses.
            EnableDefaultExceptionHandler = false,
            // The library's own signal handling is off: the long commands listen with Interruption, which stops
            // them between units of work with one line and exit status 130; elsewhere Ctrl+C ends the process at once.
            ProcessTerminationTimeout = null,
        };
        try
        {
            int code = parsed.Invoke(invocation);
            return args.Length == 0 ? UsageErrors.ExitCode : code;
        }
        catch (CommandInterruptedException e)
        {
            stderr.WriteLine($"{Name}: {e.Message}");
            return Interruption.ExitCode;
        }
        catch (OutputClosedException)
        {
            // The reader of stdout has gone (`alexnet check | head -3`): nothing is left to tell anyone.
            return OutputClosed;
        }
        catch (AlexNetException e)
        {
            stderr.WriteLine($"{Name}: error: {e.Message}");
            if (parsed.GetValue(verbose)) stderr.WriteLine(e);
            return Failure;
        }
        catch (Exception e)
        {
            bool trace = parsed.GetValue(verbose);
            stderr.WriteLine($"{Name}: internal error: {e.GetType().Name}: {e.Message}" +
                (trace ? "" : " (run again with --verbose for the stack trace and report it)"));
            if (trace) stderr.WriteLine(e);
            return InternalError;
        }
    }
}
