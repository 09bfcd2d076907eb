using AlexNet.Cli.Finetune;
using AlexNet.Cuda.Tests.Weights;

namespace AlexNet.Cuda.Tests.Cli;

/// <summary>finetune's kept features: in memory up to the budget, the rest in a temporary file that goes away with
/// the store, every entry read back bit for bit whichever side it is on.</summary>
public sealed class FeatureStoreTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void EntriesBeyondTheBudgetGoToAFileAndComeBackTheSame()
    {
        const int floats = 1000;
        var random = new Random(4);
        var entries = new Dictionary<int, float[]>();
        string folder = _dir.File("spill");
        Directory.CreateDirectory(folder);
        using (var store = new FeatureStore(floats, memoryBytes: 2 * floats * sizeof(float) + 17, folder))
        {
            foreach (int key in new[] { 7, 0, 1 << 29, 3, 12 })
            {
                float[] values = [.. Enumerable.Range(0, floats).Select(_ => (float)(random.NextDouble() * 2 - 1))];
                values[0] = float.NaN;
                values[1] = -0f;
                entries[key] = values;
                store.Add(key, values);
            }
            Assert.Equal(5, store.Count);
            Assert.Equal(3, store.Spilled);
            Assert.Equal(2L * floats * sizeof(float), store.MemoryBytes);
            Assert.Single(Directory.GetFiles(folder));
            var back = new float[floats];
            foreach ((int key, float[] values) in entries.Reverse())
            {
                store.Read(key, back);
                Assert.Equal(values.Select(BitConverter.SingleToInt32Bits), back.Select(BitConverter.SingleToInt32Bits));
            }
            Assert.False(store.Contains(5));
            Assert.Throws<ArgumentException>(() => store.Add(99, new float[floats - 1]));
        }
        Assert.Empty(Directory.GetFiles(folder)); // the spill file is deleted on close
    }
}
