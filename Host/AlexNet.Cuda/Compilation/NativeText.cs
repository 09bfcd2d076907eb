using System.Text;

namespace AlexNet.Cuda.Compilation;

/// <summary>UTF-8 strings to and from the C APIs of NVRTC, the CUDA driver and OpenCL.</summary>
internal static class NativeText
{
    /// <summary>The UTF-8 bytes of <paramref name="text"/> followed by a NUL.</summary>
    public static byte[] NulTerminated(string text)
    {
        var bytes = new byte[Encoding.UTF8.GetByteCount(text) + 1];
        Encoding.UTF8.GetBytes(text, bytes);
        return bytes;
    }

    /// <summary>A C string in a fixed-size buffer: the bytes up to the first NUL (or all of them).</summary>
    public static string FromUtf8(ReadOnlySpan<byte> text)
    {
        int end = text.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end >= 0 ? text[..end] : text);
    }
}
