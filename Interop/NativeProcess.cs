using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Interop;

/// <summary>The process facts .NET does not expose: who the parent is now.</summary>
public static partial class NativeProcess
{
    [LibraryImport("libc.so.6", EntryPoint = "getppid")]
    private static partial int getppid();

    /// <summary>The parent's process id (1, or a subreaper's, once the parent has ended); null without glibc.</summary>
    public static int? ParentId()
    {
        try
        {
            return getppid();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }
}
