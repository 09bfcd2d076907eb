using AlexNet.Cuda;

namespace AlexNet.Cli;

internal static class WeightsCommand
{
    public static int Run(string[] args, TextWriter stdout) =>
        throw new AlexNetException("'weights' is not written yet");
}
