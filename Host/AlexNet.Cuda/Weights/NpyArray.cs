namespace AlexNet.Cuda.Weights;

/// <summary>
/// One numeric array from a weight file, converted to float32 in C order (row-major, last axis fastest),
/// whatever the file's dtype, byte order and order flag were. <see cref="SourceDType"/> says what the file held.
/// </summary>
public sealed class NpyArray
{
    private float[]? _data;
    private Func<float[]>? _read;

    internal NpyArray(int[] shape, float[] data, string sourceDType, bool sourceFortranOrder)
    {
        Shape = shape;
        _data = data;
        SourceDType = sourceDType;
        SourceFortranOrder = sourceFortranOrder;
    }

    /// <summary>An array whose data is read when <see cref="Data"/> is first asked for: a pickle's arrays are
    /// only read for the layers that pass the shape checks, so a file cannot make the reader allocate more
    /// than the architecture needs. The reader keeps the file open until that is done.</summary>
    internal NpyArray(int[] shape, Func<float[]> read, string sourceDType, bool sourceFortranOrder)
    {
        Shape = shape;
        _read = read;
        SourceDType = sourceDType;
        SourceFortranOrder = sourceFortranOrder;
    }

    public int[] Shape { get; }

    public float[] Data
    {
        get
        {
            if (_data is null)
            {
                _data = _read!();
                _read = null;
            }
            return _data;
        }
    }

    /// <summary>numpy's dtype string of the stored data, e.g. <c>&lt;f4</c>.</summary>
    public string SourceDType { get; }

    public bool SourceFortranOrder { get; }

    public static string FormatShape(IReadOnlyList<int> shape) =>
        shape.Count == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape)})";

    /// <summary>A shape as read from a file, checked and converted: every dimension a non-negative int (a zero
    /// dimension makes the product 0 whatever the others are, so each is checked on its own), and the element
    /// count at most <paramref name="maxElements"/>. The one place where a file's dimensions become ints.</summary>
    internal static (int[] Shape, long Count) CheckedShape(IReadOnlyList<long> shape, long maxElements, string where, long? offset)
    {
        var dims = new int[shape.Count];
        long n = 1;
        for (int i = 0; i < dims.Length; i++)
        {
            long d = shape[i];
            if (d < 0)
                throw new WeightFileException($"{where}: shape {NpyReader.FormatShape(shape)} has a negative dimension", offset);
            if (d > int.MaxValue)
                throw new WeightFileException($"{where}: shape {NpyReader.FormatShape(shape)} has the dimension {d}, larger than {int.MaxValue}", offset);
            dims[i] = (int)d;
            if (n > maxElements / Math.Max(d, 1))
                throw new WeightFileException($"{where}: shape {NpyReader.FormatShape(shape)} is too large (more than {maxElements} elements)", offset);
            n *= d;
        }
        return (dims, n);
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
