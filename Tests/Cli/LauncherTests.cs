using System.Diagnostics;
using AlexNet.Cuda.Tests.Classify;
using AlexNet.Cuda.Tests.Weights;

namespace AlexNet.Cuda.Tests.Cli;

/// <summary>
/// <c>./alexnet test</c>, the launcher's own command, with the exit statuses of every other command: 0 all
/// tests passed, 1 a test or the build failed, 2 a command line dotnet test refused (with the usage hint), and
/// help that leaves the last results alone. The launcher runs from a copy in a folder of its own, with a
/// stand-in <c>dotnet</c> first on PATH that answers as dotnet test does in each case, and a stand-in for the
/// native-package installer: nothing of the real repository or the machine is touched.
/// </summary>
public sealed class LauncherTests : IDisposable
{
    private readonly TempDir _root = new();

    public LauncherTests()
    {
        File.Copy(RepositoryFiles.PathOf("alexnet"), _root.File("alexnet"));
        Directory.CreateDirectory(_root.File(".ci"));
        File.WriteAllText(_root.File(".ci/native-packages.sh"), "exit 0\n");
        Directory.CreateDirectory(_root.File("bin"));
        // Answers as dotnet test does: a refused switch on stdout, a missing value on stderr, a failed build
        // without results, or a run that writes its .trx to --results-directory.
        File.WriteAllText(_root.File("bin/dotnet"), """
            #!/usr/bin/env bash
            echo "$*" >> "$FAKE_DOTNET_CALLS"
            results="" previous=""
            for a in "$@"; do [ "$previous" = "--results-directory" ] && results="$a"; previous="$a"; done
            trx() {
              mkdir -p "$results"
              echo "<TestRun><ResultSummary><Counters total=\"5\" executed=\"4\" passed=\"$1\" failed=\"$2\" error=\"0\" timeout=\"0\" aborted=\"0\" notExecuted=\"0\" /></ResultSummary></TestRun>" > "$results/tests.trx"
            }
            case "$FAKE_DOTNET_MODE" in
              unknown-switch) echo "MSBUILD : error MSB1001: Unknown switch."; echo "    Full command line: 'MSBuild $*'"; echo "Switch: --bogus"; exit 1 ;;
              missing-value) echo "Required argument missing for option: '--filter'." >&2; exit 1 ;;
              build-fails) echo "Program.cs(1,1): error CS1002: ; expected"; exit 1 ;;
              pass) trx 4 0; exit 0 ;;
              fail) trx 3 1; exit 1 ;;
            esac
            exit 99
            """.Replace("\r", ""));
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(_root.File("bin/dotnet"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.CreateDirectory(_root.File("TestResults"));
        File.WriteAllText(_root.File("TestResults/tests.trx"), "the last run's results");
    }

    public void Dispose() => _root.Dispose();

    private string Calls => _root.File("dotnet-calls");

    private (int Code, string Out, string Err) Launch(string mode, params string[] args)
    {
        var psi = new ProcessStartInfo("bash", [_root.File("alexnet"), .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment["PATH"] = _root.File("bin") + ":" + Environment.GetEnvironmentVariable("PATH");
        psi.Environment["ALEXNET_CACHE_DIR"] = _root.File("cache");
        psi.Environment["FAKE_DOTNET_MODE"] = mode;
        psi.Environment["FAKE_DOTNET_CALLS"] = Calls;
        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync(), stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(60_000), "the launcher did not end in time");
        return (p.ExitCode, stdout.Result.ReplaceLineEndings("\n"), stderr.Result.ReplaceLineEndings("\n"));
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("-?")]
    [InlineData("--filter FullyQualifiedName~Cli --help")]
    public void HelpPrintsTheUsageAndLeavesTheLastResultsAlone(string args)
    {
        (int code, string stdout, string stderr) = Launch("pass", ["test", .. args.Split(' ')]);
        Assert.True(code == 0, stderr);
        Assert.StartsWith("Usage: ./alexnet test [dotnet test options]\n", stdout);
        Assert.Contains("Exit status: 0 every test passed", stdout);
        Assert.Equal("the last run's results", File.ReadAllText(_root.File("TestResults/tests.trx")));
        Assert.False(File.Exists(Calls), "dotnet was run");
    }

    [Fact]
    public void AnUnknownOptionIsExitCode2WithTheUsageHint()
    {
        (int code, _, string stderr) = Launch("unknown-switch", "test", "--bogus");
        Assert.Equal(2, code);
        Assert.EndsWith("alexnet: error: dotnet test refused the command line: MSB1001: Unknown switch. Switch: --bogus\n" +
            "Run './alexnet test --help' for usage.\n", stderr);
    }

    [Fact]
    public void AMissingValueIsExitCode2WithTheUsageHint()
    {
        (int code, _, string stderr) = Launch("missing-value", "test", "--filter");
        Assert.Equal(2, code);
        Assert.EndsWith("alexnet: error: dotnet test refused the command line: Required argument missing for option: '--filter'.\n" +
            "Run './alexnet test --help' for usage.\n", stderr);
    }

    [Fact]
    public void AFailedBuildIsExitCode1AndCountsAsAFailure()
    {
        (int code, string stdout, _) = Launch("build-fails", "test");
        Assert.Equal(1, code);
        Assert.EndsWith("tests: 0 passed, 1 failed, 0 skipped\n", stdout);
    }

    [Fact]
    public void APassingRunIsExitCode0AndPassesItsOptionsToDotnetTest()
    {
        (int code, string stdout, string stderr) = Launch("pass", "test", "--filter", "FullyQualifiedName~Cli");
        Assert.True(code == 0, stderr);
        Assert.EndsWith("tests: 4 passed, 0 failed, 1 skipped\n", stdout);
        string call = Assert.Single(File.ReadAllLines(Calls));
        Assert.StartsWith("test ", call);
        Assert.EndsWith(" --filter FullyQualifiedName~Cli", call);
    }

    [Fact]
    public void AFailingTestIsExitCode1()
    {
        (int code, string stdout, _) = Launch("fail", "test");
        Assert.Equal(1, code);
        Assert.EndsWith("tests: 3 passed, 1 failed, 1 skipped\n", stdout);
    }
}
