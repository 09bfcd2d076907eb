using System.Buffers.Binary;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>Bad, hostile and mismatched files: each gets one WeightFileException with a one-line message
/// naming the problem; nothing runs, nothing huge is allocated.</summary>
public class WeightFileErrorTests
{
    private static readonly WeightLoadOptions Tiny = new() { Architecture = TinyNet.Architecture };

    private static WeightFileException Refused(byte[] file, WeightLoadOptions? options = null)
    {
        using var dir = new TempDir();
        string path = dir.Write("bad.npy", file);
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(path, options ?? Tiny));
        Assert.DoesNotContain('\n', e.Message);
        Assert.IsAssignableFrom<AlexNetException>(e);
        return e;
    }

    [Fact]
    public void OsSystemGlobalIsRefusedAndNothingRuns()
    {
        using var dir = new TempDir();
        string marker = dir.File("pwned");
        // PROTO 2, GLOBAL 'os\nsystem\n', SHORT_BINSTRING 'touch <marker>', TUPLE1, REDUCE, STOP
        byte[] cmd = Pickles.Ascii($"touch {marker}");
        byte[] pickle = [0x80, 2, .. Pickles.Ascii("cos\nsystem\n"), (byte)'U', (byte)cmd.Length, .. cmd, 0x85, (byte)'R', (byte)'.'];
        var e = Refused(Pickles.ObjectNpy(pickle));
        Assert.Contains("'os.system'", e.Message);
        Assert.Contains("not allowed", e.Message);
        Assert.Equal(128 + 2, e.Offset);
        Assert.Contains("byte 130", e.Message);
        Assert.False(File.Exists(marker));
    }

    [Fact]
    public void BuiltinsEvalInStackGlobalFormIsRefusedAndNothingRuns()
    {
        const string marker = "/tmp/alexnet-weights-pwned-by-eval";
        File.Delete(marker);
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(TinyNet.Fixture("malicious_eval_p4.npy"), Tiny));
        Assert.Contains("'builtins.eval'", e.Message);
        Assert.Contains("STACK_GLOBAL", e.Message);
        Assert.False(File.Exists(marker));
    }

    [Theory]
    [InlineData(0x81, "NEWOBJ")]
    [InlineData((byte)'i', "INST")]
    [InlineData((byte)'o', "OBJ")]
    [InlineData((byte)'Q', "BINPERSID")]
    [InlineData(0x97, "NEXT_BUFFER")]
    [InlineData((byte)'S', "STRING")]
    [InlineData(0xff, "unknown")]
    public void DisallowedOpcodesAreNamedWithTheirOffset(byte op, string name)
    {
        var e = Refused(Pickles.ObjectNpy([0x80, 2, (byte)'N', op, (byte)'.']));
        Assert.Contains(name, e.Message);
        Assert.Equal(128 + 3, e.Offset);
    }

    [Fact]
    public void ReduceOfAllowedTypeWithWrongArgumentsIsRefused()
    {
        // numpy.ndarray is allowed as an argument of _reconstruct but is never called.
        byte[] pickle = [0x80, 2, .. Pickles.Ascii("cnumpy\nndarray\n"), (byte)')', (byte)'R', (byte)'.'];
        Assert.Contains("numpy.ndarray", Refused(Pickles.ObjectNpy(pickle)).Message);
    }

    [Fact]
    public void DeepMarkNestingIsRefused()
    {
        byte[] pickle = [0x80, 2, .. Enumerable.Repeat((byte)'(', 1000), (byte)'.'];
        Assert.Contains("nested MARK", Refused(Pickles.ObjectNpy(pickle)).Message);
    }

    [Fact]
    public void DeepListNestingIsRefused()
    {
        byte[] pickle = [0x80, 2, .. Enumerable.Repeat((byte)']', 1000), .. Enumerable.Repeat((byte)'a', 999), (byte)'.'];
        Assert.Contains("deeper than 64", Refused(Pickles.ObjectNpy(pickle)).Message);
    }

    [Fact]
    public void MemoReadOfUnsetEntryIsRefused()
    {
        Assert.Contains("memo entry 7", Refused(Pickles.ObjectNpy([0x80, 2, (byte)'h', 7, (byte)'.'])).Message);
    }

    [Fact]
    public void UnsupportedProtocolIsRefused()
    {
        Assert.Contains("protocol 6", Refused(Pickles.ObjectNpy([0x80, 6, (byte)'N', (byte)'.'])).Message);
    }

    [Fact]
    public void WrongMagicIsRefused()
    {
        var e = Refused(Pickles.Ascii("PK not really a zip, and not numpy either"));
        Assert.Contains("not", e.Message);
        e = Refused(Pickles.Ascii("GIF89a........................"));
        Assert.Contains("not a .npy file", e.Message);
    }

    [Fact]
    public void EmptyFileIsRefused()
    {
        Assert.Contains("too short", Refused([]).Message);
    }

    [Fact]
    public void HeaderThatClaimsMoreDataThanTheFileHoldsIsRefusedBeforeAllocating()
    {
        // 500 million floats (2 GB) declared, 16 bytes present: must fail on the length check, not allocate.
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Refused([.. Pickles.NpyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (500000000,), }"), .. new byte[16]]);
        Assert.Contains("truncated", e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 10_000_000, "allocated before checking the length");
    }

    [Fact]
    public void HeaderThatClaimsLessDataThanTheFileHoldsIsRefused()
    {
        var e = Refused([.. Pickles.NpyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"), .. new byte[16]]);
        Assert.Contains("accounts for 8 bytes but 16 follow", e.Message);
    }

    [Fact]
    public void ShapeWhoseProductOverflowsIsRefused()
    {
        // Each dimension fits an int; their product (2^93) fits nothing.
        var e = Refused([.. Pickles.NpyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2147483647, 2147483647, 2147483647), }"), .. new byte[16]]);
        Assert.Contains("too large", e.Message);
    }

    [Theory]
    [InlineData("{'descr': '<f4', 'fortran_order': False}")]
    [InlineData("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }")]
    [InlineData("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'evil': __import__('os'), }")]
    [InlineData("not a dict at all")]
    public void MalformedHeadersAreRefused(string dict)
    {
        Assert.Contains("header", Refused([.. Pickles.NpyHeader(dict), .. new byte[8]]).Message);
    }

    [Fact]
    public void HeaderLengthPastTheEndIsRefused()
    {
        byte[] b = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 2, 0, 0xff, 0xff, 0x0f, 0x00, (byte)'{'];
        Assert.Contains("header", Refused(b).Message);
    }

    [Fact]
    public void ByteStringLengthPastTheEndIsRefusedBeforeAllocating()
    {
        byte[] file = Py2PickleWriter.ToBytes(TinyNet.Layers());
        int t = Array.IndexOf(file, (byte)'T', 80);  // first BINSTRING (fc6's weights are the first over 255 bytes)
        Assert.True(t > 0);
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(t + 1), int.MaxValue);
        var e = Refused(file);
        Assert.Contains($"{int.MaxValue}-byte string", e.Message);
        Assert.Equal(t + 5, e.Offset);
    }

    [Fact]
    public void TruncatedFileIsRefused()
    {
        byte[] file = Py2PickleWriter.ToBytes(TinyNet.Layers());
        Assert.Contains("truncated", Refused(file[..(file.Length / 2)]).Message);
        Assert.Contains("truncated", Refused(file[..^1]).Message);  // without STOP
    }

    [Fact]
    public void DataLengthThatDisagreesWithTheShapeIsRefused()
    {
        var layers = TinyNet.Layers();
        layers[6] = layers[6] with { WeightShape = [8, 9] };  // 64 values, shape says 72
        var e = Refused(Py2PickleWriter.ToBytes(layers));
        Assert.Contains("256 bytes but shape (8, 9) of <f4 needs 288", e.Message);
    }

    [Fact]
    public void WrongShapeNamesTheLayerAndBothShapes()
    {
        var layers = TinyNet.Layers();
        layers[2] = layers[2] with { Weight = new float[3 * 3 * 6 * 7], WeightShape = [3, 3, 6, 7] };
        var e = Refused(Py2PickleWriter.ToBytes(layers));
        Assert.Contains("layer 'conv3' weight has shape (3, 3, 6, 7) but AlexNet needs (3, 3, 6, 6)", e.Message);
    }

    [Fact]
    public void WrongBiasShapeNamesTheLayer()
    {
        var layers = TinyNet.Layers();
        layers[5] = layers[5] with { Bias = new float[9] };
        Assert.Contains("layer 'fc6' bias has shape (9,) but AlexNet needs (8,)", Refused(Py2PickleWriter.ToBytes(layers)).Message);
    }

    [Fact]
    public void MissingLayerIsNamed()
    {
        var layers = TinyNet.Layers();
        layers.RemoveAt(6);
        var e = Refused(Py2PickleWriter.ToBytes(layers));
        Assert.Contains("layer 'fc7' is missing", e.Message);
    }

    [Theory]
    [InlineData(float.NaN, "NaN")]
    [InlineData(float.PositiveInfinity, "+inf")]
    [InlineData(float.NegativeInfinity, "-inf")]
    public void NonFiniteValuesNameTheLayer(float bad, string shown)
    {
        var layers = TinyNet.Layers();
        layers[5].Weight[200] = bad;
        var e = Refused(Py2PickleWriter.ToBytes(layers));
        Assert.Contains($"layer 'fc6' weight holds {shown} at index 200", e.Message);
        layers = TinyNet.Layers();
        layers[0].Bias[3] = bad;
        Assert.Contains("layer 'conv1' bias", Refused(Py2PickleWriter.ToBytes(layers)).Message);
    }

    [Fact]
    public void MissingFileIsAOneLineError()
    {
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load("/nonexistent/bvlc_alexnet.npy"));
        Assert.Equal("weight file '/nonexistent/bvlc_alexnet.npy' does not exist; download bvlc_alexnet.npy or give its path", e.Message);
        var folder = Assert.Throws<WeightFileException>(() => WeightFile.Load(Path.GetTempPath()));
        Assert.Contains("is a folder; give the weight file itself", folder.Message);
    }

    [Fact]
    public void NpzWithWeightButNoBiasIsRefused()
    {
        using var dir = new TempDir();
        string path = dir.File("w.npz");
        using (var zip = System.IO.Compression.ZipFile.Open(path, System.IO.Compression.ZipArchiveMode.Create))
        using (var s = zip.CreateEntry("conv1_W.npy").Open())
            s.Write(NpzHardeningTests.PlainNpy(TinyNet.Weight(0, [3, 3, 3, 4]), [3, 3, 3, 4]));
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(path, Tiny));
        Assert.Contains("layer 'conv1' has weights but no bias", e.Message);
    }
}

/// <summary>Limits that keep a small hostile file from allocating without bound.</summary>
public class WeightFileAllocationLimitTests
{
    private static readonly WeightLoadOptions Tiny = new() { Architecture = TinyNet.Architecture };

    private static WeightFileException Refused(byte[] file)
    {
        using var dir = new TempDir();
        string path = dir.Write("bad.npy", file);
        return Assert.Throws<WeightFileException>(() => WeightFile.Load(path, Tiny));
    }

    /// <summary>One 70,000-byte BINSTRING, memoised, then used as the data of <paramref name="uses"/> arrays in a list.</summary>
    private static byte[] ReusedString(int uses)
    {
        var p = new List<byte> { 0x80, 2 };
        p.AddRange(Pickles.Ascii("cnumpy.core.multiarray\n_reconstruct\nq\u0001cnumpy\nndarray\nq\u0002cnumpy\ndtype\nq\u0003"));
        p.Add((byte)'T'); p.AddRange(BitConverter.GetBytes(70_000)); p.AddRange(new byte[70_000]); p.AddRange([(byte)'q', 4, (byte)'0']);
        p.Add((byte)']');
        for (int k = 0; k < uses; k++)
        {
            // _reconstruct(ndarray, (0,), 'b') BUILD (1, (17500,), dtype('f4') BUILD (3, '<', …), False, <memo 4>)
            p.AddRange(Pickles.Ascii("h\u0001h\u0002K\u0000\u0085U\u0001b\u0087R(K\u0001M"));
            p.AddRange([17_500 & 0xff, 17_500 >> 8, 0x85]);
            p.AddRange(Pickles.Ascii("h\u0003U\u0002f4K\u0000K\u0001\u0087R(K\u0003U\u0001<NNNJ\u00ff\u00ff\u00ff\u00ffJ\u00ff\u00ff\u00ff\u00ffK\u0000tb"));
            p.AddRange([0x89, (byte)'h', 4, (byte)'t', (byte)'b', (byte)'a']);
        }
        p.Add((byte)'.');
        return Pickles.ObjectNpy([.. p]);
    }

    [Fact]
    public void ReusingOneMemoisedStringForManyArraysIsRefused()
    {
        var e5 = Refused(ReusedString(5)); Assert.True(e5.Message.Contains("used again and again"), e5.Message);
        // Two uses are within the limit: the pickle is read and refused later, for holding a list.
        Assert.Contains("holds a list", Refused(ReusedString(2)).Message);
    }

    [Fact]
    public void MoreThanAMillionContainerItemsIsRefused()
    {
        var p = new List<byte> { 0x80, 2, (byte)']' };
        for (int i = 0; i <= PickleMachine.MaxItems; i++) { p.Add((byte)'N'); p.Add((byte)'a'); }
        p.Add((byte)'.');
        Assert.Contains("more than 1048576 items", Refused(Pickles.ObjectNpy([.. p])).Message);
    }
}
