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
    public sealed record Layer(string Name, float[] Weight, int[] WeightShape, float[] Bias);

    private readonly Stream _s;
    private int _memo = 1;
    private int _reconstruct, _ndarray, _dtype;
    private int? _f4;

    private Py2PickleWriter(Stream s) => _s = s;

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
        const string dict = "{'descr': '|O', 'fortran_order': False, 'shape': (), }";
        int total = 10 + dict.Length + 1;
        int padded = (total + 15) / 16 * 16;
        string header = dict + new string(' ', padded - total) + "\n";
        s.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        Span<byte> len = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)header.Length);
        s.Write(len);
        s.Write(Encoding.ASCII.GetBytes(header));
        new Py2PickleWriter(s).Pickle(layers.ToList(), module);
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
            Op(']'); Put();
            Op('(');
            Array(l.Weight, l.WeightShape);
            Array(l.Bias, [l.Bias.Length]);
            Op('e');
        }
        Op('u');
        Op('a');
        Op('t'); Put();
        Op('b');
        Op('.');
    }

    private void Array(float[] data, int[] shape)
    {
        Get(_reconstruct); Get(_ndarray);
        Int(0); Op(0x85); Put(); Str("b"); Op(0x87); Put(); Op('R'); Put();
        Op('('); Int(1);
        if (shape.Length is >= 1 and <= 3)
        {
            foreach (int d in shape) Int(d);
            Op((byte)(0x84 + shape.Length));
        }
        else
        {
            Op('(');
            foreach (int d in shape) Int(d);
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
        Bytes(MemoryMarshal.AsBytes(data.AsSpan()));
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
        else { Op('J'); BinaryPrimitives.WriteInt32LittleEndian(b, (int)v); _s.Write(b); }
    }

    /// <summary>A Python 2 str: SHORT_BINSTRING, memoised when 2 or more characters long (as cPickle does).</summary>
    private void Str(string s)
    {
        Bytes(Encoding.Latin1.GetBytes(s), memoShort: s.Length >= 2);
    }

    private void Bytes(ReadOnlySpan<byte> data, bool memoShort = true)
    {
        if (data.Length < 256) { Op('U'); Op((byte)data.Length); }
        else { Op('T'); Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, data.Length); _s.Write(b); }
        _s.Write(data);
        if (data.Length >= 256 || memoShort) Put();
    }
}
