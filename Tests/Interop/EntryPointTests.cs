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
public partial class EntryPointTests
{
    public static TheoryData<NativeLibraryId> Libraries() =>
        new(NativeLibraryId.CudaDriver, NativeLibraryId.Nvrtc, NativeLibraryId.Cublas, NativeLibraryId.CublasLt, NativeLibraryId.OpenCl,
            NativeLibraryId.ClBlast, NativeLibraryId.OpenBlas, NativeLibraryId.OneDnn);

    private static Type BindingClass(NativeLibraryId id) => id switch
    {
        NativeLibraryId.CudaDriver => typeof(CudaDriver),
        NativeLibraryId.Nvrtc => typeof(Nvrtc),
        NativeLibraryId.Cublas => typeof(Cublas),
        NativeLibraryId.CublasLt => typeof(CublasLt),
        NativeLibraryId.OpenCl => typeof(OpenCl),
        NativeLibraryId.ClBlast => typeof(ClBlast),
        NativeLibraryId.OpenBlas => typeof(OpenBlas),
        NativeLibraryId.OneDnn => typeof(OneDnn),
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
        // Required like every other library under ALEXNET_REQUIRE_NATIVE=1 (`./alexnet test` and CI install
        // cuBLAS, and with it the cuBLASLt it links); skipped with the reason only where nothing asks for it.
        TestNative.Require(id);
        List<string> names = DeclaredEntryPoints(BindingClass(id));
        Assert.NotEmpty(names);
        List<string> missing = MissingEntryPoints(id, names);
        Assert.True(missing.Count == 0,
            $"{NativeLibraries.LoadedPath(id)} lacks {string.Join(", ", missing)} (of {names.Count} declared)");
    }

    /// <summary>The names <paramref name="id"/>'s loaded library does not export.</summary>
    internal static List<string> MissingEntryPoints(NativeLibraryId id, IEnumerable<string> names)
    {
        IntPtr handle = NativeLibraries.Load(id);
        return names.Where(n => !NativeLibrary.TryGetExport(handle, n, out _)).ToList();
    }

    /// <summary>A binding class with one real and two wrong names, in the form Interop/ declares them.</summary>
    private static unsafe partial class MisspeltOpenCl
    {
        [LibraryImport(NativeLibraries.OpenClName)] internal static partial int clFinish(IntPtr queue);
        [LibraryImport(NativeLibraries.OpenClName, EntryPoint = "clFinsh")] internal static partial int Typo(IntPtr queue);
        [LibraryImport(NativeLibraries.CudaDriverName, EntryPoint = "cuMemAlloc_v3")] internal static partial int WrongVersion(out ulong pointer, nuint bytes);
    }

    [SkippableFact]
    public void AMisspeltOrWronglyVersionedEntryPointIsReported()
    {
        // The check above is only worth something if the same code path reports a wrong name.
        TestNative.Require(NativeLibraryId.OpenCl);
        TestNative.Require(NativeLibraryId.CudaDriver);
        List<string> declared = DeclaredEntryPoints(typeof(MisspeltOpenCl));
        Assert.Equal(["clFinish", "clFinsh", "cuMemAlloc_v3"], declared.Order(StringComparer.Ordinal));
        Assert.Equal(["clFinsh"], MissingEntryPoints(NativeLibraryId.OpenCl, ["clFinish", "clFinsh"]));
        Assert.Equal(["cuMemAlloc_v3"], MissingEntryPoints(NativeLibraryId.CudaDriver, ["cuMemAlloc_v2", "cuMemAlloc_v3"]));
    }
}
