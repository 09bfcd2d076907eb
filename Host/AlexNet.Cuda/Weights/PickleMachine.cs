using System.Buffers.Binary;
using System.Text;

namespace AlexNet.Cuda.Weights;

/// <summary>
/// A restricted pickle interpreter (protocols 2–5) that knows only what numpy weight files use: numpy array
/// and dtype reconstruction, lists, tuples, dicts, str, bytes, int, float, bool, None, the memo and frames.
/// It never calls anything: the five allowed globals are tokens whose "call" (REDUCE) and BUILD are
/// implemented here. Any other global, opcode or shape of data is refused with a
/// <see cref="WeightFileException"/> naming it and its byte offset. Stack, memo, marks and nesting are capped.
/// </summary>
internal sealed class PickleMachine
{
    public const int MaxStack = 1 << 20;
    public const int MaxMemo = 1 << 20;
    public const int MaxDepth = 64;
    /// <summary>Items held by all lists, tuples and dicts together (a weight file has a few dozen).</summary>
    public const int MaxItems = 1 << 20;
    /// <summary>Byte strings at least this long, on a seekable file, stay in the file until an array takes them.</summary>
    public const int LazyBytesThreshold = 1 << 16;

    private readonly ByteSource _src;
    private readonly List<object?> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = [];
    private long _opAt;
    private long _items;
    /// <summary>Source bytes declared as array data, plus text turned into bytes, so far: at most twice the file's
    /// length (every array of a real file has its own bytes there, and Python 3's protocol 2 counts its data
    /// twice); this stops a memoised string being reused without bound, as the data of many arrays or as text
    /// encoded again and again.</summary>
    private long _madeBytes;
    private byte _op;

    public PickleMachine(ByteSource src) => _src = src;

    private string Where => $"{_src.Name}: pickle opcode {OpName(_op)} at byte {_opAt}";

    private WeightFileException Error(string what) => new($"{Where}: {what}", _opAt);

    public object? Run()
    {
        while (true)
        {
            _opAt = _src.Position;
            if (_src.Remaining <= 0)
                throw new WeightFileException($"{_src.Name}: the pickle ends at byte {_opAt} without a STOP opcode; the file is truncated", _opAt);
            _op = _src.ReadByte("a pickle opcode");
            switch (_op)
            {
                case 0x80: // PROTO
                    {
                        byte v = Read1();
                        if (v is < 2 or > 5) throw Error($"pickle protocol {v} is not supported (2 to 5 are)");
                        break;
                    }
                case 0x95: // FRAME: a buffering hint; its length must fit in the file.
                    {
                        long n = _src.ReadInt64("a frame length");
                        if (n < 0 || n > _src.Remaining) throw Error($"frame of {n} bytes runs past the end of the file ({_src.Remaining} bytes remain)");
                        break;
                    }
                case (byte)'.': // STOP
                    {
                        object? result = Pop();
                        return result;
                    }

                // Stack and marks
                case (byte)'(': // MARK
                    if (_marks.Count >= MaxDepth) throw Error($"more than {MaxDepth} nested MARKs");
                    _marks.Push(_stack.Count);
                    break;
                case (byte)'0': Pop(); break; // POP
                case (byte)'1': PopMark(); break; // POP_MARK
                case (byte)'2': Push(Peek()); break; // DUP

                // Scalars
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break; // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE
                case (byte)'K': Push((long)Read1()); break; // BININT1
                case (byte)'M': Push((long)_src.ReadUInt16("BININT2")); break;
                case (byte)'J': Push((long)_src.ReadInt32("BININT")); break;
                case 0x8a: // LONG1
                    {
                        int n = Read1();
                        if (n > 8) throw Error($"integer of {n} bytes is too large for a weight file");
                        Span<byte> b = stackalloc byte[8];
                        _src.ReadExactly(b[..n], "LONG1");
                        long v = 0;
                        for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
                        if (n is > 0 and < 8 && (b[n - 1] & 0x80) != 0) v -= 1L << (8 * n);
                        Push(v);
                        break;
                    }
                case (byte)'G': Push(_src.ReadDoubleBigEndian("BINFLOAT")); break;

                // Strings
                case (byte)'U': Push(ReadBytes(Read1())); break; // SHORT_BINSTRING
                case (byte)'T': // BINSTRING (signed length)
                    {
                        int n = _src.ReadInt32("BINSTRING length");
                        if (n < 0) throw Error($"negative string length {n}");
                        Push(ReadBytes(n));
                        break;
                    }
                case (byte)'C': Push(ReadBytes(Read1())); break; // SHORT_BINBYTES
                case (byte)'B': Push(ReadBytes(_src.ReadUInt32("BINBYTES length"))); break;
                case 0x8e: case 0x96: // BINBYTES8, BYTEARRAY8
                    Push(ReadBytes(_src.ReadInt64("byte string length")));
                    break;
                case 0x8c: Push(ReadText(Read1())); break; // SHORT_BINUNICODE
                case (byte)'X': Push(ReadText(_src.ReadUInt32("BINUNICODE length"))); break;
                case 0x8d: Push(ReadText(_src.ReadInt64("BINUNICODE8 length"))); break;

                // Containers
                case (byte)')': Push(new PyTuple([])); break; // EMPTY_TUPLE
                case 0x85: Push(MakeTuple(1)); break; // TUPLE1
                case 0x86: Push(MakeTuple(2)); break; // TUPLE2
                case 0x87: Push(MakeTuple(3)); break; // TUPLE3
                case (byte)'t': // TUPLE
                    {
                        var items = PopMark();
                        var t = new PyTuple(items.ToArray());
                        foreach (var x in items) Nest(t, x);
                        Push(t);
                        break;
                    }
                case (byte)']': Push(new PyList()); break; // EMPTY_LIST
                case (byte)'l': // LIST
                    {
                        var l = new PyList();
                        foreach (var x in PopMark()) { Nest(l, x); l.Items.Add(x); }
                        Push(l);
                        break;
                    }
                case (byte)'a': // APPEND
                    {
                        object? x = Pop();
                        var l = Peek() as PyList ?? throw Error("APPEND to something that is not a list");
                        Nest(l, x);
                        l.Items.Add(x);
                        break;
                    }
                case (byte)'e': // APPENDS
                    {
                        var items = PopMark();
                        var l = Peek() as PyList ?? throw Error("APPENDS to something that is not a list");
                        foreach (var x in items) { Nest(l, x); l.Items.Add(x); }
                        break;
                    }
                case (byte)'}': Push(new PyDict()); break; // EMPTY_DICT
                case (byte)'d': // DICT
                    {
                        var d = new PyDict();
                        AddPairs(d, PopMark());
                        Push(d);
                        break;
                    }
                case (byte)'s': // SETITEM
                    {
                        object? v = Pop(), k = Pop();
                        var d = Peek() as PyDict ?? throw Error("SETITEM on something that is not a dict");
                        AddPairs(d, [k, v]);
                        break;
                    }
                case (byte)'u': // SETITEMS
                    {
                        var items = PopMark();
                        var d = Peek() as PyDict ?? throw Error("SETITEMS on something that is not a dict");
                        AddPairs(d, items);
                        break;
                    }

                // Memo
                case (byte)'q': Put(Read1()); break; // BINPUT
                case (byte)'r': Put(_src.ReadUInt32("LONG_BINPUT index")); break;
                case 0x94: Put(_memo.Count); break; // MEMOIZE
                case (byte)'h': Get(Read1()); break; // BINGET
                case (byte)'j': Get(_src.ReadUInt32("LONG_BINGET index")); break;

                // Globals, calls, state
                case (byte)'c': // GLOBAL
                    {
                        string module = ReadLine(), name = ReadLine();
                        Push(ResolveGlobal(module, name));
                        break;
                    }
                case 0x93: // STACK_GLOBAL
                    {
                        object? name = Pop(), module = Pop();
                        if (module is not string m || name is not string n) throw Error("STACK_GLOBAL needs two strings");
                        Push(ResolveGlobal(m, n));
                        break;
                    }
                case (byte)'R': // REDUCE
                    {
                        object? args = Pop(), func = Pop();
                        if (func is not PyGlobal g) throw Error("REDUCE of something that is not an allowed global");
                        if (args is not PyTuple t) throw Error($"REDUCE of {g.Name} without an argument tuple");
                        Push(Call(g, t.Items));
                        break;
                    }
                case (byte)'b': // BUILD
                    {
                        object? state = Pop();
                        switch (Peek())
                        {
                            case PyNdArray a: BuildArray(a, state); break;
                            case PyDType d: BuildDType(d, state); break;
                            default: throw Error($"BUILD of a {TypeName(Peek())} (only numpy arrays and dtypes are rebuilt)");
                        }
                        break;
                    }

                default:
                    throw Error($"is not allowed: this reader only rebuilds numpy arrays, lists, dicts, strings and numbers, and runs nothing");
            }
        }
    }

    // ---- stack helpers -------------------------------------------------------------------------

    private int MarkBase => _marks.Count > 0 ? _marks.Peek() : 0;

    private void Push(object? o)
    {
        if (_stack.Count >= MaxStack) throw Error($"the pickle stack grows past {MaxStack} items");
        _stack.Add(o);
    }

    private object? Pop()
    {
        if (_stack.Count <= MarkBase) throw Error("pops an empty stack (the pickle is malformed)");
        object? o = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return o;
    }

    private object? Peek()
    {
        if (_stack.Count <= MarkBase) throw Error("reads an empty stack (the pickle is malformed)");
        return _stack[^1];
    }

    private List<object?> PopMark()
    {
        if (_marks.Count == 0) throw Error("has no matching MARK (the pickle is malformed)");
        int at = _marks.Pop();
        var items = _stack.GetRange(at, _stack.Count - at);
        _stack.RemoveRange(at, _stack.Count - at);
        return items;
    }

    private PyTuple MakeTuple(int n)
    {
        var items = new object?[n];
        for (int i = n - 1; i >= 0; i--) items[i] = Pop();
        var t = new PyTuple(items);
        foreach (var x in items) Nest(t, x);
        return t;
    }

    private void Nest(PyContainer parent, object? child)
    {
        if (++_items > MaxItems) throw Error($"the lists, tuples and dicts hold more than {MaxItems} items together");
        if (child is PyContainer c && c.Depth + 1 > parent.Depth)
        {
            if (c.Depth + 1 > MaxDepth) throw Error($"nests containers deeper than {MaxDepth} levels");
            parent.Depth = c.Depth + 1;
        }
    }

    private void AddPairs(PyDict d, List<object?> kv)
    {
        if (kv.Count % 2 != 0) throw Error("has an odd number of items for a dict");
        for (int i = 0; i < kv.Count; i += 2)
        {
            if (kv[i] is not (string or PyText or PyBytes or long or bool or double or null))
                throw Error($"uses a {TypeName(kv[i])} as a dict key");
            Nest(d, kv[i + 1]);
            d.Items.Add(new(kv[i], kv[i + 1]));
        }
    }

    private void Put(long index)
    {
        if (_memo.Count >= MaxMemo && !_memo.ContainsKey(index)) throw Error($"the memo grows past {MaxMemo} entries");
        _memo[index] = Peek();
    }

    private void Get(long index)
    {
        if (!_memo.TryGetValue(index, out object? o)) throw Error($"refers to memo entry {index}, which was never stored");
        Push(o);
    }

    // ---- reading -------------------------------------------------------------------------------

    private byte Read1() => _src.ReadByte(OpName(_op));

    private PyBytes ReadBytes(long n)
    {
        _src.Require(n, $"the {n}-byte string of {OpName(_op)} at byte {_opAt}");
        if (_src.CanSeek && n >= LazyBytesThreshold)
        {
            var lazy = new PyBytes { Source = _src, Offset = _src.Position, Length = n };
            _src.Skip(n, "a byte string");
            return lazy;
        }
        if (n > Array.MaxLength) throw Error($"byte string of {n} bytes is too large");
        var data = new byte[n];
        _src.ReadExactly(data, "a byte string");
        return PyBytes.InMemory(data);
    }

    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    /// <summary>A str: a .NET string when short; from <see cref="LazyBytesThreshold"/> up, the UTF-8 bytes (left
    /// in the file when it is seekable), checked now and decoded only by <c>_codecs.encode</c>, straight to
    /// Latin-1 bytes: Python 3's protocol 2 writes array data that way, and a UTF-16 copy would triple it.</summary>
    private object ReadText(long n)
    {
        _src.Require(n, $"the {n}-byte text of {OpName(_op)} at byte {_opAt}");
        if (n >= LazyBytesThreshold)
        {
            var text = new PyText { Length = n };
            if (_src.CanSeek)
            {
                (text.Source, text.Offset) = (_src, _src.Position);
                _src.Skip(n, "a text string");
            }
            else
            {
                if (n > Array.MaxLength) throw Error($"text of {n} bytes is too large");
                text.Data = new byte[n];
                _src.ReadExactly(text.Data, "a text string");
            }
            text.Utf16Length = DecodeText(text, null);
            return text;
        }
        var data = new byte[n];
        _src.ReadExactly(data, "a text string");
        try
        {
            return StrictUtf8.GetString(data);
        }
        catch (DecoderFallbackException)
        {
            throw Error("has text that is not valid UTF-8");
        }
    }

    /// <summary>Decodes the UTF-8 of <paramref name="text"/> in 16 KiB pieces, checking it, and returns its length
    /// in UTF-16 units; with <paramref name="latin1"/>, also writes each unit there as one byte (refusing units
    /// past U+00FF).</summary>
    private long DecodeText(PyText text, byte[]? latin1)
    {
        var decoder = StrictUtf8.GetDecoder();
        const int Piece = 1 << 14;
        byte[] buffer = text.Data is null ? new byte[Piece] : [];
        var chars = new char[Piece];
        long units = 0;
        try
        {
            for (long at = 0; at < text.Length;)
            {
                int n = (int)Math.Min(Piece, text.Length - at);
                ReadOnlySpan<byte> piece;
                if (text.Data is not null) piece = text.Data.AsSpan((int)at, n);
                else
                {
                    text.Source!.ReadAt(text.Offset + at, buffer.AsSpan(0, n), "a text string");
                    piece = buffer.AsSpan(0, n);
                }
                at += n;
                bool last = at == text.Length;
                while (true)
                {
                    decoder.Convert(piece, chars, last, out int used, out int made, out bool done);
                    if (latin1 is not null)
                    {
                        for (int i = 0; i < made; i++)
                        {
                            if (chars[i] > 0xff) throw Error("calls _codecs.encode on text that is not Latin-1");
                            latin1[units + i] = (byte)chars[i];
                        }
                    }
                    units += made;
                    piece = piece[used..];
                    if (piece.IsEmpty && (done || !last)) break;
                }
            }
        }
        catch (DecoderFallbackException)
        {
            throw Error("has text that is not valid UTF-8");
        }
        return units;
    }

    private string ReadLine()
    {
        var sb = new StringBuilder();
        while (true)
        {
            byte b = _src.ReadByte("a GLOBAL name");
            if (b == (byte)'\n') return sb.ToString();
            if (sb.Length >= 200) throw Error("has a GLOBAL name longer than 200 characters");
            sb.Append((char)b);
        }
    }

    // ---- the allowed globals -------------------------------------------------------------------

    private PyGlobal ResolveGlobal(string module, string name)
    {
        PyGlobalKind? kind = (module, name) switch
        {
            // numpy.core._internal._reconstruct: what numpy before 1.0 wrote; numpy still maps it to the same function.
            ("numpy.core.multiarray" or "numpy._core.multiarray" or "numpy.core._internal", "_reconstruct") => PyGlobalKind.Reconstruct,
            ("numpy", "ndarray") => PyGlobalKind.NdArrayType,
            ("numpy", "dtype") => PyGlobalKind.DTypeType,
            ("_codecs", "encode") => PyGlobalKind.CodecsEncode,
            ("numpy.core.numeric" or "numpy._core.numeric", "_frombuffer") => PyGlobalKind.FromBuffer,
            _ => null,
        };
        string full = $"{module}.{name}";
        if (kind is null)
            throw Error($"asks for the global {WeightFileException.Quote(full)}, which is not allowed: a weight file only needs numpy's array and dtype reconstruction; refusing the file and running nothing");
        return new PyGlobal(kind.Value, full);
    }

    private object Call(PyGlobal g, object?[] a)
    {
        switch (g.Kind)
        {
            case PyGlobalKind.Reconstruct:
                if (a.Length != 3 || a[0] is not PyGlobal { Kind: PyGlobalKind.NdArrayType } || a[1] is not PyTuple)
                    throw Error($"calls {g.Name} with arguments other than (numpy.ndarray, shape, dtype code)");
                return new PyNdArray();
            case PyGlobalKind.DTypeType:
                if (a.Length is < 1 or > 3 || Text(a[0]) is not string descr)
                    throw Error($"calls {g.Name} with arguments other than (descr, align, copy)");
                return new PyDType(descr);
            case PyGlobalKind.CodecsEncode:
                {
                    if (a.Length != 2 || a[0] is not (string or PyText) || a[1] is not string enc || enc.Replace("-", "").Replace("_", "").ToLowerInvariant() is not ("latin1" or "iso88591"))
                        throw Error($"calls {g.Name} with arguments other than (text, 'latin1')");
                    if (a[0] is PyText text)
                    {
                        if (text.Utf16Length > Array.MaxLength) throw Error($"calls {g.Name} on text of {text.Utf16Length} characters, too large for one byte string");
                        Budget(text.Utf16Length);
                        var latin1 = new byte[text.Utf16Length];
                        DecodeText(text, latin1);
                        return PyBytes.InMemory(latin1);
                    }
                    string s = (string)a[0]!;
                    Budget(s.Length);
                    var bytes = new byte[s.Length];
                    for (int i = 0; i < s.Length; i++)
                    {
                        if (s[i] > 0xff) throw Error($"calls {g.Name} on text that is not Latin-1");
                        bytes[i] = (byte)s[i];
                    }
                    return PyBytes.InMemory(bytes);
                }
            case PyGlobalKind.FromBuffer:
                {
                    if (a.Length != 4 || a[0] is not PyBytes buf || a[1] is not PyDType dt || a[2] is not PyTuple shape || Text(a[3]) is not ("C" or "F"))
                        throw Error($"calls {g.Name} with arguments other than (buffer, dtype, shape, order)");
                    return new PyNdArray { Numeric = MakeNumeric(shape, dt, Text(a[3]) == "F", buf), Built = true };
                }
            default:
                throw Error($"calls {g.Name}, which is a type and not called by numpy's pickles");
        }
    }

    /// <summary>A short str or byte string (a dtype code, a byte order, an order flag) as text; null otherwise.</summary>
    private static string? Text(object? o) => o switch
    {
        string s => s,
        PyBytes b => b.AsLatin1(),
        _ => null,
    };

    private void BuildDType(PyDType d, object? state)
    {
        // numpy: (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        if (state is not PyTuple { Items.Length: >= 2 } t || Text(t.Items[1]) is not { Length: 1 } order || order[0] is not ('<' or '>' or '|' or '='))
            throw Error("BUILD of a dtype with a state other than numpy's (version, byte order, …)");
        if (t.Items.Length > 2 && t.Items[2] is not null || t.Items.Length > 3 && t.Items[3] is not null)
            throw Error("BUILD of a structured or sub-array dtype, which weight files do not use");
        d.ByteOrder = order[0];
    }

    private void BuildArray(PyNdArray a, object? state)
    {
        if (a.Built) throw Error("BUILD of an array that is already built");
        if (state is not PyTuple t || t.Items.Length is not (4 or 5))
            throw Error("BUILD of an array with a state other than numpy's (version, shape, dtype, is_fortran, data)");
        var s = t.Items.Length == 5 ? t.Items[1..] : t.Items;
        if (s[0] is not PyTuple shape || s[1] is not PyDType dt || s[2] is not (bool or long))
            throw Error("BUILD of an array with a state other than numpy's (version, shape, dtype, is_fortran, data)");
        bool fortran = s[2] is true or (long and not 0L);
        var type = NpyDType.Parse(dt.Descr, dt.ByteOrder, Where, _opAt);
        if (type.IsObject)
        {
            if (s[3] is not PyList items) throw Error("BUILD of an object array whose data is not a list");
            var (_, count) = NpyArray.CheckedShape(Dims(shape), NpyReader.MaxElements, Where, _opAt);
            if (count != items.Items.Count) throw Error($"object array of shape {NpyReader.FormatShape(Dims(shape))} has {items.Items.Count} items");
            a.ObjectItems = items.Items;
        }
        else
        {
            var bytes = s[3] switch
            {
                PyBytes b => b,
                string or PyText => (PyBytes)Call(new PyGlobal(PyGlobalKind.CodecsEncode, "latin-1 text"), [s[3], "latin1"]),
                _ => throw Error($"BUILD of an array whose data is a {TypeName(s[3])}, not a byte string"),
            };
            a.Numeric = MakeNumeric(shape, dt, fortran, bytes);
        }
        a.Built = true;
    }

    private long[] Dims(PyTuple shape)
    {
        var dims = new long[shape.Items.Length];
        for (int i = 0; i < dims.Length; i++)
            dims[i] = shape.Items[i] as long? ?? throw Error("has an array shape that is not a tuple of integers");
        return dims;
    }

    private NpyArray MakeNumeric(PyTuple shapeTuple, PyDType dt, bool fortran, PyBytes bytes)
    {
        var type = NpyDType.Parse(dt.Descr, dt.ByteOrder, Where, _opAt);
        if (type.IsObject) throw Error("builds an object array from raw bytes");
        long[] dims = Dims(shapeTuple);
        var (shape, count) = NpyArray.CheckedShape(dims, NpyReader.MaxElements, Where, _opAt);
        if (bytes.Length != count * type.ItemSize)
            throw Error($"array data is {bytes.Length} bytes but shape {NpyReader.FormatShape(dims)} of {type} needs {count * type.ItemSize}");
        Budget(bytes.Length);
        // Read when the layer it belongs to has passed the shape checks (the data of a large string is still in
        // the file, or in memory already).
        return new NpyArray(shape, () =>
        {
            float[] data = NpyArray.Allocate(count);
            type.ReadInto(data, bytes.SequentialReader());
            return fortran ? NpyArray.FortranToC(data, shape) : data;
        }, type.ToString(), fortran);
    }

    private void Budget(long bytes)
    {
        _madeBytes += bytes;
        if (_madeBytes > 2 * _src.Length + (1 << 16))
            throw Error($"would make {_madeBytes} bytes of arrays from a {_src.Length}-byte file (the same data used again and again); refusing to allocate");
    }

    internal static string TypeName(object? o) => o switch
    {
        null => "None",
        string or PyText => "str",
        PyBytes => "bytes",
        long => "int",
        double => "float",
        bool => "bool",
        PyList => "list",
        PyTuple => "tuple",
        PyDict => "dict",
        PyNdArray => "numpy array",
        PyDType => "numpy dtype",
        PyGlobal g => g.Name,
        _ => o.GetType().Name,
    };

    /// <summary>Name of an opcode for messages: <c>0x69 'i' (INST)</c>.</summary>
    internal static string OpName(byte op)
    {
        string? name = op switch
        {
            (byte)'(' => "MARK", (byte)'.' => "STOP", (byte)'0' => "POP", (byte)'1' => "POP_MARK", (byte)'2' => "DUP",
            (byte)'F' => "FLOAT", (byte)'I' => "INT", (byte)'J' => "BININT", (byte)'K' => "BININT1", (byte)'L' => "LONG",
            (byte)'M' => "BININT2", (byte)'N' => "NONE", (byte)'P' => "PERSID", (byte)'Q' => "BINPERSID", (byte)'R' => "REDUCE",
            (byte)'S' => "STRING", (byte)'T' => "BINSTRING", (byte)'U' => "SHORT_BINSTRING", (byte)'V' => "UNICODE",
            (byte)'X' => "BINUNICODE", (byte)'a' => "APPEND", (byte)'b' => "BUILD", (byte)'c' => "GLOBAL", (byte)'d' => "DICT",
            (byte)'}' => "EMPTY_DICT", (byte)'e' => "APPENDS", (byte)'g' => "GET", (byte)'h' => "BINGET", (byte)'i' => "INST",
            (byte)'j' => "LONG_BINGET", (byte)'l' => "LIST", (byte)']' => "EMPTY_LIST", (byte)'o' => "OBJ", (byte)'p' => "PUT",
            (byte)'q' => "BINPUT", (byte)'r' => "LONG_BINPUT", (byte)'s' => "SETITEM", (byte)'t' => "TUPLE", (byte)')' => "EMPTY_TUPLE",
            (byte)'u' => "SETITEMS", (byte)'G' => "BINFLOAT", (byte)'B' => "BINBYTES", (byte)'C' => "SHORT_BINBYTES",
            0x80 => "PROTO", 0x81 => "NEWOBJ", 0x82 => "EXT1", 0x83 => "EXT2", 0x84 => "EXT4", 0x85 => "TUPLE1", 0x86 => "TUPLE2",
            0x87 => "TUPLE3", 0x88 => "NEWTRUE", 0x89 => "NEWFALSE", 0x8a => "LONG1", 0x8b => "LONG4",
            0x8c => "SHORT_BINUNICODE", 0x8d => "BINUNICODE8", 0x8e => "BINBYTES8", 0x8f => "EMPTY_SET", 0x90 => "ADDITEMS",
            0x91 => "FROZENSET", 0x92 => "NEWOBJ_EX", 0x93 => "STACK_GLOBAL", 0x94 => "MEMOIZE", 0x95 => "FRAME",
            0x96 => "BYTEARRAY8", 0x97 => "NEXT_BUFFER", 0x98 => "READONLY_BUFFER",
            _ => null,
        };
        string ch = op is >= 0x20 and < 0x7f ? $" '{(char)op}'" : "";
        return name is null ? $"0x{op:x2}{ch} (unknown)" : $"0x{op:x2}{ch} ({name})";
    }
}
