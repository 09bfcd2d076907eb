using System.Diagnostics;

namespace AlexNet.Cuda.Tests.Infrastructure;

/// <summary>The independent numpy implementation of the reference (Fixtures/reference/alexnet_numpy.py), run
/// by Debian's python3. Under <c>ALEXNET_REQUIRE_NATIVE=1</c> (which installs python3-numpy) its absence fails
/// the test; elsewhere it skips with the reason.</summary>
public static class NumpyReference
{
    public const string Python = "/usr/bin/python3";

    public static string Script => Path.Combine(AppContext.BaseDirectory, "Fixtures", "reference", "alexnet_numpy.py");

    private static readonly Lazy<bool> Present = new(() => File.Exists(Python) && Run(["-c", "import numpy"]).Code == 0);

    public static void Require()
    {
        if (!Present.Value && TestNative.Required) Assert.Fail($"{Python} with numpy is needed (apt-get install python3-numpy; ./alexnet test installs it)");
        Skip.IfNot(Present.Value, $"{Python} with numpy is not installed");
    }

    /// <summary>Runs the script with <paramref name="args"/>; its exit code and everything it printed.</summary>
    public static (int Code, string Output) RunScript(IEnumerable<string> args) => Run([Script, .. args]);

    /// <summary>Runs python3 with <paramref name="args"/> (a script of the repository, or -c CODE).</summary>
    public static (int Code, string Output) Run(IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(Python, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        // Scripts imported from the repository must not leave __pycache__ folders in it.
        psi.Environment["PYTHONDONTWRITEBYTECODE"] = "1";
        using Process p = Process.Start(psi)!;
        Task<string> error = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output + error.Result);
    }
}
