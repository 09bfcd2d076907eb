using System.Text;
using System.Text.Json;
using AlexNet.Cli;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Labels;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Weights;
using AlexNet.Cuda.Weights;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace AlexNet.Cuda.Tests.Classify;

/// <summary>The labels file kept beside a weight file: its path, writing it so that it reads back, and which
/// labels a model gets (an explicit file, the one beside the weights, ImageNet's, none).</summary>
public sealed class LabelsBesideTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("model.npy", "model.labels.txt")]
    [InlineData("runs/model.v2.npy", "runs/model.v2.labels.txt")]
    [InlineData("/abs/bvlc_alexnet.npz", "/abs/bvlc_alexnet.labels.txt")]
    [InlineData("model", "model.labels.txt")]
    [InlineData("a.b/model", "a.b/model.labels.txt")]
    public void TheLabelsFileTakesTheWeightFilesNameWithItsOwnExtension(string weights, string labels) =>
        Assert.Equal(labels, ClassLabels.BesidePath(weights));

    public static TheoryData<string[]> NameSets => new()
    {
        new[] { "cat", "dog" },
        new[] { "tabby, tabby cat", "café au lait", "a\tb", "x", "日本", "n0144076 seven digits", "N01440764 capital" },
        new[] { "n01440764", "n01443537" },                                      // ImageNet's folder names
        new[] { "n01440764 tench, Tinca tinca", "n01443537", "n01484850 great white shark" },
    };

    [Theory]
    [MemberData(nameof(NameSets))]
    public void WrittenNamesReadBackTheSameAtomically(string[] names)
    {
        string weights = _dir.File("model.npy");
        ClassLabels.WriteBeside(weights, names);
        Assert.Equal(names, ClassLabels.Load(_dir.File("model.labels.txt")));
        Assert.Equal(["model.labels.txt"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
        // Written again with fewer names: replaced whole.
        ClassLabels.WriteBeside(weights, names[..2].Reverse().ToArray());
        Assert.Equal(names[..2].Reverse(), ClassLabels.Load(_dir.File("model.labels.txt")));
    }

    [Fact]
    public void PlainNamesAreOnePerLineAndWordNetIdsAreRepeatedAsTheirLinesId()
    {
        string weights = _dir.File("m.npy");
        ClassLabels.WriteBeside(weights, ["cat", "dog, puppy"]);
        Assert.Equal("cat\ndog, puppy\n", File.ReadAllText(_dir.File("m.labels.txt")));
        ClassLabels.WriteBeside(weights, ["n01440764", "n01443537 goldfish"]);
        Assert.Equal("n01440764 n01440764\nn01443537 n01443537 goldfish\n", File.ReadAllText(_dir.File("m.labels.txt")));
    }

    [Fact]
    public void NamesNoLabelsFileKeepsAreRefusedInOneLineAndNothingIsWritten()
    {
        string weights = _dir.File("m.npy");
        string labels = _dir.File("m.labels.txt");
        (string[] Names, string Message)[] cases =
        [
            ([], $"cannot write labels file '{labels}': there are no class names"),
            (["cat", " "], $"cannot write labels file '{labels}': the name of class 1 is blank"),
            (["cat", ""], $"cannot write labels file '{labels}': the name of class 1 is blank"),
            (["cat", "dog\nbird"], $"cannot write labels file '{labels}': the name of class 1 holds a line break or another control character"),
            (["cat\r", "dog"], $"cannot write labels file '{labels}': the name of class 0 holds a line break or another control character"),
            (["cat", "dog "], $"cannot write labels file '{labels}': the name of class 1 has spaces at an end, which a labels file does not keep"),
            (["cat", "n01440764", "dog"],
                $"cannot write labels file '{labels}': class 1's name 'n01440764' starts with a WordNet id but class 0's 'cat' does not, and no labels file form keeps both; rename the classes"),
        ];
        foreach ((string[] names, string message) in cases)
        {
            var e = Assert.Throws<AlexNetException>(() => ClassLabels.WriteBeside(weights, names));
            Assert.Equal(message, e.Message);
        }
        Assert.Empty(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void AnExplicitFileWinsThenTheFileBesideTheWeightsThenImageNetsForAThousandClasses()
    {
        string weights = _dir.File("m.npy");
        Assert.Null(ClassLabels.ForWeights(3, weights, null));
        Assert.Same(ClassLabels.ImageNet, ClassLabels.ForWeights(1000, weights, null));

        ClassLabels.WriteBeside(weights, ["a", "b", "c"]);
        Assert.Equal(["a", "b", "c"], ClassLabels.ForWeights(3, weights, null));
        string other = _dir.File("other.txt");
        File.WriteAllText(other, "x\ny\nz\n");
        Assert.Equal(["x", "y", "z"], ClassLabels.ForWeights(3, weights, other));

        // A thousand names beside the weights are used instead of ImageNet's.
        string big = _dir.File("big.npz");
        ClassLabels.WriteBeside(big, Enumerable.Range(0, 1000).Select(i => $"kind {i}").ToArray());
        Assert.Equal("kind 999", ClassLabels.ForWeights(1000, big, null)![999]);

        // A folder by the labels file's name is not a labels file.
        string folderBeside = _dir.File("f.npy");
        Directory.CreateDirectory(ClassLabels.BesidePath(folderBeside));
        Assert.Null(ClassLabels.ForWeights(3, folderBeside, null));
    }

    [Fact]
    public void ACountThatDiffersFromTheWeightsIsOneLineNamingBothNumbersAndTheFile()
    {
        string weights = _dir.File("m.npy");
        ClassLabels.WriteBeside(weights, ["a", "b"]);
        string beside = ClassLabels.BesidePath(weights);
        var e = Assert.Throws<AlexNetException>(() => ClassLabels.ForWeights(3, weights, null));
        Assert.Equal($"labels file '{beside}' beside the weights names 2 classes but the weights' fc8 has 3; correct or remove it, or name another labels file", e.Message);
        // An explicit file that fits wins over the beside file that does not.
        string fits = _dir.File("fits.txt");
        File.WriteAllText(fits, "x\ny\nz\n");
        Assert.Equal(["x", "y", "z"], ClassLabels.ForWeights(3, weights, fits));
    }
}

/// <summary>One full-size three-class weight file written by <see cref="WeightFileWriter"/> (229 MiB, written once).</summary>
public sealed class ThreeClassWeightsFixture : IDisposable
{
    private readonly Lazy<string> _path;
    private readonly TempDir _dir = new();

    public ThreeClassWeightsFixture() => _path = new Lazy<string>(() =>
    {
        string path = _dir.File("three.npy");
        WeightFileWriter.Write(path, SyntheticNetwork.Weights(AlexNetArchitecture.Default.WithNumClasses(3), 23));
        return path;
    });

    public string Path => _path.Value;

    public void Dispose() => _dir.Dispose();
}

/// <summary>classify, features and bench with a three-class model and the labels file beside it, on the OpenCL device.</summary>
[Collection(OpenClCollection.Name)]
public sealed class LabelsBesideCliTests(OpenClFixture fixture, ThreeClassWeightsFixture three) : IClassFixture<ThreeClassWeightsFixture>, IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private void RequireDevice()
    {
        _ = fixture.Device;
        TestNative.Require(NativeLibraryId.ClBlast);
    }

    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>The shared weight file under a name of this test's folder, so its labels file is this test's own.</summary>
    private string Weights(string name)
    {
        string path = _dir.File(name);
        File.CreateSymbolicLink(path, three.Path);
        return path;
    }

    private string Image(string name, int seed)
    {
        var random = new Random(seed);
        using var image = new Image<Rgb24>(227, 227);
        for (int y = 0; y < 227; y++)
        for (int x = 0; x < 227; x++)
            image[x, y] = new Rgb24((byte)random.Next(256), (byte)x, (byte)y);
        string path = _dir.File(name);
        image.SaveAsPng(path);
        return path;
    }

    private static List<JsonElement> Tops(string json) =>
        json.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("top").Clone()).ToList();

    [SkippableFact]
    public void ClassifyNamesTheClassesFromTheLabelsFileBesideTheWeights()
    {
        RequireDevice();
        string weights = Weights("m.npy");
        string[] images = [Image("a.png", 1), Image("b.png", 2)];

        // No labels file: three classes are printed by index only.
        (int code, string stdout, string stderr) = Cli(["classify", "--weights", weights, "--device", "opencl", "--format", "json", .. images]);
        Assert.True(code == 0, stderr);
        Assert.All(Tops(stdout), top =>
        {
            Assert.Equal(3, top.GetArrayLength());
            Assert.All(top.EnumerateArray(), t => Assert.False(t.TryGetProperty("label", out _)));
        });

        string[] names = ["red panda", "Granny Smith, apple", "tench, Tinca tinca"];
        ClassLabels.WriteBeside(weights, names);
        (code, stdout, stderr) = Cli(["classify", "--weights", weights, "--device", "opencl", "--format", "json", .. images]);
        Assert.True(code == 0, stderr);
        List<JsonElement> tops = Tops(stdout);
        Assert.Equal(2, tops.Count);
        foreach (JsonElement top in tops)
        {
            Assert.Equal(3, top.GetArrayLength());
            Assert.All(top.EnumerateArray(), t => Assert.Equal(names[t.GetProperty("index").GetInt32()], t.GetProperty("label").GetString()));
            Assert.Equal([0, 1, 2], top.EnumerateArray().Select(t => t.GetProperty("index").GetInt32()).Order());
        }

        // Text output names them too, and an explicit --labels wins over the file beside the weights.
        (code, stdout, stderr) = Cli("classify", "--weights", weights, "--device", "opencl", "--top", "3", images[0]);
        Assert.True(code == 0, stderr);
        Assert.All(names, n => Assert.Contains(n, stdout));
        string explicitLabels = _dir.File("explicit.txt");
        File.WriteAllText(explicitLabels, "one\ntwo\nthree\n");
        (code, stdout, stderr) = Cli("classify", "--weights", weights, "--device", "opencl", "--top", "3", "--labels", explicitLabels, images[0]);
        Assert.True(code == 0, stderr);
        Assert.Contains("three", stdout);
        Assert.DoesNotContain("red panda", stdout);
    }

    [SkippableFact]
    public void ABesideFileWithAnotherCountIsOneLineForClassifyFeaturesAndBench()
    {
        RequireDevice();
        string weights = Weights("short.npy");
        string image = Image("x.png", 3);
        File.WriteAllText(ClassLabels.BesidePath(weights), "only\ntwo\n");
        string expected = $"labels file '{ClassLabels.BesidePath(weights)}' beside the weights names 2 classes but the weights' fc8 has 3";

        (int code, string stdout, string stderr) = Cli("classify", "--weights", weights, "--device", "opencl", image);
        Assert.Equal(1, code);
        Assert.Contains(expected, stderr);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.Empty(stdout);

        string output = _dir.File("features");
        (code, _, stderr) = Cli("features", "--weights", weights, "--layer", "fc8", "--out", output, "--device", "opencl", image);
        Assert.Equal(1, code);
        Assert.Contains(expected, stderr);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        Assert.False(File.Exists(output + ".npy"));

        (code, _, stderr) = Cli("bench", "--weights", weights, "--device", "opencl", "--batch", "1", "--iterations", "1", "--warmup", "1", "--peer", "none");
        Assert.Equal(1, code);
        Assert.Contains(expected, stderr);
        Assert.Single(stderr.TrimEnd('\n').Split('\n'));
    }

    [SkippableFact]
    public void FeaturesAndBenchNameTheLabelsFileBesideTheWeights()
    {
        RequireDevice();
        string weights = Weights("named.npy");
        ClassLabels.WriteBeside(weights, ["a", "b", "c"]);
        string beside = ClassLabels.BesidePath(weights);
        string output = _dir.File("fc8");
        (int code, string stdout, string stderr) = Cli("features", "--weights", weights, "--layer", "fc8", "--out", output, "--device", "opencl", Image("f.png", 4));
        Assert.True(code == 0, stderr);
        Assert.Contains($"model: 3 classes named by {beside}, LRN", stdout);
        Assert.Contains("fc8: [1, 3]", stdout);

        (code, stdout, stderr) = Cli("bench", "--weights", weights, "--device", "opencl", "--batch", "1", "--iterations", "1", "--warmup", "1", "--peer", "none");
        Assert.True(code == 0, stderr);
        Assert.Contains($"weights: {weights} (3 classes named by {beside})", stdout);
    }
}
