using System.CommandLine;
using System.Runtime.CompilerServices;
using AlexNet.Imaging;
using AlexNet.Imaging.Isolation;

namespace AlexNet.Cli;

/// <summary>
/// <c>alexnet decode-worker --decoder NAME</c>, hidden: the worker process of an <see cref="IsolatedImageDecoder"/>.
/// It reads decode requests on stdin and answers on stdout until stdin ends; nobody runs it by hand.
/// </summary>
internal static class WorkerCommand
{
    public const string Name = "decode-worker";

    public static Command Create()
    {
        var decoder = new Option<string>("--decoder") { Required = true, HelpName = string.Join('|', ImageDecoders.Names) };
        var command = new Command(Name, "Decode images for a parent process (internal)") { decoder };
        command.Hidden = true;
        command.SetAction(result =>
        {
            IImageDecoder inner = ImageDecoders.Create(result.GetRequiredValue(decoder));
            using Stream input = Console.OpenStandardInput();
            using Stream output = Console.OpenStandardOutput();
            return DecodeWorker.Serve(input, output, inner);
        });
        return command;
    }

    /// <summary>How this program starts itself as a decode worker for <paramref name="decoder"/>: the
    /// NativeAOT binary runs itself; under the JIT the launcher beside alexnet.dll runs it (no dotnet on
    /// PATH needed), else dotnet does.</summary>
    public static DecodeWorkerCommand ForThisProgram(string decoder)
    {
        string[] arguments = [Name, "--decoder", decoder];
        if (!RuntimeFeature.IsDynamicCodeSupported && Environment.ProcessPath is string self) return new(self, arguments);
        string assembly = Path.Combine(AppContext.BaseDirectory, "alexnet.dll");
        string launcher = Path.Combine(AppContext.BaseDirectory, "alexnet");
        if (File.Exists(launcher)) return new(launcher, arguments);
        string host = Environment.ProcessPath is string p && Path.GetFileNameWithoutExtension(p) == "dotnet"
            ? p
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return new(host, [assembly, .. arguments]);
    }
}
