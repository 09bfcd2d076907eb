using System.Globalization;
using AlexNet.Cuda.Benchmarks;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Torch;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Csv;
using BenchmarkDotNet.Exporters.Json;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

const string Usage = """
    usage: dotnet AlexNet.Cuda.Benchmarks.dll --out DIR [--short] [--batch N[,N...]] [--filter GLOB]

    Times each AlexNet operation and the whole forward pass on the OpenCL (CPU) device beside TorchSharp's,
    same shapes and data, same process; writes BenchmarkDotNet's reports (markdown, csv, json) under
    DIR/results. --short: a quick run for CI (batch 1, 1 warm-up, 3 iterations of 1 call); otherwise batch 32,
    3 warm-ups and 15 iterations. --filter: benchmarks whose full name matches, e.g. '*conv1*'.
    """;

string? output = null, filter = null;
bool quick = false;
int[]? batches = null;
for (int i = 0; i < args.Length; i++)
{
    string? Value() => i + 1 < args.Length ? args[++i] : null;
    switch (args[i])
    {
        case "--short": quick = true; break;
        case "--out": output = Value(); break;
        case "--filter": filter = Value(); break;
        case "--batch":
            string? text = Value();
            batches = text?.Split(',').Select(b => int.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0 ? v : -1).ToArray();
            if (batches is null || batches.Length == 0 || batches.Any(b => b < 1))
                return Fail($"--batch takes positive batch sizes separated by commas, not '{text}'");
            break;
        case "--help" or "-h":
            Console.WriteLine(Usage);
            return 0;
        default:
            return Fail($"unknown argument '{args[i]}'");
    }
}
if (string.IsNullOrEmpty(output)) return Fail("--out DIR is required: the folder the reports go to");

OperationBenchmarks.Batches = batches ?? (quick ? [1] : [32]);
output = Path.GetFullPath(output);
Directory.CreateDirectory(output);

// In process, for both modes: libLibTorchSharp.so loads on Debian 12 only from this project's own build output,
// where TorchSharpNative.targets patched it; the separate project BenchmarkDotNet would generate has no such step.
Job job = quick
    ? new Job("Short").WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(3).WithInvocationCount(1).WithUnrollFactor(1)
    : new Job("Full").WithLaunchCount(1).WithWarmupCount(3).WithIterationCount(15);
job = job.WithToolchain(InProcessEmitToolchain.Instance);

ManualConfig config = ManualConfig.CreateMinimumViable()
    .AddJob(job)
    .AddColumn(StatisticColumn.Median, StatisticColumn.Min)
    .AddExporter(MarkdownExporter.GitHub, CsvExporter.Default, JsonExporter.Full)
    .WithArtifactsPath(output)
    .WithOptions(ConfigOptions.DisableLogFile);
if (filter is not null) config.AddFilter(new GlobFilter([filter]));

// What the summary does not say: the engine's device and GEMM library, and libtorch's threads.
using (SelectedDevice selected = DeviceSelector.Open(DeviceChoice.OpenCl))
{
    string setup = string.Join(Environment.NewLine,
        $"mode: {(quick ? "short" : "full")}; batch {string.Join(",", OperationBenchmarks.Batches)}",
        $"engine: {selected.Device.Description}; GEMM: {selected.Device.GemmProvider}",
        $"TorchSharp: {typeof(TorchSharp.torch).Assembly.GetName().Version}, libtorch CPU, {TorchSharpAlexNet.Threads} threads, channels-last",
        $"command: dotnet AlexNet.Cuda.Benchmarks.dll {string.Join(' ', args)}");
    Console.WriteLine(setup);
    File.WriteAllText(Path.Combine(output, "setup.txt"), setup + Environment.NewLine);
}

Summary summary = BenchmarkRunner.Run<OperationBenchmarks>(config);
// BenchmarkDotNet's Allocated column counts every thread and collects garbage just before its measured call, so
// finalizer-thread work that follows (a few KB from the runtime's own callbacks) can land in a long call's count.
// The engine's promise of no allocation per pass is checked here on the calling thread alone.
string allocations = OperationBenchmarks.CheckForwardAllocations(passes: 5);
Console.WriteLine(allocations);
File.WriteAllText(Path.Combine(output, "allocations.txt"), allocations + Environment.NewLine);
OperationBenchmarks.ReleaseFixtures();
int failed = summary.Reports.Count(r => !r.Success || r.ResultStatistics is null);
if (!allocations.Contains(": 0 bytes", StringComparison.Ordinal))
{
    Console.Error.WriteLine($"benchmarks: error: the engine's forward pass allocated managed memory ({allocations})");
    return 1;
}
if (summary.HasCriticalValidationErrors || summary.Reports.Length == 0 || failed > 0)
{
    Console.Error.WriteLine($"benchmarks: error: {failed} of {summary.Reports.Length} benchmarks produced no measurement{(summary.HasCriticalValidationErrors ? "; the configuration did not validate" : "")}");
    return 1;
}
Console.WriteLine($"benchmarks: {summary.Reports.Length} measured; reports in {summary.ResultsDirectoryPath}");
return 0;

static int Fail(string message)
{
    Console.Error.WriteLine($"benchmarks: error: {message} (--help for usage)");
    return 2;
}
