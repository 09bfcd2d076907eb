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

    /// <summary>Longest byte string taken as text: names, dict keys, dtype codes.</summary>
    public const int MaxTextLength = 256;

    /// <summary>The bytes as Latin-1 text (Python 2 str keys and dtype codes are byte strings), or null when
    /// longer than <see cref="MaxTextLength"/>: no name is that long, and a string left in the file (64 KiB or
    /// more) is never read for it.</summary>
    public string? AsLatin1() =>
        Length <= MaxTextLength && Data is not null ? System.Text.Encoding.Latin1.GetString(Data) : null;
}

/// <summary>A str of 64 KiB or more, kept as its UTF-8 bytes: in memory, or a slice of the file. Only
/// <c>_codecs.encode</c> decodes it (Python 3's protocol 2 writes array data as such text); no name is this long.</summary>
internal sealed class PyText
{
    public byte[]? Data;
    public ByteSource? Source;
    public long Offset;
    public long Length;
    /// <summary>Its length in UTF-16 units (checked as UTF-8 when read): the Latin-1 bytes it encodes to.</summary>
    public long Utf16Length;
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
