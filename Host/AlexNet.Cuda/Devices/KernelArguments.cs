using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace AlexNet.Cuda.Devices;

/// <summary>
/// A kernel's arguments, packed by value into an inline byte block: no boxing, no heap allocation, no
/// pinning per launch. Both backends read it the same way: argument <c>i</c> is <see cref="SizeOf"/>(i)
/// bytes at <see cref="OffsetOf"/>(i). Add arguments in the order of the kernel's parameter list with
/// exactly the C types it declares (<c>int</c> is <see cref="int"/>, <c>size_t</c> is <see cref="ulong"/>).
/// </summary>
public struct KernelArguments
{
    public const int MaxArguments = 32;
    public const int MaxBytes = MaxArguments * 8;

    [InlineArray(MaxBytes)]
    private struct ByteBlock { private byte _element; }

    [InlineArray(MaxArguments)]
    private struct ShortBlock { private ushort _element; }

    [InlineArray(MaxArguments)]
    private struct PointerFlags { private bool _element; }

    private ByteBlock _bytes;
    private ShortBlock _offsets;
    private ShortBlock _sizes;
    private PointerFlags _pointers;
    private int _count;
    private int _used;

    public readonly int Count => _count;

    public readonly int OffsetOf(int index) => _offsets[index];

    public readonly int SizeOf(int index) => _sizes[index];

    /// <summary>True when argument <paramref name="index"/> is a device buffer (a pointer), not a scalar.</summary>
    public readonly bool IsPointer(int index) => _pointers[index];

    /// <summary>Appends a scalar argument.</summary>
    public void Add<T>(T value) where T : unmanaged => Append(value, pointer: false);

    /// <summary>Appends a device buffer as a pointer argument (<c>GLOBAL float*</c>, <c>GLOBAL act_t*</c>, …).</summary>
    public void Add(DeviceBuffer buffer) => Append(buffer.Handle, pointer: true);

    private void Append<T>(T value, bool pointer) where T : unmanaged
    {
        int size = Unsafe.SizeOf<T>();
        // Natural alignment, as the C ABI lays parameters out; CUDA copies each from its own pointer.
        int offset = (_used + size - 1) / size * size;
        if (_count == MaxArguments || offset + size > MaxBytes)
            throw new ArgumentException($"a kernel takes at most {MaxArguments} arguments and {MaxBytes} bytes of them");
        Unsafe.WriteUnaligned(ref _bytes[offset], value);
        _offsets[_count] = (ushort)offset;
        _sizes[_count] = (ushort)size;
        _pointers[_count] = pointer;
        _count++;
        _used = offset + size;
    }

    /// <summary>The packed bytes; pass by reference and pin once per launch.</summary>
    [UnscopedRef]
    internal readonly ref readonly byte Data => ref _bytes[0];
}
