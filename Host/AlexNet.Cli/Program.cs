using AlexNet.Cuda;

namespace AlexNet.Cli;

/// <summary>
/// The <c>alexnet</c> command-line program. Every command is a static method taking the arguments that
/// follow its name; errors that a user can fix are <see cref="AlexNetException"/>s and print as one line.
/// </summary>
internal static class Program
{
    private const string Usage = """
        usage: alexnet <command> [options]

        commands:
          info                       devices found (CUDA and OpenCL), NVRTC version, cache folder
          check [--device D]         run every kernel and GEMM on a device against the C# references
          bench kernels [--device D] time each kernel and GEMM on a device (warm-up, repeats, median)
          weights FILE [--format text|json] [--num-classes N] [--skip-layer fc7,fc8] [--seed S]
                                     read a weight file (.npy pickle or .npz), check it against the
                                     architecture and summarise each layer
          test                       run the test suite (handled by the ./alexnet launcher)

        options:
          --device auto|cuda|opencl  which backend runs (auto: CUDA when a CUDA device works, else OpenCL)
          --verbose                  print stack traces of errors
        """;

    public static int Main(string[] args)
    {
        bool verbose = args.Contains("--verbose");
        string[] rest = args.Where(a => a != "--verbose").ToArray();
        try
        {
            return Run(rest, Console.Out);
        }
        catch (AlexNetException e)
        {
            Console.Error.WriteLine($"alexnet: error: {e.Message}");
            if (verbose) Console.Error.WriteLine(e);
            return 1;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"alexnet: internal error: {e.GetType().Name}: {e.Message}" +
                (verbose ? "" : " (run again with --verbose for the stack trace and report it)"));
            if (verbose) Console.Error.WriteLine(e);
            return 70;
        }
    }

    internal static int Run(string[] args, TextWriter stdout)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            stdout.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        string[] rest = args[1..];
        return args[0] switch
        {
            "info" => InfoCommand.Run(rest, stdout),
            "check" => CheckCommand.Run(rest, stdout),
            "bench" => BenchCommand.Run(rest, stdout),
            "weights" => WeightsCommand.Run(rest, stdout),
            "test" => throw new AlexNetException("'alexnet test' runs through the ./alexnet launcher at the repository root (it needs the .NET SDK); run ./alexnet test"),
            _ => throw new AlexNetException($"unknown command '{args[0]}'; run 'alexnet --help' for the list"),
        };
    }
}
