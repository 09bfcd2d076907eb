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
/// (each has an error record; the count goes to stderr), 2 for a usage error or when nothing could run
/// (missing weights, no device), 130 when interrupted (after the batches in flight are written).
/// </summary>
internal static class ClassifyCommand
{
    public const int SomeFailed = 1;
    public const int CannotRun = 2;
    public const int Interrupted = 130;

    public static Command Create()
    {
        var weights = new Option<string>("--weights") { Description = "The weight file (bvlc_alexnet.npy or an .npz)", HelpName = "FILE", Required = true };
        Option<DeviceChoice?> device = CliOptions.Device();
        Option<int> batch = CliOptions.PositiveInt("--batch", "Images per forward pass", 64);
        Option<int> top = CliOptions.PositiveInt("--top", "Classes to print per image", 5);
        var labels = new Option<string?>("--labels")
        {
            Description = "Class names: Caffe's synset_words.txt form or one name per line (default: the bundled ImageNet names when there are 1000 classes)",
            HelpName = "FILE",
        };
        Option<string?> resize = CliOptions.Choice("--resize", "stretch: resize to 227×227 as the reference does (default); crop: shorter side to 256, centre 227×227", "stretch", "crop");
        var mean = new Option<string?>("--mean") { Description = "Mean subtracted per channel, B,G,R (default 104,117,124)", HelpName = "B,G,R" };
        Option<string?> format = CliOptions.Choice("--format", "text (default), or JSON lines for programs", "text", "json");
        Option<int> workers = CliOptions.PositiveInt("--workers", "Threads that read, decode and resize images", Environment.ProcessorCount);
        var shard = new Option<string?>("--shard") { Description = "Take only the I-th of N contiguous slices of the sorted inputs (0-based), for running on N machines", HelpName = "I/N" };
        Option<string?> decoder = CliOptions.Choice("--decoder", $"Image decoder (default {ImageDecoders.DefaultName})", [.. ImageDecoders.Names]);
        var maxPixels = new Option<long?>("--max-pixels") { Description = "Refuse images larger than this many pixels, from their header (default 100000000)", HelpName = "N" };
        var fastDecode = new Option<bool>("--fast-decode") { Description = "Decode large JPEGs at a reduced scale (at least twice the target): faster, not exactly the reference" };
        var stats = new Option<bool>("--stats") { Description = "Print the end-to-end, decode-only and inference-only rates to stderr" };
        var inputs = new Argument<string[]>("IMAGE|DIR") { Description = "Image files, or folders searched recursively for images (write a path that starts with - as ./-name)", Arity = ArgumentArity.OneOrMore };
        // An unknown option would otherwise be taken as an input path and fail later as a missing file.
        inputs.Validators.Add(result =>
        {
            foreach (var token in result.Tokens)
                if (token.Value.Length > 1 && token.Value[0] == '-')
                    result.AddError($"classify has no option {token.Value}");
        });
        var command = new Command("classify", "Classify image files in batches: the top-K classes of each, in input order")
        {
            weights, device, batch, top, labels, resize, mean, format, workers, shard, decoder, maxPixels, fastDecode, stats, inputs,
        };
        command.SetAction(result => Run(new Settings(
            result.GetRequiredValue(weights), result.GetDevice(device), result.GetValue(batch), result.GetValue(top),
            result.GetValue(labels), result.GetValue(resize) == "crop" ? ResizeMode.Crop : ResizeMode.Stretch,
            result.GetValue(mean), result.GetValue(format) == "json", result.GetValue(workers), result.GetValue(shard),
            result.GetValue(decoder) ?? ImageDecoders.DefaultName, result.GetValue(maxPixels), result.GetValue(fastDecode),
            result.GetValue(stats), result.GetRequiredValue(inputs)),
            result.InvocationConfiguration.Output, result.InvocationConfiguration.Error));
        return command;
    }

    internal sealed record Settings(string Weights, DeviceChoice Device, int Batch, int Top, string? Labels, ResizeMode Resize,
        string? Mean, bool Json, int Workers, string? Shard, string Decoder, long? MaxPixels, bool FastDecode, bool Stats, string[] Inputs);

    /// <summary>B,G,R as three finite numbers.</summary>
    internal static float[] ParseMean(string? text)
    {
        if (text is null) return [104f, 117f, 124f];
        string[] parts = text.Split(',');
        var mean = new float[3];
        if (parts.Length != 3 || !parts.Select((p, i) => float.TryParse(p.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out mean[i]) && float.IsFinite(mean[i])).All(ok => ok))
            throw new AlexNetException($"--mean takes three numbers B,G,R (as 104,117,124), not '{text}'");
        return mean;
    }

    private static int Run(Settings s, TextWriter stdout, TextWriter stderr)
    {
        // Everything that can be wrong before the first image is a usage-level failure: exit 2.
        IReadOnlyList<string> paths;
        int total;
        ClassifyPipeline pipeline;
        AlexNetModel model;
        SelectedDevice selected;
        IReadOnlyList<string>? names;
        float[] mean;
        try
        {
            mean = ParseMean(s.Mean);
            Shard shard = s.Shard is null ? new Shard(0, 1) : Shard.Parse(s.Shard);
            IReadOnlyList<string> all = InputFiles.Enumerate(s.Inputs);
            total = all.Count;
            paths = shard.Slice(all);
            IImageDecoder decoder = ImageDecoders.Create(s.Decoder);
            var decodeOptions = new ImageDecodeOptions { FastDecode = s.FastDecode };
            if (s.MaxPixels is long limit)
            {
                if (limit < 1) throw new AlexNetException($"--max-pixels takes a positive number, not {limit}");
                decodeOptions = decodeOptions with { MaxPixels = limit };
            }
            selected = DeviceSelector.Open(s.Device);
            try
            {
                model = AlexNetModel.Load(selected.Device, s.Weights, new AlexNetOptions { MaxBatch = Math.Max(1, Math.Min(s.Batch, paths.Count)) });
                try
                {
                    names = ClassLabels.ForClasses(model.NumClasses, s.Labels);
                    pipeline = new ClassifyPipeline(model, new ImageLoader(decoder, decodeOptions, s.Resize, mean, s.Workers));
                }
                catch
                {
                    model.Dispose();
                    throw;
                }
            }
            catch
            {
                selected.Dispose();
                throw;
            }
        }
        catch (AlexNetException e)
        {
            stderr.WriteLine($"{Program.Name}: error: {e.Message}");
            return CannotRun;
        }

        using (selected)
        using (model)
        using (pipeline)
        {
            if (paths.Count == 0)
            {
                stderr.WriteLine($"{Program.Name}: shard {s.Shard} holds none of the {total} images; nothing to do");
                return 0;
            }
            if (!s.Json) stdout.WriteLine($"# {paths.Count} images on {selected.Device.Description} ({selected.Reason})");
            var output = new ResultWriter(stdout, s.Json, s.Top, names);
            var progress = ProgressBar.ForTerminal(stderr, paths.Count, model.MaxBatch);
            bool interrupted = false;
            ConsoleCancelEventHandler onCancel = (_, e) =>
            {
                // The first Ctrl+C stops after the batch being filled; the batches in flight are still written.
                if (interrupted) return;
                interrupted = true;
                e.Cancel = true;
            };
            Console.CancelKeyPress += onCancel;
            PipelineStats stats;
            try
            {
                stats = pipeline.Run(paths, output.Write, () => interrupted, progress is null ? null : progress.Update);
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
                progress?.Finish();
                stdout.Flush();
            }
            if (s.Stats)
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"stats: {stats.Images} images in {stats.Wall.TotalSeconds:F2} s: end to end {stats.EndToEndPerSecond:F1} images/s; decode {stats.DecodePerSecond:F1} images/s on {stats.Workers} workers; inference {stats.InferencePerSecond:F1} images/s of device time ({selected.Device.Name})"));
            if (interrupted)
            {
                stderr.WriteLine($"{Program.Name}: interrupted after {stats.Images} of {paths.Count} images");
                return Interrupted;
            }
            if (stats.Failed > 0)
            {
                stderr.WriteLine($"{Program.Name}: {stats.Failed} of {paths.Count} images could not be classified");
                return SomeFailed;
            }
            return 0;
        }
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
