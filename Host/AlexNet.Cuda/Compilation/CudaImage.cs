using System.Buffers.Binary;

namespace AlexNet.Cuda.Compilation;

/// <summary>
/// What may be handed to the driver's module loader. <c>cuModuleLoadDataEx</c> takes no length: it finds
/// the end of a cubin from the offsets in its ELF header and the end of PTX text from its NUL, so a truncated
/// or corrupt image makes the driver read past the buffer (a segfault, not an error code). Every image is
/// checked here first: a cubin must be a little-endian 64-bit ELF for <c>EM_CUDA</c> whose section and
/// program header tables, and every section's and segment's bytes, lie inside the image; PTX must be text
/// ending in its one NUL. This does not prove the driver will accept the image (a cubin for another GPU, PTX
/// from a newer toolkit), only that reading it stays inside the buffer.
/// </summary>
public static class CudaImage
{
    /// <summary>ELF's machine number for NVIDIA CUDA images (<c>EM_CUDA</c>).</summary>
    public const ushort ElfMachineCuda = 190;

    private const int Elf64HeaderSize = 64;
    private const int Elf64SectionHeaderSize = 64;
    private const int Elf64ProgramHeaderSize = 56;
    private const uint SectionTypeNoBits = 8; // SHT_NOBITS: occupies no bytes of the file (.bss, .nv.shared.*)

    /// <summary>Null when <paramref name="image"/> is safe to hand to the driver as a cubin
    /// (<paramref name="cubin"/>) or PTX; otherwise one line saying what is wrong.</summary>
    public static string? Problem(ReadOnlySpan<byte> image, bool cubin) => cubin ? CubinProblem(image) : PtxProblem(image);

    /// <summary>Null for PTX the driver can read to its end: text with one NUL, the last byte.</summary>
    public static string? PtxProblem(ReadOnlySpan<byte> image)
    {
        if (image.Length < 2) return $"PTX of {image.Length} bytes holds no text";
        if (image[^1] != 0) return $"PTX of {image.Length} bytes is not NUL-terminated";
        int nul = image.IndexOf((byte)0);
        return nul < image.Length - 1 ? $"PTX of {image.Length} bytes has a NUL at byte {nul}, before its end" : null;
    }

    /// <summary>Null for a cubin whose every table and section the driver reads lies inside the image.</summary>
    public static string? CubinProblem(ReadOnlySpan<byte> image)
    {
        if (image.Length < Elf64HeaderSize) return $"a cubin of {image.Length} bytes is shorter than an ELF64 header ({Elf64HeaderSize})";
        if (image[0] != 0x7F || image[1] != (byte)'E' || image[2] != (byte)'L' || image[3] != (byte)'F') return "not an ELF image (no \\x7FELF magic)";
        if (image[4] != 2) return $"ELF class {image[4]}, not 64-bit (2)";
        if (image[5] != 1) return $"ELF data encoding {image[5]}, not little-endian (1)";
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(image[0x12..]);
        if (machine != ElfMachineCuda) return $"ELF machine {machine}, not EM_CUDA ({ElfMachineCuda})";
        ulong length = (ulong)image.Length;

        ulong sectionTable = BinaryPrimitives.ReadUInt64LittleEndian(image[0x28..]);
        ushort sectionEntry = BinaryPrimitives.ReadUInt16LittleEndian(image[0x3A..]);
        ushort sections = BinaryPrimitives.ReadUInt16LittleEndian(image[0x3C..]);
        ushort names = BinaryPrimitives.ReadUInt16LittleEndian(image[0x3E..]);
        if (sections == 0) return "no section table (e_shnum 0)";
        if (sectionEntry != Elf64SectionHeaderSize) return $"section headers of {sectionEntry} bytes, not {Elf64SectionHeaderSize}";
        if (!Inside(sectionTable, (ulong)sections * Elf64SectionHeaderSize, length, minimumOffset: Elf64HeaderSize))
            return $"the section table ({sections} × {Elf64SectionHeaderSize} bytes at {sectionTable}) is not inside the image's {length} bytes";
        if (names >= sections) return $"the section-name table index {names} is not below the {sections} sections";
        for (int i = 0; i < sections; i++)
        {
            ReadOnlySpan<byte> header = image.Slice((int)sectionTable + i * Elf64SectionHeaderSize, Elf64SectionHeaderSize);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(header[0x04..]);
            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(header[0x18..]);
            ulong size = BinaryPrimitives.ReadUInt64LittleEndian(header[0x20..]);
            if (type != SectionTypeNoBits && !Inside(offset, size, length))
                return $"section {i} ({size} bytes at {offset}) is not inside the image's {length} bytes";
        }

        ulong programTable = BinaryPrimitives.ReadUInt64LittleEndian(image[0x20..]);
        ushort programEntry = BinaryPrimitives.ReadUInt16LittleEndian(image[0x36..]);
        ushort segments = BinaryPrimitives.ReadUInt16LittleEndian(image[0x38..]);
        if (segments == 0) return null;
        if (programEntry != Elf64ProgramHeaderSize) return $"program headers of {programEntry} bytes, not {Elf64ProgramHeaderSize}";
        if (!Inside(programTable, (ulong)segments * Elf64ProgramHeaderSize, length, minimumOffset: Elf64HeaderSize))
            return $"the program header table ({segments} × {Elf64ProgramHeaderSize} bytes at {programTable}) is not inside the image's {length} bytes";
        for (int i = 0; i < segments; i++)
        {
            ReadOnlySpan<byte> header = image.Slice((int)programTable + i * Elf64ProgramHeaderSize, Elf64ProgramHeaderSize);
            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(header[0x08..]);
            ulong size = BinaryPrimitives.ReadUInt64LittleEndian(header[0x20..]);
            if (!Inside(offset, size, length))
                return $"segment {i} ({size} bytes at {offset}) is not inside the image's {length} bytes";
        }
        return null;
    }

    /// <summary>[offset, offset + size) within [minimumOffset, length), without overflow for any 64-bit values.</summary>
    private static bool Inside(ulong offset, ulong size, ulong length, ulong minimumOffset = 0) =>
        offset >= minimumOffset && offset <= length && size <= length - offset;
}
