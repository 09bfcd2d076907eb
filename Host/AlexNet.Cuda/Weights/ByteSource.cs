using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace AlexNet.Cuda.Weights;

/// <summary>
/// Reads a file (positional reads through <see cref="RandomAccess"/>, seekable) or a stream (an .npz member,
/// forward only) with a small buffer, tracking the absolute position. Every read is checked against the
/// known length first, so a declared size past the end is an error before anything is allocated.
/// Large reads bypass the buffer and land directly in the caller's memory.
/// </summary>
internal sealed class ByteSource
{
    private const int BufferSize = 1 << 16;
    private readonly SafeFileHandle? _handle;
    private readonly Stream? _stream;
    private readonly byte[] _buf = new byte[BufferSize];
    private long _bufStart;   // absolute position of _buf[0]
    private int _bufPos, _bufLen;

    public ByteSource(SafeFileHandle handle, long length, string name)
    {
        _handle = handle;
        Length = length;
        Name = name;
    }

    public ByteSource(Stream stream, long length, string name)
    {
        _stream = stream;
        Length = length;
        Name = name;
    }

    /// <summary>What the messages call this input (a path, or <c>archive.npz:member.npy</c>).</summary>
    public string Name { get; }

    public long Length { get; }

    public bool CanSeek => _handle is not null;

    public long Position => _bufStart + _bufPos;

    public long Remaining => Length - Position;

    /// <summary>Whether a small read fills the whole 64 KiB buffer (the default). Off, a read takes exactly the
    /// bytes asked for: an .npz member's header is inflated alone, and checked, before any of its data is.</summary>
    public bool ReadAhead { get; set; } = true;

    /// <summary>Fails unless <paramref name="count"/> more bytes exist; <paramref name="what"/> names them.</summary>
    public void Require(long count, string what)
    {
        if (count < 0 || count > Remaining)
            throw new WeightFileException(
                $"{Name}: {what} needs {count} bytes at byte {Position} but only {Math.Max(Remaining, 0)} remain; the file is truncated or its sizes are wrong",
                Position);
    }

    public byte ReadByte(string what)
    {
        if (_bufPos == _bufLen) Fill(what, 1);
        return _buf[_bufPos++];
    }

    public void ReadExactly(Span<byte> dst, string what)
    {
        Require(dst.Length, what);
        int fromBuf = Math.Min(dst.Length, _bufLen - _bufPos);
        _buf.AsSpan(_bufPos, fromBuf).CopyTo(dst);
        _bufPos += fromBuf;
        dst = dst[fromBuf..];
        if (dst.IsEmpty) return;
        if (dst.Length < BufferSize / 2)
        {
            Fill(what, dst.Length);
            _buf.AsSpan(0, dst.Length).CopyTo(dst);
            _bufPos = dst.Length;
            return;
        }
        // Large read: straight into the destination.
        long pos = Position;
        ReadRaw(pos, dst, what);
        _bufStart = pos + dst.Length;
        _bufPos = _bufLen = 0;
    }

    public ushort ReadUInt16(string what) { Span<byte> b = stackalloc byte[2]; ReadExactly(b, what); return BinaryPrimitives.ReadUInt16LittleEndian(b); }

    public int ReadInt32(string what) { Span<byte> b = stackalloc byte[4]; ReadExactly(b, what); return BinaryPrimitives.ReadInt32LittleEndian(b); }

    public uint ReadUInt32(string what) { Span<byte> b = stackalloc byte[4]; ReadExactly(b, what); return BinaryPrimitives.ReadUInt32LittleEndian(b); }

    public long ReadInt64(string what) { Span<byte> b = stackalloc byte[8]; ReadExactly(b, what); return BinaryPrimitives.ReadInt64LittleEndian(b); }

    public double ReadDoubleBigEndian(string what) { Span<byte> b = stackalloc byte[8]; ReadExactly(b, what); return BinaryPrimitives.ReadDoubleBigEndian(b); }

    /// <summary>Moves forward <paramref name="count"/> bytes (checked); on a seekable source nothing is read.</summary>
    public void Skip(long count, string what)
    {
        Require(count, what);
        long inBuf = _bufLen - _bufPos;
        if (count <= inBuf) { _bufPos += (int)count; return; }
        if (CanSeek)
        {
            _bufStart = Position + count;
            _bufPos = _bufLen = 0;
            return;
        }
        byte[] scratch = _buf;
        count -= inBuf;
        _bufStart += _bufLen;
        _bufPos = _bufLen = 0;
        while (count > 0)
        {
            int n = (int)Math.Min(count, scratch.Length);
            ReadRaw(_bufStart, scratch.AsSpan(0, n), what);
            _bufStart += n;
            count -= n;
        }
    }

    /// <summary>Reads <paramref name="dst"/> from absolute <paramref name="offset"/> (seekable sources only),
    /// leaving the current position alone.</summary>
    public void ReadAt(long offset, Span<byte> dst, string what)
    {
        if (_handle is null) throw new InvalidOperationException("ReadAt needs a seekable source");
        if (offset < 0 || dst.Length > Length - offset)
            throw new WeightFileException($"{Name}: {what} at byte {offset} runs past the end of the file", offset);
        ReadRaw(offset, dst, what);
    }

    private void Fill(string what, int need)
    {
        long pos = Position;
        int want = (int)Math.Min(ReadAhead ? BufferSize : need, Length - pos);
        if (want <= 0)
            throw new WeightFileException($"{Name}: the file ends at byte {pos} while reading {what}; it is truncated", pos);
        ReadRaw(pos, _buf.AsSpan(0, want), what);
        _bufStart = pos;
        _bufPos = 0;
        _bufLen = want;
    }

    private void ReadRaw(long pos, Span<byte> dst, string what)
    {
        while (!dst.IsEmpty)
        {
            int n;
            try
            {
                n = _handle is not null ? RandomAccess.Read(_handle, dst, pos) : _stream!.Read(dst);
            }
            catch (IOException e)
            {
                throw new WeightFileException($"{Name}: reading {what} at byte {pos} failed: {e.Message}", pos, e);
            }
            catch (InvalidDataException e)
            {
                throw new WeightFileException($"{Name}: the compressed data is damaged at byte {pos} ({e.Message})", pos, e);
            }
            if (n <= 0)
                throw new WeightFileException($"{Name}: the data ends at byte {pos} while reading {what}; it is truncated", pos);
            pos += n;
            dst = dst[n..];
        }
    }
}
