using System.Text;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>Pickles that are well formed but use what the interpreter keeps out of memory (byte strings of
/// 64 KiB or more stay in the file) or what Python would silently resolve (a key given twice).</summary>
public class PickleHardeningTests
{
    private static readonly WeightLoadOptions Tiny = new() { Architecture = TinyNet.Architecture };

    private static WeightFileException Refused(List<Py2PickleWriter.Layer> layers)
    {
        using var dir = new TempDir();
        string path = dir.Write("bad.npy", Py2PickleWriter.ToBytes(layers));
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(path, Tiny));
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    private static readonly byte[] HugeKey = Encoding.ASCII.GetBytes(new string('k', PickleMachine.LazyBytesThreshold + 4464));

    [Fact]
    public void CaffeTensorflowDictLayerReads()
    {
        // The form the tests below change: conv1 as {'weights': W, 'biases': b, 'momentum': None}.
        var layers = TinyNet.Layers();
        layers[0] = layers[0] with { AsDict = true, DictExtras = [("momentum"u8.ToArray(), null)] };
        using var dir = new TempDir();
        TinyNet.AssertExact(WeightFile.Load(dir.Write("ok.npy", Py2PickleWriter.ToBytes(layers)), Tiny));
    }

    [Fact]
    public void LayerDictWithAByteStringKeyOf64KiBOrMoreIsAnOrdinaryRefusal()
    {
        var layers = TinyNet.Layers();
        layers[0] = layers[0] with { AsDict = true, DictExtras = [(HugeKey, null)] };
        var e = Refused(layers);
        Assert.Contains($"{HugeKey.Length}-byte", e.Message);
        Assert.Contains("conv1", e.Message);
        Assert.True(e.Message.Length < 600, "the message quotes the whole key");
    }

    [Fact]
    public void TopLevelByteStringKeyOf64KiBOrMoreIsAnOrdinaryRefusal()
    {
        var layers = TinyNet.Layers();
        layers.Add(layers[0] with { Name = Encoding.Latin1.GetString(HugeKey) });
        var e = Refused(layers);
        Assert.Contains($"{HugeKey.Length}-byte", e.Message);
        Assert.True(e.Message.Length < 600, "the message quotes the whole key");
    }

    [Fact]
    public void LayerGivenTwiceIsRefusedNamingIt()
    {
        var layers = TinyNet.Layers();
        var other = TinyNet.Layers()[2];
        layers.Add(other with { Weight = other.Weight.Select(x => -x).ToArray() });
        Assert.Contains("'conv3' twice", Refused(layers).Message);
    }

    [Theory]
    [InlineData("weights")]
    [InlineData("kernel")]
    [InlineData("biases")]
    [InlineData("b")]
    public void LayerDictNamingOneArrayTwiceIsRefused(string key)
    {
        var layers = TinyNet.Layers();
        float[] second = key.StartsWith('b') ? new float[4] : new float[3 * 3 * 3 * 4];
        layers[0] = layers[0] with { AsDict = true, DictExtras = [(Encoding.ASCII.GetBytes(key), second)] };
        var e = Refused(layers);
        Assert.Contains("conv1", e.Message);
        Assert.Contains($"'{key}'", e.Message);
        Assert.Contains("twice", e.Message);
    }

    [Fact]
    public void ZeroDimensionDoesNotLetADimensionPastInt32Through()
    {
        // BUILD with shape (0, 2^32 + 1) and no data: the product is 0, but 2^32 + 1 must not become 1.
        var layers = TinyNet.Layers();
        layers[0] = layers[0] with { Weight = [], DeclaredWeightShape = [0, 4_294_967_297] };
        Assert.Contains("4294967297", Refused(layers).Message);
    }

    [Fact]
    public void NegativeLongDimensionIsRefused()
    {
        var layers = TinyNet.Layers();
        layers[0] = layers[0] with { Weight = [], DeclaredWeightShape = [0, -4_294_967_297] };
        Assert.Contains("negative dimension", Refused(layers).Message);
    }
}

/// <summary>Python 3's protocol 2 stores array data as text (<c>_codecs.encode(text, 'latin1')</c>). Text of
/// 64 KiB or more stays UTF-8 (in the file, when it can seek) and is decoded straight to bytes.</summary>
public class PickleTextDataTests
{
    /// <summary>The tiny net with fc6 widened to (36, 20000) and fc7 to (20000, 8): fc6's data is 2.9 MB, as text
    /// ~4.3 MB of UTF-8 (about half the formula's float bytes are ≥ 0x80, two bytes each).</summary>
    private static readonly AlexNetArchitecture Wide = new(TinyNet.Architecture.Layers.Select(l => l.Name switch
    {
        "fc6" => l with { WeightShape = [36, 20_000] },
        "fc7" => l with { WeightShape = [20_000, 8] },
        _ => l,
    }));

    private static void AssertFormula(AlexNetWeights w)
    {
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(TinyNet.Weight(i, Wide.Layers[i].WeightShape), w.Layers[i].Weight);
            Assert.Equal(TinyNet.Bias(i, Wide.Layers[i].OutputChannels), w.Layers[i].Bias);
        }
    }

    [Fact]
    public void LargeTextDataReadsExactlyWithoutAUtf16Copy()
    {
        byte[] file = Py2PickleWriter.ToBytesWithTextData(TinyNet.Layers(Wide));
        using var dir = new TempDir();
        string path = dir.Write("p2.npy", file);
        WeightFile.Load(path, new() { Architecture = Wide });  // warm-up: JIT
        long before = GC.GetAllocatedBytesForCurrentThread();
        var w = WeightFile.Load(path, new() { Architecture = Wide });
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        AssertFormula(w);
        // The Latin-1 bytes and the float32 arrays (2 × the data) plus buffers; the UTF-8 text read into memory
        // (~1.5 × the data) and a UTF-16 string of it (~3 ×) would be more than 6 × the data.
        long data = 4 * Wide.ParameterCount;
        Assert.True(allocated < 3 * data, $"allocated {allocated:N0} bytes for {data:N0} bytes of data");
    }

    [Fact]
    public void LargeTextDataInsideAnNpzReadsExactly()
    {
        byte[] member = Py2PickleWriter.ToBytesWithTextData(TinyNet.Layers(Wide));
        using var dir = new TempDir();
        string path = dir.Write("p2.npz", new ZipBuilder().Add("net.npy", member).ToBytes());
        AssertFormula(WeightFile.Load(path, new() { Architecture = Wide }));
    }

    [Theory]
    [InlineData(0xff, "not valid UTF-8")]          // a byte UTF-8 never has
    [InlineData(0x01_00, "not Latin-1")]           // U+0100, valid UTF-8 but no Latin-1 byte
    public void BadLargeTextIsRefused(int bad, string message)
    {
        byte[] file = Py2PickleWriter.ToBytesWithTextData(TinyNet.Layers(Wide));
        // Overwrite one two-byte character in the middle of fc6's text with 0xff 0xff, or with U+0100 as UTF-8
        // (0xc4 0x80): the text keeps its length, so every length field still holds.
        int mid = FindLargeText(file) + 60_000;
        while ((file[mid] & 0xe0) != 0xc0) mid++;
        byte[] put = bad == 0xff ? [0xff, 0xff] : [0xc4, 0x80];
        put.CopyTo(file, mid);
        using var dir = new TempDir();
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(dir.Write("bad.npy", file), new() { Architecture = Wide }));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void LargeStrKeyIsAnOrdinaryRefusal()
    {
        // {'kkk…k' (70,000 characters): None} as the dict of layers: SHORT_BINUNICODE cannot hold it, BINUNICODE does.
        byte[] key = Encoding.ASCII.GetBytes(new string('k', 70_000));
        byte[] pickle = [0x80, 2, (byte)'}', (byte)'X', .. BitConverter.GetBytes(key.Length), .. key, (byte)'N', (byte)'s', (byte)'.'];
        using var dir = new TempDir();
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(dir.Write("k.npy", Pickles.ObjectNpy(pickle)), new() { Architecture = Wide }));
        Assert.Contains("70000-byte str key", e.Message);
    }

    /// <summary>Where fc6's text starts: the first BINUNICODE of 64 KiB or more.</summary>
    private static int FindLargeText(byte[] file)
    {
        for (int i = 0; i + 5 < file.Length; i++)
            if (file[i] == (byte)'X' && BitConverter.ToInt32(file, i + 1) is >= 1 << 16 and var n && i + 5 + n <= file.Length)
                return i + 5;
        throw new InvalidOperationException("no large text");
    }
}
