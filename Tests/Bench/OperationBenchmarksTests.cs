using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Classify;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Torch;
using AlexNet.Cuda.Tests.Weights;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Bench;

/// <summary>
/// The per-operation benchmarks (Bench/Operations) run as CI runs them, <c>dotnet AlexNet.Cuda.Benchmarks.dll
/// --short --out DIR</c>: the process exits 0, every operation has a measurement on both sides in the exported
/// json and csv, and the engine's whole forward pass allocated 0 bytes per pass.
/// </summary>
public class OperationBenchmarksTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>The benchmark categories: one per operation and the whole forward pass.</summary>
    private static readonly string[] Operations =
        ["conv1", "conv2", "conv3", "conv4", "conv5", "norm1", "norm2", "pool1", "pool2", "pool5", "fc6", "fc7", "fc8", "softmax", "forward"];

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string BenchmarksDll
    {
        get
        {
#if DEBUG
            const string configuration = "Debug";
#else
            const string configuration = "Release";
#endif
            return RepositoryFiles.PathOf($"Bench/Operations/bin/{configuration}/net10.0/AlexNet.Cuda.Benchmarks.dll");
        }
    }

    private static (int Code, string Stdout, string Stderr) Run(TimeSpan timeout, params string[] args)
    {
        Assert.True(File.Exists(BenchmarksDll), $"{BenchmarksDll} is missing: the test project builds it");
        var psi = new ProcessStartInfo("dotnet", [BenchmarksDll, .. args]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using Process p = Process.Start(psi)!;
        Task<string> stdout = p.StandardOutput.ReadToEndAsync(), stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"the benchmarks ran past {timeout.TotalMinutes} minutes; output so far:\n{stdout.Result[^Math.Min(4000, stdout.Result.Length)..]}");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [SkippableFact]
    public void ShortModeMeasuresEveryOperationOnBothSidesAndTheForwardPassAllocatesNothing()
    {
        TestNative.Require(NativeLibraryId.OpenCl);
        TestNative.Require(NativeLibraryId.ClBlast);
        TorchReference.Require();
        string folder = _dir.File("bench");
        (int code, string stdout, string stderr) = Run(TimeSpan.FromMinutes(10), "--short", "--out", folder);
        Assert.True(code == 0, $"exit {code}: {stderr}\n{stdout[^Math.Min(4000, stdout.Length)..]}");

        string[] expected = [.. Operations.SelectMany(o => new[] { Name(o, "Engine"), Name(o, "TorchSharp") }).Order(StringComparer.Ordinal)];
        string results = Path.Combine(folder, "results");

        // json: every benchmark with statistics of 3 iterations and a positive median.
        string json = Directory.GetFiles(results, "*-report-full.json").Single();
        using JsonDocument document = JsonDocument.Parse(File.ReadAllText(json));
        var measured = new Dictionary<string, (double MedianNs, long Allocated)>(StringComparer.Ordinal);
        foreach (JsonElement b in document.RootElement.GetProperty("Benchmarks").EnumerateArray())
        {
            string name = b.GetProperty("Method").GetString()!;
            JsonElement statistics = b.GetProperty("Statistics");
            Assert.True(statistics.ValueKind == JsonValueKind.Object, $"{name}: no statistics");
            Assert.Equal(3, statistics.GetProperty("N").GetInt32());
            double median = statistics.GetProperty("Median").GetDouble();
            Assert.True(median > 0, $"{name}: median {median} ns");
            measured[name] = (median, b.GetProperty("Memory").GetProperty("BytesAllocatedPerOperation").GetInt64());
        }
        Assert.Equal(expected, measured.Keys.Order(StringComparer.Ordinal));

        // csv: the same benchmarks, each in its category with a median and an Allocated figure.
        string[] lines = File.ReadAllLines(Directory.GetFiles(results, "*-report.csv").Single());
        List<string> header = Csv(lines[0]);
        int method = header.IndexOf("Method"), categories = header.IndexOf("Categories"), medianColumn = header.IndexOf("Median"), allocated = header.IndexOf("Allocated");
        Assert.True(method >= 0 && categories >= 0 && medianColumn >= 0 && allocated >= 0, $"csv columns: {lines[0]}");
        var rows = lines.Skip(1).Select(Csv).ToList();
        Assert.Equal(expected, rows.Select(r => r[method]).Order(StringComparer.Ordinal));
        foreach (List<string> row in rows)
        {
            Assert.Equal(Name(row[categories], row[method].EndsWith("Engine", StringComparison.Ordinal) ? "Engine" : "TorchSharp"), row[method]);
            Assert.Matches(@"^[\d,.]+ [μu]?s$|^[\d,.]+ ns$", row[medianColumn]);
            Assert.Matches(@"^(\d[\d,.]*( [KMG]?B)?|-)$", row[allocated]);
        }

        // The engine's forward pass, counted on the calling thread by the program (allocations.txt):
        // BenchmarkDotNet's own count is process-wide and follows a forced collection, so the finalizer thread's
        // work can land in it (docs/performance.md).
        string allocations = File.ReadAllText(Path.Combine(folder, "allocations.txt")).Trim();
        Assert.Equal("engine forward pass, batch 1: 0 bytes over 5 passes", allocations);
        output.WriteLine(string.Join(Environment.NewLine, measured.OrderBy(m => m.Key, StringComparer.Ordinal)
            .Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Key}: median {m.Value.MedianNs / 1e6:F3} ms, {m.Value.Allocated} B allocated (BenchmarkDotNet)"))));
        Assert.Contains("GEMM:", File.ReadAllText(Path.Combine(folder, "setup.txt")));
    }

    [Fact]
    public void BadArgumentsAreExitCode2WithOneLine()
    {
        foreach (string[] args in new[] { new[] { "--short" }, ["--out", _dir.File("x"), "--batch", "0"], ["--out", _dir.File("y"), "--fast"] })
        {
            (int code, string stdout, string stderr) = Run(TimeSpan.FromMinutes(2), args);
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}: {stderr}{stdout}");
            Assert.Single(stderr.Trim().Split('\n'));
            Assert.StartsWith("benchmarks: error: ", stderr, StringComparison.Ordinal);
        }
    }

    private static string Name(string operation, string side) => char.ToUpperInvariant(operation[0]) + operation[1..] + side;

    /// <summary>One csv line's fields; BenchmarkDotNet quotes fields that hold commas.</summary>
    private static List<string> Csv(string line)
    {
        var fields = new List<string>();
        var field = new System.Text.StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { field.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else field.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { fields.Add(field.ToString()); field.Clear(); }
            else field.Append(c);
        }
        fields.Add(field.ToString());
        return fields;
    }
}
