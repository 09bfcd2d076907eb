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

    [SkippableFact]
    public void BadInputsAreOneLineErrors()
    {
        string image = WriteImage("ok.png", 227, 227, 4);
        string small = WriteImage("small.png", 120, 100, 5);
        string corrupt = _dir.File("corrupt.png");
        File.WriteAllBytes(corrupt, [0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
        string weights = _dir.File("missing.npy");
        string output = _dir.File("out");
        (int code, _, string err) = Cli("features", "--weights", weights, "--layer", "conv1", "--out", output, small);
        Assert.Equal(1, code);
        Assert.Contains($"image {small} is 120×100; features takes 227×227 images", err);
        Assert.Single(err.Trim().Split('\n'));
        (code, _, err) = Cli("features", "--weights", weights, "--layer", "conv1", "--out", output, corrupt);
        Assert.Equal(1, code);
        Assert.Contains($"cannot read image {corrupt}", err);
        (code, _, err) = Cli("features", "--weights", weights, "--layer", "conv1", "--out", output, _dir.File("nothing.png"));
        Assert.Equal(1, code);
        Assert.Contains("does not exist", err);
        (code, _, err) = Cli("features", "--weights", weights, "--layer", "conv9", "--out", output, image);
        Assert.Equal(1, code);
        Assert.Contains("unknown layer 'conv9'", err);
        (code, _, err) = Cli("features", "--weights", weights, "--layer", "conv1,fc6", "--out", output + ".npy", image);
        Assert.Equal(1, code);
        Assert.Contains("written as .npz, not .npy", err);
        (code, _, err) = Cli("features", "--weights", weights, "--layer", "conv1", "--out", output, image);
        Assert.Equal(1, code); // the weight file is missing
        Assert.Contains("missing.npy", err);
        Assert.False(File.Exists(output + ".npy"));
        (code, _, err) = Cli("features", "--layer", "conv1", "--out", output, image);
        Assert.Equal(2, code); // --weights is required: a usage error
    }
}
