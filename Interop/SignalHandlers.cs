using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Interop;

/// <summary>
/// Keeps the process's signal handlers the .NET runtime's across the native calls that replace them.
/// </summary>
/// <remarks>
/// The runtime turns a hardware fault in managed code (a null dereference: SIGSEGV; an integer division by
/// zero: SIGFPE) into an ordinary exception through its own handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL and
/// SIGTRAP. PoCL's platform initialisation (the first <c>clGetPlatformIDs</c>) replaces them: LLVM 15, which
/// PoCL links, installs its crash handler for SIGHUP, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGUSR1, SIGSEGV,
/// SIGUSR2, SIGTERM, SIGXCPU, SIGXFSZ and SIGSYS, and PoCL its own SIGFPE handler (there to step over integer
/// divisions by zero in kernels). Measured on Debian 12 (PoCL 3.1, LLVM 15, .NET 10): a managed division by
/// zero then goes to PoCL's handler and the process ends ("Fatal error", reported as an
/// ExecutionEngineException or an AccessViolationException, exit 134; ImageSharp's TIFF decoder divides by
/// zero on a crafted file). A null
/// dereference goes to LLVM's handler, which puts back the handlers it replaced (the runtime's, SIGFPE's
/// among them) and lets the instruction fault again, so it is caught, and every later fault too: that is why
/// an earlier NullReferenceException hid the problem. Each native call that can install handlers
/// (library initialisation, kernel compilation) therefore runs inside <see cref="Preserve"/>, which puts back
/// every handler the call changed, except those the runtime itself installed meanwhile (it installs some
/// lazily, on any thread: SIGCHLD with the first child process, without which no child's exit is seen). Native code loses nothing it needs: LLVM's handler only prints a stack and
/// removes temporary files on a crash; without PoCL's, an integer division by zero in a kernel ends the
/// process where it would otherwise give an undefined result.
/// </remarks>
public static unsafe partial class SignalHandlers
{
    private const string Libc = "libc.so.6";

    // struct sigaction on x86-64 and arm64 glibc: the handler (8 bytes), the mask (128), the flags (4 + 4 of
    // padding), the restorer (8). Kept as opaque bytes: only the handler is read, the rest put back as it was.
    private const int SigactionSize = 152;

    /// <summary>Standard signals 1–31; the real-time ones are left to their owners (glibc reserves some).</summary>
    private const int LastSignal = 31;

    [LibraryImport(Libc, EntryPoint = "sigaction", SetLastError = true)]
    private static partial int sigaction(int signal, byte* action, byte* previous);

    [LibraryImport(Libc, EntryPoint = "dladdr")]
    private static partial int dladdr(IntPtr address, DlInfo* info);

    [StructLayout(LayoutKind.Sequential)]
    private struct DlInfo
    {
        public IntPtr FileName, FileBase, SymbolName, SymbolAddress;
    }

    /// <summary>The signals the runtime turns into managed exceptions, by number and name.</summary>
    public static IReadOnlyList<(int Number, string Name)> FaultSignals { get; } =
        [(4, "SIGILL"), (5, "SIGTRAP"), (7, "SIGBUS"), (8, "SIGFPE"), (11, "SIGSEGV")];

    private static readonly bool Available = OperatingSystem.IsLinux() && ProbeSigaction();

    // Who held each fault signal when the first Preserve scope opened; null until then.
    private static string[]? _runtimeFaultOwners;

    private static bool ProbeSigaction()
    {
        try
        {
            byte* action = stackalloc byte[SigactionSize];
            return sigaction(11, null, action) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    // The modules whose handlers are the runtime's own: the one holding the first fault handler seen (libcoreclr,
    // or the NativeAOT executable) and System.Native's (part of the executable under NativeAOT).
    private static IntPtr[]? _runtimeModules;

    private static IntPtr ModuleOf(IntPtr address)
    {
        DlInfo info;
        return address > 1 && dladdr(address, &info) != 0 ? info.FileBase : 0;
    }

    private static IntPtr[] FindRuntimeModules()
    {
        var modules = new List<IntPtr>();
        byte* action = stackalloc byte[SigactionSize];
        if (sigaction(11, null, action) == 0 && ModuleOf(*(IntPtr*)action) is var fault and not 0) modules.Add(fault);
        if (NativeLibrary.TryLoad("libSystem.Native", typeof(object).Assembly, null, out IntPtr native)
            && NativeLibrary.TryGetExport(native, "SystemNative_GetPid", out IntPtr export)
            && ModuleOf(export) is var module and not 0)
            modules.Add(module);
        return [.. modules];
    }

    private static bool IsRuntimes(IntPtr handler)
    {
        IntPtr module = ModuleOf(handler);
        return module != 0 && Array.IndexOf(Volatile.Read(ref _runtimeModules) ?? [], module) >= 0;
    }

    /// <summary>
    /// Takes note of every signal's handler; disposing the result puts back each one that changed since.
    /// Use it around a native call that may install handlers: <c>using (SignalHandlers.Preserve()) …</c>.
    /// Where there is no glibc it does nothing.
    /// </summary>
    public static Scope Preserve()
    {
        if (!Available) return default;
        // The first scope is opened before any device library is initialised: what holds the fault signals
        // then is the runtime.
        if (Volatile.Read(ref _runtimeFaultOwners) is null)
        {
            Interlocked.CompareExchange(ref _runtimeModules, FindRuntimeModules(), null);
            Interlocked.CompareExchange(ref _runtimeFaultOwners, [.. FaultSignals.Select(s => HandlerOwner(s.Number))], null);
        }
        return new(Snapshot());
    }

    /// <summary>Restores, when disposed, the handlers noted when it was made (see <see cref="Preserve"/>).</summary>
    public readonly struct Scope : IDisposable
    {
        private readonly byte[]? _saved;

        internal Scope(byte[]? saved) => _saved = saved;

        public void Dispose()
        {
            if (_saved is not null) Restore(_saved);
        }
    }

    private static byte[] Snapshot()
    {
        var saved = new byte[(LastSignal + 1) * SigactionSize];
        fixed (byte* p = saved)
        {
            for (int signal = 1; signal <= LastSignal; signal++)
            {
                byte* slot = p + signal * SigactionSize;
                // SIGKILL and SIGSTOP cannot be queried; a zeroed slot is never restored.
                if (sigaction(signal, null, slot) != 0) new Span<byte>(slot, SigactionSize).Clear();
            }
        }
        return saved;
    }

    private static void Restore(byte[] saved)
    {
        byte* current = stackalloc byte[SigactionSize];
        fixed (byte* p = saved)
        {
            for (int signal = 1; signal <= LastSignal; signal++)
            {
                if (signal is 9 or 19) continue; // SIGKILL, SIGSTOP
                byte* before = p + signal * SigactionSize;
                if (sigaction(signal, null, current) != 0) continue;
                IntPtr handler = *(IntPtr*)current;
                if (handler == *(IntPtr*)before) continue;
                // The runtime installs some handlers lazily (SIGCHLD when the first child process starts,
                // SIGINT for Console), possibly on another thread while this scope is open: those stay.
                if (IsRuntimes(handler)) continue;
                sigaction(signal, before, null);
            }
        }
    }

    /// <summary>"SIGSEGV: libLLVM-15.so.1" for each fault signal whose handler is no longer the one it had
    /// before any device library was initialised; empty when all are as they were (or no device library
    /// has been initialised).</summary>
    public static IReadOnlyList<string> ReplacedFaultHandlers()
    {
        var replaced = new List<string>();
        string[]? runtime = Volatile.Read(ref _runtimeFaultOwners);
        if (runtime is null) return replaced;
        for (int i = 0; i < FaultSignals.Count; i++)
        {
            string owner = HandlerOwner(FaultSignals[i].Number);
            if (owner != runtime[i]) replaced.Add($"{FaultSignals[i].Name}: {owner}");
        }
        return replaced;
    }

    /// <summary>"SIGILL SIGTRAP SIGBUS SIGFPE SIGSEGV in libcoreclr.so": who holds the fault signals now.</summary>
    public static string FaultHandlerOwners() =>
        string.Join("; ", FaultSignals.GroupBy(s => HandlerOwner(s.Number)).Select(g => $"{string.Join(" ", g.Select(s => s.Name))} in {g.Key}"));

    /// <summary>
    /// Where the handler of <paramref name="signal"/> lives: "default", "ignored", the file name of the
    /// library (or executable) holding it, or "unknown". For checks and diagnostics.
    /// </summary>
    public static string HandlerOwner(int signal)
    {
        if (!Available) return "unknown";
        byte* action = stackalloc byte[SigactionSize];
        if (sigaction(signal, null, action) != 0) return "unknown";
        IntPtr handler = *(IntPtr*)action;
        if (handler == 0) return "default";
        if (handler == 1) return "ignored";
        DlInfo info;
        return dladdr(handler, &info) != 0 && info.FileName != 0
            ? Path.GetFileName(Marshal.PtrToStringUTF8(info.FileName)) ?? "unknown"
            : "unknown";
    }
}
