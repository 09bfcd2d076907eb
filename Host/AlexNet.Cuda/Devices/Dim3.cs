namespace AlexNet.Cuda.Devices;

/// <summary>A launch dimension in CUDA's terms: a grid counts blocks, a block counts threads.
/// On OpenCL the global size is grid × block and the local size is block.</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public ulong Volume => (ulong)X * Y * Z;

    /// <summary>The number of blocks of <paramref name="block"/> threads that cover <paramref name="count"/> items.</summary>
    public static uint CeilDiv(long count, uint block) => checked((uint)((count + block - 1) / block));

    public override string ToString() => $"({X}, {Y}, {Z})";
}
