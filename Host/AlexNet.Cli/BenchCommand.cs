using AlexNet.Cuda;

namespace AlexNet.Cli;

internal static class BenchCommand
{
    public static int Run(string[] args, TextWriter stdout) =>
        throw new AlexNetException("'bench' is not written yet");
}
