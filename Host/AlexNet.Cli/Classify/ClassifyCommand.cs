using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using AlexNet.Cuda;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Labels;
using AlexNet.Cuda.Network;
using AlexNet.Imaging;

namespace AlexNet.Cli.Classify;

/// <summary>
/// <c>alexnet classify --weights FILE … IMAGE|DIR…</c>: the top-K classes of every image, in input order, with
/// the reference preprocessing. Exit status: 0 when every image was classified, 1 when some could not be
/// (each has an error record, a missing path included; the count goes to stderr) or nothing could run
/// (missing weights, no device), 2 for a usage error, 130 when interrupted (after the batches in flight are
/// written), 141 when stdout's reader has gone.
/// </summary>
internal static class ClassifyCommand
{
    public const int SomeFailed = 1;

    public static Command Create()
    {
        var weights = new Option<string>("--weights") { Description = "The weight file (bvlc_alexnet.npy or an .npz)", HelpName = "FILE", Required = true };
        Option<DeviceChoice?> device = CliOptions.Device();
        Option<int> batch = CliOptions.PositiveInt("--batch", "Images per forward pass", 64);
        Option<int> top = CliOptions.PositiveInt("--top", "Classes to print per image", 5);
        Option<WorkspaceSize> workspace = CliOptions.Workspace();
        Option<PrecisionChoice> precision = CliOptions.Precision();
        var labels = new Option<string?>("--labels")
        {
            Description = "Class names: Caffe's synset_words.txt form or one name per line (default: the weight file's WEIGHTS.labels.txt beside it when there is one, else the bundled ImageNet names when there are 1000 classes)",
            HelpName = "FILE",
        };
        Option<string?> format = CliOptions.Choice("--format", "text (the default), or JSON lines for programs", "text", "json");
        var shard = new Option<Shard?>("--shard")
        {
            Description = "Take only the I-th of N contiguous slices of the sorted inputs (0-based), for running on N machines",
            HelpName = "I/N",
            CustomParser = result =>
            {
                try
                {
                    return Shard.Parse(result.Tokens[^1].Value);
                }
                catch (AlexNetException e)
                {
                    result.AddError(e.Message);
                    return null;
                }
            },
        };
        var stats = new Option<bool>("--stats") { Description = "Print the end-to-end, decode-only and inference-only rates to stderr" };
        var images = new ImageInputOptions();
        var command = new Command("classify", "Classify image files in batches: the top-K classes of each, in input order")
        {
            weights, device, batch, top, labels, format, shard, stats, workspace, precision,
        };
        images.AddTo(command);
        command.SetAction(result => Run(new Settings(
            result.GetRequiredValue(weights), result.GetDevice(device), result.GetValue(batch), result.GetValue(top),
            result.GetValue(labels), result.GetValue(format) == "json", result.GetValue(shard), result.GetValue(stats),
            result.GetValue(workspace), result.GetValue(precision), images.Read(result), Program.IsVerbose(result)),
            result.InvocationConfiguration.Output, result.InvocationConfiguration.Error));
        return command;
    }

    internal sealed record Settings(string Weights, DeviceChoice Device, int Batch, int Top, string? Labels, bool Json, Shard? Shard,
        bool Stats, WorkspaceSize Workspace, PrecisionChoice Precision, ImageInputSettings Images, bool Verbose);

    private static int Run(Settings s, TextWriter stdout, TextWriter stderr)
    {
        // Whatever is wrong before the first image (weights, device, labels, shard) is one error line and
        // exit 1 (Program reports the AlexNetException); a usage error never gets this far.
        Shard shard = s.Shard ?? Shard.All;
        IReadOnlyList<string> all = s.Images.Files();
        IReadOnlyList<string> paths = shard.Slice(all);
        using Interruption interruption = Interruption.Listen();
        using ImageInput input = s.Images.Open(s.Verbose ? (file, e) => stderr.WriteLine($"{Program.Name}: {file}: {e}") : null);
        using SelectedDevice selected = DeviceSelector.Open(s.Device);
        s.Precision.RequireOn(selected.Device);
        using AlexNetModel model = AlexNetModel.Load(selected.Device, s.Weights, new AlexNetOptions
        {
            MaxBatch = Math.Max(1, Math.Min(s.Batch, paths.Count)),
            WorkspaceBytes = s.Workspace.For(selected.Device),
            Precision = s.Precision.Value,
        });
        IReadOnlyList<string>? names = ClassLabels.ForWeights(model.NumClasses, s.Weights, s.Labels);
        using var pipeline = new ClassifyPipeline(model, input.Loader);
        if (paths.Count == 0)
        {
            stderr.WriteLine($"{Program.Name}: shard {s.Shard} holds none of the {all.Count} images; nothing to do");
            return 0;
        }
        if (!s.Json) stdout.WriteLine($"# {paths.Count} images on {selected.Device.Description} ({selected.Reason}); {input.Loader.Decoder.Name} decoder; precision {s.Precision}");
        var output = new ResultWriter(stdout, s.Json, s.Top, names);
        var progress = ProgressBar.ForTerminal(stderr, paths.Count, model.MaxBatch);
        PipelineStats stats;
        try
        {
            // A stop request ends the run after the batch being filled; the batches in flight are still written.
            stats = pipeline.Run(paths, output.Write, () => interruption.IsRequested, progress is null ? null : progress.Update);
        }
        finally
        {
            progress?.Finish();
        }
        if (s.Stats)
            stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"stats: {stats.Images} images in {stats.Wall.TotalSeconds:F2} s: end to end {stats.EndToEndPerSecond:F1} images/s; decode {stats.DecodePerSecond:F1} images/s on {stats.Workers} workers; inference {stats.InferencePerSecond:F1} images/s of device time ({selected.Device.Name}); device busy {stats.DeviceBusyFraction:P0} of the wall time; {(stats.OverlappedUploads ? $"uploads {stats.UploadMilliseconds:F1} ms on a copy stream, overlapped with compute" : "uploads on the compute stream")}; decode memory peak {DecodeMemoryBudget.Mebibytes(input.Budget.PeakBytes)} of {DecodeMemoryBudget.Mebibytes(input.Budget.TotalBytes)}"));
        if (interruption.IsRequested)
        {
            stderr.WriteLine($"{Program.Name}: interrupted by {interruption.SignalName} after {stats.Images} of {paths.Count} images");
            return Interruption.ExitCode;
        }
        if (stats.Failed > 0)
        {
            stderr.WriteLine($"{Program.Name}: {stats.Failed} of {paths.Count} images could not be classified");
            return SomeFailed;
        }
        return 0;
    }

    /// <summary>Writes results as text or JSON lines, one whole record at a time.</summary>
    private sealed class ResultWriter(TextWriter output, bool json, int top, IReadOnlyList<string>? names)
    {
        private readonly MemoryStream _buffer = new();

        public void Write(ImageResult result)
        {
            if (json) WriteJson(result);
            else WriteText(result);
        }

        private void WriteText(ImageResult r)
        {
            if (r.Error is not null)
            {
                output.WriteLine($"{r.Path}: error: {r.Error}");
                return;
            }
            var line = new StringBuilder(r.Path);
            foreach (int index in ClassRanking.Top(r.Probabilities!, top))
                line.Append(CultureInfo.InvariantCulture, $"\n  {r.Probabilities![index],8:F6}  {index,4}  {names?[index] ?? ""}");
            output.WriteLine(line.ToString());
        }

        private void WriteJson(ImageResult r)
        {
            _buffer.SetLength(0);
            // Paths and messages as they are (×, accents), not \u-escaped: valid JSON either way.
            using (var writer = new Utf8JsonWriter(_buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            {
                writer.WriteStartObject();
                writer.WriteString("file", r.Path);
                if (r.Error is not null) writer.WriteString("error", r.Error);
                else
                {
                    writer.WriteStartArray("top");
                    foreach (int index in ClassRanking.Top(r.Probabilities!, top))
                    {
                        writer.WriteStartObject();
                        writer.WriteNumber("index", index);
                        if (names is not null) writer.WriteString("label", names[index]);
                        writer.WriteNumber("probability", r.Probabilities![index]);
                        writer.WriteEndObject();
                    }
                    writer.WriteEndArray();
                }
                writer.WriteEndObject();
            }
            // One record per line, written whole: an interrupted run leaves complete lines only.
            output.WriteLine(Encoding.UTF8.GetString(_buffer.GetBuffer(), 0, (int)_buffer.Length));
        }
    }
}

/// <summary>A one-line progress bar on stderr when stderr is a terminal and there is more than one batch.</summary>
internal sealed class ProgressBar
{
    private readonly TextWriter _error;
    private readonly int _total;
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();

    private ProgressBar(TextWriter error, int total)
    {
        _error = error;
        _total = total;
    }

    public static ProgressBar? ForTerminal(TextWriter error, int total, int batch) =>
        ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected && total > batch ? new ProgressBar(error, total) : null;

    public void Update(int done)
    {
        double seconds = _clock.Elapsed.TotalSeconds, rate = done / Math.Max(seconds, 1e-9);
        int width = 30, filled = (int)((long)width * done / _total);
        TimeSpan eta = TimeSpan.FromSeconds(rate > 0 ? (_total - done) / rate : 0);
        _error.Write(string.Create(CultureInfo.InvariantCulture,
            $"\r[{new string('#', filled)}{new string(' ', width - filled)}] {done}/{_total} images, {rate:F1} images/s, ETA {eta:hh\\:mm\\:ss} "));
    }

    public void Finish() => _error.WriteLine();
}
