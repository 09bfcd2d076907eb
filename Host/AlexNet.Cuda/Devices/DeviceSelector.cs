using AlexNet.Cuda.Backends;
using AlexNet.Cuda.Compilation;

namespace AlexNet.Cuda.Devices;

/// <summary>A device opened for a <see cref="DeviceChoice"/>, with the reason it was picked.</summary>
public sealed record SelectedDevice(ComputeDevice Device, string Reason) : IDisposable
{
    public void Dispose() => Device.Dispose();
}

/// <summary>Opens the device <c>--device</c> asks for.</summary>
public static class DeviceSelector
{
    /// <summary>
    /// <see cref="DeviceChoice.Auto"/> opens CUDA device 0 when it works, else the OpenCL device, and says
    /// why in <see cref="SelectedDevice.Reason"/>; an explicit choice opens that backend or throws its
    /// <see cref="NoDeviceException"/>.
    /// </summary>
    public static SelectedDevice Open(DeviceChoice choice, KernelCache? cache = null) =>
        Open(choice, cache, c => CudaDevice.Open(0, c));

    /// <summary>As <see cref="Open(DeviceChoice, KernelCache?)"/>, with the CUDA opener given (tests stand in
    /// for GPUs that fail in particular ways).</summary>
    internal static SelectedDevice Open(DeviceChoice choice, KernelCache? cache, Func<KernelCache?, ComputeDevice> openCuda)
    {
        switch (choice)
        {
            case DeviceChoice.Cuda:
                return new SelectedDevice(openCuda(cache), "--device cuda");
            case DeviceChoice.OpenCl:
                return new SelectedDevice(OpenClDevice.Open(null, cache), "--device opencl");
            default:
                try
                {
                    return new SelectedDevice(openCuda(cache), "auto: a CUDA device works");
                }
                catch (NoDeviceException cuda)
                {
                    try
                    {
                        return new SelectedDevice(OpenClDevice.Open(null, cache), $"auto: fell back to OpenCL because {cuda.Message}");
                    }
                    catch (NoDeviceException openCl)
                    {
                        throw new NoDeviceException(DeviceBackend.OpenCl, $"no device to run on: {cuda.Message}; and {openCl.Message}", openCl);
                    }
                }
        }
    }
}
