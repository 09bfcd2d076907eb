using AlexNet.Cuda.Checks;
using System.Diagnostics;
using AlexNet.Cli;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Weights;
using AlexNet.Cuda.Weights;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace AlexNet.Cuda.Tests.Network;

/// <summary>
/// `alexnet features` end to end on the OpenCL device, as a user runs it: a full-size Python-2-style weight
/// file, PNG images, every layer written to an .npz, checked by an independent implementation of the
/// reference semantics in numpy (Tests/Fixtures/reference/alexnet_numpy.py: float64, NHWC, the file's own
/// layouts), which must also be able to fail.
/// </summary>
[Collection(OpenClCollection.Name)]
public sealed class FeaturesCliTests(OpenClFixture fixture) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private string WriteImage(string name, int width, int height, int seed)
    {
        var random = new Random(seed);
        using var image = new Image<Rgb24>(width, height);
        for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            image[x, y] = new Rgb24((byte)random.Next(256), (byte)random.Next(256), (byte)(x * 255 / width));
        string path = _dir.File(name);
        image.SaveAsPng(path);
        return path;
    }

    private string WriteWeights()
    {
        AlexNetWeights w = SyntheticNetwork.Weights(AlexNetArchitecture.Default, 31);
        string path = _dir.File("bvlc_alexnet.npy");
        Py2PickleWriter.WriteFile(path, w.Layers.Select(l => new Py2PickleWriter.Layer(l.Name, l.Weight, l.WeightShape, l.Bias)));
        return path;
    }

    [SkippableFact]
    public void EveryLayerMatchesAnIndependentNumpyImplementationAndTheCheckCanFail()
    {
        _ = fixture.Device;
        TestNative.Require(NativeLibraryId.ClBlast);
        NumpyReference.Require();
        string weights = WriteWeights();
        string[] images = [WriteImage("a.png", 227, 227, 1), WriteImage("b.png", 227, 227, 2), WriteImage("c.png", 227, 227, 3)];
        string layers = string.Join(',', AlexNetModel.LayerNames);
        string output = _dir.File("features");
        (int code, string stdout, string stderr) = Cli(["features", "--weights", weights, "--layer", layers, "--out", output, "--device", "opencl", "--batch", "2", .. images]);
        Assert.True(code == 0, stderr);
        Assert.Contains("conv1: [3, 96, 55, 55]", stdout);
        Assert.Contains("prob: [3, 1000]", stdout);
        Assert.True(File.Exists(output + ".npz"));
        Assert.Empty(Directory.GetFiles(_dir.Path, ".*.tmp")); // written atomically, nothing left behind

        (int ok, string report) = NumpyReference.RunScript(["--weights", weights, "--features", output + ".npz", "--layers", layers, .. images]);
        Assert.True(ok == 0, report);
        Assert.Contains("layers: 14 passed, 0 failed", report);

        // The same comparison against a reference with five times the LRN alpha must fail: the check can fail.
        (int wrong, string wrongReport) = NumpyReference.RunScript(["--weights", weights, "--features", output + ".npz", "--layers", layers, "--lrn-alpha", "1e-4", .. images]);
        Assert.Equal(1, wrong);
        Assert.Contains("FAIL norm1", wrongReport);
    }

    [SkippableFact]
    public void OneLayerIsAnNpyAndNonDefaultLrnParametersReachTheNetwork()
    {
        _ = fixture.Device;
        TestNative.Require(NativeLibraryId.ClBlast);
        NumpyReference.Require();
        string weights = WriteWeights();
        string image = WriteImage("one.png", 227, 227, 9);
        string output = _dir.File("norm2.npy");
        (int code, _, string stderr) = Cli("features", "--weights", weights, "--layer", "norm2", "--out", output, "--device", "opencl",
            "--lrn-radius", "1", "--lrn-alpha", "1e-4", "--lrn-beta", "0.5", "--lrn-bias", "2", image);
        Assert.True(code == 0, stderr);
        (int ok, string report) = NumpyReference.RunScript(["--weights", weights, "--features", output, "--layers", "norm2",
            "--lrn-radius", "1", "--lrn-alpha", "1e-4", "--lrn-beta", "0.5", "--lrn-bias", "2", image]);
        Assert.True(ok == 0, report);
    }

    [SkippableTheory]
    [InlineData("fp16", 5e-3)]
    [InlineData("bf16", 4e-2)]
    public void SixteenBitFeaturesMatchTheNumpyImplementationWithinTheFormatsToleranceAndNotFp32s(string precision, double tolerance)
    {
        _ = fixture.Device;
        NumpyReference.Require();
        string weights = WriteWeights();
        string[] images = [WriteImage("a.png", 227, 227, 4), WriteImage("b.png", 227, 227, 5)];
        string layers = string.Join(',', AlexNetModel.LayerNames);
        string output = _dir.File($"features-{precision}");
        (int code, string stdout, string stderr) = Cli(["features", "--weights", weights, "--layer", layers, "--out", output, "--device", "opencl",
            "--precision", precision, .. images]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"precision {precision}", stdout);
        (int ok, string report) = NumpyReference.RunScript(["--weights", weights, "--features", output + ".npz", "--layers", layers,
            "--tol", tolerance.ToString(System.Globalization.CultureInfo.InvariantCulture), .. images]);
        // Every layer within the bound. (The script also wants identical top-5 classes, which bf16 need not give
        // where synthetic weights leave the 5th and 6th classes within its error; docs/performance.md.)
        foreach (string layer in AlexNetModel.LayerNames) Assert.Contains($"PASS {layer} [", report);
        if (precision == "fp16") Assert.True(ok == 0, report);
        // At FP32's tolerance the same files fail: the activations really were stored in 16 bits.
        (int strict, string strictReport) = NumpyReference.RunScript(["--weights", weights, "--features", output + ".npz", "--layers", layers, .. images]);
        Assert.True(strict == 1, strictReport);
    }

    [Fact]
    public void CommandLineMistakesAreExit2WithTheUsageHintBeforeAnythingRuns()
    {
        string image = WriteImage("ok.png", 227, 227, 4);
        string output = _dir.File("out");
        string[] common = ["features", "--weights", _dir.File("missing.npy"), "--out", output];
        foreach ((string[] args, string expected) in new (string[], string)[]
        {
            ([.. common, "--layer", "fc7", "--bogus", image], "features has no option --bogus"),
            ([.. common, "--layer", "fc9", image], "--layer takes layer names"),
            ([.. common, "--layer", "fc7,fc7", image], "--layer names fc7 twice"),
            ([.. common, "--layer", "", image], "--layer takes layer names"),
            ([.. common, "--layer", "fc7", "--lrn-alpha", "abc", image], "--lrn-alpha takes a number of 0 or more, not 'abc'"),
            ([.. common, "--layer", "fc7", "--lrn-bias", "0", image], "--lrn-bias takes a number above 0, not '0'"),
            ([.. common, "--layer", "fc7", "--resize", "squash", image], "--resize takes stretch or crop, not 'squash'"),
            ([.. common, "--layer", "fc7", "--max-pixels", "abc", image], "--max-pixels takes a positive whole number, not 'abc'"),
            ([.. common, "--layer", "fc7", "--mean", "1,2", image], "--mean takes three numbers B,G,R"),
            (["features", "--weights", "w.npy", "--layer", "conv1,fc6", "--out", output + ".npy", image], "written as .npz, not .npy"),
            (["features", "--layer", "conv1", "--out", output, image], "--weights"),
        })
        {
            (int code, _, string err) = Cli(args);
            Assert.True(code == 2, $"{string.Join(' ', args)}: exit {code}: {err}");
            Assert.Contains(expected, err);
            Assert.Contains("Run 'alexnet features --help' for usage.", err);
        }
    }

    [Fact]
    public void TheOutputIsCheckedBeforeTheWeightsLoad()
    {
        string image = WriteImage("ok.png", 227, 227, 4);
        string weights = _dir.File("missing.npy"); // never reached: the output is refused first
        string missingFolder = _dir.File("no-such-folder");
        (int code, _, string err) = Cli("features", "--weights", weights, "--layer", "fc7", "--out", Path.Combine(missingFolder, "out"), image);
        Assert.Equal(1, code);
        Assert.Equal($"alexnet: error: cannot write {Path.Combine(missingFolder, "out")}.npy: the folder {missingFolder} does not exist", err.Trim());
        string folder = _dir.File("a-folder.npy");
        Directory.CreateDirectory(folder);
        (code, _, err) = Cli("features", "--weights", weights, "--layer", "fc7", "--out", folder, image);
        Assert.Equal(1, code);
        Assert.Equal($"alexnet: error: cannot write {folder}: it is a folder", err.Trim());
        Assert.DoesNotContain(".tmp", err);
        Assert.Empty(Directory.GetFiles(_dir.Path, ".*.tmp"));
    }

    /// <summary>The float32 array and its shape from an .npy the writer made (version 1, little-endian).</summary>
    private static (float[] Data, int[] Shape) ReadNpy(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int headerLength = bytes[8] | bytes[9] << 8;
        string header = System.Text.Encoding.ASCII.GetString(bytes, 10, headerLength);
        Assert.Contains("'descr': '<f4'", header);
        string dims = System.Text.RegularExpressions.Regex.Match(header, @"'shape': \(([^)]*)\)").Groups[1].Value;
        int[] shape = [.. dims.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse)];
        var data = new float[(bytes.Length - 10 - headerLength) / 4];
        Buffer.BlockCopy(bytes, 10 + headerLength, data, 0, data.Length * 4);
        return (data, shape);
    }

    [SkippableFact]
    public void ABadImageIsNeverTurnedIntoNumbers()
    {
        _ = fixture.Device;
        TestNative.Require(NativeLibraryId.ClBlast);
        string weights = WriteWeights();
        string good = WriteImage("a-good.png", 227, 227, 1);
        Directory.CreateDirectory(_dir.File("set"));
        string resized = WriteImage("set/b-small.png", 120, 100, 2); // any size: resized as classify resizes it
        string other = WriteImage("set/c-good.png", 300, 227, 3);
        byte[] jpeg = DecoderTestsJpeg(227, 227);
        string truncated = _dir.File("set/d-truncated.jpg");
        File.WriteAllBytes(truncated, jpeg[..(jpeg.Length / 2)]);
        string corrupt = _dir.File("e-corrupt.png");
        File.WriteAllBytes(corrupt, [0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
        string missing = _dir.File("f-missing.png");
        string output = _dir.File("feats");
        string[] inputs = [good, _dir.File("set"), corrupt, missing];

        // By default: every bad file named, nothing written, exit 1.
        (int code, string stdout, string err) = Cli(["features", "--weights", weights, "--layer", "fc7", "--out", output, "--device", "opencl", "--batch", "2", .. inputs]);
        Assert.Equal(1, code);
        Assert.Contains($"alexnet: {truncated}: truncated or corrupt JPEG", err);
        Assert.Contains($"alexnet: {corrupt}: ", err);
        Assert.Contains($"alexnet: {missing}: cannot be read: no such file", err);
        Assert.Contains("3 of 6 images could not be used, so nothing was written (--skip-bad writes the others' rows)", err);
        Assert.False(File.Exists(output + ".npy"));
        Assert.False(File.Exists(output + ".files.txt"));

        // --skip-bad: the good rows in input order, their files beside them, exit 1 still.
        (code, stdout, err) = Cli(["features", "--weights", weights, "--layer", "fc7", "--out", output, "--device", "opencl", "--batch", "2", "--skip-bad", .. inputs]);
        Assert.Equal(1, code);
        Assert.Contains("3 of 6 images could not be used and have no row", err);
        Assert.Equal([good, resized, other], File.ReadAllLines(output + ".files.txt"));
        (float[] rows, int[] shape) = ReadNpy(output + ".npy");
        Assert.Equal([3, 4096], shape);

        // The same rows as a run over the good files alone (the batches differ, so the GEMMs may sum in
        // another order: compared to 1e-4 of the largest value).
        string alone = _dir.File("alone");
        (code, _, err) = Cli(["features", "--weights", weights, "--layer", "fc7", "--out", alone, "--device", "opencl", "--batch", "3", good, resized, other]);
        Assert.True(code == 0, err);
        (float[] expected, _) = ReadNpy(alone + ".npy");
        float scale = expected.Max(Math.Abs);
        Assert.True(scale > 0);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(rows[i] - expected[i]) <= 1e-4f * scale, $"row {i / 4096} value {i % 4096}: {rows[i]} against {expected[i]}");
    }

    private static byte[] DecoderTestsJpeg(int width, int height)
    {
        using var image = new Image<Rgb24>(width, height);
        for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            image[x, y] = new Rgb24((byte)(x * 3), (byte)(y * 5), (byte)(x ^ y));
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream);
        return stream.ToArray();
    }
}
