using AlexNet.Cuda;

namespace AlexNet.Cli;

internal static class InfoCommand
{
    public static int Run(string[] args, TextWriter stdout) =>
        throw new AlexNetException("'info' is not written yet");
}
