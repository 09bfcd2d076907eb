using System.Buffers.Binary;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Kernels;

/// <summary>
/// The checks an image passes before <c>cuModuleLoadDataEx</c> (which takes no length) sees it, on ELF
/// images built here field by field, on NVRTC's real output, and through the disk cache, where an image
/// that fails them is a miss: deleted, compiled again, rewritten.
/// </summary>
public class CudaImageTests
{
    /// <summary>
    /// A minimal cubin-shaped ELF64: the 64-byte header, <paramref name="dataBytes"/> of section data, then a
    /// table of three section headers (the null section, a PROGBITS section over the data, a NOBITS section
    /// that occupies no file bytes) and one program header over the data.
    /// </summary>
    private static byte[] Elf(int dataBytes = 40, byte elfClass = 2, byte encoding = 1, ushort machine = 190)
    {
        const int sections = 3, segments = 1;
        int sectionTable = 64 + dataBytes, programTable = sectionTable + sections * 64;
        var image = new byte[programTable + segments * 56];
        Span<byte> s = image;
        s[0] = 0x7F; s[1] = (byte)'E'; s[2] = (byte)'L'; s[3] = (byte)'F';
        s[4] = elfClass; s[5] = encoding; s[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x10..], 2); // ET_EXEC
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x12..], machine);
        BinaryPrimitives.WriteUInt32LittleEndian(s[0x14..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x20..], (ulong)programTable);
        BinaryPrimitives.WriteUInt64LittleEndian(s[0x28..], (ulong)sectionTable);
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x34..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x36..], 56);
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x38..], segments);
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x3A..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x3C..], sections);
        BinaryPrimitives.WriteUInt16LittleEndian(s[0x3E..], 1);
        Span<byte> progbits = s.Slice(sectionTable + 64, 64);
        BinaryPrimitives.WriteUInt32LittleEndian(progbits[0x04..], 1); // SHT_PROGBITS
        BinaryPrimitives.WriteUInt64LittleEndian(progbits[0x18..], 64);
        BinaryPrimitives.WriteUInt64LittleEndian(progbits[0x20..], (ulong)dataBytes);
        Span<byte> nobits = s.Slice(sectionTable + 128, 64);
        BinaryPrimitives.WriteUInt32LittleEndian(nobits[0x04..], 8); // SHT_NOBITS: its size is memory, not file bytes
        BinaryPrimitives.WriteUInt64LittleEndian(nobits[0x18..], (ulong)programTable);
        BinaryPrimitives.WriteUInt64LittleEndian(nobits[0x20..], 1UL << 40);
        Span<byte> load = s.Slice(programTable, 56);
        BinaryPrimitives.WriteUInt32LittleEndian(load, 1); // PT_LOAD
        BinaryPrimitives.WriteUInt64LittleEndian(load[0x08..], 64);
        BinaryPrimitives.WriteUInt64LittleEndian(load[0x20..], (ulong)dataBytes);
        return image;
    }

    private static byte[] With(byte[] image, Action<Span<byte>> change)
    {
        byte[] copy = (byte[])image.Clone();
        change(copy);
        return copy;
    }

    private const int SectionTable = 64 + 40;

    [Fact]
    public void AMinimalCudaElfPasses()
    {
        Assert.Null(CudaImage.CubinProblem(Elf()));
        Assert.Null(CudaImage.Problem(Elf(dataBytes: 0), cubin: true));
    }

    public static TheoryData<string, byte[], string> BadCubins()
    {
        byte[] good = Elf();
        return new TheoryData<string, byte[], string>
        {
            { "empty", [], "shorter than an ELF64 header" },
            { "the 7-byte ELF magic and junk", [0x7F, 0x45, 0x4C, 0x46, 1, 2, 3], "shorter than an ELF64 header" },
            { "63 bytes of a good header", good[..63], "shorter than an ELF64 header" },
            { "no magic", With(good, s => s[1] = (byte)'X'), "not an ELF image" },
            { "32-bit ELF", Elf(elfClass: 1), "ELF class 1, not 64-bit" },
            { "big-endian", Elf(encoding: 2), "not little-endian" },
            { "x86-64 machine", Elf(machine: 62), "ELF machine 62, not EM_CUDA (190)" },
            { "no sections", With(good, s => BinaryPrimitives.WriteUInt16LittleEndian(s[0x3C..], 0)), "no section table" },
            { "32-bit section headers", With(good, s => BinaryPrimitives.WriteUInt16LittleEndian(s[0x3A..], 40)), "section headers of 40 bytes" },
            { "truncated by one byte", good[..^1], "is not inside the image" },
            { "table past the end", With(good, s => BinaryPrimitives.WriteUInt64LittleEndian(s[0x28..], (ulong)good.Length - 64)), "the section table (3 × 64 bytes at" },
            { "table offset that overflows", With(good, s => BinaryPrimitives.WriteUInt64LittleEndian(s[0x28..], ulong.MaxValue - 10)), "the section table" },
            { "table over the header", With(good, s => BinaryPrimitives.WriteUInt64LittleEndian(s[0x28..], 0)), "the section table" },
            { "more sections than the table holds", With(good, s => BinaryPrimitives.WriteUInt16LittleEndian(s[0x3C..], 60)), "the section table (60 × 64 bytes" },
            { "name index past the sections", With(good, s => BinaryPrimitives.WriteUInt16LittleEndian(s[0x3E..], 3)), "section-name table index 3" },
            { "section data past the end", With(good, s => BinaryPrimitives.WriteUInt64LittleEndian(s[(SectionTable + 64 + 0x20)..], (ulong)good.Length)), "section 1 (" },
            { "section size that overflows", With(good, s => BinaryPrimitives.WriteUInt64LittleEndian(s[(SectionTable + 64 + 0x20)..], ulong.MaxValue)), "section 1 (" },
            { "segment past the end", With(good, s => BinaryPrimitives.WriteUInt64LittleEndian(s[(SectionTable + 3 * 64 + 0x08)..], (ulong)good.Length)), "segment 0 (" },
            { "program headers of the wrong size", With(good, s => BinaryPrimitives.WriteUInt16LittleEndian(s[0x36..], 32)), "program headers of 32 bytes" },
            { "program table past the end", With(good, s => BinaryPrimitives.WriteUInt16LittleEndian(s[0x38..], 2)), "the program header table (2 × 56 bytes" },
        };
    }

    [Theory]
    [MemberData(nameof(BadCubins))]
    public void ACubinThatWouldLeadTheDriverPastItsEndFails(string what, byte[] image, string reason)
    {
        string? problem = CudaImage.Problem(image, cubin: true);
        Assert.True(problem is not null, $"{what} passed");
        Assert.Contains(reason, problem);
        Assert.DoesNotContain('\n', problem);
    }

    [Theory]
    [InlineData(".version 8.0\n.target sm_90\n\0", null)]
    [InlineData("x\0", null)]
    [InlineData("", "holds no text")]
    [InlineData("\0", "holds no text")]
    [InlineData(".version 8.0\n.target sm_90\n", "not NUL-terminated")]
    [InlineData(".version 8.0\0.target sm_90\n\0", "a NUL at byte 12, before its end")]
    public void PtxMustBeTextEndingInItsOneNul(string text, string? reason)
    {
        string? problem = CudaImage.Problem(System.Text.Encoding.ASCII.GetBytes(text), cubin: false);
        if (reason is null) Assert.Null(problem);
        else Assert.Contains(reason, problem);
    }

    [Fact]
    public void AValidCubinIsNotValidPtxNorTheOtherWayRound()
    {
        Assert.NotNull(CudaImage.Problem(Elf(), cubin: false)); // no NUL at its end
        Assert.NotNull(CudaImage.Problem(".version 8.0\n\0"u8, cubin: true));
    }

    [Fact]
    public void TheCorruptCacheCheckWritesWhatPassesForNeither()
    {
        Assert.NotNull(CudaImage.Problem(DeviceChecks.CorruptEntry, cubin: true));
        Assert.NotNull(CudaImage.Problem(DeviceChecks.CorruptEntry, cubin: false));
        // Last in its group, and its group last of all, so nothing runs after it.
        Assert.Equal(DeviceChecks.CorruptCacheCheckName, DeviceChecks.All().Last().Name);
        Assert.Equal(DeviceChecks.CorruptCacheCheckName, KernelChecks.All().Last().Name);
    }

    [SkippableTheory]
    [InlineData(80)]
    [InlineData(90)]
    public void NvrtcsOwnCubinsAndPtxPass(int architecture)
    {
        TestNative.Require(NativeLibraryId.Nvrtc);
        foreach (string file in KernelSource.EmbeddedKernelFiles())
        {
            KernelSource source = KernelSource.FromEmbedded(file);
            byte[] cubin = NvrtcCompiler.Compile(source, NvrtcTarget.Sm(architecture), null).Image;
            Assert.Null(CudaImage.Problem(cubin, cubin: true));
            // Cut anywhere, a real cubin fails: its section table comes last.
            Assert.NotNull(CudaImage.Problem(cubin.AsSpan(0, cubin.Length - 1), cubin: true));
            Assert.NotNull(CudaImage.Problem(cubin.AsSpan(0, cubin.Length / 2), cubin: true));
            byte[] ptx = NvrtcCompiler.Compile(source, new NvrtcTarget(architecture, Cubin: false), null).Image;
            Assert.Null(CudaImage.Problem(ptx, cubin: false));
            Assert.NotNull(CudaImage.Problem(ptx.AsSpan(0, ptx.Length - 1), cubin: false));
        }
    }

    [SkippableTheory]
    [InlineData(true, "junk")]
    [InlineData(true, "half")]
    [InlineData(false, "junk")]
    [InlineData(false, "no NUL")]
    public void ACacheEntryThatFailsValidationIsAMissAndIsRewritten(bool cubin, string damage)
    {
        TestNative.Require(NativeLibraryId.Nvrtc);
        using FreshCache fresh = TestCache.Fresh();
        KernelSource source = KernelSource.FromEmbedded("transpose.cu");
        var target = new NvrtcTarget(90, cubin);
        NvrtcOutput first = NvrtcCompiler.CompileCached(fresh.Cache, source, target, null);
        string entry = Assert.Single(Directory.GetFiles(Path.Combine(fresh.Cache.Root, "cuda"), cubin ? "transpose-*.cubin" : "transpose-*.ptx"));
        byte[] damaged = damage switch
        {
            "junk" => DeviceChecks.CorruptEntry.ToArray(),
            "half" => first.Image[..(first.Image.Length / 2)],
            _ => first.Image[..^1],
        };
        File.WriteAllBytes(entry, damaged);

        NvrtcOutput second = NvrtcCompiler.CompileCached(fresh.Cache, source, target, null);
        Assert.False(second.FromCache);
        Assert.Null(CudaImage.Problem(second.Image, cubin));
        Assert.Equal(second.Image, File.ReadAllBytes(entry)); // rewritten with the compiled image
        NvrtcOutput third = NvrtcCompiler.CompileCached(fresh.Cache, source, target, null);
        Assert.True(third.FromCache);
    }
}
