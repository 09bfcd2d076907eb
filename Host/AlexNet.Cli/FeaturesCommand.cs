using System.CommandLine;
using System.Globalization;
using AlexNet.Cuda;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Export;
using AlexNet.Cuda.Network;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace AlexNet.Cli;

/// <summary>
/// <c>alexnet features --weights FILE --layer NAME[,NAME…] --out OUT IMAGE…</c>: runs the network over the
/// images and writes the named layers' activations as float32, in input order: one layer to
/// <c>OUT.npy</c> ([N, C, H, W] or [N, F]), several to <c>OUT.npz</c> with one member per layer.
/// </summary>
internal static class FeaturesCommand
{
    /// <summary>BGR mean of the reference's preprocessing (docs/model.md).</summary>
    private static readonly float[] MeanBgr = [104f, 117f, 124f];

    public static Command Create()
    {
        var weights = new Option<string>("--weights") { Description = "The weight file (bvlc_alexnet.npy or an .npz)", HelpName = "FILE", Required = true };
        var layers = new Option<string>("--layer")
        {
            Description = $"Layers to write, comma-separated: {string.Join(", ", AlexNetModel.LayerNames)}",
            HelpName = "NAME[,NAME]",
            Required = true,
        };
        var output = new Option<string>("--out") { Description = "Output path: OUT.npy for one layer, OUT.npz for several (the extension is added)", HelpName = "OUT", Required = true };
        Option<DeviceChoice?> device = CliOptions.Device();
        Option<int> batch = CliOptions.PositiveInt("--batch", "Images per forward pass", 32);
        Option<int> workspace = CliOptions.PositiveInt("--workspace", "MiB of device memory for the convolutions' lowered input; larger batches run in chunks that fit",
            (int)(AlexNetOptions.DefaultWorkspaceBytes >> 20));
        Option<int?> radius = CliOptions.OptionalPositiveInt("--lrn-radius", "LRN depth radius (default 2)");
        Option<string?> alpha = new("--lrn-alpha") { Description = "LRN alpha, TensorFlow's (default 2e-05)", HelpName = "A" };
        Option<string?> beta = new("--lrn-beta") { Description = "LRN beta (default 0.75)", HelpName = "B" };
        Option<string?> bias = new("--lrn-bias") { Description = "LRN bias k (default 1)", HelpName = "K" };
        var images = new Argument<string[]>("IMAGE") { Description = "227×227 PNG or JPEG images", Arity = ArgumentArity.OneOrMore };
        var command = new Command("features", "Write the activations of chosen layers for a list of images (.npy / .npz)")
        {
            weights, layers, output, device, batch, workspace, radius, alpha, beta, bias, images,
        };
        command.SetAction(result =>
        {
            LrnParameters lrn = LrnParameters.Default;
            if (result.GetValue(radius) is int r) lrn = lrn with { Radius = r };
            if (result.GetValue(alpha) is string a) lrn = lrn with { Alpha = ParseFloat("--lrn-alpha", a) };
            if (result.GetValue(beta) is string b) lrn = lrn with { Beta = ParseFloat("--lrn-beta", b) };
            if (result.GetValue(bias) is string k) lrn = lrn with { Bias = ParseFloat("--lrn-bias", k) };
            string[] names = result.GetRequiredValue(layers).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            return Run(result.GetRequiredValue(weights), names, result.GetRequiredValue(output), result.GetDevice(device),
                result.GetValue(batch), (long)result.GetValue(workspace) << 20, lrn, result.GetRequiredValue(images), result.InvocationConfiguration.Output);
        });
        return command;
    }

    private static float ParseFloat(string option, string text) =>
        float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) && float.IsFinite(v)
            ? v
            : throw new AlexNetException($"{option} takes a number, not '{text}'");

    private static int Run(string weightFile, string[] layers, string output, DeviceChoice choice, int batch, long workspaceBytes, LrnParameters lrn,
        string[] imagePaths, TextWriter stdout)
    {
        if (layers.Length == 0) throw new AlexNetException("--layer names no layer; give one or more of " + string.Join(", ", AlexNetModel.LayerNames));
        foreach (string layer in layers)
            if (!AlexNetModel.LayerNames.Contains(layer))
                throw new AlexNetException($"unknown layer '{layer}'; layers: {string.Join(", ", AlexNetModel.LayerNames)}");
        if (layers.Distinct(StringComparer.Ordinal).Count() != layers.Length) throw new AlexNetException("--layer names a layer twice");
        lrn.Validate();
        string path = OutputPath(output, layers.Length);

        // Every image is read before the device is touched: a bad file costs nothing but its message.
        float[] input = LoadImages(imagePaths);
        int count = imagePaths.Length;
        var options = new AlexNetOptions { Lrn = lrn, MaxBatch = Math.Min(batch, count), WorkspaceBytes = workspaceBytes };
        using SelectedDevice selected = DeviceSelector.Open(choice);
        using AlexNetModel model = AlexNetModel.Load(selected.Device, weightFile, options);
        stdout.WriteLine($"device: {selected.Device.Description} ({selected.Reason})");
        stdout.WriteLine($"model: {model.NumClasses} classes, LRN {lrn}; device memory {model.Plan.PeakBytes / 1048576.0:F1} MiB for batches of {model.MaxBatch}");

        var results = layers.ToDictionary(l => l, l => new float[model.Plan.Activation(l).ElementsPerImage * count], StringComparer.Ordinal);
        for (int first = 0; first < count; first += model.MaxBatch)
        {
            int n = Math.Min(model.MaxBatch, count - first);
            IReadOnlyDictionary<string, float[]> batchFeatures = model.Features(
                input.AsSpan(first * AlexNetModel.InputFloatsPerImage, n * AlexNetModel.InputFloatsPerImage), n, layers);
            foreach (string layer in layers)
            {
                long perImage = model.Plan.Activation(layer).ElementsPerImage;
                batchFeatures[layer].CopyTo(results[layer], first * perImage);
            }
        }
        var arrays = layers.Select(l => (l, results[l], model.Plan.Activation(l).ExportShape(count))).ToList();
        if (arrays.Count == 1) NpyWriter.WriteNpy(path, arrays[0].Item2, arrays[0].Item3);
        else NpyWriter.WriteNpz(path, arrays);
        foreach ((string name, _, int[] shape) in arrays)
            stdout.WriteLine($"{name}: [{string.Join(", ", shape)}]");
        stdout.WriteLine($"wrote {path}");
        return 0;
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

    /// <summary>
    /// Decodes each image with ImageSharp 2.1.13 into the network's input: 227×227, BGR, float, the mean
    /// (104, 117, 124) subtracted, HWC per image, in input order.
    /// </summary>
    internal static float[] LoadImages(IReadOnlyList<string> paths)
    {
        var input = new float[(long)paths.Count * AlexNetModel.InputFloatsPerImage];
        for (int i = 0; i < paths.Count; i++)
        {
            string path = paths[i];
            if (!File.Exists(path)) throw new AlexNetException($"image {path} does not exist");
            Image<Rgb24> image;
            try
            {
                image = Image.Load<Rgb24>(path);
            }
            catch (Exception e) when (e is UnknownImageFormatException or InvalidImageContentException or NotSupportedException or IOException)
            {
                throw new AlexNetException($"cannot read image {path}: {e.Message.ReplaceLineEndings(" ")}", e);
            }
            using (image)
            {
                if (image.Width != AlexNetModel.InputSize || image.Height != AlexNetModel.InputSize)
                    throw new AlexNetException($"image {path} is {image.Width}×{image.Height}; features takes 227×227 images (resize them first)");
                int offset = i * AlexNetModel.InputFloatsPerImage;
                image.ProcessPixelRows(rows =>
                {
                    for (int y = 0; y < rows.Height; y++)
                    {
                        Span<Rgb24> row = rows.GetRowSpan(y);
                        int at = offset + y * AlexNetModel.InputSize * 3;
                        for (int x = 0; x < row.Length; x++, at += 3)
                        {
                            input[at] = row[x].B - MeanBgr[0];
                            input[at + 1] = row[x].G - MeanBgr[1];
                            input[at + 2] = row[x].R - MeanBgr[2];
                        }
                    }
                });
            }
        }
        return input;
    }
}
