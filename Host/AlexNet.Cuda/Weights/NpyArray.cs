namespace AlexNet.Cuda.Weights;

/// <summary>
/// One numeric array from a weight file, converted to float32 in C order (row-major, last axis fastest),
/// whatever the file's dtype, byte order and order flag were. <see cref="SourceDType"/> says what the file held.
/// </summary>
public sealed class NpyArray
{
    internal NpyArray(int[] shape, float[] data, string sourceDType, bool sourceFortranOrder)
    {
        Shape = shape;
        Data = data;
        SourceDType = sourceDType;
        SourceFortranOrder = sourceFortranOrder;
    }

    public int[] Shape { get; }

    public float[] Data { get; }

    /// <summary>numpy's dtype string of the stored data, e.g. <c>&lt;f4</c>.</summary>
    public string SourceDType { get; }

    public bool SourceFortranOrder { get; }

    public static string FormatShape(IReadOnlyList<int> shape) =>
        shape.Count == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";

    /// <summary>Element count of a shape, checked: negative dimensions and products past
    /// <paramref name="maxElements"/> are errors.</summary>
    internal static long CheckedCount(IReadOnlyList<long> shape, long maxElements, string where, long? offset)
    {
        long n = 1;
        foreach (long d in shape)
        {
            if (d < 0)
                throw new WeightFileException($"{where}: shape ({string.Join(", ", shape)}) has a negative dimension", offset);
            if (d != 0 && n > maxElements / d)
                throw new WeightFileException($"{where}: shape ({string.Join(", ", shape)}) is too large (more than {maxElements} elements)", offset);
            n *= d;
        }
        return n;
    }

    /// <summary>Allocates the destination for <paramref name="count"/> elements of float32 (uninitialised: every
    /// element is written by the reader).</summary>
    internal static float[] Allocate(long count) => count == 0 ? [] : GC.AllocateUninitializedArray<float>((int)count);

    /// <summary>Reorders data read as Fortran order (first axis fastest) into C order. Needs a second array.</summary>
    internal static float[] FortranToC(float[] src, int[] shape)
    {
        int rank = shape.Length;
        if (rank <= 1 || src.Length == 0) return src;
        var dst = Allocate(src.Length);
        // Fortran strides (elements) of the source for each axis.
        var fstride = new long[rank];
        fstride[0] = 1;
        for (int a = 1; a < rank; a++) fstride[a] = fstride[a - 1] * shape[a - 1];
        var idx = new int[rank];
        long s = 0;
        for (int i = 0; i < dst.Length; i++)
        {
            dst[i] = src[s];
            // Advance the C-order multi-index (last axis fastest), keeping s = Σ idx[a]·fstride[a].
            for (int a = rank - 1; a >= 0; a--)
            {
                idx[a]++;
                s += fstride[a];
                if (idx[a] < shape[a]) break;
                s -= fstride[a] * shape[a];
                idx[a] = 0;
            }
        }
        return dst;
    }
}
