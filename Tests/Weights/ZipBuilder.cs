using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>
/// Writes a zip byte by byte (PKWARE APPNOTE: local header, data, central directory, end record), so a test
/// can declare what a hostile archive declares: sizes that lie, repeated names, zip64 sizes near 2^63, many
/// members. Members are stored or deflated; sizes above 4 GiB − 1 go in the zip64 extra field.
/// </summary>
internal sealed class ZipBuilder
{
    private sealed record Member(string Name, byte[] Data, bool Deflated, uint Crc, long Size, long CompressedSize);

    private readonly List<Member> _members = [];

    /// <summary>Adds <paramref name="content"/>, deflated unless <paramref name="stored"/>; the declared sizes
    /// default to the true ones.</summary>
    public ZipBuilder Add(string name, byte[] content, bool stored = false, long? declaredSize = null, long? declaredCompressedSize = null)
    {
        byte[] data = stored ? content : Deflate(content);
        _members.Add(new(name, data, !stored, Crc32(content), declaredSize ?? content.Length, declaredCompressedSize ?? data.Length));
        return this;
    }

    /// <summary>Adds already-deflated bytes with their CRC and uncompressed size.</summary>
    public ZipBuilder AddDeflated(string name, byte[] deflated, uint crc, long size)
    {
        _members.Add(new(name, deflated, true, crc, size, deflated.Length));
        return this;
    }

    public byte[] ToBytes()
    {
        var file = new MemoryStream();
        var central = new MemoryStream();
        foreach (var m in _members)
        {
            long offset = file.Position;
            bool zip64 = m.Size >= uint.MaxValue || m.CompressedSize >= uint.MaxValue;
            byte[] name = Encoding.UTF8.GetBytes(m.Name);
            byte[] extra = zip64 ? Zip64Extra(m.Size, m.CompressedSize) : [];  // same in both headers, as .NET checks
            Write(file, 0x04034b50u); Write16(file, zip64 ? 45 : 20); Write16(file, 0); Write16(file, m.Deflated ? 8 : 0);
            Write16(file, 0); Write16(file, 0x21);  // time 00:00, date 1980-01-01
            Write(file, m.Crc); Write(file, Size32(m.CompressedSize)); Write(file, Size32(m.Size));
            Write16(file, name.Length); Write16(file, extra.Length); file.Write(name); file.Write(extra);
            file.Write(m.Data);

            Write(central, 0x02014b50u); Write16(central, 45); Write16(central, zip64 ? 45 : 20); Write16(central, 0);
            Write16(central, m.Deflated ? 8 : 0); Write16(central, 0); Write16(central, 0x21);
            Write(central, m.Crc); Write(central, Size32(m.CompressedSize)); Write(central, Size32(m.Size));
            Write16(central, name.Length); Write16(central, extra.Length); Write16(central, 0);
            Write16(central, 0); Write16(central, 0); Write(central, 0u); Write(central, checked((uint)offset));
            central.Write(name); central.Write(extra);
        }
        long cdOffset = file.Position;
        central.Position = 0;
        central.CopyTo(file);
        Write(file, 0x06054b50u); Write16(file, 0); Write16(file, 0);
        Write16(file, _members.Count); Write16(file, _members.Count);
        Write(file, checked((uint)central.Length)); Write(file, checked((uint)cdOffset)); Write16(file, 0);
        return file.ToArray();
    }

    public static byte[] Deflate(byte[] content)
    {
        var ms = new MemoryStream();
        using (var d = new DeflateStream(ms, CompressionLevel.Optimal, leaveOpen: true)) d.Write(content);
        return ms.ToArray();
    }

    private static uint Size32(long size) => size >= uint.MaxValue ? uint.MaxValue : (uint)size;

    /// <summary>The zip64 extra field: only the sizes whose 32-bit field says 0xFFFFFFFF, uncompressed first.</summary>
    private static byte[] Zip64Extra(long size, long compressed)
    {
        long[] values = [.. new[] { size, compressed }.Where(v => v >= uint.MaxValue)];
        var b = new byte[4 + 8 * values.Length];
        BinaryPrimitives.WriteUInt16LittleEndian(b, 0x0001);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2), (ushort)(8 * values.Length));
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(4 + 8 * i), values[i]);
        return b;
    }

    private static void Write(Stream s, uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); s.Write(b); }

    private static void Write16(Stream s, int v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, checked((ushort)v)); s.Write(b); }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>
    /// A deflate stream of <paramref name="prefix"/> followed by <paramref name="zeros"/> zero bytes, at deflate's
    /// best ratio (~1032:1), written directly instead of compressing gigabytes: a stored block with the prefix,
    /// then one dynamic-Huffman block whose codes are literal 0 = 10, end of block = 11, length 258 = 0 and
    /// distance 1 = 0, so each 258 zeros after the first take two bits.
    /// </summary>
    public static byte[] DeflatedZeros(byte[] prefix, long zeros)
    {
        if (prefix.Length > 65535 || zeros < 1) throw new ArgumentOutOfRangeException(nameof(prefix));
        var w = new BitWriter();
        w.Bits(0, 1); w.Bits(0, 2); w.AlignToByte();  // stored block, not the last
        w.Bits((ulong)prefix.Length, 16); w.Bits((ulong)(~prefix.Length & 0xffff), 16);
        foreach (byte b in prefix) w.Bits(b, 8);
        w.Bits(1, 1); w.Bits(2, 2);  // last block, dynamic Huffman
        w.Bits(286 - 257, 5); w.Bits(1 - 1, 5); w.Bits(18 - 4, 4);  // HLIT, HDIST, HCLEN
        // Code-length code lengths in deflate's order 16 17 18 0 8 7 9 6 10 5 11 4 12 3 13 2 14 1: 18 gets 1 bit,
        // 1 and 2 get 2 bits; canonical codes 18 = 0, 1 = 10, 2 = 11.
        foreach (int len in new[] { 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2 }) w.Bits((ulong)len, 3);
        void ZeroRun(int n) { w.Code(0b0, 1); w.Bits((ulong)(n - 11), 7); }  // symbol 18: 11–138 zeros
        // Literal/length lengths: 0 → 2, 1…255 → 0, 256 → 2, 257…284 → 0, 285 → 1; then distance 0 → 1.
        w.Code(0b11, 2); ZeroRun(138); ZeroRun(117); w.Code(0b11, 2); ZeroRun(28); w.Code(0b10, 2); w.Code(0b10, 2);
        long matches = (zeros - 1) / 258, literals = (zeros - 1) % 258;
        w.Code(0b10, 2);  // the first zero, a literal
        w.ZeroBits(2 * matches);  // length 258 (code 0), distance 1 (code 0)
        for (long i = 0; i < literals; i++) w.Code(0b10, 2);
        w.Code(0b11, 2);  // end of block
        return w.ToArray();
    }

    /// <summary>Deflate's bit order: fields least significant bit first, Huffman codes most significant first.</summary>
    private sealed class BitWriter
    {
        private readonly MemoryStream _out = new();
        private ulong _acc;
        private int _n;

        public void Bits(ulong value, int count)
        {
            for (int i = 0; i < count; i++) Bit((int)(value >> i) & 1);
        }

        public void Code(uint code, int length)
        {
            for (int i = length - 1; i >= 0; i--) Bit((int)(code >> i) & 1);
        }

        public void ZeroBits(long count)
        {
            while (count > 0 && _n != 0) { Bit(0); count--; }
            long bytes = count / 8;
            var zeros = new byte[1 << 16];
            for (; bytes > 0; bytes -= zeros.Length) _out.Write(zeros, 0, (int)Math.Min(bytes, zeros.Length));
            for (long i = 0; i < count % 8; i++) Bit(0);
        }

        public void AlignToByte()
        {
            while (_n != 0) Bit(0);
        }

        public byte[] ToArray()
        {
            AlignToByte();
            return _out.ToArray();
        }

        private void Bit(int b)
        {
            _acc |= (ulong)b << _n;
            if (++_n == 8) { _out.WriteByte((byte)_acc); _acc = 0; _n = 0; }
        }
    }

    /// <summary>The CRC-32 of data whose CRC is <paramref name="crc"/> followed by <paramref name="zeros"/> zero
    /// bytes: one zero byte is a linear map of the CRC register over GF(2), raised to the power by squaring.</summary>
    public static uint Crc32Zeros(uint crc, long zeros)
    {
        var m = new uint[32];
        for (int i = 0; i < 32; i++) m[i] = CrcTable[(1u << i) & 0xff] ^ ((1u << i) >> 8);
        uint r = ~crc;
        for (; zeros > 0; zeros >>= 1)
        {
            if ((zeros & 1) != 0) r = Apply(m, r);
            var sq = new uint[32];
            for (int i = 0; i < 32; i++) sq[i] = Apply(m, m[i]);
            m = sq;
        }
        return ~r;
    }

    private static uint Apply(uint[] m, uint v)
    {
        uint r = 0;
        for (int i = 0; v != 0; i++, v >>= 1)
            if ((v & 1) != 0) r ^= m[i];
        return r;
    }

    /// <summary>The zip CRC-32 (reflected polynomial 0xEDB88320).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data, uint crc = 0)
    {
        crc = ~crc;
        foreach (byte b in data) crc = CrcTable[(crc ^ b) & 0xff] ^ (crc >> 8);
        return ~crc;
    }
}
