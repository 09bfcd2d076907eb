using System.IO.Compression;
using System.Text;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>
/// Object arrays written by real numpy under Python 2 and 3 (numpy's own test data, in
/// Tests/Fixtures/weights/numpy-objarr/ with its licence): <c>[None, range, '優良', b'...']</c>. They are not
/// weight files: each is refused at its <c>xrange</c>/<c>range</c> global, after everything before it (the
/// 16-byte-aligned header, <c>|O8</c>, <c>TUPLE1</c>/<c>TUPLE3</c>, the dtype's BUILD) has been read.
/// </summary>
public class NumpyObjectArrayTests
{
    private static string Fixture(string name) => TinyNet.Fixture(Path.Combine("numpy-objarr", name));

    /// <summary>The pickle bytes and where they start in the file (or in the .npz's only member).</summary>
    private static byte[] NpyBytes(string name)
    {
        if (!name.EndsWith(".npz", StringComparison.Ordinal)) return File.ReadAllBytes(Fixture(name));
        using var zip = ZipFile.OpenRead(Fixture(name));
        var entry = Assert.Single(zip.Entries);
        Assert.Equal("x.npy", entry.FullName);
        using var s = entry.Open();
        var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }

    [Theory]
    [InlineData("py2-objarr.npy", "__builtin__", "xrange")]
    [InlineData("py2-np0-objarr.npy", "__builtin__", "xrange")]
    [InlineData("py2-objarr.npz", "__builtin__", "xrange")]
    [InlineData("py3-objarr.npy", "builtins", "range")]
    [InlineData("py3-objarr.npz", "builtins", "range")]
    public void EachIsRefusedAtItsRangeGlobalAfterReadingEverythingBefore(string name, string module, string global)
    {
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(Fixture(name)));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains($"'{module}.{global}', which is not allowed", e.Message);
        Assert.Contains("GLOBAL", e.Message);
        // The offset is that of the GLOBAL opcode itself: the header, the reconstruct call, the dtype and
        // the opcodes up to there were all read.
        byte[] npy = NpyBytes(name);
        int at = npy.AsSpan().IndexOf(Encoding.ASCII.GetBytes($"c{module}\n{global}\n"));
        Assert.True(at > 0);
        Assert.Equal(at, e.Offset);
        Assert.Contains($"at byte {at}:", e.Message);
    }

    [Theory]
    [InlineData("py2-objarr.npy", "|O8", 80)]
    [InlineData("py2-np0-objarr.npy", "|O8", 80)]
    [InlineData("py3-objarr.npy", "|O", 128)]
    public void TheirHeadersParse(string name, string descr, int dataAt)
    {
        byte[] b = File.ReadAllBytes(Fixture(name));
        int headerLength = b[8] | b[9] << 8;
        Assert.Equal(dataAt, 10 + headerLength);  // Python 2's numpy padded to 16 bytes, Python 3's to 64
        var (d, fortran, shape) = NpyReader.ParseHeader(Encoding.Latin1.GetString(b, 10, headerLength), name, 10);
        Assert.Equal(descr, d);
        Assert.False(fortran);
        Assert.Equal(new long[] { 4 }, shape);
        Assert.True(NpyDType.Parse(d, null, name, 10).IsObject);
    }

    [Fact]
    public void TheLicenceAndTheNoticeTravelWithTheFiles()
    {
        Assert.Contains("NumPy Developers", File.ReadAllText(Fixture("LICENSE.numpy.txt")));
        Assert.Contains("LICENSE.numpy.txt", File.ReadAllText(Fixture("README.md")));
    }

    [Fact]
    public void Pre10NumpyReconstructGlobalIsAccepted()
    {
        // numpy keeps numpy.core._internal._reconstruct as the array reconstructor for pickles made before 1.0
        // (py2-np0-objarr.npy uses it); a weight file written that way reads like any other.
        using var dir = new TempDir();
        string path = dir.Write("np0.npy", Py2PickleWriter.ToBytes(TinyNet.Layers(), module: "numpy.core._internal"));
        TinyNet.AssertExact(WeightFile.Load(path, new WeightLoadOptions { Architecture = TinyNet.Architecture }));
    }

    [Fact]
    public void OtherInternalGlobalsStayRefused()
    {
        using var dir = new TempDir();
        byte[] file = Py2PickleWriter.ToBytes(TinyNet.Layers(), module: "numpy.core._internal");
        byte[] swapped = Encoding.Latin1.GetBytes(Encoding.Latin1.GetString(file).Replace("_internal\n_reconstruct\n", "_internal\n_ctypes_type\n"));
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(dir.Write("x.npy", swapped)));
        Assert.Contains("'numpy.core._internal._ctypes_type'", e.Message);
    }
}
