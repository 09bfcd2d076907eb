using System.CommandLine;
using AlexNet.Cuda;

namespace AlexNet.Cli;

/// <summary><c>alexnet test</c>: listed so that help shows it, but the test suite needs the .NET SDK, so the
/// ./alexnet launcher at the repository root runs it and this program only says so.</summary>
internal static class TestCommand
{
    public static Command Create()
    {
        var command = new Command("test", "Run the test suite (handled by the ./alexnet launcher at the repository root)")
        {
            // Whatever follows (test filters, say) gets the same answer rather than a parse error.
            TreatUnmatchedTokensAsErrors = false,
        };
        command.SetAction(int (_) => throw new AlexNetException(
            "'alexnet test' runs through the ./alexnet launcher at the repository root (it needs the .NET SDK); run ./alexnet test"));
        return command;
    }
}
