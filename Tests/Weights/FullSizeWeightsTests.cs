using System.Diagnostics;
using AlexNet.Cuda.Weights;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>A full-size (233 MiB) Python-2-style bvlc_alexnet.npy written to a temp folder, read back, compared
/// bit for bit and deleted.</summary>
public class FullSizeWeightsTests(ITestOutputHelper output)
{
    [Fact]
    public void FullSizePython2StyleFileRoundTripsExactly()
    {
        var layers = TinyNet.Layers(AlexNetArchitecture.Default);
        using var dir = new TempDir();
        string path = dir.File("bvlc_alexnet.npy");
        var sw = Stopwatch.StartNew();
        Py2PickleWriter.WriteFile(path, layers);
        var written = sw.Elapsed;
        Assert.InRange(new FileInfo(path).Length, 60_965_224L * 4, 60_965_224L * 4 + 4096);
        sw.Restart();
        var w = WeightFile.Load(path);
        var read = sw.Elapsed;
        output.WriteLine($"wrote {new FileInfo(path).Length} bytes in {written.TotalSeconds:F2} s, loaded in {read.TotalSeconds:F2} s");
        Assert.Equal(1000, w.NumClasses);
        Assert.Equal(60_965_224, w.ParameterCount);
        for (int i = 0; i < 8; i++)
        {
            var expected = layers[i];
            var got = w.Layers[i];
            Assert.Equal(expected.Name, got.Name);
            Assert.Equal(expected.WeightShape, got.WeightShape);
            Assert.True(expected.Weight.AsSpan().SequenceEqual(got.Weight), $"{got.Name} weights differ");
            Assert.True(expected.Bias.AsSpan().SequenceEqual(got.Bias), $"{got.Name} biases differ");
        }
    }

    /// <summary>Writes a full-size Python-2-style file where ALEXNET_WRITE_FULL_WEIGHTS says (for the load-time
    /// measurement of docs/weights.md); skipped otherwise.</summary>
    [SkippableFact]
    public void WriteFullSizeFileForMeasurement()
    {
        string? path = Environment.GetEnvironmentVariable("ALEXNET_WRITE_FULL_WEIGHTS");
        Skip.If(string.IsNullOrEmpty(path), "set ALEXNET_WRITE_FULL_WEIGHTS=/path/bvlc_alexnet.npy to write the file");
        Py2PickleWriter.WriteFile(path, TinyNet.Layers(AlexNetArchitecture.Default));
    }
}
