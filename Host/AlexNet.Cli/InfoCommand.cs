using System.CommandLine;
using AlexNet.Cuda;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Diagnostics;

namespace AlexNet.Cli;

/// <summary><c>alexnet info</c>: the devices and libraries found, and which device <c>auto</c> would pick.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var command = new Command("info", "Devices found (CUDA and OpenCL), the native libraries (CUDA driver, NVRTC, cuBLAS, CLBlast, OpenBLAS), the cache folders, and what --device auto picks");
        command.SetAction(result => Run(result.InvocationConfiguration.Output));
        return command;
    }

    private static int Run(TextWriter stdout)
    {
        SystemInventory inv = SystemInventory.Probe();
        stdout.WriteLine($"alexnet {typeof(Program).Assembly.GetName().Version} on .NET {Environment.Version} ({System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier})");
        stdout.WriteLine($"kernel cache:  {inv.CacheRoot}");
        stdout.WriteLine($"PoCL cache:    {inv.PoclCacheDir ?? "(POCL_CACHE_DIR unset: PoCL uses ~/.cache/pocl; the ./alexnet launcher sets it under the kernel cache)"}");
        stdout.WriteLine($"CUDA driver:   {inv.CudaDriver}");
        stdout.WriteLine("CUDA devices:");
        foreach (string d in inv.CudaDevices) stdout.WriteLine($"  {d}");
        if (inv.CudaDevicesMissing is not null) stdout.WriteLine($"  none: {inv.CudaDevicesMissing}");
        stdout.WriteLine($"NVRTC:         {inv.Nvrtc}");
        stdout.WriteLine($"cuBLAS:        {inv.Cublas}");
        stdout.WriteLine($"cuBLASLt:      {inv.CublasLt}");
        stdout.WriteLine("OpenCL devices:");
        foreach (string d in inv.OpenClDevices) stdout.WriteLine($"  {d}");
        if (inv.OpenClDevicesMissing is not null) stdout.WriteLine($"  none: {inv.OpenClDevicesMissing}");
        stdout.WriteLine($"CLBlast:       {inv.ClBlast}");
        stdout.WriteLine($"oneDNN:        {inv.OneDnn}");
        stdout.WriteLine($"OpenBLAS:      {inv.OpenBlas}; OpenCL GEMMs: {(inv.OpenClGemm.Count == 0 ? "no device" : string.Join("; ", inv.OpenClGemm))}");
        try
        {
            using SelectedDevice picked = DeviceSelector.Open(DeviceChoice.Auto);
            stdout.WriteLine($"--device auto: {picked.Device.Description} ({picked.Reason})");
        }
        catch (AlexNetException e)
        {
            stdout.WriteLine($"--device auto: {e.Message}");
        }
        return 0;
    }
}
