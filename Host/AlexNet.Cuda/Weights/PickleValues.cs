namespace AlexNet.Cuda.Weights;

// The only values the restricted pickle interpreter can make. Python's str is a .NET string, int a long,
// float a double, bool a bool, None null; everything else is one of these classes. None of them has
// behaviour that a file can trigger: "calling" an allowed global is a switch in PickleMachine.

internal abstract class PyContainer
{
    /// <summary>Nesting depth: 1 for a container of scalars, 1 + the deepest child otherwise.</summary>
    public int Depth = 1;
}

internal sealed class PyList : PyContainer
{
    public readonly List<object?> Items = [];
}

internal sealed class PyTuple(object?[] items) : PyContainer
{
    public readonly object?[] Items = items;
}

internal sealed class PyDict : PyContainer
{
    public readonly List<KeyValuePair<object?, object?>> Items = [];
}

/// <summary>A byte string: in memory, or (large ones from a seekable file) a slice of the file read only
/// when an array is built from it, straight into the array.</summary>
internal sealed class PyBytes
{
    public byte[]? Data;
    public ByteSource? Source;
    public long Offset;
    public long Length;

    public static PyBytes InMemory(byte[] data) => new() { Data = data, Length = data.Length };

    /// <summary>Copies the bytes, in order, into consecutive destination spans.</summary>
    public NpyDType.ReadOnlySpanAction SequentialReader()
    {
        long pos = 0;
        return dst =>
        {
            if (Data is not null) Data.AsSpan((int)pos, dst.Length).CopyTo(dst);
            else Source!.ReadAt(Offset + pos, dst, "array data");
            pos += dst.Length;
        };
    }

    /// <summary>The bytes as Latin-1 text (Python 2 str keys read as bytes).</summary>
    public string AsLatin1()
    {
        if (Data is null) throw new InvalidOperationException("lazy byte strings are never keys");
        return System.Text.Encoding.Latin1.GetString(Data);
    }
}

internal enum PyGlobalKind
{
    Reconstruct,   // numpy.core.multiarray._reconstruct / numpy._core.multiarray._reconstruct
    NdArrayType,   // numpy.ndarray
    DTypeType,     // numpy.dtype
    CodecsEncode,  // _codecs.encode (Python 3 protocol 2's way of writing bytes)
    FromBuffer,    // numpy.core.numeric._frombuffer (protocol 5)
}

internal sealed class PyGlobal(PyGlobalKind kind, string name)
{
    public readonly PyGlobalKind Kind = kind;
    public readonly string Name = name;
}

/// <summary>numpy.dtype(descr, align, copy), then BUILD sets the byte order.</summary>
internal sealed class PyDType(string descr)
{
    public readonly string Descr = descr;
    public char ByteOrder = '=';
}

/// <summary>An ndarray made by _reconstruct (empty until BUILD) or by _frombuffer.</summary>
internal sealed class PyNdArray
{
    public NpyArray? Numeric;
    public List<object?>? ObjectItems;
    public bool Built;
}
