using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>
/// Writes a weight file byte by byte the way Python 2 numpy's <c>np.save(path, dict)</c> did (cPickle,
/// protocol 2): the 1.0 header for a 0-d <c>|O</c> array, then <c>PROTO 2</c>, <c>GLOBAL
/// 'numpy.core.multiarray\n_reconstruct\n'</c>, <c>BINPUT</c> after every memoised object (cPickle numbers
/// the memo from 1 and skips strings shorter than 2), <c>SHORT_BINSTRING</c> for keys and dtype codes,
/// <c>BINSTRING</c> for array data, the float32 dtype shared through <c>BINGET</c> after its first use,
/// <c>NEWFALSE</c> for is_fortran, and <c>MARK … SETITEMS</c>/<c>APPENDS</c> for the dict and lists.
/// </summary>
internal sealed class Py2PickleWriter
{
    public sealed record Layer(string Name, float[] Weight, int[] WeightShape, float[] Bias)
    {
        /// <summary>Written instead of <see cref="WeightShape"/>: a shape no int holds (LONG1 for the large dimensions).</summary>
        public long[]? DeclaredWeightShape { get; init; }

        /// <summary>Write the layer as caffe-tensorflow's <c>{'weights': W, 'biases': b}</c> instead of <c>[W, b]</c>.</summary>
        public bool AsDict { get; init; }

        /// <summary>More (key, value) pairs of that dict, after weights and biases: a byte-string key and a 1-D
        /// array (null: None).</summary>
        public IReadOnlyList<(byte[] Key, float[]? Value)> DictExtras { get; init; } = [];
    }

    private readonly Stream _s;
    private int _memo = 1;
    private int _reconstruct, _ndarray, _dtype;
    private int? _f4;

    private Py2PickleWriter(Stream s) => _s = s;

    /// <summary>Write array data as Python 3's protocol 2 does, <c>_codecs.encode(text, 'latin1')</c> with the bytes
    /// as a BINUNICODE str, instead of Python 2's BINSTRING.</summary>
    private bool _dataAsText;

    private int _encode;

    /// <summary>The file as Python 3 numpy's <c>pickle.dump(…, protocol=2)</c> stores array data: text that
    /// <c>_codecs.encode</c> turns back into bytes.</summary>
    public static byte[] ToBytesWithTextData(IEnumerable<Layer> layers)
    {
        var ms = new MemoryStream();
        WriteHeader(ms);
        new Py2PickleWriter(ms) { _dataAsText = true }.Pickle(layers.ToList(), "numpy.core.multiarray");
        return ms.ToArray();
    }

    public static byte[] ToBytes(IEnumerable<Layer> layers, string module = "numpy.core.multiarray")
    {
        var ms = new MemoryStream();
        Write(ms, layers, module);
        return ms.ToArray();
    }

    public static void WriteFile(string path, IEnumerable<Layer> layers, string module = "numpy.core.multiarray")
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Write(fs, layers, module);
    }

    public static void Write(Stream s, IEnumerable<Layer> layers, string module = "numpy.core.multiarray")
    {
        WriteHeader(s);
        new Py2PickleWriter(s).Pickle(layers.ToList(), module);
    }

    private static void WriteHeader(Stream s)
    {
        const string dict = "{'descr': '|O', 'fortran_order': False, 'shape': (), }";
        int total = 10 + dict.Length + 1;
        int padded = (total + 15) / 16 * 16;
        string header = dict + new string(' ', padded - total) + "\n";
        s.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        Span<byte> len = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)header.Length);
        s.Write(len);
        s.Write(Encoding.ASCII.GetBytes(header));
    }

    private void Pickle(List<Layer> layers, string module)
    {
        Op(0x80); Op(2);
        Global(module, "_reconstruct"); _reconstruct = Put();
        Global("numpy", "ndarray"); _ndarray = Put();
        Int(0); Op(0x85); Put(); Str("b"); Op(0x87); Put(); Op('R'); Put();
        Op('('); Int(1); Op(')');
        Global("numpy", "dtype"); _dtype = Put();
        Str("O8"); Int(0); Int(1); Op(0x87); Put(); Op('R'); Put();
        DTypeState('|', 63);
        Op(0x89);
        Op(']'); Put();
        Op('}'); Put();
        Op('(');
        foreach (var l in layers)
        {
            Str(l.Name);
            if (l.AsDict)
            {
                Op('}'); Put();
                Op('(');
                Str("weights"); Array(l.Weight, l.DeclaredWeightShape ?? [.. l.WeightShape.Select(d => (long)d)]);
                Str("biases"); Array(l.Bias, [l.Bias.Length]);
                foreach (var (key, value) in l.DictExtras)
                {
                    Bytes(key);
                    if (value is null) Op('N');
                    else Array(value, [value.Length]);
                }
                Op('u');
                continue;
            }
            Op(']'); Put();
            Op('(');
            Array(l.Weight, l.DeclaredWeightShape ?? [.. l.WeightShape.Select(d => (long)d)]);
            Array(l.Bias, [l.Bias.Length]);
            Op('e');
        }
        Op('u');
        Op('a');
        Op('t'); Put();
        Op('b');
        Op('.');
    }

    private void Array(float[] data, long[] shape)
    {
        Get(_reconstruct); Get(_ndarray);
        Int(0); Op(0x85); Put(); Str("b"); Op(0x87); Put(); Op('R'); Put();
        Op('('); Int(1);
        if (shape.Length is >= 1 and <= 3)
        {
            foreach (long d in shape) Int(d);
            Op((byte)(0x84 + shape.Length));
        }
        else
        {
            Op('(');
            foreach (long d in shape) Int(d);
            Op('t');
        }
        Put();
        if (_f4 is int f4) Get(f4);
        else
        {
            Get(_dtype); Str("f4"); Int(0); Int(1); Op(0x87); Put(); Op('R'); _f4 = Put();
            DTypeState('<', 0);
        }
        Op(0x89);
        if (_dataAsText) Latin1Text(MemoryMarshal.AsBytes(data.AsSpan()));
        else Bytes(MemoryMarshal.AsBytes(data.AsSpan()));
        Op('t'); Put();
        Op('b');
    }

    private void DTypeState(char order, int flags)
    {
        Op('('); Int(3); Str(order.ToString()); Op('N'); Op('N'); Op('N'); Int(-1); Int(-1); Int(flags); Op('t'); Put();
        Op('b');
    }

    private void Op(char c) => _s.WriteByte((byte)c);

    private void Op(byte b) => _s.WriteByte(b);

    private void Global(string module, string name)
    {
        Op('c');
        _s.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
    }

    private int Put()
    {
        int i = _memo++;
        if (i < 256) { Op('q'); Op((byte)i); }
        else { Op('r'); Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, i); _s.Write(b); }
        return i;
    }

    private void Get(int i)
    {
        if (i < 256) { Op('h'); Op((byte)i); }
        else { Op('j'); Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, i); _s.Write(b); }
    }

    private void Int(long v)
    {
        Span<byte> b = stackalloc byte[4];
        if (v is >= 0 and < 256) { Op('K'); Op((byte)v); }
        else if (v is >= 0 and < 65536) { Op('M'); BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v); _s.Write(b[..2]); }
        else if (v is >= int.MinValue and <= int.MaxValue) { Op('J'); BinaryPrimitives.WriteInt32LittleEndian(b, (int)v); _s.Write(b); }
        else
        {
            // LONG1: little-endian two's complement, 8 bytes (cPickle wrote Python 2 longs this way).
            Op(0x8a); Op(8);
            Span<byte> l = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(l, v);
            _s.Write(l);
        }
    }

    /// <summary>A Python 2 str: SHORT_BINSTRING, memoised when 2 or more characters long (as cPickle does).</summary>
    private void Str(string s)
    {
        Bytes(Encoding.Latin1.GetBytes(s), memoShort: s.Length >= 2);
    }

    /// <summary><c>_codecs.encode(data.decode('latin1'), 'latin1')</c>: GLOBAL (memoised once), BINUNICODE of the
    /// UTF-8 text, 'latin1', TUPLE2, REDUCE.</summary>
    private void Latin1Text(ReadOnlySpan<byte> data)
    {
        if (_encode == 0) { Global("_codecs", "encode"); _encode = Put(); }
        else Get(_encode);
        byte[] utf8 = Encoding.UTF8.GetBytes(Encoding.Latin1.GetString(data));
        Op('X'); Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, utf8.Length); _s.Write(b);
        _s.Write(utf8); Put();
        Op('X'); BinaryPrimitives.WriteInt32LittleEndian(b, 6); _s.Write(b); _s.Write("latin1"u8); Put();
        Op(0x86); Put(); Op('R'); Put();
    }

    private void Bytes(ReadOnlySpan<byte> data, bool memoShort = true)
    {
        if (data.Length < 256) { Op('U'); Op((byte)data.Length); }
        else { Op('T'); Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, data.Length); _s.Write(b); }
        _s.Write(data);
        if (data.Length >= 256 || memoShort) Put();
    }
}
