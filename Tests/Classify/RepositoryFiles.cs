namespace AlexNet.Cuda.Tests.Classify;

/// <summary>Files of the repository itself (the bundled labels, the deployment manifest), found from the test binary.</summary>
internal static class RepositoryFiles
{
    /// <summary>The repository root: the nearest folder above the test binary that holds AlexNet.Cuda.sln.</summary>
    public static string Root { get; } = FindRoot();

    public static string PathOf(string relative) =>
        Path.Combine(Root, relative.Replace('/', Path.DirectorySeparatorChar));

    private static string FindRoot()
    {
        for (DirectoryInfo? folder = new(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "AlexNet.Cuda.sln"))) return folder.FullName;
        }
        throw new InvalidOperationException($"no AlexNet.Cuda.sln above {AppContext.BaseDirectory}; run the tests from the repository");
    }
}
