using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using AlexNet.Cuda.Interop;

namespace AlexNet.Cuda.Compilation;

/// <summary>What NVRTC is asked to produce: a cubin for one GPU (<c>sm_90</c>), or PTX for a virtual
/// architecture (<c>compute_90</c>) that the driver compiles at load time.</summary>
public readonly record struct NvrtcTarget(int Architecture, bool Cubin)
{
    public static NvrtcTarget Sm(int architecture) => new(architecture, true);

    public string Option => $"--gpu-architecture={this}";

    public override string ToString() => (Cubin ? "sm_" : "compute_") + Architecture;
}

/// <summary>The output of one NVRTC compilation.</summary>
public sealed record NvrtcOutput(byte[] Image, NvrtcTarget Target, string Log, bool FromCache, TimeSpan Time);

/// <summary>NVRTC: compiles the engine's CUDA C kernels at run time.</summary>
public static unsafe class NvrtcCompiler
{
    /// <summary>NVRTC's version, e.g. (11, 8); loads the library on first use.</summary>
    public static (int Major, int Minor) Version
    {
        get
        {
            NvrtcException.ThrowIfFailed(Nvrtc.nvrtcVersion(out int major, out int minor));
            return (major, minor);
        }
    }

    public static string VersionText => $"NVRTC {Version.Major}.{Version.Minor}";

    /// <summary>The real architectures this NVRTC can build cubins for (35, 37, …, 90).</summary>
    public static IReadOnlyList<int> SupportedArchitectures()
    {
        NvrtcException.ThrowIfFailed(Nvrtc.nvrtcGetNumSupportedArchs(out int count));
        var archs = new int[count];
        fixed (int* p = archs) NvrtcException.ThrowIfFailed(Nvrtc.nvrtcGetSupportedArchs(p));
        return archs;
    }

    /// <summary>
    /// The device's own <c>sm_XY</c> when this NVRTC knows it; otherwise PTX for the newest architecture
    /// it knows that the device can run (an older NVRTC on a newer GPU), which the driver JIT-compiles.
    /// </summary>
    public static NvrtcTarget ChooseTarget(int computeMajor, int computeMinor)
    {
        int wanted = computeMajor * 10 + computeMinor;
        IReadOnlyList<int> supported = SupportedArchitectures();
        if (supported.Contains(wanted)) return new NvrtcTarget(wanted, Cubin: true);
        int best = supported.Where(a => a <= wanted).DefaultIfEmpty(0).Max();
        if (best == 0)
            throw new AlexNetException($"{VersionText} cannot compile for compute capability {computeMajor}.{computeMinor} (it supports {string.Join(", ", supported)}); install a CUDA toolkit whose NVRTC supports this GPU");
        return new NvrtcTarget(best, Cubin: false);
    }

    /// <summary>
    /// Null when a driver of CUDA <paramref name="driverVersion"/> (as <c>cuDriverGetVersion</c> gives it,
    /// 1000·major + 10·minor; null when unknown) can load what NVRTC <paramref name="nvrtc"/> builds for
    /// <paramref name="target"/>; otherwise one line naming both versions and what to do. A newer major loads
    /// nothing. A newer minor of the same major still loads cubins (CUDA's minor version compatibility), but
    /// not PTX: the driver's JIT refuses PTX from a newer toolkit than its own
    /// (<c>CUDA_ERROR_UNSUPPORTED_PTX_VERSION</c>). PTX is only chosen for a GPU this NVRTC has no cubin target
    /// for, so there is no cubin to fall back to.
    /// </summary>
    public static string? DriverProblem((int Major, int Minor) nvrtc, int? driverVersion, NvrtcTarget target)
    {
        if (driverVersion is not int version) return null;
        (int major, int minor) = (version / 1000, version % 1000 / 10);
        string versions = $"NVRTC {nvrtc.Major}.{nvrtc.Minor} is newer than the driver's CUDA {major}.{minor}";
        if (nvrtc.Major > major)
            return $"{versions}, which loads nothing it builds; install a CUDA {major}.x toolkit's NVRTC or update the driver";
        if (nvrtc.Major == major && nvrtc.Minor > minor && !target.Cubin)
            return $"{versions} and builds PTX ({target}) for this GPU, which that driver cannot JIT; install NVRTC {major}.{minor} or older, or update the driver";
        return null;
    }

    /// <summary>The options every compilation uses, defines excluded.</summary>
    public static IReadOnlyList<string> BaseOptions(NvrtcTarget target) =>
        [target.Option, "-lineinfo", "--std=c++17"];

    private static List<string> Options(NvrtcTarget target, IReadOnlyDictionary<string, string>? defines) =>
        BaseOptions(target).Concat(KernelSource.DefineOptions(defines)).ToList();

    /// <summary>The disk cache entry's name for this source, options, NVRTC version and target.</summary>
    public static string CacheKey(KernelSource source, NvrtcTarget target, IReadOnlyDictionary<string, string>? defines) =>
        KernelCache.Key(source.Hash, string.Join(' ', Options(target, defines)), VersionText, target.ToString());

    /// <summary>Removes the disk cache entry for this source, options, NVRTC version and target.</summary>
    public static void Discard(KernelCache cache, KernelSource source, NvrtcTarget target, IReadOnlyDictionary<string, string>? defines) =>
        cache.TryDelete("cuda", source.Name, CacheKey(source, target, defines), target.Cubin ? "cubin" : "ptx");

    /// <summary>
    /// Compiles through the disk cache: a hit returns the stored image without calling NVRTC. A stored image
    /// that fails <see cref="CudaImage.Problem"/> (truncated, corrupt, not a cubin or PTX) is a miss: the entry
    /// is deleted, compiled again and rewritten, so the driver is never handed bytes it could read past.
    /// </summary>
    public static NvrtcOutput CompileCached(KernelCache cache, KernelSource source, NvrtcTarget target,
        IReadOnlyDictionary<string, string>? defines)
    {
        string key = CacheKey(source, target, defines);
        string extension = target.Cubin ? "cubin" : "ptx";
        var clock = Stopwatch.StartNew();
        byte[]? cached = cache.TryRead("cuda", source.Name, key, extension);
        if (cached is not null)
        {
            if (CudaImage.Problem(cached, target.Cubin) is null) return new NvrtcOutput(cached, target, "", FromCache: true, clock.Elapsed);
            cache.TryDelete("cuda", source.Name, key, extension);
        }
        NvrtcOutput output = Compile(source, target, defines);
        cache.TryWrite("cuda", source.Name, key, extension, output.Image);
        return output;
    }

    /// <summary>
    /// Compiles <paramref name="source"/> for <paramref name="target"/>. A compile error throws an
    /// <see cref="NvrtcException"/> whose message ends with NVRTC's whole log. <paramref name="extraOptions"/>
    /// are added after the usual ones (<c>--ptxas-options=-v</c> puts ptxas's resource figures in the log);
    /// the cached path never uses them.
    /// </summary>
    public static NvrtcOutput Compile(KernelSource source, NvrtcTarget target, IReadOnlyDictionary<string, string>? defines,
        IReadOnlyList<string>? extraOptions = null)
    {
        List<string> options = Options(target, defines);
        if (extraOptions is not null) options.AddRange(extraOptions);
        var clock = Stopwatch.StartNew();
        IntPtr program = IntPtr.Zero;
        byte[] text = NativeText.NulTerminated(source.Text);
        byte[] name = NativeText.NulTerminated(source.Name);
        fixed (byte* pText = text)
        fixed (byte* pName = name)
            NvrtcException.ThrowIfFailed(Nvrtc.nvrtcCreateProgram(out program, pText, pName, 0, null, null));
        try
        {
            NvrtcResult compiled = CompileWithOptions(program, options);
            string log = ReadLog(program);
            if (compiled != NvrtcResult.Success)
                throw NvrtcException.Create(compiled, $"nvrtcCompileProgram({source.Name}, {target})", log);
            byte[] image = target.Cubin ? ReadCubin(program) : ReadPtx(program);
            return new NvrtcOutput(image, target, log, FromCache: false, clock.Elapsed);
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(ref program);
        }
    }

    private static NvrtcResult CompileWithOptions(IntPtr program, IReadOnlyList<string> options)
    {
        var pointers = new IntPtr[options.Count];
        try
        {
            for (int i = 0; i < options.Count; i++) pointers[i] = Marshal.StringToCoTaskMemUTF8(options[i]);
            // NVRTC's compiler must leave the runtime's fault handlers in place (SignalHandlers).
            using SignalHandlers.Scope handlers = SignalHandlers.Preserve();
            fixed (IntPtr* p = pointers)
                return Nvrtc.nvrtcCompileProgram(program, options.Count, (byte**)p);
        }
        finally
        {
            foreach (IntPtr p in pointers) Marshal.FreeCoTaskMem(p);
        }
    }

    private static string ReadLog(IntPtr program)
    {
        NvrtcException.ThrowIfFailed(Nvrtc.nvrtcGetProgramLogSize(program, out nuint size));
        if (size <= 1) return "";
        var log = new byte[(int)size];
        fixed (byte* p = log) NvrtcException.ThrowIfFailed(Nvrtc.nvrtcGetProgramLog(program, p));
        return Encoding.UTF8.GetString(log, 0, (int)size - 1);
    }

    private static byte[] ReadPtx(IntPtr program)
    {
        // The size counts the trailing NUL, which cuModuleLoadData needs to find the end of the text.
        NvrtcException.ThrowIfFailed(Nvrtc.nvrtcGetPTXSize(program, out nuint size));
        var ptx = new byte[(int)size];
        fixed (byte* p = ptx) NvrtcException.ThrowIfFailed(Nvrtc.nvrtcGetPTX(program, p));
        return ptx;
    }

    private static byte[] ReadCubin(IntPtr program)
    {
        NvrtcException.ThrowIfFailed(Nvrtc.nvrtcGetCUBINSize(program, out nuint size));
        var cubin = new byte[(int)size];
        fixed (byte* p = cubin) NvrtcException.ThrowIfFailed(Nvrtc.nvrtcGetCUBIN(program, p));
        return cubin;
    }
}
