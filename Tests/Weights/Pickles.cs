using System.Buffers.Binary;
using System.Text;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>Hand-made pickles and .npy files for the refusal tests.</summary>
internal static class Pickles
{
    /// <summary>A .npy header for a 0-d object array followed by <paramref name="pickle"/>.</summary>
    public static byte[] ObjectNpy(byte[] pickle) => [.. NpyHeader("{'descr': '|O', 'fortran_order': False, 'shape': (), }"), .. pickle];

    public static byte[] NpyHeader(string dict, byte major = 1)
    {
        int lenBytes = major == 1 ? 2 : 4;
        int total = 8 + lenBytes + dict.Length + 1;
        string header = dict + new string(' ', (total + 63) / 64 * 64 - total) + "\n";
        var b = new List<byte> { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', major, 0 };
        var len = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(len, header.Length);
        b.AddRange(len[..lenBytes]);
        b.AddRange(Encoding.ASCII.GetBytes(header));
        return [.. b];
    }

    public static byte[] Ascii(string s) => Encoding.Latin1.GetBytes(s);
}
