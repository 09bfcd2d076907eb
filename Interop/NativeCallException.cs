using System.Runtime.CompilerServices;

namespace AlexNet.Cuda.Interop;

/// <summary>A native call failed. The message names the call as written, the status code and its name.</summary>
public abstract class NativeCallException(string message) : AlexNetException(message)
{
    /// <summary>The failing call's source text (from <see cref="CallerArgumentExpressionAttribute"/>).</summary>
    public required string Call { get; init; }

    /// <summary>The numeric status the library returned.</summary>
    public required int Status { get; init; }

    /// <summary>The status's name in the library's own headers.</summary>
    public required string StatusName { get; init; }

    /// <summary>Trims a call's text to one line so the message stays one line.</summary>
    protected static string OneLine(string call)
    {
        string flat = string.Join(' ', call.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries).Select(s => s.Trim()));
        return flat.Length <= 160 ? flat : flat[..157] + "...";
    }
}

/// <summary>A CUDA driver API call failed.</summary>
public sealed class CudaException : NativeCallException
{
    public CudaResult Result { get; }

    private CudaException(CudaResult result, string call, string hint)
        : base(Format(result, call, hint))
    {
        Result = result;
    }

    private static string Format(CudaResult result, string call, string hint)
    {
        string text = CudaDriver.ErrorText(result);
        return $"{OneLine(call)} failed: {CudaDriver.ErrorName(result)} ({(int)result})" +
               (text.Length > 0 ? $": {text}" : "") + (hint.Length > 0 ? $". {hint}" : "");
    }

    /// <summary>Throws when <paramref name="result"/> is not success.</summary>
    public static void ThrowIfFailed(CudaResult result, [CallerArgumentExpression(nameof(result))] string call = "")
    {
        if (result != CudaResult.Success) throw Create(result, call);
    }

    public static CudaException Create(CudaResult result, string call)
    {
        string hint = result switch
        {
            CudaResult.OutOfMemory => "The GPU is out of memory: use a smaller batch or free other GPU work",
            CudaResult.NoDevice => "No CUDA-capable GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES)",
            CudaResult.SystemDriverMismatch => "The driver library and the kernel module differ in version: reboot or reinstall the driver",
            _ => "",
        };
        return new CudaException(result, call, hint)
        {
            Call = call, Status = (int)result, StatusName = CudaDriver.ErrorName(result),
        };
    }
}
