using System.Buffers.Binary;
using System.Text;

namespace AlexNet.Imaging.Isolation;

/// <summary>What a frame between a decode worker process and its parent carries.</summary>
internal enum FrameType : byte
{
    /// <summary>Worker → parent, once at start: the decoder's name (UTF-8).</summary>
    Hello = 1,

    /// <summary>Parent → worker: decode a file. Max pixels (int64), target short side (int32), fast decode (byte), path (UTF-8).</summary>
    Decode = 2,

    /// <summary>Worker → parent: the decode needs this memory (int64 bytes in the worker, int64 bytes of the result).</summary>
    Reserve = 3,

    /// <summary>Parent → worker: the memory is granted.</summary>
    Granted = 4,

    /// <summary>Parent → worker: the memory cannot be had; the problem (UTF-8).</summary>
    Refused = 5,

    /// <summary>Worker → parent: the decoded image: width (int32), height (int32), width·height·3 RGB bytes.</summary>
    Image = 6,

    /// <summary>Worker → parent: the file cannot be used; the problem (UTF-8), without the path.</summary>
    Error = 7,
}

/// <summary>
/// Frames over a pipe: a type byte, a payload length (int64, little-endian), the payload. Reads return null
/// at the end of the stream (the other side closed it or ended).
/// </summary>
internal sealed class FrameStream(Stream stream)
{
    private readonly byte[] _header = new byte[9];

    public void Write(FrameType type, ReadOnlySpan<byte> payload)
    {
        WriteHeader(type, payload.Length);
        stream.Write(payload);
        stream.Flush();
    }

    public void Write(FrameType type, string text) => Write(type, Encoding.UTF8.GetBytes(text));

    /// <summary>Starts a frame whose payload the caller writes itself (the image's pixels, without a copy).</summary>
    public void WriteHeader(FrameType type, long payloadLength)
    {
        _header[0] = (byte)type;
        BinaryPrimitives.WriteInt64LittleEndian(_header.AsSpan(1), payloadLength);
        stream.Write(_header);
    }

    public void WritePayload(ReadOnlySpan<byte> bytes) => stream.Write(bytes);

    public void Flush() => stream.Flush();

    /// <summary>The next frame's type and payload length, or null at the end of the stream.</summary>
    public (FrameType Type, long Length)? ReadHeader()
    {
        if (stream.ReadAtLeast(_header, _header.Length, throwOnEndOfStream: false) < _header.Length) return null;
        long length = BinaryPrimitives.ReadInt64LittleEndian(_header.AsSpan(1));
        if (length < 0 || length > Array.MaxLength + 8L) throw new InvalidDataException($"a frame of {length} bytes");
        return ((FrameType)_header[0], length);
    }

    /// <summary>Fills <paramref name="buffer"/>; false when the stream ended first.</summary>
    public bool ReadPayload(Span<byte> buffer) =>
        stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false) == buffer.Length;

    /// <summary>A small payload whole; null when the stream ended first.</summary>
    public byte[]? ReadSmallPayload(long length)
    {
        if (length > 1 << 20) throw new InvalidDataException($"a {length}-byte message");
        var payload = new byte[length];
        return ReadPayload(payload) ? payload : null;
    }
}
