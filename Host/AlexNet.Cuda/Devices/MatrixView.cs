namespace AlexNet.Cuda.Devices;

/// <summary>Whether a GEMM operand is used as stored or transposed (cuBLAS's <c>CUBLAS_OP_N</c>/<c>_T</c>).</summary>
public enum MatrixOp
{
    None,
    Transpose,
}

/// <summary>How the elements of a buffer are stored: a GEMM operand's and an activation's number format.</summary>
public enum ElementFormat
{
    /// <summary>IEEE binary32.</summary>
    Float32,

    /// <summary>IEEE binary16 (fp16) bits in a <c>ushort</c>: 10 mantissa bits, finite to 65504.</summary>
    Half,

    /// <summary>bfloat16 bits in a <c>ushort</c>: a float's top 16 bits (float's range, 7 mantissa bits).</summary>
    BFloat16,
}

/// <summary>How a GEMM multiplies: FP32 operands exactly as SGEMM does, or rounded to TF32 on tensor cores.
/// 16-bit operands always multiply exactly and accumulate in FP32 (<see cref="Default"/>).</summary>
public enum GemmMath
{
    /// <summary>FP32 inputs used as they are (SGEMM); 16-bit inputs with FP32 accumulation.</summary>
    Default,

    /// <summary>FP32 storage, the inputs rounded to TF32 (10 mantissa bits) for the products, FP32 accumulation
    /// (cuBLAS's <c>CUBLAS_COMPUTE_32F_FAST_TF32</c>).</summary>
    Tf32,
}

public static class ElementFormats
{
    /// <summary>Bytes per element of <paramref name="format"/>.</summary>
    public static int SizeOf(ElementFormat format) => format == ElementFormat.Float32 ? 4 : 2;

    /// <summary>The format's short name: fp32, fp16, bf16.</summary>
    public static string Name(ElementFormat format) => format switch
    {
        ElementFormat.Half => "fp16",
        ElementFormat.BFloat16 => "bf16",
        _ => "fp32",
    };

    // The host's own conversions, the same roundings as the prelude's store_half/store_bf16 (round to
    // nearest, ties to even; NaN kept), for the weights at load, exports and the host-side GEMM path.

    /// <summary>The fp16 bits of <paramref name="value"/> (.NET's conversion rounds to nearest even).</summary>
    public static ushort ToHalfBits(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>The bf16 bits of <paramref name="value"/>, as prelude.h's float_to_bf16.</summary>
    public static ushort ToBFloat16Bits(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x0040u);
        return (ushort)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }

    /// <summary>The float that 16-bit value <paramref name="bits"/> of <paramref name="format"/> stands for (exact).</summary>
    public static float ToFloat(ushort bits, ElementFormat format) => format == ElementFormat.BFloat16
        ? BitConverter.UInt32BitsToSingle((uint)bits << 16)
        : (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary><paramref name="value"/> stored in 16-bit <paramref name="format"/>.</summary>
    public static ushort ToBits(float value, ElementFormat format) =>
        format == ElementFormat.BFloat16 ? ToBFloat16Bits(value) : ToHalfBits(value);

    /// <summary>Converts 16-bit values of <paramref name="format"/> to floats.</summary>
    public static void ToFloat(ReadOnlySpan<ushort> source, Span<float> destination, ElementFormat format)
    {
        if (destination.Length < source.Length) throw new ArgumentException("the destination is shorter than the source", nameof(destination));
        if (format == ElementFormat.BFloat16)
            for (int i = 0; i < source.Length; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)source[i] << 16);
        else
            for (int i = 0; i < source.Length; i++) destination[i] = (float)BitConverter.UInt16BitsToHalf(source[i]);
    }

    /// <summary>Converts floats to 16-bit values of <paramref name="format"/>, rounding to nearest even.</summary>
    public static void FromFloat(ReadOnlySpan<float> source, Span<ushort> destination, ElementFormat format)
    {
        if (destination.Length < source.Length) throw new ArgumentException("the destination is shorter than the source", nameof(destination));
        if (format == ElementFormat.BFloat16)
            for (int i = 0; i < source.Length; i++) destination[i] = ToBFloat16Bits(source[i]);
        else
            for (int i = 0; i < source.Length; i++) destination[i] = ToHalfBits(source[i]);
    }

    /// <summary>
    /// <paramref name="value"/> rounded to TF32 (8 exponent bits, 10 mantissa bits, kept in a float) to nearest,
    /// ties to even, as tensor cores see an FP32 operand; infinities and NaN unchanged. Products of two such
    /// values are exact in FP32, so an SGEMM of rounded operands is a TF32 GEMM with FP32 accumulation.
    /// </summary>
    public static float RoundToTf32(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7f800000u) == 0x7f800000u) return value;
        return BitConverter.UInt32BitsToSingle((u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu);
    }
}

/// <summary>
/// A matrix inside a device buffer, for <see cref="ComputeStream.Gemm"/>: where it starts
/// (<see cref="Offset"/>, in elements), its stored shape and leading dimension in cuBLAS's
/// column-major terms, and whether the GEMM uses it transposed. Build one with
/// <see cref="RowMajor"/> (the natural reading of a C array: element (r, c) at r·ld + c) or
/// <see cref="ColumnMajor"/> (element (r, c) at c·ld + r); <see cref="T"/> transposes without moving
/// data. A row-major view is stored as the column-major view of its transpose, so call sites can speak
/// row-major throughout while cuBLAS sees column-major. A value type: no allocation per GEMM.
/// </summary>
public readonly struct MatrixView
{
    private MatrixView(DeviceBuffer buffer, ElementFormat format, long offset, int storedRows, int storedColumns, int leadingDimension, bool transposed)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        if (buffer.ElementSize != ElementFormats.SizeOf(format))
            throw new ArgumentException($"a {ElementFormats.Name(format)} matrix needs {ElementFormats.SizeOf(format)}-byte elements, but the buffer's are {buffer.ElementSize} bytes", nameof(buffer));
        Format = format;
        if (storedRows < 0 || storedColumns < 0)
            throw new ArgumentOutOfRangeException(nameof(storedRows), $"a matrix cannot have {storedRows}×{storedColumns} elements");
        Buffer = buffer;
        Offset = offset;
        StoredRows = storedRows;
        StoredColumns = storedColumns;
        LeadingDimension = leadingDimension;
        Transposed = transposed;
    }

    public DeviceBuffer Buffer { get; }

    /// <summary>How the buffer's elements are stored.</summary>
    public ElementFormat Format { get; }

    /// <summary>Index of element (0, 0) in <see cref="Buffer"/>.</summary>
    public long Offset { get; }

    /// <summary>Rows of the column-major matrix as stored (the contiguous dimension).</summary>
    public int StoredRows { get; }

    public int StoredColumns { get; }

    /// <summary>Elements from one stored column to the next (cuBLAS's <c>lda</c>).</summary>
    public int LeadingDimension { get; }

    /// <summary>True when the GEMM uses the stored matrix transposed.</summary>
    public bool Transposed { get; }

    /// <summary>Rows of the matrix as the GEMM uses it.</summary>
    public int Rows => Transposed ? StoredColumns : StoredRows;

    /// <summary>Columns of the matrix as the GEMM uses it.</summary>
    public int Columns => Transposed ? StoredRows : StoredColumns;

    public MatrixOp Op => Transposed ? MatrixOp.Transpose : MatrixOp.None;

    /// <summary>The same data used transposed.</summary>
    public MatrixView T => new(Buffer, Format, Offset, StoredRows, StoredColumns, LeadingDimension, !Transposed);

    /// <summary>A <paramref name="rows"/>×<paramref name="columns"/> matrix with element (r, c) at
    /// <c>offset + c·ld + r</c>; <paramref name="leadingDimension"/> defaults to <paramref name="rows"/>.</summary>
    public static MatrixView ColumnMajor(DeviceBuffer<float> buffer, int rows, int columns, long offset = 0, int leadingDimension = 0) =>
        ColumnMajor(buffer, ElementFormat.Float32, rows, columns, offset, leadingDimension);

    /// <summary>As <see cref="ColumnMajor(DeviceBuffer{float}, int, int, long, int)"/>, for a buffer of
    /// <paramref name="format"/> elements.</summary>
    public static MatrixView ColumnMajor(DeviceBuffer buffer, ElementFormat format, int rows, int columns, long offset = 0, int leadingDimension = 0) =>
        new(buffer, format, offset, rows, columns, leadingDimension == 0 ? Math.Max(1, rows) : leadingDimension, transposed: false);

    /// <summary>A <paramref name="rows"/>×<paramref name="columns"/> matrix with element (r, c) at
    /// <c>offset + r·ld + c</c>; <paramref name="leadingDimension"/> (the row pitch) defaults to <paramref name="columns"/>.</summary>
    public static MatrixView RowMajor(DeviceBuffer<float> buffer, int rows, int columns, long offset = 0, int leadingDimension = 0) =>
        RowMajor(buffer, ElementFormat.Float32, rows, columns, offset, leadingDimension);

    /// <summary>As <see cref="RowMajor(DeviceBuffer{float}, int, int, long, int)"/>, for a buffer of
    /// <paramref name="format"/> elements.</summary>
    public static MatrixView RowMajor(DeviceBuffer buffer, ElementFormat format, int rows, int columns, long offset = 0, int leadingDimension = 0) =>
        new(buffer, format, offset, columns, rows, leadingDimension == 0 ? Math.Max(1, columns) : leadingDimension, transposed: true);

    public override string ToString() =>
        $"{Rows}×{Columns} {ElementFormats.Name(Format)}{(Transposed ? " (transposed)" : "")} at offset {Offset}, ld {LeadingDimension}";
}

/// <summary>
/// A strided batch of GEMMs (cuBLAS's <c>cublasSgemmStridedBatched</c>): matrix <c>i</c> of each
/// operand starts <c>i·stride</c> elements after the view's offset.
/// </summary>
public readonly record struct GemmBatch(int Count, long StrideA, long StrideB, long StrideC);
