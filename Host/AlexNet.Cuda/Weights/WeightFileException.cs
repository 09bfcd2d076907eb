namespace AlexNet.Cuda.Weights;

/// <summary>
/// A weight file that cannot be used: unreadable, malformed, refused (a pickle asking for anything but numpy
/// arrays), or not matching the network. The message is one line naming the file, the problem and, where the
/// problem sits in the bytes, the offset (also in <see cref="Offset"/>).
/// </summary>
public sealed class WeightFileException : AlexNetException
{
    public WeightFileException(string message, long? offset = null, Exception? inner = null)
        : base(OneLine(message), inner)
    {
        Offset = offset;
    }

    /// <summary>Byte offset in the file (or in the .npz member) where the problem was found, when it has one.</summary>
    public long? Offset { get; }

    private static string OneLine(string s) => s.Replace('\r', ' ').Replace('\n', ' ');

    /// <summary>Quotes text taken from a file for a message: printable ASCII kept, the rest escaped, long text cut.</summary>
    internal static string Quote(string s, int max = 60)
    {
        var sb = new System.Text.StringBuilder(Math.Min(s.Length, max) + 8);
        sb.Append('\'');
        foreach (char c in s.Length > max ? s[..max] : s)
        {
            if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') sb.Append(c);
            else if (c == '\n') sb.Append("\\n");
            else sb.Append($"\\x{(int)c:x2}");
        }
        if (s.Length > max) sb.Append("...");
        sb.Append('\'');
        return sb.ToString();
    }
}
