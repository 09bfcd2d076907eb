using System.Diagnostics;
using System.Globalization;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Cli;

/// <summary>
/// The built <c>alexnet</c> as a process, as a shell runs it: output reaches a pipe line by line while the
/// command still runs, SIGINT and SIGTERM stop a long command with one line and exit status 130, and a
/// reader that closes the pipe ends the program quietly with 141. Every wait is bounded; the commands are
/// given far more work than they can finish, so each outcome depends on the signal or the closed pipe, not
/// on timing.
/// </summary>
[Collection(OpenClCollection.Name)]
public class CliProcessTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    private sealed class Child : IDisposable
    {
        private readonly Process _process;
        private readonly Task<string> _stderr;

        public Child(params string[] args)
        {
            string cli = Path.Combine(AppContext.BaseDirectory, "alexnet.dll");
            var psi = new ProcessStartInfo("dotnet", [cli, .. args])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            _process = Process.Start(psi)!;
            _stderr = _process.StandardError.ReadToEndAsync();
        }

        /// <summary>The next line of stdout; fails when none comes within the patience or stdout ends.</summary>
        public string ReadLine()
        {
            Task<string?> line = _process.StandardOutput.ReadLineAsync();
            Assert.True(line.Wait(Patience), "no line on stdout in time");
            return line.Result ?? throw new Xunit.Sdk.XunitException($"stdout ended; exit {Exited()}; stderr: {_stderr.Result}");
        }

        public bool HasExited => _process.HasExited;

        public void Signal(string name)
        {
            using Process kill = Process.Start("kill", [$"-{name}", _process.Id.ToString(CultureInfo.InvariantCulture)])!;
            kill.WaitForExit();
            Assert.Equal(0, kill.ExitCode);
        }

        public void CloseStdout() => _process.StandardOutput.Close();

        public string RestOfStdout()
        {
            Task<string> rest = _process.StandardOutput.ReadToEndAsync();
            Assert.True(rest.Wait(Patience), "stdout did not end in time");
            return rest.Result;
        }

        /// <summary>Waits for the exit: the status and what went to stderr.</summary>
        public (int Code, string Stderr) Exit()
        {
            Assert.True(_process.WaitForExit(Patience), "the process did not end in time");
            Assert.True(_stderr.Wait(Patience));
            return (_process.ExitCode, _stderr.Result);
        }

        private string Exited() => _process.HasExited ? _process.ExitCode.ToString(CultureInfo.InvariantCulture) : "none yet";

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.Dispose();
        }
    }

    private static void RequireOpenCl()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        TestNative.Require(NativeLibraryId.ClBlast);
    }

    [SkippableFact]
    public void BenchWritesItsHeaderIntoAPipeBeforeMeasuringAndStopsAtSigintWith130()
    {
        RequireOpenCl();
        using var child = new Child("bench", "--device", "opencl", "--peer", "none", "--batch", "1", "--iterations", "100000000");
        Assert.StartsWith("device: opencl:", child.ReadLine());
        Assert.StartsWith("GEMMs: ", child.ReadLine());
        Assert.StartsWith("weights: synthetic", child.ReadLine());
        Assert.Equal("activations: each convolution's bias and ReLU a pass of its own", child.ReadLine()); // a CPU device's default
        Assert.Equal("workspace: 256 MiB", child.ReadLine());
        Assert.Equal("precision: fp32", child.ReadLine());
        Assert.Equal("graph: off: OpenCL has no graphs: the stream path runs", child.ReadLine());
        Assert.StartsWith("epilogue: kernel", child.ReadLine());
        Assert.StartsWith("warm-up 3, 100000000 timed passes per batch", child.ReadLine());
        Assert.Matches(@"^batch +images/s +median ms", child.ReadLine());
        // A hundred million passes take days: the lines above came while the measurement runs.
        Assert.False(child.HasExited);
        child.Signal("INT");
        string rest = child.RestOfStdout();
        (int code, string stderr) = child.Exit();
        Assert.True(code == 130, $"exit {code}: {stderr}");
        Assert.Matches(@"^alexnet: interrupted by SIGINT during batch 1: (building the model|(warm-up )?pass \d+/(3|100000000))\n$", stderr.ReplaceLineEndings("\n"));
        Assert.Equal("", rest); // no batch was measured whole, so there is no row and no breakdown
    }

    [SkippableFact]
    public void BenchKernelsStopsAtSigtermWith130()
    {
        RequireOpenCl();
        using var child = new Child("bench", "kernels", "--device", "opencl", "--repeats", "100000000");
        Assert.StartsWith("device: opencl:", child.ReadLine());
        Assert.StartsWith("batch 4 (small), warm-up 3, repeats 100000000", child.ReadLine());
        child.Signal("TERM");
        string rest = child.RestOfStdout();
        (int code, string stderr) = child.Exit();
        Assert.True(code == 130, $"exit {code}: {stderr}");
        Assert.Matches(@"^alexnet: interrupted by SIGTERM during the transpose (warm-up )?launch \d+/(3|100000000)\n$", stderr.ReplaceLineEndings("\n"));
        Assert.Equal("", rest);
    }

    [SkippableFact]
    public void CheckStopsAtSigintAfterTheCheckInProgressWith130()
    {
        RequireOpenCl();
        using var child = new Child("check", "--device", "opencl");
        Assert.StartsWith("device: opencl:", child.ReadLine());
        Assert.Matches("^(PASS|FAIL) ", child.ReadLine());
        child.Signal("INT");
        string[] rest = child.RestOfStdout().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        (int code, string stderr) = child.Exit();
        Assert.True(code == 130, $"exit {code}: {stderr}");
        System.Text.RegularExpressions.Match m = System.Text.RegularExpressions.Regex.Match(stderr.ReplaceLineEndings("\n"),
            @"^alexnet: interrupted by SIGINT after (\d+) of (\d+) checks \(\d+ passed, \d+ failed, \d+ skipped\)\n$");
        Assert.True(m.Success, stderr);
        // Each check that ran has its line, and the summary of a whole run is not printed.
        Assert.Equal(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), 1 + rest.Length);
        Assert.True(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) < int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
        Assert.All(rest, l => Assert.Matches("^(PASS|FAIL) ", l));
    }

    [SkippableFact]
    public void AReaderThatClosesThePipeEndsTheProgramQuietlyWith141()
    {
        RequireOpenCl();
        using var child = new Child("check", "--device", "opencl");
        Assert.StartsWith("device: opencl:", child.ReadLine());
        child.CloseStdout();
        (int code, string stderr) = child.Exit();
        Assert.True(code == 141, $"exit {code}: {stderr}");
        Assert.Equal("", stderr);
    }
}
