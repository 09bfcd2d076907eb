using System.Text;

namespace AlexNet.Cuda.Weights;

/// <summary>
/// Reads one <c>.npy</c> (format versions 1.0, 2.0, 3.0): the magic, the header (a Python dict literal with
/// <c>descr</c>, <c>fortran_order</c>, <c>shape</c>), then either the raw array data or, for the object dtype,
/// a pickle run by <see cref="PickleMachine"/>.
/// </summary>
/// <summary>A .npy header, checked: the dtype, the order flag, the shape and its element count.</summary>
internal sealed record NpyHeader(NpyDType DType, bool Fortran, int[] Shape, long Count);

internal static class NpyReader
{
    /// <summary>Largest element count of one array: its float32 bytes must fit one span (2 GiB).</summary>
    public const long MaxElements = int.MaxValue / 4;

    private const int MaxHeaderLength = 1 << 20;
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads the array at the current position of <paramref name="src"/>: an <see cref="NpyArray"/>
    /// for numeric data, or the unpickled value (see <see cref="PickleMachine"/>) for an object array.</summary>
    public static object? Read(ByteSource src, bool requireEnd) => ReadBody(src, ReadHeader(src, requireEnd));

    /// <summary>
    /// Reads the preamble and the header dict, and nothing more (with <see cref="ByteSource.ReadAhead"/> off, not
    /// one byte of the data: an .npz member is checked before its data is inflated). For numeric data, checks that
    /// the bytes the shape needs are there and, with <paramref name="requireEnd"/>, that no more follow.
    /// </summary>
    public static NpyHeader ReadHeader(ByteSource src, bool requireEnd)
    {
        long start = src.Position;
        Span<byte> magic = stackalloc byte[6];
        if (src.Remaining < 10)
            throw new WeightFileException($"{src.Name}: {src.Remaining} bytes is too short for a .npy file (it needs at least a 10-byte preamble)", start);
        src.ReadExactly(magic, "the .npy magic");
        if (!magic.SequenceEqual(Magic))
            throw new WeightFileException($"{src.Name}: not a .npy file (the first bytes are not \\x93NUMPY); expected a numpy .npy or .npz weight file", start);
        byte major = src.ReadByte("the .npy version"), minor = src.ReadByte("the .npy version");
        if (major is < 1 or > 3 || minor != 0)
            throw new WeightFileException($"{src.Name}: .npy format version {major}.{minor} is not supported (1.0, 2.0 and 3.0 are)", start + 6);
        long headerLength = major == 1 ? src.ReadUInt16("the header length") : src.ReadUInt32("the header length");
        if (headerLength > MaxHeaderLength)
            throw new WeightFileException($"{src.Name}: the .npy header claims {headerLength} bytes (more than {MaxHeaderLength}); the file is damaged", start + 8);
        src.Require(headerLength, "the .npy header");
        long headerAt = src.Position;
        var headerBytes = new byte[headerLength];
        src.ReadExactly(headerBytes, "the .npy header");
        string header;
        try
        {
            header = (major == 3 ? new UTF8Encoding(false, true) : Encoding.Latin1).GetString(headerBytes);
        }
        catch (DecoderFallbackException)
        {
            throw new WeightFileException($"{src.Name}: the .npy header is not valid UTF-8", headerAt);
        }
        var (descr, fortran, dims) = ParseHeader(header, src.Name, headerAt);
        var dtype = NpyDType.Parse(descr, null, src.Name, headerAt);
        var (shape, count) = NpyArray.CheckedShape(dims, MaxElements, src.Name, headerAt);
        var h = new NpyHeader(dtype, fortran, shape, count);
        if (dtype.IsObject) return h;
        long bytes = count * dtype.ItemSize;
        src.Require(bytes, $"the array data of shape {NpyArray.FormatShape(shape)} {dtype}");
        if (requireEnd && src.Remaining != bytes)
            throw new WeightFileException(
                $"{src.Name}: the header's shape {NpyArray.FormatShape(shape)} {dtype} accounts for {bytes} bytes but {src.Remaining} follow it; the header or the file is wrong",
                src.Position);
        return h;
    }

    /// <summary>Reads what follows the header <paramref name="h"/>: the array data, or the pickle.</summary>
    public static object? ReadBody(ByteSource src, NpyHeader h)
    {
        src.ReadAhead = true;
        if (h.DType.IsObject)
            return new PickleMachine(src).Run();
        float[] data = NpyArray.Allocate(h.Count);
        h.DType.ReadInto(data, span => src.ReadExactly(span, "the array data"));
        if (h.Fortran) data = NpyArray.FortranToC(data, h.Shape);
        return new NpyArray(h.Shape, data, h.DType.ToString(), h.Fortran);
    }

    internal static string FormatShape(IReadOnlyList<long> shape) =>
        shape.Count == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";

    /// <summary>Parses numpy's header: <c>{'descr': '&lt;f4', 'fortran_order': False, 'shape': (3, 4), }</c>.</summary>
    internal static (string Descr, bool Fortran, long[] Shape) ParseHeader(string text, string name, long offset)
    {
        var p = new HeaderParser(text, name, offset);
        string? descr = null;
        bool? fortran = null;
        long[]? shape = null;
        p.Expect('{');
        while (true)
        {
            if (p.TryConsume('}')) break;
            string key = p.ReadString();
            p.Expect(':');
            switch (key)
            {
                case "descr":
                    if (p.Peek() is '[' or '{')
                        throw p.Error("structured dtypes (a list or dict descr) are not supported; weights must be plain float arrays");
                    descr = p.ReadString();
                    break;
                case "fortran_order": fortran = p.ReadBool(); break;
                case "shape": shape = p.ReadShape(); break;
                default: throw p.Error($"unknown header key {WeightFileException.Quote(key)}");
            }
            if (!p.TryConsume(',')) { p.Expect('}'); break; }
        }
        p.SkipSpace();
        if (!p.AtEnd) throw p.Error("text after the header dict");
        if (descr is null || fortran is null || shape is null)
            throw new WeightFileException($"{name}: the .npy header lacks {(descr is null ? "'descr'" : fortran is null ? "'fortran_order'" : "'shape'")}", offset);
        return (descr, fortran.Value, shape);
    }

    private sealed class HeaderParser(string s, string name, long offset)
    {
        private int _i;

        public bool AtEnd => _i >= s.Length;

        public WeightFileException Error(string what) =>
            new($"{name}: bad .npy header at character {_i}: {what}", offset);

        public void SkipSpace()
        {
            while (_i < s.Length && s[_i] is ' ' or '\t' or '\n' or '\r' or '\0') _i++;
        }

        public char Peek()
        {
            SkipSpace();
            return _i < s.Length ? s[_i] : '\0';
        }

        public bool TryConsume(char c)
        {
            if (Peek() != c) return false;
            _i++;
            return true;
        }

        public void Expect(char c)
        {
            if (!TryConsume(c)) throw Error($"expected '{c}'");
        }

        public string ReadString()
        {
            char q = Peek();
            if (q is not ('\'' or '"')) throw Error("expected a quoted string");
            int start = ++_i;
            while (_i < s.Length && s[_i] != q)
            {
                if (s[_i] == '\\') throw Error("escapes in header strings are not supported");
                _i++;
            }
            if (_i >= s.Length) throw Error("unterminated string");
            return s[start.._i++];
        }

        public bool ReadBool()
        {
            SkipSpace();
            if (string.CompareOrdinal(s, _i, "True", 0, 4) == 0) { _i += 4; return true; }
            if (string.CompareOrdinal(s, _i, "False", 0, 5) == 0) { _i += 5; return false; }
            throw Error("expected True or False");
        }

        public long[] ReadShape()
        {
            char open = Peek();
            if (open is not ('(' or '[')) throw Error("expected a shape tuple");
            char close = open == '(' ? ')' : ']';
            _i++;
            var dims = new List<long>();
            while (!TryConsume(close))
            {
                SkipSpace();
                int start = _i;
                while (_i < s.Length && char.IsAsciiDigit(s[_i]) && _i - start < 18) _i++;
                if (_i == start) throw Error("expected a dimension (a non-negative integer)");
                if (_i < s.Length && char.IsAsciiDigit(s[_i])) throw Error("dimension too large");
                dims.Add(long.Parse(s.AsSpan(start, _i - start), provider: System.Globalization.CultureInfo.InvariantCulture));
                if (_i < s.Length && s[_i] is 'L' or 'l') _i++;  // Python 2 long suffix
                if (dims.Count > 32) throw Error("more than 32 dimensions");
                if (!TryConsume(',')) { Expect(close); break; }
            }
            return dims.ToArray();
        }
    }
}
