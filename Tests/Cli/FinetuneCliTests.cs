using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using AlexNet.Cli;
using AlexNet.Cli.Finetune;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Weights;
using AlexNet.Cuda.Weights;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Cli;

/// <summary>
/// A full-size Python-2-style weight file like the classify tests' (<see cref="SyntheticNetwork"/>), but with conv1 and
/// every convolution's bias at a hundredth of their scale: He-scaled layers keep the input's scale (pixels of ±124) all the way up, so pool5 would
/// be a hundred times a trained network's and the recipe's learning rate of 0.01 would diverge in the first epoch
/// (it does: the loss reached 1e10); at this scale pool5 is a few units, as bvlc_alexnet's is.
/// </summary>
public sealed class FinetuneWeightsFixture : IDisposable
{
    private readonly Lazy<string> _path;
    private readonly TempDir _dir = new();

    public FinetuneWeightsFixture() => _path = new Lazy<string>(() =>
    {
        AlexNetWeights w = SyntheticNetwork.Weights(AlexNetArchitecture.Default, 29);
        string path = _dir.File("bvlc_alexnet.npy");
        Py2PickleWriter.WriteFile(path, w.Layers.Select(l =>
            new Py2PickleWriter.Layer(l.Name, l.Name == "conv1" ? [.. l.Weight.Select(v => v / 100)] : l.Weight, l.WeightShape,
                l.Name.StartsWith("conv", StringComparison.Ordinal) ? [.. l.Bias.Select(v => v / 100)] : l.Bias)));
        return path;
    });

    public string Path => _path.Value;

    public void Dispose() => _dir.Dispose();
}

/// <summary>
/// <c>alexnet finetune</c> end to end on the OpenCL device, from the full-size synthetic weight file above: a generated 3-class image set (red discs, green squares, blue triangles on noisy backgrounds of any
/// colour, at random places and sizes) is learnt to the stated validation accuracy within the stated epochs; the
/// checkpoint is read by numpy as the original TensorFlow code reads bvlc_alexnet.npy, and by <c>classify</c>, which
/// names the new classes; a run stopped after a step and resumed ends with the same bytes as a run never stopped.
/// </summary>
[Collection(OpenClCollection.Name)]
public sealed class FinetuneCliTests(OpenClFixture fixture, FinetuneWeightsFixture weights, ITestOutputHelper output) : IClassFixture<FinetuneWeightsFixture>, IDisposable
{
    /// <summary>The accuracy the generated set must reach on its validation images, and within how many epochs.</summary>
    private const double TargetValTop1 = 0.85;
    private const int Epochs = 10;

    /// <summary>
    /// The features of random convolutions are dense (pool5's 9216 values have an RMS of about 1.5, ‖x‖² ≈ 2·10⁴), so
    /// one SGD step at the recipe's 0.01 moves fc6's outputs by hundreds and the loss diverges in the first epoch (it
    /// did: 2.8·10¹⁰); 1e-4 is the same step relative to ‖x‖². Dropout is off: on 36 images in batches of 12 its noise
    /// swamped the signal (validation top-1 wandered between 33 % and 100 % from epoch to epoch); the resume test runs it.
    /// </summary>
    private const string LearningRate = "0.0001";

    private static readonly string[] Classes = ["disc", "square", "triangle"];
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private void RequireDevice()
    {
        _ = fixture.Device;
        TestNative.Require(NativeLibraryId.OpenCl);
    }

    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A folder per class of <paramref name="perClass"/> 64×64 PNGs.</summary>
    private string ImageSet(string name, int perClass, int seed)
    {
        string root = _dir.File(name);
        var random = new Random(seed);
        for (int c = 0; c < Classes.Length; c++)
        {
            Directory.CreateDirectory(Path.Combine(root, Classes[c]));
            for (int i = 0; i < perClass; i++)
            {
                using var image = new Image<Rgb24>(64, 64);
                var background = new Rgb24((byte)random.Next(40, 200), (byte)random.Next(40, 200), (byte)random.Next(40, 200));
                var colour = c switch { 0 => new Rgb24(230, 30, 30), 1 => new Rgb24(30, 220, 40), _ => new Rgb24(40, 50, 235) };
                int size = random.Next(18, 34), cx = random.Next(size / 2 + 2, 62 - size / 2), cy = random.Next(size / 2 + 2, 62 - size / 2);
                for (int y = 0; y < 64; y++)
                for (int x = 0; x < 64; x++)
                {
                    int dx = x - cx, dy = y - cy, h = size / 2;
                    bool inside = c switch
                    {
                        0 => dx * dx + dy * dy <= h * h,
                        1 => Math.Abs(dx) <= h && Math.Abs(dy) <= h,
                        _ => dy <= h && dy >= -h && Math.Abs(dx) * 2 <= dy + h,
                    };
                    int noise = random.Next(-25, 26);
                    Rgb24 p = inside ? colour : background;
                    image[x, y] = new Rgb24(Clamp(p.R + noise), Clamp(p.G + noise), Clamp(p.B + noise));
                }
                image.SaveAsPng(Path.Combine(root, Classes[c], $"{i:D2}.png"));
            }
        }
        return root;
    }

    private static byte Clamp(int v) => (byte)Math.Clamp(v, 0, 255);

    [SkippableFact]
    public void LearnsAGeneratedSetAndTheCheckpointIsReadByNumpyAndClassify()
    {
        RequireDevice();
        string train = ImageSet("train", 12, 1), val = ImageSet("val", 6, 2);
        string model = _dir.File("out/model.npy"), log = _dir.File("out/log.jsonl"), plot = _dir.File("out/curves.png");
        Directory.CreateDirectory(_dir.File("out"));
        (int code, string stdout, string stderr) = Cli("finetune", "--weights", weights.Path, "--train", train, "--val", val, "--device", "opencl",
            "--epochs", Epochs.ToString(), "--batch", "12", "--lr", LearningRate, "--keep-prob", "1", "--flip", "--seed", "5", "--out", model, "--log", log, "--plot", plot);
        Assert.True(code == 0, $"exit {code}: {stderr}\n{stdout}");
        output.WriteLine(stdout);
        Assert.Contains("features: pool5 of 90 images", stdout); // 36 training images twice (flips), 18 validation images once

        List<JsonElement> epochs = [.. File.ReadAllLines(log).Select(l => JsonDocument.Parse(l).RootElement.Clone())];
        Assert.Equal(Epochs, epochs.Count);
        Assert.Equal(Enumerable.Range(1, Epochs), epochs.Select(e => e.GetProperty("epoch").GetInt32()));
        double first = epochs[0].GetProperty("loss").GetDouble(), last = epochs[^1].GetProperty("loss").GetDouble();
        Assert.True(last < first, $"the training loss went from {first} to {last}");
        Assert.True(last < first / 2, $"the training loss went from {first} to {last}, not below half");
        double valTop1 = epochs.Max(e => e.GetProperty("val_top1").GetDouble());
        Assert.True(valTop1 >= TargetValTop1, $"validation top-1 within {Epochs} epochs reached {valTop1}, below {TargetValTop1}:\n{stdout}");

        // The original code's loader, unchanged: np.load(..., encoding='bytes').item(), then one [W, b] per layer.
        string script = """
            import sys, numpy as np
            d = np.load(sys.argv[1], encoding='bytes', allow_pickle=True).item()
            for name in sorted(d, key=lambda k: k if isinstance(k, str) else k.decode()):
                w, b = d[name]
                key = name if isinstance(name, str) else name.decode()
                print(key, w.dtype, w.shape, b.dtype, b.shape)
            """;
        NumpyReference.Require();
        (int py, string numpy) = NumpyReference.Run(["-c", script, model]);
        Assert.True(py == 0, numpy);
        Assert.Contains("fc8 float32 (4096, 3) float32 (3,)", numpy);
        Assert.Contains("conv1 float32 (11, 11, 3, 96) float32 (96,)", numpy);
        Assert.Equal(Classes, File.ReadAllLines(Path.ChangeExtension(model, null) + ".labels.txt"));

        // Frozen layers come back bit for bit; the trained ones moved.
        AlexNetWeights before = WeightFile.Load(weights.Path), after = WeightFile.Load(model);
        Assert.Equal(before.Conv5.Weight, after.Conv5.Weight);
        Assert.NotEqual(before.Fc7.Weight, after.Fc7.Weight);
        Assert.Equal(3, after.NumClasses);

        using (Image<Rgba32> curves = Image.Load<Rgba32>(plot)) Assert.Equal(800, curves.Width);

        // classify reads the checkpoint, takes the classes from beside it, and gets most validation images right.
        (code, stdout, stderr) = Cli("classify", "--weights", model, "--device", "opencl", "--top", "1", "--format", "json", val);
        Assert.True(code == 0, $"classify exit {code}: {stderr}");
        int right = 0, total = 0;
        foreach (string line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            JsonElement record = JsonDocument.Parse(line).RootElement;
            string file = record.GetProperty("file").GetString()!;
            string label = record.GetProperty("top")[0].GetProperty("label").GetString()!;
            Assert.Contains(label, Classes);
            total++;
            if (Path.GetFileName(Path.GetDirectoryName(file)) == label) right++;
        }
        Assert.Equal(18, total);
        Assert.True(right >= 14, $"classify named the right class for {right} of 18 validation images:\n{stdout}");
    }

    [SkippableFact]
    public void AStoppedRunResumedEndsWithTheSameBytesAsOneNeverStopped()
    {
        RequireDevice();
        string train = ImageSet("train", 5, 3), val = ImageSet("val", 2, 4);
        Directory.CreateDirectory(_dir.File("a"));
        Directory.CreateDirectory(_dir.File("b"));
        string a = _dir.File("a/m.npy"), b = _dir.File("b/m.npy");
        string[] common = ["finetune", "--weights", weights.Path, "--train", train, "--val", val, "--device", "opencl", "--epochs", "2", "--batch", "4",
            "--flip", "--seed", "9", "--train-layers", "fc7,fc8"];
        (int code, _, string stderr) = Cli([.. common, "--out", a, "--log", _dir.File("a/log")]);
        Assert.True(code == 0, stderr);

        // Stopped after the second step of the first epoch (of 4: 15 images in batches of 4), as Ctrl+C stops it.
        FinetuneCommand.AfterStepForTests = (interruption, epoch, step) =>
        {
            if (epoch == 0 && step == 1) interruption.Request(PosixSignal.SIGINT);
        };
        string stdout;
        try
        {
            (code, stdout, stderr) = Cli([.. common, "--out", b, "--log", _dir.File("b/log")]);
        }
        finally
        {
            FinetuneCommand.AfterStepForTests = null;
        }
        Assert.Equal(130, code);
        Assert.Contains("alexnet: interrupted by SIGINT during epoch 1, after step 2 of 4; the checkpoint", stderr);
        Assert.False(File.Exists(_dir.File("b/log"))); // no epoch finished yet

        (code, stdout, stderr) = Cli([.. common, "--out", b, "--log", _dir.File("b/log"), "--resume"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("resumed: 0 epochs and 2 steps done", stdout);
        Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
        TrainingState sa = TrainingState.Read(TrainingState.PathFor(a)), sb = TrainingState.Read(TrainingState.PathFor(b));
        Assert.Equal(sa.Velocity.Keys.Order(), sb.Velocity.Keys.Order());
        foreach (string key in sa.Velocity.Keys) Assert.Equal(sa.Velocity[key], sb.Velocity[key]);
        // The epochs' records agree but for the timings.
        static IEnumerable<double> Losses(string log) => File.ReadAllLines(log).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("loss").GetDouble());
        Assert.Equal(Losses(_dir.File("a/log")), Losses(_dir.File("b/log")));

        // Resuming with other settings is refused, by name.
        (code, _, stderr) = Cli([.. common.Select(t => t == "9" ? "10" : t), "--out", b, "--resume"]);
        Assert.Equal(1, code);
        Assert.Contains("was trained on other data or settings", stderr);
    }

    [SkippableFact]
    public void TrainsAConvolutionFromTheKeptOutputOfTheLayersBelow()
    {
        RequireDevice();
        string train = ImageSet("train", 4, 7), val = ImageSet("val", 2, 8);
        string model = _dir.File("conv.npy");
        (int code, string stdout, string stderr) = Cli("finetune", "--weights", weights.Path, "--train", train, "--val", val, "--device", "opencl",
            "--epochs", "2", "--batch", "6", "--lr", LearningRate, "--train-layers", "conv5,fc8", "--seed", "3", "--out", model);
        Assert.True(code == 0, $"exit {code}: {stderr}\n{stdout}");
        output.WriteLine(stdout);
        Assert.Contains("features: conv4 of 18 images", stdout); // conv4's output is conv5's input, kept once per image
        AlexNetWeights before = WeightFile.Load(weights.Path), after = WeightFile.Load(model);
        Assert.NotEqual(before.Conv5.Weight, after.Conv5.Weight);
        Assert.NotEqual(before.Conv5.Bias, after.Conv5.Bias);
        // conv5 starts afresh (skip_layer): Glorot-uniform weights and zero biases moved by two epochs, not the file's.
        Assert.All(after.Conv5.Weight, v => Assert.InRange(v, -0.2f, 0.2f));
        foreach (string frozen in new[] { "conv1", "conv4", "fc6", "fc7" })
            Assert.Equal(before[frozen].Weight, after[frozen].Weight);
        Assert.Contains("conv5.weight", TrainingState.Read(TrainingState.PathFor(model)).Velocity.Keys);
    }

    [SkippableFact]
    public void BadInputIsOneLineBeforeAnyWork()
    {
        string train = ImageSet("train", 2, 5), val = ImageSet("val", 1, 6);
        (int code, _, string stderr) = Cli("finetune", "--weights", "/nonexistent.npy", "--train", train, "--val", val, "--out", _dir.File("m.npy"));
        Assert.Equal(1, code);
        Assert.Equal("alexnet: error: weight file '/nonexistent.npy' does not exist; download bvlc_alexnet.npy or give its path", stderr.Trim());

        (code, _, stderr) = Cli("finetune", "--weights", "w.npy", "--train", train, "--val", val, "--out", _dir.File("m.npy"), "--train-layers", "conv9,fc8");
        Assert.Equal(2, code);
        Assert.Contains("--train-layers takes layer names separated by commas", stderr);

        (code, _, stderr) = Cli("finetune", "--weights", "w.npy", "--train", train, "--val", val, "--out", _dir.File("nofolder/m.npy"));
        Assert.Equal(1, code);
        Assert.Contains("does not exist", stderr);
        Assert.Single(stderr.Trim().Split('\n'));

        (code, _, stderr) = Cli("finetune", "--weights", "w.npy", "--train", train, "--val", val, "--out", _dir.File("m.npy"), "--keep-prob", "0");
        Assert.Equal(2, code);
        Assert.Contains("--keep-prob takes a number in (0, 1], not '0'", stderr);

        (code, _, stderr) = Cli("finetune", "--weights", "w.npy", "--train", train, "--val", val, "--out", _dir.File("m.npy"), "--lr-schedule", "step:0:0.1");
        Assert.Equal(2, code);
        Assert.Contains("--lr-schedule takes constant or step:E:F", stderr);

        (code, _, stderr) = Cli("finetune", "--weights", weights.Path, "--train", train, "--val", val, "--out", _dir.File("m.npy"), "--resume");
        Assert.Equal(1, code);
        Assert.Contains("--resume: there is no optimiser state", stderr);
    }

    [Fact]
    public void MirroringTwiceIsTheIdentityAndMirrorsColumns()
    {
        var image = new float[Cuda.Network.AlexNetModel.InputFloatsPerImage];
        for (int i = 0; i < image.Length; i++) image[i] = i;
        float[] copy = (float[])image.Clone();
        FinetuneRun.MirrorImage(image);
        Assert.Equal(copy[(0 * 227 + 226) * 3 + 1], image[1]);
        Assert.Equal(copy[(5 * 227 + 0) * 3 + 2], image[(5 * 227 + 226) * 3 + 2]);
        Assert.Equal(copy[(9 * 227 + 113) * 3], image[(9 * 227 + 113) * 3]); // the middle column stays
        FinetuneRun.MirrorImage(image);
        Assert.Equal(copy, image);
    }

    [Fact]
    public void ShuffleFlipsAndScheduleArePureFunctionsOfTheirArguments()
    {
        int[] p = TrainingRandom.Permutation(50, 7, 3);
        Assert.Equal(Enumerable.Range(0, 50), p.Order());
        Assert.Equal(p, TrainingRandom.Permutation(50, 7, 3));
        Assert.NotEqual(p, TrainingRandom.Permutation(50, 7, 4));
        Assert.NotEqual(p, TrainingRandom.Permutation(50, 8, 3));
        int flips = Enumerable.Range(0, 1000).Count(i => TrainingRandom.Flip(1, 0, i));
        Assert.InRange(flips, 430, 570);
        Assert.True(LearningRateSchedule.TryParse("step:3:0.5", out LearningRateSchedule s));
        Assert.Equal(0.01f, s.Rate(0.01f, 2));
        Assert.Equal(0.005f, s.Rate(0.01f, 3));
        Assert.Equal(0.0025f, s.Rate(0.01f, 6), 1e-9f);
        Assert.False(LearningRateSchedule.TryParse("step:3", out _));
        Assert.False(LearningRateSchedule.TryParse("step:-1:0.5", out _));
        Assert.False(LearningRateSchedule.TryParse("step:2:nan", out _));
        (double loss, int rank) = FinetuneRun.CrossEntropyAndRank([1f, 3f, 3f, 0f], 2);
        Assert.Equal(1, rank); // the tie at a lower index ranks above
        Assert.Equal(Math.Log(Math.Exp(-2) + 2 + Math.Exp(-3)), loss, 12);
        Assert.Equal(1, FinetuneRun.CrossEntropyAndRank([float.NaN, 1f, 2f, 0f], 2).Rank); // a NaN elsewhere ranks above
        Assert.Equal(2, FinetuneRun.CrossEntropyAndRank([1f, float.NaN, 0f], 1).Rank); // the label's own NaN ranks it last
    }
}
