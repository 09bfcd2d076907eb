using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>SkipLayers and NumClasses (the reference code's skip_layer and num_classes) and the fresh
/// initialisation of skipped layers.</summary>
public class WeightLoadOptionsTests
{
    private static string WriteTiny(TempDir dir, Func<List<Py2PickleWriter.Layer>, List<Py2PickleWriter.Layer>>? edit = null)
    {
        var layers = TinyNet.Layers();
        if (edit is not null) layers = edit(layers);
        return dir.Write("tiny.npy", Py2PickleWriter.ToBytes(layers));
    }

    [Fact]
    public void NumClassesComesFromTheFile()
    {
        using var dir = new TempDir();
        var w = WeightFile.Load(WriteTiny(dir), new() { Architecture = TinyNet.Architecture.WithNumClasses(1000) });
        Assert.Equal(5, w.NumClasses);
        Assert.Equal(new[] { 8, 5 }, w.Fc8.WeightShape);
    }

    [Fact]
    public void OtherNumClassesWithoutSkippingFc8IsAnErrorThatSaysWhatToDo()
    {
        using var dir = new TempDir();
        string path = WriteTiny(dir);
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(path, new() { Architecture = TinyNet.Architecture, NumClasses = 3 }));
        Assert.Contains("NumClasses (--num-classes of alexnet weights) 3 differs from the file's fc8, which has 5 classes; add fc8 to SkipLayers (--skip-layer fc8)", e.Message);
    }

    [Fact]
    public void SkippedFc8WithOtherNumClassesGetsGlorotWeightsAndZeroBiases()
    {
        using var dir = new TempDir();
        string path = WriteTiny(dir);
        var opts = new WeightLoadOptions { Architecture = TinyNet.Architecture, NumClasses = 3, SkipLayers = ["fc8"], Seed = 7 };
        var w = WeightFile.Load(path, opts);
        Assert.Equal(3, w.NumClasses);
        Assert.Equal(new[] { 8, 3 }, w.Fc8.WeightShape);
        Assert.Equal(new[] { 3 }, w.Fc8.BiasShape);
        Assert.Equal("init", w.Fc8.Source);
        Assert.False(w.Fc8.FromFile);
        Assert.All(w.Fc8.Bias, b => Assert.Equal(0f, b));
        double limit = Math.Sqrt(6.0 / (8 + 3));
        Assert.All(w.Fc8.Weight, x => Assert.InRange(x, -limit, limit));
        Assert.Contains(w.Fc8.Weight, x => x != 0);
        // The other layers are the file's, and the same seed gives the same values; another seed does not.
        Assert.Equal(TinyNet.Weight(6, [8, 8]), w.Fc7.Weight);
        Assert.Equal(w.Fc8.Weight, WeightFile.Load(path, opts).Fc8.Weight);
        Assert.NotEqual(w.Fc8.Weight, WeightFile.Load(path, new() { Architecture = TinyNet.Architecture, NumClasses = 3, SkipLayers = ["fc8"], Seed = 8 }).Fc8.Weight);
    }

    [Fact]
    public void SkippedLayersMayBeAbsentFromTheFile()
    {
        using var dir = new TempDir();
        string path = WriteTiny(dir, l => l.Where(x => x.Name is not ("fc7" or "fc8")).ToList());
        var w = WeightFile.Load(path, new() { Architecture = TinyNet.Architecture, SkipLayers = ["fc7", "fc8"] });
        Assert.Equal(TinyNet.Architecture.NumClasses, w.NumClasses);
        Assert.False(w.Fc7.FromFile);
        Assert.True(w.Fc6.FromFile);
        Assert.Equal(TinyNet.Architecture.ParameterCount, w.ParameterCount);
    }

    [Fact]
    public void SkipLayerNamingNoLayerIsAnError()
    {
        using var dir = new TempDir();
        string path = WriteTiny(dir);
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(path, new() { Architecture = TinyNet.Architecture, SkipLayers = ["fc9"] }));
        Assert.Contains("SkipLayers (--skip-layer of alexnet weights) names 'fc9'", e.Message);
    }

    [Fact]
    public void GlorotUniformMatchesTensorFlowsFansForConvolutions()
    {
        int[] shape = [3, 3, 256, 384];
        float[] w = WeightFile.GlorotUniform(shape, 1, 2);
        double limit = Math.Sqrt(6.0 / (9 * 256 + 9 * 384));
        double sum = 0, sq = 0;
        float min = float.MaxValue, max = float.MinValue;
        foreach (float x in w) { sum += x; sq += (double)x * x; min = Math.Min(min, x); max = Math.Max(max, x); }
        Assert.InRange(min, -limit, -0.999 * limit);
        Assert.InRange(max, 0.999 * limit, limit);
        Assert.InRange(sum / w.Length, -0.01 * limit, 0.01 * limit);
        Assert.InRange(sq / w.Length, 0.99 * limit * limit / 3, 1.01 * limit * limit / 3);  // variance of U(-l, l)
    }

    [Fact]
    public void DefaultArchitectureHasTheShapesAndParameterCountOfModelMd()
    {
        var a = AlexNetArchitecture.Default;
        Assert.Equal(60_965_224, a.ParameterCount);
        Assert.Equal(new[] { 5, 5, 48, 256 }, a.Find("conv2")!.WeightShape);
        Assert.Equal(2, a.Find("conv5")!.Groups);
        Assert.Equal(new[] { 9216, 4096 }, a.Find("fc6")!.WeightShape);
        Assert.Equal(new[] { 4096, 10 }, a.WithNumClasses(10).Find("fc8")!.WeightShape);
    }
}
