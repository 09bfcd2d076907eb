using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Interop;

/// <summary>
/// The process environment as native libraries read it. .NET's <see cref="Environment.SetEnvironmentVariable(string, string)"/>
/// changes only the runtime's own copy on Linux, so a variable a native library reads with getenv when it loads
/// has to be set through the C library.
/// </summary>
public static partial class NativeEnvironment
{
    private const string Libc = "libc.so.6";

    [LibraryImport(Libc, EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr getenv(string name);

    [LibraryImport(Libc, EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);

    /// <summary>The variable's value in the native environment, or null when unset (or no glibc).</summary>
    public static string? Get(string name)
    {
        try
        {
            IntPtr value = getenv(name);
            return value == IntPtr.Zero ? null : Marshal.PtrToStringUTF8(value);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Sets the variable in the native environment unless it is already set there; false when it was
    /// set already or there is no glibc to set it through.</summary>
    public static bool SetDefault(string name, string value)
    {
        try
        {
            if (getenv(name) != IntPtr.Zero) return false;
            return setenv(name, value, 0) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }
}
