using System.Diagnostics;
using AlexNet.Cuda.Weights;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>Truncations and bit flips of valid files, with fixed seeds: the only error ever seen is
/// <see cref="WeightFileException"/>, and each read stays quick.</summary>
public class WeightFileFuzzTests(ITestOutputHelper output)
{
    private static readonly WeightLoadOptions Tiny = new() { Architecture = TinyNet.Architecture };

    public static TheoryData<string> Sources => new() { "py2", "tiny_py3_p2.npy", "tiny_py3_p4.npy", "tiny_py3_p5.npy", "tiny_slash.npz" };

    [Theory]
    [MemberData(nameof(Sources))]
    public void TruncationsAndBitFlipsOnlyEverGiveWeightFileException(string source)
    {
        byte[] valid = source == "py2" ? Py2PickleWriter.ToBytes(TinyNet.Layers()) : File.ReadAllBytes(TinyNet.Fixture(source));
        using var dir = new TempDir();
        string path = dir.File("fuzz.bin");
        var rng = new Random(20261128 + source.Length);
        int refused = 0, accepted = 0;
        var slowest = TimeSpan.Zero;
        var cases = new List<(string What, byte[] Bytes)>();
        for (int i = 0; i < 600; i++)
        {
            int len = i < 200 ? i * valid.Length / 200 : rng.Next(valid.Length);
            cases.Add(($"truncated to {len}", valid[..len]));
        }
        for (int i = 0; i < 1400; i++)
        {
            byte[] b = (byte[])valid.Clone();
            int flips = 1 + rng.Next(4);
            var at = new List<int>();
            for (int f = 0; f < flips; f++)
            {
                // Half the flips land in the first 400 bytes, where the header and the pickle's structure are.
                int pos = rng.Next(2) == 0 ? rng.Next(Math.Min(400, b.Length)) : rng.Next(b.Length);
                b[pos] ^= (byte)(1 << rng.Next(8));
                at.Add(pos);
            }
            cases.Add(($"bits flipped at {string.Join(",", at)}", b));
        }
        foreach (var (what, bytes) in cases)
        {
            File.WriteAllBytes(path, bytes);
            var sw = Stopwatch.StartNew();
            try
            {
                WeightFile.Load(path, Tiny);
                accepted++;
            }
            catch (WeightFileException e)
            {
                Assert.DoesNotContain('\n', e.Message);
                refused++;
            }
            catch (Exception e)
            {
                Assert.Fail($"{source}, {what}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            if (sw.Elapsed > slowest) slowest = sw.Elapsed;
        }
        output.WriteLine($"{source}: {refused} refused, {accepted} accepted, slowest {slowest.TotalMilliseconds:F1} ms");
        Assert.True(refused > cases.Count / 4, $"only {refused} of {cases.Count} damaged files were refused");
        Assert.True(slowest < TimeSpan.FromSeconds(2), $"one read took {slowest}");
    }
}
