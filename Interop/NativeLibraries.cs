using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Interop;

/// <summary>The native libraries the bindings call, by the logical name used in every <c>[LibraryImport]</c>.</summary>
public enum NativeLibraryId
{
    CudaDriver,
    Nvrtc,
    Cublas,
    CublasLt,
    OpenCl,
    ClBlast,
    OpenBlas,
    OneDnn,
}

/// <summary>
/// Finds the native libraries. The CUDA toolkit's sonames change with every major release
/// (<c>libnvrtc.so.13</c>, <c>.so.12</c>, <c>.so.11.2</c>), and the toolkit often sits outside the
/// loader's path (<c>/usr/local/cuda/lib64</c>), so each library is looked up under every name a
/// supported release uses, first through the system loader (which honours <c>LD_LIBRARY_PATH</c>),
/// then in the usual toolkit folders. An environment variable per library (<see cref="OverrideVariable"/>)
/// names an exact file instead. A failure lists every name and path tried.
/// </summary>
public static class NativeLibraries
{
    /// <summary>The logical library names written in the <c>[LibraryImport]</c> attributes.</summary>
    internal const string CudaDriverName = "alexnet-cuda-driver";
    internal const string NvrtcName = "alexnet-nvrtc";
    internal const string CublasName = "alexnet-cublas";
    internal const string CublasLtName = "alexnet-cublaslt";
    internal const string OpenClName = "alexnet-opencl";
    internal const string ClBlastName = "alexnet-clblast";
    internal const string OpenBlasName = "alexnet-openblas";
    internal const string OneDnnName = "alexnet-dnnl";

    private static readonly Lock Gate = new();
    private static readonly Dictionary<NativeLibraryId, IntPtr> Loaded = [];
    private static readonly Dictionary<NativeLibraryId, string> LoadedFrom = [];

    /// <summary>
    /// Names tried for <paramref name="id"/>, newest release first, leaving out CUDA toolkit releases newer
    /// than the driver supports: a CUDA 12 driver cannot load cubins or PTX from CUDA 13's NVRTC, nor run
    /// CUDA 13's cuBLAS, even when that toolkit is installed beside an older one.
    /// <paramref name="driverCudaMajor"/> is the driver's CUDA major version (<see cref="DriverCudaMajor"/>);
    /// null (no driver) keeps every name. An unversioned name (<c>libnvrtc.so</c>) is kept, last.
    /// </summary>
    public static IReadOnlyList<string> CandidateNames(NativeLibraryId id, int? driverCudaMajor) =>
        driverCudaMajor is int major
            ? AllCandidateNames(id).Where(n => ToolkitMajor(n) is not int t || t <= major).ToList()
            : AllCandidateNames(id);

    /// <summary>The names the driver's CUDA version rules out (see <see cref="CandidateNames(NativeLibraryId, int?)"/>).</summary>
    public static IReadOnlyList<string> NamesTooNewForDriver(NativeLibraryId id, int? driverCudaMajor) =>
        AllCandidateNames(id).Except(CandidateNames(id, driverCudaMajor)).ToList();

    /// <summary>The CUDA toolkit major release a versioned soname belongs to (<c>libnvrtc.so.11.2</c> → 11), or null.</summary>
    public static int? ToolkitMajor(string name)
    {
        int so = name.IndexOf(".so.", StringComparison.Ordinal);
        if (so < 0) return null;
        string version = name[(so + 4)..];
        int dot = version.IndexOf('.');
        return int.TryParse(dot < 0 ? version : version[..dot], out int major) ? major : null;
    }

    /// <summary>
    /// The installed driver's CUDA major version (<c>cuDriverGetVersion</c>, which needs no GPU and no
    /// <c>cuInit</c>), or null when there is no driver library. Read once.
    /// </summary>
    public static int? DriverCudaMajor() => DriverVersion.Value is int v ? v / 1000 : null;

    /// <summary>The driver's CUDA version as the driver reports it (12020 for 12.2), or null.</summary>
    public static int? DriverCudaVersion() => DriverVersion.Value;

    private static readonly Lazy<int?> DriverVersion = new(() =>
    {
        if (!TryLoad(NativeLibraryId.CudaDriver, out _)) return null;
        try
        {
            return CudaDriver.cuDriverGetVersion(out int version) == CudaResult.Success && version > 0 ? version : null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    });

    /// <summary>Names tried, newest release first, for every toolkit release.</summary>
    public static IReadOnlyList<string> AllCandidateNames(NativeLibraryId id) => id switch
    {
        // The driver's user-space library keeps soname 1 across releases.
        NativeLibraryId.CudaDriver => ["libcuda.so.1", "libcuda.so"],
        NativeLibraryId.Nvrtc => ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"],
        NativeLibraryId.Cublas => ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"],
        // cuBLAS links its own release of cuBLASLt (libcublas.so.N needs libcublasLt.so.N, found beside it): loaded
        // after cuBLAS, the same soname resolves to that already-loaded library.
        NativeLibraryId.CublasLt => ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"],
        NativeLibraryId.OpenCl => ["libOpenCL.so.1", "libOpenCL.so"],
        NativeLibraryId.ClBlast => ["libclblast.so.1", "libclblast.so"],
        // Debian installs it through the alternatives system (libopenblas.so.0 in the multiarch folder).
        NativeLibraryId.OpenBlas => ["libopenblas.so.0", "libopenblas.so"],
        // oneDNN's C API keeps dnnl_sgemm's signature from 2.x to 3.x (Debian 12 ships 2.6, libdnnl2).
        NativeLibraryId.OneDnn => ["libdnnl.so.3", "libdnnl.so.2", "libdnnl.so"],
        _ => throw new ArgumentOutOfRangeException(nameof(id)),
    };

    /// <summary>Environment variable that, when set, names the exact file to load for <paramref name="id"/>.</summary>
    public static string OverrideVariable(NativeLibraryId id) => id switch
    {
        NativeLibraryId.CudaDriver => "ALEXNET_LIBCUDA",
        NativeLibraryId.Nvrtc => "ALEXNET_LIBNVRTC",
        NativeLibraryId.Cublas => "ALEXNET_LIBCUBLAS",
        NativeLibraryId.CublasLt => "ALEXNET_LIBCUBLASLT",
        NativeLibraryId.OpenCl => "ALEXNET_LIBOPENCL",
        NativeLibraryId.ClBlast => "ALEXNET_LIBCLBLAST",
        NativeLibraryId.OpenBlas => "ALEXNET_LIBOPENBLAS",
        NativeLibraryId.OneDnn => "ALEXNET_LIBDNNL",
        _ => throw new ArgumentOutOfRangeException(nameof(id)),
    };

    /// <summary>Folders searched after the system loader, in order (see <see cref="SearchFolders(string, Func{string, string?})"/>).</summary>
    public static IReadOnlyList<string> SearchFolders() => SearchFolders("/", Environment.GetEnvironmentVariable);

    /// <summary>
    /// Folders searched after the system loader, in order, on the file system under <paramref name="root"/>
    /// (<c>/</c>, or a test's tree) with the environment read through <paramref name="environment"/>:
    /// <c>$CUDA_HOME</c> and <c>$CUDA_PATH</c>; <c>LD_LIBRARY_PATH</c>; <c>/usr/local/cuda</c>; side-by-side
    /// toolkits <c>/usr/local/cuda-X.Y</c>, newest version first; <c>/usr/local/nvidia/lib64</c> (where GPU
    /// containers mount the driver); the distribution's folders; and the lib folders of NVIDIA's Python wheels,
    /// <c>site-packages/nvidia/*/lib</c> (PyTorch's CUDA wheels bring NVRTC and cuBLAS that way), in a virtual
    /// environment, a conda environment, the user's and the system's site-packages. Each toolkit is looked
    /// in at <c>lib64</c> and <c>targets/x86_64-linux/lib</c>. Bench/gpu/run-checks.sh puts the same folders on
    /// <c>LD_LIBRARY_PATH</c>, since NVRTC loads its builtins library by soname.
    /// </summary>
    internal static IReadOnlyList<string> SearchFolders(string root, Func<string, string?> environment)
    {
        var folders = new List<string>();
        string[] toolkitLibs = ["lib64", Path.Combine("targets", "x86_64-linux", "lib")];
        foreach (string variable in new[] { "CUDA_HOME", "CUDA_PATH" })
        {
            string? home = environment(variable);
            if (!string.IsNullOrEmpty(home)) folders.AddRange(toolkitLibs.Select(lib => Path.Combine(home, lib)));
        }
        string? ldPath = environment("LD_LIBRARY_PATH");
        if (!string.IsNullOrEmpty(ldPath))
            folders.AddRange(ldPath.Split(':', StringSplitOptions.RemoveEmptyEntries));
        string usrLocal = Path.Combine(root, "usr", "local");
        folders.AddRange(toolkitLibs.Select(lib => Path.Combine(usrLocal, "cuda", lib)));
        foreach (string toolkit in Subfolders(usrLocal, "cuda-*").OrderByDescending(d => Path.GetFileName(d)["cuda-".Length..], VersionOrder))
            folders.AddRange(toolkitLibs.Select(lib => Path.Combine(toolkit, lib)).Where(Directory.Exists));
        folders.Add(Path.Combine(usrLocal, "nvidia", "lib64"));
        folders.AddRange(new[] { "usr/lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu/nvidia/current", "usr/lib64", "usr/lib/wsl/lib" }
            .Select(f => Path.Combine(root, f)));
        foreach (string sitePackages in SitePackages(root, environment))
        foreach (string package in Subfolders(Path.Combine(sitePackages, "nvidia"), "*").Order(StringComparer.Ordinal))
        {
            string lib = Path.Combine(package, "lib");
            if (Directory.Exists(lib)) folders.Add(lib);
        }
        return folders.Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>Where pip installs wheels: a virtual or conda environment's, the user's, then the system's
    /// site-packages (and Debian's dist-packages), each Python 3 version newest first.</summary>
    private static IEnumerable<string> SitePackages(string root, Func<string, string?> environment)
    {
        var libs = new List<(string Lib, string[] Kinds)>();
        foreach (string variable in new[] { "VIRTUAL_ENV", "CONDA_PREFIX" })
        {
            string? prefix = environment(variable);
            if (!string.IsNullOrEmpty(prefix)) libs.Add((Path.Combine(prefix, "lib"), ["site-packages"]));
        }
        string? home = environment("HOME");
        if (!string.IsNullOrEmpty(home)) libs.Add((Path.Combine(home, ".local", "lib"), ["site-packages"]));
        libs.Add((Path.Combine(root, "usr", "local", "lib"), ["site-packages", "dist-packages"]));
        libs.Add((Path.Combine(root, "usr", "lib"), ["site-packages", "dist-packages"]));
        foreach ((string lib, string[] kinds) in libs)
        foreach (string python in Subfolders(lib, "python3*").OrderByDescending(d => Path.GetFileName(d)["python".Length..], VersionOrder))
        foreach (string kind in kinds)
        {
            string folder = Path.Combine(python, kind);
            if (Directory.Exists(folder)) yield return folder;
        }
    }

    private static string[] Subfolders(string folder, string pattern)
    {
        try
        {
            return Directory.Exists(folder) ? Directory.GetDirectories(folder, pattern) : [];
        }
        catch (IOException) { return []; }
        catch (UnauthorizedAccessException) { return []; }
    }

    /// <summary>Dotted version numbers compared as numbers (12.10 after 12.9, 13 after 12.10); a name that is
    /// not a version sorts below every version, and such names among themselves by ordinal.</summary>
    internal static readonly Comparer<string> VersionOrder = Comparer<string>.Create((a, b) =>
    {
        int[]? x = ParseVersion(a), y = ParseVersion(b);
        if (x is null || y is null) return x is null && y is null ? string.CompareOrdinal(a, b) : x is null ? -1 : 1;
        for (int i = 0; i < Math.Max(x.Length, y.Length); i++)
        {
            int c = (i < x.Length ? x[i] : -1).CompareTo(i < y.Length ? y[i] : -1);
            if (c != 0) return c;
        }
        return 0;
    });

    private static int[]? ParseVersion(string text)
    {
        string[] parts = text.Split('.');
        var numbers = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (parts[i].Length == 0 || !parts[i].All(char.IsAsciiDigit) || !int.TryParse(parts[i], out numbers[i])) return null;
        }
        return numbers;
    }

    /// <summary>
    /// OpenBLAS reads how long its idle worker threads spin before sleeping (2^n cycles) from this variable when
    /// it loads. Its default (2^28 cycles, about 0.1 s) keeps both cores busy between GEMMs, and on a CPU OpenCL
    /// device the kernels between two GEMMs run on those same cores: measured at batch 32 on 2 cores, the
    /// default halved the speed of im2col and LRN, and 2^4 made the whole pass 12 % faster (docs/benchmarks.md).
    /// Set before OpenBLAS loads unless the environment already sets it.
    /// </summary>
    public const string OpenBlasThreadTimeoutVariable = "OPENBLAS_THREAD_TIMEOUT";

    /// <summary>The value given to <see cref="OpenBlasThreadTimeoutVariable"/> when it is unset: 2^4 cycles.</summary>
    public const string OpenBlasThreadTimeout = "4";

    /// <summary>Loads <paramref name="id"/> (once) and returns its handle; throws
    /// <see cref="NativeLibraryNotFoundException"/> naming everything tried.</summary>
    public static IntPtr Load(NativeLibraryId id)
    {
        lock (Gate)
        {
            if (Loaded.TryGetValue(id, out IntPtr handle)) return handle;
        }
        // Read outside the lock: it loads the driver library through this same class.
        int? driverMajor = id is NativeLibraryId.Nvrtc or NativeLibraryId.Cublas or NativeLibraryId.CublasLt ? DriverCudaMajor() : null;
        lock (Gate)
        {
            if (Loaded.TryGetValue(id, out IntPtr handle)) return handle;
            if (id == NativeLibraryId.OpenBlas) NativeEnvironment.SetDefault(OpenBlasThreadTimeoutVariable, OpenBlasThreadTimeout);
            handle = LoadFrom(id, CandidateNames(id, driverMajor), SearchFolders(), Environment.GetEnvironmentVariable(OverrideVariable(id)), out string from);
            Loaded[id] = handle;
            LoadedFrom[id] = from;
            return handle;
        }
    }

    /// <summary>The probing itself, uncached: <paramref name="exactPath"/> when given, else each name
    /// through the system loader, then each name in each folder.</summary>
    internal static IntPtr LoadFrom(NativeLibraryId id, IReadOnlyList<string> names, IReadOnlyList<string> folders, string? exactPath) =>
        LoadFrom(id, names, folders, exactPath, out _);

    private static IntPtr LoadFrom(NativeLibraryId id, IReadOnlyList<string> names, IReadOnlyList<string> folders,
        string? exactPath, out string from)
    {
        if (!string.IsNullOrEmpty(exactPath))
        {
            from = exactPath;
            if (NativeLibrary.TryLoad(exactPath, out IntPtr exact)) return exact;
            throw new NativeLibraryNotFoundException(id, [$"{exactPath} (from {OverrideVariable(id)})"]);
        }
        var tried = new List<string>();
        foreach (string name in names)
        {
            tried.Add(name);
            from = name;
            if (NativeLibrary.TryLoad(name, out IntPtr handle)) return handle;
        }
        foreach (string folder in folders)
        {
            foreach (string name in names)
            {
                string path = Path.Combine(folder, name);
                if (!File.Exists(path)) continue;
                tried.Add(path);
                from = path;
                if (NativeLibrary.TryLoad(path, out IntPtr handle)) return handle;
            }
        }
        throw new NativeLibraryNotFoundException(id, tried);
    }

    /// <summary>True when <paramref name="id"/> can be loaded; never throws.</summary>
    public static bool TryLoad(NativeLibraryId id, out IntPtr handle)
    {
        try
        {
            handle = Load(id);
            return true;
        }
        catch (NativeLibraryNotFoundException)
        {
            handle = IntPtr.Zero;
            return false;
        }
    }

    /// <summary>The name or path the library was loaded from, or null when it is not loaded.</summary>
    public static string? LoadedPath(NativeLibraryId id)
    {
        lock (Gate) return LoadedFrom.GetValueOrDefault(id);
    }

    private static bool TryMapLogicalName(string libraryName, out NativeLibraryId id)
    {
        switch (libraryName)
        {
            case CudaDriverName: id = NativeLibraryId.CudaDriver; return true;
            case NvrtcName: id = NativeLibraryId.Nvrtc; return true;
            case CublasName: id = NativeLibraryId.Cublas; return true;
            case CublasLtName: id = NativeLibraryId.CublasLt; return true;
            case OpenClName: id = NativeLibraryId.OpenCl; return true;
            case ClBlastName: id = NativeLibraryId.ClBlast; return true;
            case OpenBlasName: id = NativeLibraryId.OpenBlas; return true;
            case OneDnnName: id = NativeLibraryId.OneDnn; return true;
            default: id = default; return false;
        }
    }

    // The resolver must be in place before the first P/Invoke of this assembly, whichever class makes it;
    // a module initializer is the one hook that runs early enough in a library.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void InstallResolver()
    {
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
    }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        // Throwing here surfaces as the DllNotFoundException of the first call, but with our message.
        return TryMapLogicalName(libraryName, out NativeLibraryId id) ? Load(id) : IntPtr.Zero;
    }
}

/// <summary>A native library could not be loaded under any of the names and paths tried.</summary>
public sealed class NativeLibraryNotFoundException(NativeLibraryId library, IReadOnlyList<string> tried)
    : AlexNetException($"{Describe(library)} not found; tried {string.Join(", ", tried)}. {Hint(library)}")
{
    public NativeLibraryId Library { get; } = library;

    public IReadOnlyList<string> Tried { get; } = tried;

    private static string Describe(NativeLibraryId id) => id switch
    {
        NativeLibraryId.CudaDriver => "the CUDA driver library (libcuda)",
        NativeLibraryId.Nvrtc => "NVRTC (libnvrtc)",
        NativeLibraryId.Cublas => "cuBLAS (libcublas)",
        NativeLibraryId.CublasLt => "cuBLASLt (libcublasLt)",
        NativeLibraryId.OpenCl => "the OpenCL ICD loader (libOpenCL)",
        NativeLibraryId.ClBlast => "CLBlast (libclblast)",
        NativeLibraryId.OpenBlas => "OpenBLAS (libopenblas)",
        NativeLibraryId.OneDnn => "oneDNN (libdnnl)",
        _ => id.ToString(),
    };

    private static string Hint(NativeLibraryId id) => id switch
    {
        NativeLibraryId.CudaDriver => "Install the NVIDIA driver, or on Debian without a GPU run .ci/native-packages.sh (package libcuda1)",
        NativeLibraryId.Nvrtc or NativeLibraryId.Cublas or NativeLibraryId.CublasLt =>
            $"Install the CUDA toolkit libraries, add their folder to LD_LIBRARY_PATH, or set {NativeLibraries.OverrideVariable(id)} to the file",
        NativeLibraryId.OpenBlas =>
            $"Run .ci/native-packages.sh as root (Debian package libopenblas0-pthread), or set {NativeLibraries.OverrideVariable(id)} to the file",
        NativeLibraryId.OneDnn =>
            $"Run .ci/native-packages.sh as root (Debian package libdnnl2), or set {NativeLibraries.OverrideVariable(id)} to the file",
        _ => "Run .ci/native-packages.sh as root (Debian packages ocl-icd-libopencl1, pocl-opencl-icd, libclblast1)",
    };
}
