using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using AlexNet.Cuda;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cli;

/// <summary>
/// <c>alexnet weights FILE [--format text|json] [--num-classes N] [--skip-layer fc7,fc8] [--seed S]</c>:
/// reads a weight file, checks it against AlexNet, and prints each layer's shapes, dtype and value summary.
/// </summary>
internal static class WeightsCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("FILE")
        {
            Description = "The weight file: an .npy holding a pickled dict (bvlc_alexnet.npy) or an .npz (write a path that starts with - as ./-name)",
        }.RefuseOptions();
        Option<string?> format = CliOptions.Choice("--format", "Output: a table (the default), or JSON for programs", "text", "json");
        Option<int?> numClasses = CliOptions.OptionalPositiveInt("--num-classes",
            "Classes of fc8 (default: the file's; another count needs --skip-layer fc8)");
        Option<IReadOnlyList<string>?> skipLayers = CliOptions.NameList("--skip-layer", "LAYER[,LAYER]",
            "Layers not to read from the file, comma-separated (fc7,fc8): they get fresh Glorot-uniform weights and zero biases",
            "layer names", AlexNetArchitecture.LayerNames);
        Option<ulong> seed = CliOptions.UnsignedLong("--seed", "Seed of the skipped layers' fresh weights", 0);
        var command = new Command("weights", "Read a weight file, check it against the architecture and summarise each layer")
        {
            file, format, numClasses, skipLayers, seed,
        };
        command.SetAction(result =>
        {
            string path = result.GetRequiredValue(file);
            IReadOnlyList<string> skip = result.GetValue(skipLayers) ?? [];
            var options = new WeightLoadOptions { NumClasses = result.GetValue(numClasses), SkipLayers = skip, Seed = result.GetValue(seed) };
            return Run(path, options, result.GetValue(format) == "json", result.InvocationConfiguration.Output);
        });
        return command;
    }

    private static int Run(string path, WeightLoadOptions options, bool json, TextWriter stdout)
    {
        var weights = WeightFile.Load(path, options);
        if (json) WriteJson(weights, stdout);
        else WriteText(weights, path, stdout);
        return 0;
    }

    internal readonly record struct Summary(float Min, float Max, double Mean);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    internal static Summary Summarise(float[] v)
    {
        if (v.Length == 0) return new(float.NaN, float.NaN, double.NaN);
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        double sum = 0;
        foreach (float x in v)
        {
            if (x < min) min = x;
            if (x > max) max = x;
            sum += x;
        }
        return new(min, max, sum / v.Length);
    }

    private static string Shape(int[] s) => NpyArray.FormatShape(s);

    private static string G(double x) => x.ToString("G6", CultureInfo.InvariantCulture);

    private static void WriteText(AlexNetWeights w, string path, TextWriter o)
    {
        o.WriteLine($"{path}: {w.Layers.Count} layers, {w.NumClasses} classes");
        o.WriteLine($"{"layer",-6} {"weight shape",-20} {"bias shape",-10} {"dtype",-5}  {"weight min",12} {"max",12} {"mean",12}  {"bias min",12} {"max",12} {"mean",12}");
        foreach (var l in w.Layers)
        {
            var ws = Summarise(l.Weight);
            var bs = Summarise(l.Bias);
            o.WriteLine($"{l.Name,-6} {Shape(l.WeightShape),-20} {Shape(l.BiasShape),-10} {l.Source,-5}  {G(ws.Min),12} {G(ws.Max),12} {G(ws.Mean),12}  {G(bs.Min),12} {G(bs.Max),12} {G(bs.Mean),12}");
        }
        o.WriteLine($"parameters: {w.ParameterCount.ToString("N0", CultureInfo.InvariantCulture)} ({w.ParameterCount * 4 / (1024.0 * 1024.0):F1} MiB as float32)");
    }

    private static void WriteJson(AlexNetWeights w, TextWriter o)
    {
        var buffer = new MemoryStream();
        using (var j = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            j.WriteStartObject();
            j.WriteStartArray("layers");
            foreach (var l in w.Layers)
            {
                j.WriteStartObject();
                j.WriteString("name", l.Name);
                WriteInts(j, "weight_shape", l.WeightShape);
                WriteInts(j, "bias_shape", l.BiasShape);
                j.WriteString("dtype", l.Source);
                WriteSummary(j, "weight_summary", Summarise(l.Weight));
                WriteSummary(j, "bias_summary", Summarise(l.Bias));
                j.WriteEndObject();
            }
            j.WriteEndArray();
            j.WriteNumber("num_classes", w.NumClasses);
            j.WriteNumber("parameters", w.ParameterCount);
            j.WriteEndObject();
        }
        o.WriteLine(Encoding.UTF8.GetString(buffer.ToArray()));
    }

    private static void WriteInts(Utf8JsonWriter j, string name, int[] values)
    {
        j.WriteStartArray(name);
        foreach (int v in values) j.WriteNumberValue(v);
        j.WriteEndArray();
    }

    private static void WriteSummary(Utf8JsonWriter j, string name, Summary s)
    {
        j.WriteStartObject(name);
        j.WriteNumber("min", s.Min);
        j.WriteNumber("max", s.Max);
        j.WriteNumber("mean", s.Mean);
        j.WriteEndObject();
    }
}
