using System.IO.Compression;
using System.Runtime.InteropServices;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>Hostile .npz archives: each is refused with one line, and before it can make the reader inflate or
/// allocate more than the architecture's weights need.</summary>
public class NpzHardeningTests
{
    private static readonly WeightLoadOptions Tiny = new() { Architecture = TinyNet.Architecture };

    /// <summary>A plain little-endian float32 .npy as numpy writes it (64-byte aligned 1.0 header).</summary>
    internal static byte[] PlainNpy(float[] data, IReadOnlyList<long> shape) =>
        [.. NpyHeader("<f4", shape), .. MemoryMarshal.AsBytes(data.AsSpan())];

    internal static byte[] NpyHeader(string descr, IReadOnlyList<long> shape) =>
        Pickles.NpyHeader($"{{'descr': '{descr}', 'fortran_order': False, 'shape': {PyShape(shape)}, }}");

    private static string PyShape(IReadOnlyList<long> s) => s.Count == 1 ? $"({s[0]},)" : $"({string.Join(", ", s)})";

    /// <summary>The tiny network as an .npz with conv1_W.npy, conv1_b.npy, … (members for which
    /// <paramref name="include"/> is false are left out).</summary>
    internal static ZipBuilder TinyNpz(Func<string, bool>? include = null)
    {
        var zip = new ZipBuilder();
        var arch = TinyNet.Architecture;
        for (int i = 0; i < arch.Layers.Count; i++)
        {
            var l = arch.Layers[i];
            if (include?.Invoke($"{l.Name}_W.npy") ?? true)
                zip.Add($"{l.Name}_W.npy", PlainNpy(TinyNet.Weight(i, l.WeightShape), l.WeightShape.Select(d => (long)d).ToArray()));
            if (include?.Invoke($"{l.Name}_b.npy") ?? true)
                zip.Add($"{l.Name}_b.npy", PlainNpy(TinyNet.Bias(i, l.OutputChannels), [l.OutputChannels]));
        }
        return zip;
    }

    /// <summary>Writes the tiny network's members chosen by <paramref name="tinyMembers"/> (none when null), then
    /// <paramref name="hugeMember"/>: an .npy header for <paramref name="count"/> values of <paramref name="descr"/>
    /// and that many zero bytes, deflated at deflate's best ratio (~1032:1).</summary>
    internal static void WriteBomb(string path, string hugeMember, long count, Func<string, bool>? tinyMembers = null, string descr = "<f4")
    {
        var zip = tinyMembers is null ? new ZipBuilder() : TinyNpz(tinyMembers);
        byte[] header = NpyHeader(descr, [count]);
        long zeros = count * (descr.EndsWith('8') ? 8 : 4);
        zip.AddDeflated(hugeMember, ZipBuilder.DeflatedZeros(header, zeros), ZipBuilder.Crc32Zeros(ZipBuilder.Crc32(header), zeros), header.Length + zeros);
        File.WriteAllBytes(path, zip.ToBytes());
    }

    private static WeightFileException Refused(string path, WeightLoadOptions? options, out long allocated)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<WeightFileException>(() => WeightFile.Load(path, options));
        allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    /// <summary>Asserts the message holds <paramref name="fragment"/>, showing the whole message when not.</summary>
    internal static void Says(Exception e, string fragment) => Assert.True(e.Message.Contains(fragment, StringComparison.Ordinal), $"expected '{fragment}' in: {e.Message}");

    private static WeightFileException Refused(byte[] npz, WeightLoadOptions? options = null)
    {
        using var dir = new TempDir();
        return Refused(dir.Write("w.npz", npz), options ?? Tiny, out _);
    }

    [Fact]
    public void TheHandMadeBombInflatesToItsHeaderAndZerosWithTheRightCrc()
    {
        byte[] prefix = NpyHeader("<f4", [25_000]);
        foreach (long zeros in new long[] { 1, 258, 259, 100_000, 100_001 })
        {
            var inflated = new MemoryStream();
            using (var d = new DeflateStream(new MemoryStream(ZipBuilder.DeflatedZeros(prefix, zeros)), CompressionMode.Decompress))
                d.CopyTo(inflated);
            byte[] expected = [.. prefix, .. new byte[zeros]];
            Assert.Equal(expected, inflated.ToArray());
            Assert.Equal(ZipBuilder.Crc32(expected), ZipBuilder.Crc32Zeros(ZipBuilder.Crc32(prefix), zeros));
        }
        // And .NET's own zip reader takes the archive, CRC included.
        using var dir = new TempDir();
        string path = dir.File("z.npz");
        WriteBomb(path, "a.npy", 300_000);
        using var zip = ZipFile.OpenRead(path);
        using var s = zip.Entries[0].Open();
        s.CopyTo(Stream.Null);
    }

    [Fact]
    public void TheBuiltTinyArchiveReadsExactly()
    {
        // The refusals below change one thing each in this archive.
        using var dir = new TempDir();
        TinyNet.AssertExact(WeightFile.Load(dir.Write("w.npz", TinyNpz().ToBytes()), Tiny));
    }

    [Fact]
    public void MemberDeclaringHalfAGigaFloatIsRefusedOnItsHeaderBeforeInflating()
    {
        using var dir = new TempDir();
        string path = dir.File("bomb.npz");
        WriteBomb(path, "conv1_W.npy", 500_000_000);
        Assert.InRange(new FileInfo(path).Length, 1_000_000, 4_000_000);  // ~1000:1
        var e = Refused(path, null, out long allocated);
        Says(e, "layer 'conv1' weight has shape (500000000,) but AlexNet needs (11, 11, 3, 96)");
        // Inflating the member would allocate its 2 GB; reading its header needs well under a megabyte.
        Assert.True(allocated < 16 << 20, $"allocated {allocated:N0} bytes while refusing");
    }

    [Fact]
    public void MemberWithTheRightElementCountButOtherDtypeOrShapeIsRefusedBeforeInflating()
    {
        using var dir = new TempDir();
        string path = dir.File("f8.npz");
        // fc6 of the tiny net has 36·8 = 288 values; 288 float64 in one dimension is the wrong shape.
        WriteBomb(path, "fc6_W.npy", 288, n => n != "fc6_W.npy", descr: "<f8");
        Says(Refused(path, Tiny, out _), "layer 'fc6' weight has shape (288,) but AlexNet needs (36, 8)");
    }

    [Fact]
    public void MembersThatLoadDoesNotNeedAreNeverInflated()
    {
        using var dir = new TempDir();
        // fc9 is no layer of AlexNet; fc8 is skipped: 400 MB each, declared and deflated to ~400 KB.
        string unknown = dir.File("fc9.npz"), skipped = dir.File("fc8.npz");
        WriteBomb(unknown, "fc9_W.npy", 100_000_000, _ => true);
        WriteBomb(skipped, "fc8_W.npy", 100_000_000, n => n != "fc8_W.npy");
        foreach (var (path, options) in new[] { (unknown, Tiny), (skipped, new WeightLoadOptions { Architecture = TinyNet.Architecture, SkipLayers = ["fc8"] }) })
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            var w = WeightFile.Load(path, options);
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(TinyNet.Weight(5, [36, 8]), w.Fc6.Weight);
            Assert.True(allocated < 16 << 20, $"{Path.GetFileName(path)}: allocated {allocated:N0} bytes");
        }
    }

    [Fact]
    public void PickledMemberLargerThanTheArchitectureCanNeedIsRefusedBeforeInflating()
    {
        // An object-array member (a pickle) cannot be checked before it is read, so its declared size counts
        // against what the architecture can need: 8 bytes (float64) per parameter plus 1 MiB.
        const int payload = 50_000_000;
        byte[] pickleStart = [0x80, 2, 0x8e, .. BitConverter.GetBytes((long)payload)];  // PROTO 2, BINBYTES8
        byte[] member = [.. Pickles.ObjectNpy(pickleStart), .. new byte[payload], (byte)'.'];
        using var dir = new TempDir();
        string path = dir.Write("p.npz", new ZipBuilder().Add("net.npy", member).ToBytes());
        var e = Refused(path, Tiny, out long allocated);
        long budget = 8 * TinyNet.Architecture.ParameterCount + (1 << 20);
        Says(e, $"more than the {budget} bytes");
        Assert.True(allocated < 16 << 20, $"allocated {allocated:N0} bytes while refusing");
    }

    [Fact]
    public void MemberStoredTwiceIsRefusedNamingIt()
    {
        var zip = TinyNpz();
        zip.Add("conv1_W.npy", PlainNpy(new float[3 * 3 * 3 * 4], [3, 3, 3, 4]));
        var e = Refused(zip.ToBytes());
        Says(e, "'conv1_W.npy' twice");
    }

    [Theory]
    [InlineData("conv1/weights.npy")]
    [InlineData("conv1_W")]
    [InlineData("conv1.kernel.npy")]
    public void TwoMembersForTheSameArrayAreRefusedNamingBoth(string other)
    {
        var zip = TinyNpz();
        zip.Add(other, PlainNpy(new float[3 * 3 * 3 * 4], [3, 3, 3, 4]));
        var e = Refused(zip.ToBytes());
        Says(e, "'conv1_W.npy'");
        Says(e, $"'{other}'");
    }

    [Fact]
    public void ZeroDimensionDoesNotLetADimensionPastInt32Through()
    {
        // 0 · 4294967297 = 0 elements, but 4294967297 is no int: it must not become 1 (its low 32 bits).
        var zip = TinyNpz(n => n != "conv1_W.npy").Add("conv1_W.npy", NpyHeader("<f4", [0, 4_294_967_297]));
        Says(Refused(zip.ToBytes()), "4294967297");

        using var dir = new TempDir();
        string plain = dir.Write("zero.npy", NpyHeader("<f4", [4_294_967_296 + 7, 0]));
        using var h = File.OpenHandle(plain);
        var e = Assert.Throws<WeightFileException>(() => NpyReader.Read(new ByteSource(h, RandomAccess.GetLength(h), plain), requireEnd: true));
        Says(e, "4294967303");
    }

    [Fact]
    public void CompressedSizesNear2To63AreRefusedNotOverflowed()
    {
        // Two zip64 members claiming 2^62 compressed bytes each: their sum overflows a long.
        var zip = TinyNpz()
            .Add("x.npy", [1, 2, 3], stored: true, declaredCompressedSize: 1L << 62)
            .Add("y.npy", [1, 2, 3], stored: true, declaredCompressedSize: long.MaxValue - 5);
        Says(Refused(zip.ToBytes()), "more compressed bytes than the file has");
    }

    // ---- one test per limit on the archive itself ---------------------------------------------

    [Fact]
    public void MembersClaimingMoreCompressedBytesThanTheFileIsRefused()
    {
        // Members that share their data (a zip bomb's trick) claim more than the file holds.
        var zip = TinyNpz().Add("x.npy", [1, 2, 3], stored: true, declaredCompressedSize: 10_000_000);
        Says(Refused(zip.ToBytes()), "more compressed bytes than the file has");
    }

    [Fact]
    public void DeclaredSizePastDeflatesRatioIsRefused()
    {
        var zip = TinyNpz(n => n != "fc7_W.npy").Add("fc7_W.npy", PlainNpy(TinyNet.Weight(6, [8, 8]), [8, 8]), declaredSize: 5_000_000);
        var e = Refused(zip.ToBytes());
        Says(e, "declared size 5000000 is impossible");
        Says(e, "fc7_W.npy");
    }

    [Fact]
    public void DeclaredSizeThatDisagreesWithTheHeaderIsRefusedBeforeInflating()
    {
        // fc7's header says (8, 8) float32 = 256 bytes of data; the directory declares 64 bytes more.
        byte[] npy = PlainNpy(TinyNet.Weight(6, [8, 8]), [8, 8]);
        var zip = TinyNpz(n => n != "fc7_W.npy").Add("fc7_W.npy", [.. npy, .. new byte[64]]);
        Says(Refused(zip.ToBytes()), "accounts for 256 bytes but 320 follow");
    }

    [Fact]
    public void MoreMembersThanAnyWeightFileNeedsIsRefused()
    {
        var zip = TinyNpz();
        for (int i = 0; i < WeightFile.MaxNpzMembers; i++) zip.Add($"junk{i}.npy", [], stored: true);
        Says(Refused(zip.ToBytes()), $"more than {WeightFile.MaxNpzMembers} members");
    }

    [Fact]
    public void MemberNameLongerThanTheLimitIsRefused()
    {
        var zip = TinyNpz().Add(new string('a', WeightFile.MaxNpzNameLength + 1) + ".npy", [], stored: true);
        var e = Refused(zip.ToBytes());
        Says(e, $"longer than {WeightFile.MaxNpzNameLength}");
        Assert.True(e.Message.Length < 600, "the message quotes the whole name");
    }

    [Fact]
    public void TruncatedDirectoryIsNotAReadableNpz()
    {
        byte[] zip = TinyNpz().ToBytes();
        Says(Refused(zip[..^10]), "not a readable .npz");
    }

    [Fact]
    public void DamagedDeflateDataIsRefused()
    {
        byte[] good = PlainNpy(TinyNet.Weight(5, [36, 8]), [36, 8]);
        byte[] deflated = ZipBuilder.Deflate(good);
        for (int i = deflated.Length / 2; i < deflated.Length; i++) deflated[i] = 0xff;
        var zip = TinyNpz(n => n != "fc6_W.npy").AddDeflated("fc6_W.npy", deflated, ZipBuilder.Crc32(good), good.Length);
        Says(Refused(zip.ToBytes()), "damaged");
    }
}
