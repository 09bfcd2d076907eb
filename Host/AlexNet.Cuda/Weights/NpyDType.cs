using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Weights;

/// <summary>
/// The element types a weight array may have: float16/32/64 in either byte order, and the object dtype
/// (<c>|O</c>) of the pickled container. Anything else is refused by <see cref="Parse"/>.
/// </summary>
internal readonly record struct NpyDType(char Kind, int ItemSize, bool BigEndian)
{
    public bool IsObject => Kind == 'O';

    /// <summary>numpy's spelling: <c>&lt;f4</c>, <c>&gt;f8</c>, <c>|O</c>.</summary>
    public override string ToString() => IsObject ? "|O" : $"{(BigEndian ? '>' : '<')}f{ItemSize}";

    /// <summary>Parses a descr such as <c>&lt;f4</c>, <c>f4</c> with a separate byte-order character, or <c>|O</c>.</summary>
    public static NpyDType Parse(string descr, char? byteOrder, string where, long? offset)
    {
        string d = descr;
        char order = byteOrder ?? '=';
        if (d.Length > 0 && d[0] is '<' or '>' or '|' or '=')
        {
            order = d[0];
            d = d[1..];
        }
        bool big = order == '>';
        switch (d)
        {
            case "f2" or "e": return new('f', 2, big);
            case "f4" or "f": return new('f', 4, big);
            case "f8" or "d": return new('f', 8, big);
            case "O" or "O8" or "O4": return new('O', 8, false);
        }
        throw new WeightFileException(
            $"{where}: dtype {WeightFileException.Quote(descr)} is not supported; weights must be float16, float32 or float64 (or the object array of a pickled dict)",
            offset);
    }

    /// <summary>
    /// Fills <paramref name="dst"/> with <c>dst.Length</c> elements of this dtype read by <paramref name="read"/>
    /// (which must deliver exactly the bytes asked for). float32 lands directly in <paramref name="dst"/>;
    /// other types go through a 64 KiB staging buffer.
    /// </summary>
    public void ReadInto(Span<float> dst, ReadOnlySpanAction read)
    {
        if (ItemSize == 4)
        {
            Span<byte> bytes = MemoryMarshal.AsBytes(dst);
            read(bytes);
            if (BigEndian != !BitConverter.IsLittleEndian)
            {
                Span<int> ints = MemoryMarshal.Cast<float, int>(dst);
                BinaryPrimitives.ReverseEndianness(ints, ints);
            }
            return;
        }
        byte[] stage = new byte[1 << 16];
        int per = stage.Length / ItemSize;
        while (!dst.IsEmpty)
        {
            int n = Math.Min(per, dst.Length);
            Span<byte> s = stage.AsSpan(0, n * ItemSize);
            read(s);
            if (ItemSize == 8)
            {
                for (int i = 0; i < n; i++)
                {
                    long bits = BigEndian ? BinaryPrimitives.ReadInt64BigEndian(s[(i * 8)..]) : BinaryPrimitives.ReadInt64LittleEndian(s[(i * 8)..]);
                    dst[i] = (float)BitConverter.Int64BitsToDouble(bits);
                }
            }
            else
            {
                for (int i = 0; i < n; i++)
                {
                    ushort bits = BigEndian ? BinaryPrimitives.ReadUInt16BigEndian(s[(i * 2)..]) : BinaryPrimitives.ReadUInt16LittleEndian(s[(i * 2)..]);
                    dst[i] = (float)BitConverter.UInt16BitsToHalf(bits);
                }
            }
            dst = dst[n..];
        }
    }

    internal delegate void ReadOnlySpanAction(Span<byte> destination);
}
