using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Interop;

/// <summary>NVRTC, the CUDA run-time compiler (libnvrtc). Programs are <see cref="IntPtr"/> handles.</summary>
public static unsafe partial class Nvrtc
{
    private const string Lib = NativeLibraries.NvrtcName;

    [LibraryImport(Lib)] public static partial byte* nvrtcGetErrorString(NvrtcResult result);
    [LibraryImport(Lib)] public static partial NvrtcResult nvrtcVersion(out int major, out int minor);
    [LibraryImport(Lib)] public static partial NvrtcResult nvrtcGetNumSupportedArchs(out int count);
    [LibraryImport(Lib)] public static partial NvrtcResult nvrtcGetSupportedArchs(int* architectures);
    [LibraryImport(Lib)]
    public static partial NvrtcResult nvrtcCreateProgram(out IntPtr program, byte* source, byte* name,
        int headerCount, byte** headers, byte** includeNames);
    [LibraryImport(Lib)] public static partial NvrtcResult nvrtcDestroyProgram(ref IntPtr program);
    [LibraryImport(Lib)] public static partial NvrtcResult nvrtcCompileProgram(IntPtr program, int optionCount, byte** options);
    [LibraryImport(Lib)] public static partial NvrtcResult nvrtcGetPTXSize(IntPtr program, out nuint size);
    [LibraryImport(Lib)] public static partial NvrtcResult nvrtcGetPTX(IntPtr program, byte* ptx);
    [LibraryImport(Lib)] public static partial NvrtcResult nvrtcGetCUBINSize(IntPtr program, out nuint size);
    [LibraryImport(Lib)] public static partial NvrtcResult nvrtcGetCUBIN(IntPtr program, byte* cubin);
    [LibraryImport(Lib)] public static partial NvrtcResult nvrtcGetProgramLogSize(IntPtr program, out nuint size);
    [LibraryImport(Lib)] public static partial NvrtcResult nvrtcGetProgramLog(IntPtr program, byte* log);

    /// <summary>The status's name (<c>NVRTC_ERROR_COMPILATION</c>).</summary>
    public static string ErrorName(NvrtcResult result)
    {
        try
        {
            byte* text = nvrtcGetErrorString(result);
            if (text != null) return Marshal.PtrToStringUTF8((IntPtr)text) ?? result.ToString();
        }
        catch (NativeLibraryNotFoundException) { }
        return $"NVRTC_{result}";
    }
}

/// <summary><c>nvrtcResult</c>.</summary>
public enum NvrtcResult
{
    Success = 0,
    OutOfMemory = 1,
    ProgramCreationFailure = 2,
    InvalidInput = 3,
    InvalidProgram = 4,
    InvalidOption = 5,
    Compilation = 6,
    BuiltinOperationFailure = 7,
    NoNameExpressionsAfterCompilation = 8,
    NoLoweredNamesBeforeCompilation = 9,
    NameExpressionNotValid = 10,
    InternalError = 11,
}

/// <summary>An NVRTC call failed. A compile failure carries the compiler's whole log in
/// <see cref="CompilerLog"/> and, after the one-line summary, in the message.</summary>
public sealed class NvrtcException : NativeCallException
{
    public NvrtcResult Result { get; }

    /// <summary>The program log, when the failure was a compilation.</summary>
    public string CompilerLog { get; }

    private NvrtcException(NvrtcResult result, string message, string log) : base(message)
    {
        Result = result;
        CompilerLog = log;
    }

    public static void ThrowIfFailed(NvrtcResult result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result != NvrtcResult.Success) throw Create(result, call, "");
    }

    /// <summary>A failure whose message is <c>call failed: NAME (code)</c>, followed by the log when there is one.</summary>
    public static NvrtcException Create(NvrtcResult result, string call, string log)
    {
        string name = Nvrtc.ErrorName(result);
        string message = $"{OneLine(call)} failed: {name} ({(int)result})";
        if (log.Length > 0) message += $"; compiler log:{Environment.NewLine}{log.TrimEnd()}";
        return new NvrtcException(result, message, log) { Call = call, Status = (int)result, StatusName = name };
    }
}
