using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Tests.Weights;

namespace AlexNet.Cuda.Tests.Interop;

/// <summary>
/// The folders the library probe searches after the system loader, over a file system laid out in a temporary
/// folder as a GPU machine may have it: side-by-side toolkits, a container's driver mount, NVIDIA's Python wheels
/// in every place pip puts them.
/// </summary>
public class LibraryProbeTests
{
    private static string Make(TempDir dir, string relative)
    {
        string path = Path.Combine(dir.Path, relative);
        Directory.CreateDirectory(path);
        return path;
    }

    private static Func<string, string?> Environment(params (string Name, string Value)[] values) =>
        name => values.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void SideBySideToolkitsAreSearchedNewestVersionFirstComparedAsNumbers()
    {
        using var dir = new TempDir();
        string v9 = Make(dir, "usr/local/cuda-9.2/lib64");
        string v12_8 = Make(dir, "usr/local/cuda-12.8/lib64");
        string v12_10 = Make(dir, "usr/local/cuda-12.10/targets/x86_64-linux/lib"); // no lib64 here
        string v13 = Make(dir, "usr/local/cuda-13.0/lib64");
        string v13Targets = Make(dir, "usr/local/cuda-13.0/targets/x86_64-linux/lib");
        string v13_1 = Make(dir, "usr/local/cuda-13.1/lib64");
        string named = Make(dir, "usr/local/cuda-custom/lib64");

        IReadOnlyList<string> folders = NativeLibraries.SearchFolders(dir.Path, Environment());

        List<string> toolkits = folders.Where(f => f.Contains("/cuda-", StringComparison.Ordinal)).ToList();
        Assert.Equal([v13_1, v13, v13Targets, v12_10, v12_8, v9, named], toolkits);
        Assert.DoesNotContain(Path.Combine(dir.Path, "usr/local/cuda-12.10/lib64"), folders);
        // /usr/local/cuda (usually a link to one of them) comes before them, the driver's container mount after.
        int cuda = IndexOf(folders, Path.Combine(dir.Path, "usr/local/cuda/lib64"));
        int nvidia = IndexOf(folders, Path.Combine(dir.Path, "usr/local/nvidia/lib64"));
        Assert.True(cuda < folders.ToList().IndexOf(v13_1) && folders.ToList().IndexOf(named) < nvidia, string.Join("\n", folders));
    }

    [Fact]
    public void TheLibFoldersOfNvidiasPythonWheelsAreFoundWherePipPutsThem()
    {
        using var dir = new TempDir();
        string venv = Make(dir, "venv"), conda = Make(dir, "conda"), home = Make(dir, "home");
        string inVenv = Make(dir, "venv/lib/python3.12/site-packages/nvidia/cu13/lib");
        string inConda = Make(dir, "conda/lib/python3.10/site-packages/nvidia/cuda_nvrtc/lib");
        string user = Make(dir, "home/.local/lib/python3.11/site-packages/nvidia/cublas/lib");
        string localSite = Make(dir, "usr/local/lib/python3.11/site-packages/nvidia/cublas/lib");
        string localDist = Make(dir, "usr/local/lib/python3.11/dist-packages/nvidia/cuda_nvrtc/lib");
        string newerPython = Make(dir, "usr/local/lib/python3.13/dist-packages/nvidia/cuda_nvrtc/lib");
        string debian = Make(dir, "usr/lib/python3/dist-packages/nvidia/cudnn/lib");
        string system = Make(dir, "usr/lib/python3.11/site-packages/nvidia/nccl/lib");
        Make(dir, "usr/local/lib/python3.11/dist-packages/nvidia/no_lib_folder/include");
        Make(dir, "usr/local/lib/python3.11/dist-packages/torch/lib");
        Make(dir, "usr/lib/python2.7/dist-packages/nvidia/old/lib");

        IReadOnlyList<string> folders = NativeLibraries.SearchFolders(dir.Path,
            Environment(("VIRTUAL_ENV", venv), ("CONDA_PREFIX", conda), ("HOME", home)));

        List<string> wheels = folders.Where(f => f.Contains("-packages", StringComparison.Ordinal)).ToList();
        Assert.Equal([inVenv, inConda, user, newerPython, localSite, localDist, system, debian], wheels);
        // After every toolkit and system folder: a wheel's library is the last resort.
        Assert.True(IndexOf(folders, inVenv) > IndexOf(folders, Path.Combine(dir.Path, "usr/lib64")));
    }

    [Fact]
    public void TheEnvironmentsFoldersComeFirstInItsOrder()
    {
        using var dir = new TempDir();
        IReadOnlyList<string> folders = NativeLibraries.SearchFolders(dir.Path,
            Environment(("CUDA_HOME", "/opt/cuda"), ("LD_LIBRARY_PATH", "/first::/second")));
        Assert.Equal(["/opt/cuda/lib64", "/opt/cuda/targets/x86_64-linux/lib", "/first", "/second"], folders.Take(4));
        Assert.Equal(folders.Distinct().Count(), folders.Count);
        // Nothing outside the given root beyond what the environment named.
        Assert.All(folders.Skip(4), f => Assert.StartsWith(dir.Path, f));
    }

    [SkippableFact]
    public void ALibraryOnlyAWheelHasIsLoadedFromThere()
    {
        string? real = new[] { "/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1" }.FirstOrDefault(File.Exists);
        Skip.If(real is null, "no libz.so.1 to copy");
        using var dir = new TempDir();
        string lib = Make(dir, "home/.local/lib/python3.12/site-packages/nvidia/cu13/lib");
        string name = $"libalexnet-probe-{Guid.NewGuid():N}.so.13";
        File.Copy(real, Path.Combine(lib, name));
        IReadOnlyList<string> folders = NativeLibraries.SearchFolders(dir.Path, Environment(("HOME", Path.Combine(dir.Path, "home"))));
        IntPtr handle = NativeLibraries.LoadFrom(NativeLibraryId.Nvrtc, [name], folders, exactPath: null);
        Assert.NotEqual(IntPtr.Zero, handle);
        var missing = Assert.Throws<NativeLibraryNotFoundException>(() =>
            NativeLibraries.LoadFrom(NativeLibraryId.Nvrtc, [name], NativeLibraries.SearchFolders(dir.Path, Environment()), exactPath: null));
        Assert.DoesNotContain(lib, missing.Message);
    }

    [Theory]
    [InlineData("12.10", "12.9", 1)]
    [InlineData("13", "12.10", 1)]
    [InlineData("13.0", "13", 1)]
    [InlineData("9.2", "10.0", -1)]
    [InlineData("12.8", "12.8", 0)]
    [InlineData("custom", "9.0", -1)]
    [InlineData("12.x", "1", -1)]
    public void VersionsCompareAsNumbers(string a, string b, int sign)
    {
        Assert.Equal(sign, Math.Sign(NativeLibraries.VersionOrder.Compare(a, b)));
        Assert.Equal(-sign, Math.Sign(NativeLibraries.VersionOrder.Compare(b, a)));
    }

    private static int IndexOf(IReadOnlyList<string> folders, string folder)
    {
        int i = folders.ToList().IndexOf(folder);
        Assert.True(i >= 0, $"{folder} is not searched:\n{string.Join("\n", folders)}");
        return i;
    }
}
