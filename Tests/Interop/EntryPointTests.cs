using System.Reflection;
using System.Runtime.InteropServices;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Infrastructure;

namespace AlexNet.Cuda.Tests.Interop;

/// <summary>
/// Every entry point declared in Interop/ is looked up in the real library, so a misspelt or wrongly
/// versioned name (<c>cuMemAlloc</c> for <c>cuMemAlloc_v2</c>) fails here rather than at a user's first call.
/// Debian's libcuda1 exports every driver entry point even on a machine without a GPU.
/// </summary>
public class EntryPointTests
{
    public static TheoryData<NativeLibraryId> Libraries() =>
        new(NativeLibraryId.CudaDriver, NativeLibraryId.Nvrtc, NativeLibraryId.Cublas, NativeLibraryId.OpenCl, NativeLibraryId.ClBlast);

    private static Type BindingClass(NativeLibraryId id) => id switch
    {
        NativeLibraryId.CudaDriver => typeof(CudaDriver),
        NativeLibraryId.Nvrtc => typeof(Nvrtc),
        NativeLibraryId.Cublas => typeof(Cublas),
        NativeLibraryId.OpenCl => typeof(OpenCl),
        NativeLibraryId.ClBlast => typeof(ClBlast),
        _ => throw new ArgumentOutOfRangeException(nameof(id)),
    };

    internal static List<string> DeclaredEntryPoints(Type type) =>
        type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
            .Select(m => (Method: m, Import: m.GetCustomAttribute<LibraryImportAttribute>()))
            .Where(x => x.Import is not null)
            .Select(x => x.Import!.EntryPoint ?? x.Method.Name)
            .Distinct()
            .ToList();

    [SkippableTheory]
    [MemberData(nameof(Libraries))]
    public void EveryDeclaredEntryPointExists(NativeLibraryId id)
    {
        // cuBLAS is 200 MB and optional on build machines: checked wherever it is installed.
        if (id == NativeLibraryId.Cublas)
            Skip.IfNot(NativeLibraries.TryLoad(id, out _), $"cuBLAS is not installed here ({string.Join(", ", NativeLibraries.CandidateNames(id))})");
        TestNative.Require(id);
        IntPtr handle = NativeLibraries.Load(id);
        List<string> names = DeclaredEntryPoints(BindingClass(id));
        Assert.NotEmpty(names);
        List<string> missing = names.Where(n => !NativeLibrary.TryGetExport(handle, n, out _)).ToList();
        Assert.True(missing.Count == 0,
            $"{NativeLibraries.LoadedPath(id)} lacks {string.Join(", ", missing)} (of {names.Count} declared)");
    }

    [Fact]
    public void TheLookupItselfCanFail()
    {
        // The check above is only worth something if a wrong name is reported: prove it with the
        // unversioned driver name that must never be bound (it is the 32-bit-size legacy ABI).
        Assert.DoesNotContain("cuMemAlloc", DeclaredEntryPoints(typeof(CudaDriver)));
        Assert.Contains("cuMemAlloc_v2", DeclaredEntryPoints(typeof(CudaDriver)));
        if (NativeLibraries.TryLoad(NativeLibraryId.OpenCl, out IntPtr cl))
            Assert.False(NativeLibrary.TryGetExport(cl, "clNoSuchFunction_v2", out _));
    }
}
