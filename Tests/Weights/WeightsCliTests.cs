using System.Text.Json;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>The <c>alexnet weights</c> command.</summary>
public class WeightsCliTests(WeightsCliTests.FullFile file) : IClassFixture<WeightsCliTests.FullFile>
{
    private static readonly (string Name, int[] W)[] ModelMd =
    [
        ("conv1", [11, 11, 3, 96]), ("conv2", [5, 5, 48, 256]), ("conv3", [3, 3, 256, 384]), ("conv4", [3, 3, 192, 384]),
        ("conv5", [3, 3, 192, 256]), ("fc6", [9216, 4096]), ("fc7", [4096, 4096]), ("fc8", [4096, 1000]),
    ];

    /// <summary>A full-shape file with the formula's values, written once and shared by the tests of this class.</summary>
    public sealed class FullFile : IDisposable
    {
        private readonly TempDir _dir = new();

        public FullFile()
        {
            Path = _dir.File("bvlc_alexnet.npy");
            Py2PickleWriter.WriteFile(Path, TinyNet.Layers(AlexNet.Cuda.Weights.AlexNetArchitecture.Default));
        }

        public string Path { get; }

        public void Dispose() => _dir.Dispose();
    }

    private static (int Code, string Out) Run(params string[] args)
    {
        var (code, stdout, stderr) = RunWithErrors(args);
        Assert.True(stderr.Length == 0, stderr);
        return (code, stdout);
    }

    private static (int Code, string Out, string Err) RunWithErrors(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = AlexNet.Cli.Program.Run(["weights", .. args], stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void JsonListsTheEightLayersWithTheShapesOfModelMd()
    {
        var (code, json) = Run(file.Path, "--format", "json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(json);
        var layers = doc.RootElement.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(8, layers.Count);
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(ModelMd[i].Name, layers[i].GetProperty("name").GetString());
            Assert.Equal(ModelMd[i].W, layers[i].GetProperty("weight_shape").EnumerateArray().Select(e => e.GetInt32()));
            Assert.Equal(new[] { ModelMd[i].W[^1] }, layers[i].GetProperty("bias_shape").EnumerateArray().Select(e => e.GetInt32()));
            Assert.Equal("<f4", layers[i].GetProperty("dtype").GetString());
        }
        Assert.Equal(60_965_224, doc.RootElement.GetProperty("parameters").GetInt64());
        // conv1's weights by the formula: ((i·7) mod 251 − 125) / 64 spans −125/64 … 125/64.
        var s = layers[0].GetProperty("weight_summary");
        Assert.Equal(-125 / 64.0, s.GetProperty("min").GetDouble());
        Assert.Equal(125 / 64.0, s.GetProperty("max").GetDouble());
    }

    [Fact]
    public void TextPrintsEachLayerAndTheTotal()
    {
        string path = TinyNet.Fixture("tiny_py3_p4.npy");
        // The tiny fixture does not fit AlexNet: the CLI names the first mismatch, on one line.
        var (failed, _, error) = RunWithErrors(path);
        Assert.Equal(1, failed);
        Assert.StartsWith("alexnet: error: ", error);
        Assert.Contains("layer 'conv1' weight has shape (3, 3, 3, 4) but AlexNet needs (11, 11, 3, 96)", error);
        Assert.Single(error.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n'));

        var (code, text) = Run(file.Path, "--skip-layer", "fc8", "--num-classes", "10");
        Assert.Equal(0, code);
        Assert.Matches(@"conv2\s+\(5, 5, 48, 256\)\s+\(256,\)\s+<f4", text);
        Assert.Matches(@"fc8\s+\(4096, 10\)\s+\(10,\)\s+init", text);
        Assert.Contains($"parameters: {60_965_224 - 4096 * 990 - 990:N0}", text);
    }

    [Fact]
    public void RefusedFilesExitWith1AndRefusedCommandLinesWith2()
    {
        var (code, stdout, stderr) = RunWithErrors(TinyNet.Fixture("malicious_eval_p4.npy"), "--format", "json");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("alexnet: error: ", stderr);
        Assert.Contains("builtins.eval", stderr);
        Assert.Equal(2, RunWithErrors("a", "b").Code);
        Assert.Equal(2, RunWithErrors(TinyNet.Fixture("tiny_py3_p4.npy"), "--format", "xml").Code);
        Assert.Equal(2, RunWithErrors(TinyNet.Fixture("tiny_py3_p4.npy"), "--num-classes", "-3").Code);
    }
}
