using System.IO.Hashing;
using System.Text;

namespace AlexNet.Cuda.Compilation;

/// <summary>
/// Compiled kernels on disk, so a second start does not compile again. An entry is named by a hash of
/// everything that changes the binary: source text, defines and options, compiler version, target
/// (the GPU's <c>sm_XY</c>, or the OpenCL device and driver). Writes are atomic (temp file + rename), so
/// concurrent processes never see half an entry; a cache that cannot be written only costs speed.
/// PoCL keeps its own cache under the same root (<c>pocl/</c>; the launcher sets <c>POCL_CACHE_DIR</c>).
/// </summary>
public sealed class KernelCache
{
    public KernelCache(string root) => Root = root;

    /// <summary>The cache folder.</summary>
    public string Root { get; }

    /// <summary>
    /// <c>$ALEXNET_CACHE_DIR</c>, else <c>$XDG_CACHE_HOME/alexnet-cuda</c>, else <c>~/.cache/alexnet-cuda</c>.
    /// </summary>
    public static string DefaultRoot()
    {
        string? explicitRoot = Environment.GetEnvironmentVariable("ALEXNET_CACHE_DIR");
        if (!string.IsNullOrEmpty(explicitRoot)) return Path.GetFullPath(explicitRoot);
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string baseDir = !string.IsNullOrEmpty(xdg)
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(baseDir, "alexnet-cuda");
    }

    public static KernelCache Default { get; } = new(DefaultRoot());

    /// <summary>
    /// A stable 32-digit hex key over the given parts (XxHash128; each part framed by its length, so
    /// ("ab", "c") and ("a", "bc") differ). A managed, non-cryptographic hash on purpose: the cache only has
    /// to tell its own entries apart (whoever can write the folder can write any binary into it anyway),
    /// and SHA-256 would load libssl through .NET's OpenSSL shim at run time.
    /// </summary>
    public static string Key(params string[] parts)
    {
        var text = new StringBuilder();
        foreach (string part in parts) text.Append(part.Length).Append(':').Append(part).Append('\n');
        return Hex(Encoding.UTF8.GetBytes(text.ToString()));
    }

    /// <summary>XxHash128 of <paramref name="bytes"/> as 32 lower-case hex digits.</summary>
    internal static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(XxHash128.Hash(bytes));

    private string PathOf(string backend, string name, string key, string extension) =>
        Path.Combine(Root, backend, $"{Path.GetFileNameWithoutExtension(name)}-{key}.{extension}");

    /// <summary>The cached bytes, or null when there is no (readable) entry.</summary>
    public byte[]? TryRead(string backend, string name, string key, string extension)
    {
        try
        {
            string path = PathOf(backend, name, key, extension);
            return File.Exists(path) ? File.ReadAllBytes(path) : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>Removes an entry (one that turned out stale or corrupt); never throws.</summary>
    public void TryDelete(string backend, string name, string key, string extension)
    {
        try { File.Delete(PathOf(backend, name, key, extension)); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>Stores an entry; returns false (and leaves no partial file) when the disk refuses.</summary>
    public bool TryWrite(string backend, string name, string key, string extension, ReadOnlySpan<byte> bytes)
    {
        string path = PathOf(backend, name, key, extension);
        string temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
                stream.Write(bytes);
            File.Move(temp, path, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            return false;
        }
    }
}
