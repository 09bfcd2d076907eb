namespace AlexNet.Cuda.Devices;

/// <summary>Whether a GEMM operand is used as stored or transposed (cuBLAS's <c>CUBLAS_OP_N</c>/<c>_T</c>).</summary>
public enum MatrixOp
{
    None,
    Transpose,
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
    private MatrixView(DeviceBuffer<float> buffer, long offset, int storedRows, int storedColumns, int leadingDimension, bool transposed)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        if (storedRows < 0 || storedColumns < 0)
            throw new ArgumentOutOfRangeException(nameof(storedRows), $"a matrix cannot have {storedRows}×{storedColumns} elements");
        Buffer = buffer;
        Offset = offset;
        StoredRows = storedRows;
        StoredColumns = storedColumns;
        LeadingDimension = leadingDimension;
        Transposed = transposed;
    }

    public DeviceBuffer<float> Buffer { get; }

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
    public MatrixView T => new(Buffer, Offset, StoredRows, StoredColumns, LeadingDimension, !Transposed);

    /// <summary>A <paramref name="rows"/>×<paramref name="columns"/> matrix with element (r, c) at
    /// <c>offset + c·ld + r</c>; <paramref name="leadingDimension"/> defaults to <paramref name="rows"/>.</summary>
    public static MatrixView ColumnMajor(DeviceBuffer<float> buffer, int rows, int columns, long offset = 0, int leadingDimension = 0) =>
        new(buffer, offset, rows, columns, leadingDimension == 0 ? Math.Max(1, rows) : leadingDimension, transposed: false);

    /// <summary>A <paramref name="rows"/>×<paramref name="columns"/> matrix with element (r, c) at
    /// <c>offset + r·ld + c</c>; <paramref name="leadingDimension"/> (the row pitch) defaults to <paramref name="columns"/>.</summary>
    public static MatrixView RowMajor(DeviceBuffer<float> buffer, int rows, int columns, long offset = 0, int leadingDimension = 0) =>
        new(buffer, offset, columns, rows, leadingDimension == 0 ? Math.Max(1, columns) : leadingDimension, transposed: true);

    public override string ToString() =>
        $"{Rows}×{Columns}{(Transposed ? " (transposed)" : "")} at offset {Offset}, ld {LeadingDimension}";
}

/// <summary>
/// A strided batch of GEMMs (cuBLAS's <c>cublasSgemmStridedBatched</c>): matrix <c>i</c> of each
/// operand starts <c>i·stride</c> elements after the view's offset.
/// </summary>
public readonly record struct GemmBatch(int Count, long StrideA, long StrideB, long StrideC);
