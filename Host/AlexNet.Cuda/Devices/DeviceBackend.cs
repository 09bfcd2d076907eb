namespace AlexNet.Cuda.Devices;

/// <summary>Which implementation runs the kernels.</summary>
public enum DeviceBackend
{
    /// <summary>NVIDIA GPUs: CUDA driver API, kernels compiled by NVRTC, GEMMs by cuBLAS.</summary>
    Cuda,

    /// <summary>Any OpenCL 1.2 device (PoCL on the CPU in the tests): kernels compiled by the OpenCL
    /// driver from the same CUDA C text, GEMMs by CLBlast.</summary>
    OpenCl,
}

/// <summary>What the user asked for with <c>--device</c>.</summary>
public enum DeviceChoice
{
    /// <summary>CUDA when a CUDA device works, else OpenCL.</summary>
    Auto,
    Cuda,
    OpenCl,
}

public static class DeviceChoiceParser
{
    public static DeviceChoice Parse(string text) => text.ToLowerInvariant() switch
    {
        "auto" => DeviceChoice.Auto,
        "cuda" or "gpu" => DeviceChoice.Cuda,
        "opencl" or "cl" or "pocl" => DeviceChoice.OpenCl,
        _ => throw new AlexNetException($"unknown device '{text}'; use --device auto, cuda or opencl"),
    };
}

/// <summary>A backend could not open a device; the message is one line starting with what is missing
/// (<c>no CUDA device: …</c>).</summary>
public sealed class NoDeviceException(DeviceBackend backend, string message, Exception? inner = null)
    : AlexNetException(message, inner)
{
    public DeviceBackend Backend { get; } = backend;
}
