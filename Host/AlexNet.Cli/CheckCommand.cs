using AlexNet.Cuda;

namespace AlexNet.Cli;

internal static class CheckCommand
{
    public static int Run(string[] args, TextWriter stdout) =>
        throw new AlexNetException("'check' is not written yet");
}
