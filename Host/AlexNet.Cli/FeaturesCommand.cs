using System.CommandLine;
using System.Text;
using AlexNet.Cuda;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Export;
using AlexNet.Cuda.Labels;
using AlexNet.Cuda.Network;

namespace AlexNet.Cli;

/// <summary>
/// <c>alexnet features --weights FILE --layer NAME[,NAME…] --out OUT IMAGE|DIR…</c>: runs the network over
/// the images, read and preprocessed as <c>classify</c> reads them, and writes the named layers' activations
/// as float32, in input order: one layer to <c>OUT.npy</c> ([N, C, H, W] or [N, F]), several to
/// <c>OUT.npz</c> with one member per layer, and the files of the rows, one per line, to <c>OUT.files.txt</c>.
/// A bad image is never turned into numbers: by default nothing is written when any input cannot be used
/// (each is named on stderr, exit 1); with <c>--skip-bad</c> the others' rows are written (exit 1 still says
/// some were left out).
/// </summary>
internal static class FeaturesCommand
{
    public static Command Create()
    {
        var weights = new Option<string>("--weights") { Description = "The weight file (bvlc_alexnet.npy or an .npz)", HelpName = "FILE", Required = true };
        Option<IReadOnlyList<string>?> layers = CliOptions.NameList("--layer", "NAME[,NAME]",
            $"Layers to write, comma-separated: {string.Join(", ", AlexNetModel.LayerNames)}", "layer names", AlexNetModel.LayerNames);
        layers.Required = true;
        var output = new Option<string>("--out")
        {
            Description = "Output path: OUT.npy for one layer, OUT.npz for several (the extension is added); the rows' files go to OUT.files.txt",
            HelpName = "OUT",
            Required = true,
        };
        var skipBad = new Option<bool>("--skip-bad") { Description = "Write the rows of the images that could be used and leave out the others (named on stderr); without it nothing is written when any image is bad" };
        Option<DeviceChoice?> device = CliOptions.Device();
        Option<int> batch = CliOptions.PositiveInt("--batch", "Images per forward pass", 32);
        Option<WorkspaceSize> workspace = CliOptions.Workspace();
        Option<PrecisionChoice> precision = CliOptions.Precision();
        LrnParameters lrnDefault = LrnParameters.Default;
        Option<int> radius = CliOptions.NonNegativeInt("--lrn-radius", "LRN depth radius", lrnDefault.Radius);
        Option<float> alpha = CliOptions.FiniteFloat("--lrn-alpha", "LRN alpha, TensorFlow's", lrnDefault.Alpha, a => a >= 0, "a number of 0 or more");
        Option<float> beta = CliOptions.FiniteFloat("--lrn-beta", "LRN beta", lrnDefault.Beta);
        Option<float> bias = CliOptions.FiniteFloat("--lrn-bias", "LRN bias k", lrnDefault.Bias, b => b > 0, "a number above 0");
        var images = new ImageInputOptions();
        var command = new Command("features", "Write the activations of chosen layers for image files and folders (.npy / .npz), read as classify reads them")
        {
            weights, layers, output, skipBad, device, batch, workspace, precision, radius, alpha, beta, bias,
        };
        images.AddTo(command);
        // An extension that does not fit the layer count is a command-line mistake, found before anything runs.
        command.Validators.Add(result =>
        {
            IReadOnlyList<string>? names;
            string? o;
            try
            {
                (names, o) = (result.GetValue(layers), result.GetValue(output));
            }
            catch (InvalidOperationException)
            {
                return; // a value that did not parse has its own error already
            }
            if (names is not { Count: > 0 } || o is null) return;
            try
            {
                OutputPath(o, names.Count);
            }
            catch (AlexNetException e)
            {
                result.AddError(e.Message);
            }
        });
        command.SetAction(result =>
        {
            var lrn = new LrnParameters { Radius = result.GetValue(radius), Alpha = result.GetValue(alpha), Beta = result.GetValue(beta), Bias = result.GetValue(bias) };
            var settings = new Settings(result.GetRequiredValue(weights), [.. result.GetValue(layers)!], result.GetRequiredValue(output), result.GetValue(skipBad),
                result.GetDevice(device), result.GetValue(batch), result.GetValue(workspace), result.GetValue(precision), lrn, images.Read(result),
                Program.IsVerbose(result));
            return Run(settings, result.InvocationConfiguration.Output, result.InvocationConfiguration.Error);
        });
        return command;
    }

    private sealed record Settings(string Weights, string[] Layers, string Output, bool SkipBad, DeviceChoice Device, int Batch,
        WorkspaceSize Workspace, PrecisionChoice Precision, LrnParameters Lrn, ImageInputSettings Images, bool Verbose);

    private static int Run(Settings s, TextWriter stdout, TextWriter stderr)
    {
        s.Lrn.Validate();
        // The output is checked before anything is loaded: a missing or read-only folder costs nothing.
        string path = OutputPath(s.Output, s.Layers.Length);
        string listPath = FileListPath(path);
        NpyWriter.CheckWritable(path);
        NpyWriter.CheckWritable(listPath);

        IReadOnlyList<string> files = s.Images.Files();
        using Interruption interruption = Interruption.Listen();
        using ImageInput input = s.Images.Open(s.Verbose ? (file, e) => stderr.WriteLine($"{Program.Name}: {file}: {e}") : null);
        using SelectedDevice selected = DeviceSelector.Open(s.Device);
        s.Precision.RequireOn(selected.Device);
        var options = new AlexNetOptions
        {
            Lrn = s.Lrn, MaxBatch = Math.Max(1, Math.Min(s.Batch, files.Count)), WorkspaceBytes = s.Workspace.For(selected.Device), Precision = s.Precision.Value,
        };
        using AlexNetModel model = AlexNetModel.Load(selected.Device, s.Weights, options);
        // The activations carry no names, but a labels file beside the weights that does not fit them is refused
        // as classify refuses it, and one that fits is named: it says what fc8's and prob's columns are.
        ClassLabels.ForWeights(model.NumClasses, s.Weights, labelsPath: null);
        string beside = ClassLabels.BesidePath(s.Weights);
        string names = File.Exists(beside) ? $" named by {beside}" : "";
        stdout.WriteLine($"device: {selected.Device.Description} ({selected.Reason}); precision {s.Precision}");
        stdout.WriteLine($"model: {model.NumClasses} classes{names}, LRN {s.Lrn}; device memory {model.Plan.PeakBytes / 1048576.0:F1} MiB for batches of {model.MaxBatch}; {files.Count} images, {input.Loader.Decoder.Name} decoder");

        const int F = AlexNetModel.InputFloatsPerImage;
        int maxBatch = model.MaxBatch;
        var batchInput = new float[(long)maxBatch * F];
        var errors = new string?[maxBatch];
        var bad = new List<string>();
        var good = new List<int>();
        var rows = s.Layers.ToDictionary(l => l, _ => new List<float[]>(), StringComparer.Ordinal);
        for (int first = 0; first < files.Count; first += maxBatch)
        {
            int n = Math.Min(maxBatch, files.Count - first);
            interruption.ThrowIfRequested(() => $"after {first} of {files.Count} images; nothing was written");
            input.Loader.Load(files, first, n, i => batchInput.AsSpan(i * F, F), errors);
            for (int i = 0; i < n; i++)
                if (errors[i] is string error) bad.Add(error);
            // Once an image is bad and none may be left out, nothing will be written: the rest is only read,
            // so that every bad file is named.
            if (bad.Count > 0 && !s.SkipBad) continue;
            IReadOnlyDictionary<string, float[]> features = model.Features(batchInput.AsSpan(0, n * F), n, s.Layers);
            for (int i = 0; i < n; i++)
            {
                if (errors[i] is not null) continue;
                good.Add(first + i);
                foreach (string layer in s.Layers)
                {
                    long perImage = model.Plan.Activation(layer).ElementsPerImage;
                    rows[layer].Add(features[layer].AsSpan((int)(i * perImage), (int)perImage).ToArray());
                }
            }
        }

        foreach (string error in bad) stderr.WriteLine($"{Program.Name}: {error}");
        if (bad.Count > 0 && !s.SkipBad)
            throw new AlexNetException($"{bad.Count} of {files.Count} images could not be used, so nothing was written (--skip-bad writes the others' rows)");
        if (good.Count == 0)
            throw new AlexNetException($"none of the {files.Count} images could be used; nothing was written");

        var arrays = s.Layers.Select(layer =>
        {
            long perImage = model.Plan.Activation(layer).ElementsPerImage;
            var data = new float[perImage * good.Count];
            for (int r = 0; r < good.Count; r++) rows[layer][r].CopyTo(data, r * perImage);
            return (layer, data, model.Plan.Activation(layer).ExportShape(good.Count));
        }).ToList();
        if (arrays.Count == 1) NpyWriter.WriteNpy(path, arrays[0].data, arrays[0].Item3);
        else NpyWriter.WriteNpz(path, arrays);
        WriteFileList(listPath, good.Select(i => files[i]));
        foreach ((string name, _, int[] shape) in arrays)
            stdout.WriteLine($"{name}: [{string.Join(", ", shape)}]");
        stdout.WriteLine($"wrote {path} and {listPath} ({good.Count} rows)");
        if (bad.Count == 0) return 0;
        stderr.WriteLine($"{Program.Name}: {bad.Count} of {files.Count} images could not be used and have no row");
        return Program.Failure;
    }

    /// <summary>OUT.npy for one layer, OUT.npz for several; an explicit matching extension is kept.</summary>
    internal static string OutputPath(string output, int layers)
    {
        string extension = layers == 1 ? ".npy" : ".npz";
        string other = layers == 1 ? ".npz" : ".npy";
        if (output.EndsWith(extension, StringComparison.OrdinalIgnoreCase)) return output;
        if (output.EndsWith(other, StringComparison.OrdinalIgnoreCase))
            throw new AlexNetException($"--out {output}: {layers} layer(s) are written as {extension}, not {other}");
        return output + extension;
    }

    /// <summary>OUT.files.txt beside OUT.npy or OUT.npz.</summary>
    internal static string FileListPath(string output) => Path.ChangeExtension(output, ".files.txt");

    /// <summary>The rows' files, one per line, as the command line named them (a line break in a name is
    /// written as \n, a backslash as \\, so each row keeps one line).</summary>
    private static void WriteFileList(string path, IEnumerable<string> files)
    {
        var text = new StringBuilder();
        foreach (string file in files) text.Append(file.Replace("\\", "\\\\").Replace("\n", "\\n").Replace("\r", "\\r")).Append('\n');
        NpyWriter.WriteText(path, text.ToString());
    }
}
