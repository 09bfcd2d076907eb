using System.Diagnostics;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Weights;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>A full-size (233 MiB) Python-2-style bvlc_alexnet.npy written to a temp folder, read back, compared
/// bit for bit and deleted (kept where ALEXNET_KEEP_FULL_WEIGHTS says).</summary>
public class FullSizeWeightsTests(ITestOutputHelper output)
{
    [Fact]
    public void FullSizePython2StyleFileRoundTripsExactly()
    {
        var layers = TinyNet.Layers(AlexNetArchitecture.Default);
        using var dir = new TempDir();
        // ALEXNET_KEEP_FULL_WEIGHTS=/path/bvlc_alexnet.npy keeps the file (the load-time measurement of
        // docs/weights.md uses it); by default it lives in a temp folder and is deleted.
        string? keep = Environment.GetEnvironmentVariable("ALEXNET_KEEP_FULL_WEIGHTS");
        string path = string.IsNullOrEmpty(keep) ? dir.File("bvlc_alexnet.npy") : keep;
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
}

/// <summary>A full-size file as Python 3 numpy's <c>np.save</c> writes it, made by Debian's numpy when
/// <c>/usr/bin/python3</c> has it, read back and compared with the formula. Without numpy the test is skipped,
/// except under <c>ALEXNET_REQUIRE_NATIVE=1</c> (CI, <c>./alexnet test</c>, which install python3-numpy), where
/// it fails: a broken install must not pass as "skipped".</summary>
public class FullSizeNumpySaveTests
{
    /// <summary>The Python that writes the file; ALEXNET_TEST_PYTHON overrides it (a test of the missing case).</summary>
    private static string Python => Environment.GetEnvironmentVariable("ALEXNET_TEST_PYTHON") is { Length: > 0 } p ? p : "/usr/bin/python3";

    private static void Missing(string reason)
    {
        Assert.False(TestNative.Required, $"{reason}; ALEXNET_REQUIRE_NATIVE=1 needs it (apt-get install python3-numpy)");
        Skip.If(true, reason);
    }

    [SkippableFact]
    public void FullSizeNpSaveFileReadsExactly()
    {
        string python = Python;
        if (!File.Exists(python)) Missing($"no {python}");
        using var dir = new TempDir();
        string path = dir.File("bvlc_alexnet_py3.npy");
        string script = $$"""
            import sys
            try:
                import numpy as np
            except ImportError:
                sys.exit(3)
            sys.path.insert(0, {{PyStr(Path.GetDirectoryName(TinyNet.Fixture("make_fixtures.py"))!)}})
            from make_fixtures import values
            shapes = [("conv1", (11, 11, 3, 96)), ("conv2", (5, 5, 48, 256)), ("conv3", (3, 3, 256, 384)), ("conv4", (3, 3, 192, 384)),
                      ("conv5", (3, 3, 192, 256)), ("fc6", (9216, 4096)), ("fc7", (4096, 4096)), ("fc8", (4096, 1000))]
            d = {name: list(values(k, s)) for k, (name, s) in enumerate(shapes)}
            np.save({{PyStr(path)}}, np.array(d, dtype=object), allow_pickle=True)
            """;
        var psi = new System.Diagnostics.ProcessStartInfo(python, ["-c", script]) { RedirectStandardError = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode == 3) Missing($"{python} has no numpy");
        Assert.True(p.ExitCode == 0, err);

        var w = WeightFile.Load(path);
        var expected = TinyNet.Layers(AlexNetArchitecture.Default);
        Assert.Equal(60_965_224, w.ParameterCount);
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(expected[i].WeightShape, w.Layers[i].WeightShape);
            Assert.True(expected[i].Weight.AsSpan().SequenceEqual(w.Layers[i].Weight), $"{w.Layers[i].Name} weights differ");
            Assert.True(expected[i].Bias.AsSpan().SequenceEqual(w.Layers[i].Bias), $"{w.Layers[i].Name} biases differ");
        }
    }

    private static string PyStr(string s) => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'") + "'";
}
