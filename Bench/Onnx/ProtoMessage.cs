using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace AlexNet.Cuda.Onnx;

/// <summary>
/// A protocol-buffers message being built, field by field, and written once with every length known: what an ONNX
/// model file is (onnx.proto, proto2 wire format). Only the three wire types ONNX's messages use here: varints,
/// 32-bit floats and length-delimited fields (strings, bytes, packed lists and nested messages). The float data
/// of the weights is referenced, not copied, until <see cref="WriteTo"/>, so a 244 MB model is assembled with
/// one copy of its weights.
/// </summary>
internal sealed class ProtoMessage
{
    private const int WireVarint = 0, WireLengthDelimited = 2, WireFixed32 = 5;

    private readonly List<Field> _fields = [];

    private abstract record Field(int Number)
    {
        public abstract long PayloadLength { get; }
    }

    private sealed record VarintField(int Number, ulong Value) : Field(Number)
    {
        public override long PayloadLength => VarintLength(Value);
    }

    private sealed record FloatField(int Number, float Value) : Field(Number)
    {
        public override long PayloadLength => 4;
    }

    private sealed record BytesField(int Number, byte[] Value) : Field(Number)
    {
        public override long PayloadLength => Value.Length;
    }

    private sealed record FloatsField(int Number, ReadOnlyMemory<float> Value) : Field(Number)
    {
        public override long PayloadLength => 4L * Value.Length;
    }

    private sealed record MessageField(int Number, ProtoMessage Value) : Field(Number)
    {
        public override long PayloadLength => Value.Length;
    }

    /// <summary>The encoded size of this message in bytes.</summary>
    public long Length => _fields.Sum(f => VarintLength(Tag(f)) + (f is VarintField or FloatField ? 0 : VarintLength((ulong)f.PayloadLength)) + f.PayloadLength);

    /// <summary>An int32, int64 or enum field (negative values as proto's ten-byte two's complement).</summary>
    public ProtoMessage Int(int number, long value)
    {
        _fields.Add(new VarintField(number, unchecked((ulong)value)));
        return this;
    }

    public ProtoMessage Float(int number, float value)
    {
        _fields.Add(new FloatField(number, value));
        return this;
    }

    public ProtoMessage String(int number, string value)
    {
        _fields.Add(new BytesField(number, Encoding.UTF8.GetBytes(value)));
        return this;
    }

    /// <summary>A repeated int64 field, packed (one length-delimited field of varints).</summary>
    public ProtoMessage PackedInts(int number, IEnumerable<long> values)
    {
        var bytes = new List<byte>();
        foreach (long v in values)
        {
            ulong u = unchecked((ulong)v);
            while (u >= 0x80)
            {
                bytes.Add((byte)(u | 0x80));
                u >>= 7;
            }
            bytes.Add((byte)u);
        }
        _fields.Add(new BytesField(number, [.. bytes]));
        return this;
    }

    /// <summary>A bytes field holding <paramref name="values"/> as little-endian IEEE floats (TensorProto.raw_data).</summary>
    public ProtoMessage RawFloats(int number, ReadOnlyMemory<float> values)
    {
        _fields.Add(new FloatsField(number, values));
        return this;
    }

    public ProtoMessage Message(int number, ProtoMessage value)
    {
        _fields.Add(new MessageField(number, value));
        return this;
    }

    /// <summary>The message's encoding, in a new array of exactly <see cref="Length"/> bytes.</summary>
    public byte[] ToArray()
    {
        long length = Length;
        if (length > Array.MaxLength)
            throw new AlexNetException($"an ONNX model of {length} bytes is larger than one array can hold");
        var result = new byte[length];
        var stream = new MemoryStream(result);
        WriteTo(stream);
        return result;
    }

    public void WriteTo(Stream stream)
    {
        Span<byte> scratch = stackalloc byte[10];
        foreach (Field f in _fields)
        {
            WriteVarint(stream, Tag(f), scratch);
            switch (f)
            {
                case VarintField v:
                    WriteVarint(stream, v.Value, scratch);
                    break;
                case FloatField x:
                    BinaryPrimitives.WriteSingleLittleEndian(scratch, x.Value);
                    stream.Write(scratch[..4]);
                    break;
                case BytesField b:
                    WriteVarint(stream, (ulong)b.Value.Length, scratch);
                    stream.Write(b.Value);
                    break;
                case FloatsField floats:
                    WriteVarint(stream, (ulong)floats.PayloadLength, scratch);
                    if (!BitConverter.IsLittleEndian)
                        throw new PlatformNotSupportedException("ONNX's raw tensor data is little-endian; this writer copies floats as the machine stores them");
                    stream.Write(MemoryMarshal.AsBytes(floats.Value.Span));
                    break;
                case MessageField m:
                    WriteVarint(stream, (ulong)m.Value.Length, scratch);
                    m.Value.WriteTo(stream);
                    break;
            }
        }
    }

    private static ulong Tag(Field f) => ((ulong)f.Number << 3) | (uint)(f switch
    {
        VarintField => WireVarint,
        FloatField => WireFixed32,
        _ => WireLengthDelimited,
    });

    private static int VarintLength(ulong value)
    {
        int n = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            n++;
        }
        return n;
    }

    private static void WriteVarint(Stream stream, ulong value, Span<byte> scratch)
    {
        int n = 0;
        while (value >= 0x80)
        {
            scratch[n++] = (byte)(value | 0x80);
            value >>= 7;
        }
        scratch[n++] = (byte)value;
        stream.Write(scratch[..n]);
    }
}
