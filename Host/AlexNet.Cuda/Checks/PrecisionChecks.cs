using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Reference;

namespace AlexNet.Cuda.Checks;

/// <summary>
/// The prelude's 16-bit loads and stores (convert.cu) against references computed here another way: fp16
/// by .NET's <see cref="Half"/> conversion, bf16 by choosing the nearer of the two neighbouring bf16 values
/// in double arithmetic (ties to the even one), not by the kernels' bit trick. Inputs: the test data with
/// its outliers, and the cases where rounding is decided: exact ties either way, one ulp off a tie, the
/// largest finite values and just past them, subnormal fp16, signed zeros, infinities, NaNs, and float
/// subnormals. Results must be bit for bit, except that any NaN stands for any NaN. Part of
/// <see cref="KernelChecks.All"/>.
/// </summary>
public static class PrecisionChecks
{
    public static IEnumerable<(string Name, Func<ComputeDevice, ComparisonResult> Run)> All()
    {
        foreach (ElementFormat format in new[] { ElementFormat.Half, ElementFormat.BFloat16 })
        {
            string name = ElementFormats.Name(format);
            yield return ($"convert float to {name}: {Inputs(format).Length} values, round to nearest even", d => ToSixteen(d, format));
            yield return ($"convert {name} to float: all 65536 bit patterns", d => FromSixteen(d, format));
        }
    }

    /// <summary>The values a conversion to <paramref name="format"/> is checked on.</summary>
    internal static float[] Inputs(ElementFormat format)
    {
        var values = new List<float>(KernelChecks.TestData(1000, seed: 61));
        values.AddRange([0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, -float.NaN,
            BitConverter.UInt32BitsToSingle(0x7F80_0001), BitConverter.UInt32BitsToSingle(0xFFFF_FFFF), // signalling, all-ones NaNs
            BitConverter.UInt32BitsToSingle(0x0000_0001), BitConverter.UInt32BitsToSingle(0x807F_FFFF), // float subnormals
            float.MaxValue, -float.MaxValue, float.Epsilon, 1f, -1f, 3.14159265f]);
        // Ties and their neighbours: the bits below the kept mantissa exactly half, and one ulp either side,
        // with the lowest kept bit even and odd, at several exponents.
        int dropped = format == ElementFormat.BFloat16 ? 16 : 13;
        uint half = 1u << (dropped - 1);
        foreach (uint exponent in new uint[] { 100, 112, 127, 130, 142, 150 })
        foreach (uint kept in new uint[] { 0, 1, 2, 3, 0x7E, 0x7F })
        foreach (int delta in new[] { -1, 0, 1 })
        foreach (uint sign in new uint[] { 0, 0x8000_0000 })
        {
            uint mantissa = (kept << dropped) + (uint)((int)half + delta);
            values.Add(BitConverter.UInt32BitsToSingle(sign | exponent << 23 | (mantissa & 0x7F_FFFF)));
        }
        if (format == ElementFormat.Half)
        {
            // The largest fp16 (65504), the last value that rounds down to it, the tie that rounds to infinity;
            // subnormal fp16 (2^-24 to 2^-14), half the smallest (a tie to 0), and the normal/subnormal border.
            values.AddRange([65504f, 65519.996f, 65520f, 65536f, -65520f, 1e5f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f,
                1.5e-8f, 6.1035156e-5f, 6.097555e-5f, 3.0e-6f, -4.5e-7f, 1e-10f]);
        }
        else
        {
            // The largest bf16, the first value that rounds to infinity, the largest that does not.
            values.AddRange([BitConverter.UInt32BitsToSingle(0x7F7F_0000), BitConverter.UInt32BitsToSingle(0x7F7F_8000),
                BitConverter.UInt32BitsToSingle(0x7F7F_7FFF), BitConverter.UInt32BitsToSingle(0xFF7F_8000)]);
        }
        return [.. values];
    }

    /// <summary>The bf16 nearest <paramref name="value"/>, ties to even, found by comparing distances.</summary>
    internal static ushort BFloat16Nearest(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        ushort below = (ushort)(bits >> 16); // toward zero
        if ((bits & 0xFFFF) == 0) return below;
        ushort above = (ushort)(below + 1); // away from zero; past the largest it is infinity's bits
        double v = Math.Abs((double)value), a = Math.Abs(BFloat16Value(below)), b = Math.Abs(BFloat16Value(above));
        double toBelow = v - a, toAbove = b - v;
        if (toBelow < toAbove) return below;
        if (toAbove < toBelow) return above;
        return (below & 1) == 0 ? below : above;
    }

    // The value of bf16 bits, with infinity's bits standing for 2^128, where the rounding puts it.
    private static double BFloat16Value(ushort h) =>
        (h & 0x7FFF) == 0x7F80 ? Math.CopySign(Math.ScaleB(1.0, 128), (h & 0x8000) != 0 ? -1 : 1) : BitConverter.UInt32BitsToSingle((uint)h << 16);

    private static ushort HalfNearest(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    public static ComparisonResult ToSixteen(ComputeDevice device, ElementFormat format)
    {
        float[] input = Inputs(format);
        ushort[] expected = [.. input.Select(v => format == ElementFormat.BFloat16 ? BFloat16Nearest(v) : HalfNearest(v))];
        using var kernels = new NetworkKernels(device);
        using DeviceBuffer<float> src = device.Upload<float>(input);
        using DeviceBuffer<ushort> dst = device.Upload<ushort>(Enumerable.Repeat((ushort)0xDEAD, input.Length + 3).ToArray());
        kernels.ToSixteenBits(device.DefaultStream, dst, src, input.Length, format);
        ushort[] got = device.Download(dst);
        return Compare(got, expected, input.Length, i => $"{input[i]:R} (0x{BitConverter.SingleToUInt32Bits(input[i]):X8})", format);
    }

    public static ComparisonResult FromSixteen(ComputeDevice device, ElementFormat format)
    {
        ushort[] input = [.. Enumerable.Range(0, 65536).Select(i => (ushort)i)];
        float[] expected = [.. input.Select(h => format == ElementFormat.BFloat16
            ? BitConverter.UInt32BitsToSingle((uint)h << 16) : (float)BitConverter.UInt16BitsToHalf(h))];
        using var kernels = new NetworkKernels(device);
        using DeviceBuffer<ushort> src = device.Upload<ushort>(input);
        using DeviceBuffer<float> dst = device.Allocate<float>(input.Length + 3);
        device.Fill(dst, 12345f);
        kernels.FromSixteenBits(device.DefaultStream, dst, src, input.Length, format);
        float[] got = device.Download(dst);
        int wrong = 0, first = -1;
        for (int i = 0; i < got.Length; i++)
        {
            bool same = i < input.Length
                ? BitConverter.SingleToUInt32Bits(got[i]) == BitConverter.SingleToUInt32Bits(expected[i]) || (float.IsNaN(got[i]) && float.IsNaN(expected[i]))
                : got[i] == 12345f; // the guard after the output: untouched
            if (same) continue;
            wrong++;
            if (first < 0) first = i;
        }
        string detail = wrong == 0
            ? $"{input.Length} values exact (NaN for NaN), the guard untouched"
            : $"{wrong} wrong; first at bits 0x{first:X4}: got {got[first]:R}, expected {(first < expected.Length ? expected[first].ToString("R") : "the guard")}";
        return new ComparisonResult(wrong == 0, wrong, 0, first, 0, detail);
    }

    private static ComparisonResult Compare(ushort[] got, ushort[] expected, int count, Func<int, string> describe, ElementFormat format)
    {
        int wrong = 0, first = -1;
        for (int i = 0; i < got.Length; i++)
        {
            bool same = i < count ? got[i] == expected[i] || (IsNaN(got[i], format) && IsNaN(expected[i], format)) : got[i] == 0xDEAD;
            if (same) continue;
            wrong++;
            if (first < 0) first = i;
        }
        string detail = wrong == 0
            ? $"{count} values bit for bit (NaN for NaN), the guard untouched"
            : first < count
                ? $"{wrong} wrong; first {describe(first)}: got 0x{got[first]:X4}, expected 0x{expected[first]:X4}"
                : $"{wrong} wrong; the guard after the output was written";
        return new ComparisonResult(wrong == 0, wrong, 0, first, 0, detail);
    }

    private static bool IsNaN(ushort h, ElementFormat format) => format == ElementFormat.BFloat16
        ? (h & 0x7F80) == 0x7F80 && (h & 0x7F) != 0
        : (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
}
