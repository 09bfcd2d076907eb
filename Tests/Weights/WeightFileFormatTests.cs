using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>Every supported way of storing the weights reads back to exactly the same values.</summary>
public class WeightFileFormatTests
{
    private static readonly WeightLoadOptions Tiny = new() { Architecture = TinyNet.Architecture };

    [Fact]
    public void Python2StyleProtocol2FileReadsExactly()
    {
        using var dir = new TempDir();
        string path = dir.Write("py2.npy", Py2PickleWriter.ToBytes(TinyNet.Layers()));
        var w = WeightFile.Load(path, Tiny);
        TinyNet.AssertExact(w);
        Assert.Equal(5, w.NumClasses);
        Assert.All(w.Layers, l => Assert.Equal("<f4", l.Source));
    }

    [Fact]
    public void Python2StyleFileWithNumpy2ModuleNameReads()
    {
        using var dir = new TempDir();
        string path = dir.Write("py2.npy", Py2PickleWriter.ToBytes(TinyNet.Layers(), module: "numpy._core.multiarray"));
        TinyNet.AssertExact(WeightFile.Load(path, Tiny));
    }

    [Fact]
    public void Python2StyleFileStartsTheWayPython2NumpyWroteIt()
    {
        byte[] b = Py2PickleWriter.ToBytes(TinyNet.Layers());
        byte[] header = [0x93, .."NUMPY"u8, 1, 0, 0x46, 0, .."{'descr': '|O', 'fortran_order': False, 'shape': (), }"u8];
        Assert.Equal(header, b[..header.Length]);
        Assert.Equal((byte)'\n', b[79]); // numpy of the Python 2 era padded the header to 16 bytes, not 64
        byte[] pickle = [0x80, 2, .."cnumpy.core.multiarray\n_reconstruct\n"u8, (byte)'q', 1, .."cnumpy\nndarray\n"u8, (byte)'q', 2,
            (byte)'K', 0, 0x85, (byte)'q', 3, (byte)'U', 1, (byte)'b', 0x87, (byte)'q', 4, (byte)'R', (byte)'q', 5];
        Assert.Equal(pickle, b[80..(80 + pickle.Length)]);
    }

    [Theory]
    [InlineData("tiny_py3_np_save.npy")]
    [InlineData("tiny_py3_p2.npy")]
    [InlineData("tiny_py3_p3.npy")]
    [InlineData("tiny_py3_p4.npy")]
    [InlineData("tiny_py3_p5.npy")]
    [InlineData("tiny_numpy2_p2.npy")]
    [InlineData("tiny_numpy2_p4.npy")]
    [InlineData("tiny_caffe_tf_p4.npy")]
    [InlineData("tiny_fortran_p3.npy")]
    [InlineData("tiny_underscore.npz")]
    [InlineData("tiny_slash.npz")]
    public void Python3NumpyFixturesReadExactly(string fixture)
    {
        TinyNet.AssertExact(WeightFile.Load(TinyNet.Fixture(fixture), Tiny));
    }

    [Theory]
    [InlineData("tiny_f8_p4.npy", "<f8")]
    [InlineData("tiny_f2_p4.npy", "<f2")]
    [InlineData("tiny_be_p2.npy", ">f4")]
    public void OtherDtypesInPicklesConvertToFloat32(string fixture, string dtype)
    {
        var w = WeightFile.Load(TinyNet.Fixture(fixture), Tiny);
        TinyNet.AssertExact(w);
        Assert.All(w.Layers, l => Assert.Equal(dtype, l.Source));
    }

    [Theory]
    [InlineData("conv2_f4_le.npy", "<f4", false)]
    [InlineData("conv2_f4_be.npy", ">f4", false)]
    [InlineData("conv2_f8_le.npy", "<f8", false)]
    [InlineData("conv2_f2_le.npy", "<f2", false)]
    [InlineData("conv2_f4_fortran.npy", "<f4", true)]
    [InlineData("conv2_f4_v2.npy", "<f4", false)]
    [InlineData("conv2_f4_v3.npy", "<f4", false)]
    public void PlainNpyOfEveryDtypeOrderAndVersionReadsExactly(string fixture, string dtype, bool fortran)
    {
        var src = new ByteSourceFile(TinyNet.Fixture(fixture));
        var a = Assert.IsType<NpyArray>(src.Read());
        Assert.Equal(dtype, a.SourceDType);
        Assert.Equal(fortran, a.SourceFortranOrder);
        Assert.Equal(new[] { 3, 3, 2, 6 }, a.Shape);
        Assert.Equal(TinyNet.Weight(1, [3, 3, 2, 6]), a.Data);
    }

    [Fact]
    public void IntegerDtypeIsRefusedByName()
    {
        var e = Assert.Throws<WeightFileException>(() => new ByteSourceFile(TinyNet.Fixture("conv2_i4.npy")).Read());
        Assert.Contains("'<i4'", e.Message);
    }

    [Fact]
    public void PlainArrayIsNotAWeightFile()
    {
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(TinyNet.Fixture("conv2_f4_le.npy"), Tiny));
        Assert.Contains("not a dict of layers", e.Message);
    }

    [Theory]
    [InlineData("conv1_W", "conv1", true)]
    [InlineData("conv1_b", "conv1", false)]
    [InlineData("conv1/weights", "conv1", true)]
    [InlineData("conv1/biases", "conv1", false)]
    [InlineData("fc8.kernel", "fc8", true)]
    [InlineData("fc8/bias", "fc8", false)]
    public void NpzKeyNamingVariants(string key, string layer, bool isWeight)
    {
        Assert.Equal((layer, isWeight), WeightFile.SplitKey(key));
    }

    [Theory]
    [InlineData("conv1")]
    [InlineData("conv1_x")]
    [InlineData("_W")]
    public void NpzKeysThatNameNoLayerArray(string key) => Assert.Null(WeightFile.SplitKey(key));

    /// <summary>Reads one plain .npy through the internal reader.</summary>
    private sealed class ByteSourceFile(string path)
    {
        public object? Read()
        {
            using var h = File.OpenHandle(path);
            return NpyReader.Read(new ByteSource(h, RandomAccess.GetLength(h), path), requireEnd: true);
        }
    }
}
