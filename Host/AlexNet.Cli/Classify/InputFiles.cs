using System.IO.Enumeration;
using AlexNet.Cuda;

namespace AlexNet.Cli.Classify;

/// <summary>
/// The image files a command line names, in a fixed order, so that every run over the same files sees the
/// same list (and <c>--shard</c> slices of it add up to one run): arguments keep their order; a file named
/// on the command line is taken whatever its extension, and so is one that does not exist (its decode then
/// fails, which costs that input alone); a folder is searched recursively for files with an
/// image extension, which are taken sorted by ordinal path.
/// </summary>
internal static class InputFiles
{
    /// <summary>The extensions taken from folders, compared case-insensitively.</summary>
    public static IReadOnlyList<string> ImageExtensions { get; } = [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"];

    /// <summary>
    /// The files, as paths built from the arguments as written (a folder <c>imgs</c> gives <c>imgs/a/b.jpg</c>).
    /// Inside a folder, links to folders are not followed (so a link back up cannot loop; name a linked folder
    /// on the command line to include it), links to files are taken like files, and hidden entries (names
    /// starting with a dot, such as macOS's <c>._x.jpg</c> resource forks and thumbnail caches) are skipped.
    /// Only the path strings are kept, so folders of millions of images cost their paths' memory and no more.
    /// </summary>
    public static IReadOnlyList<string> Enumerate(IReadOnlyList<string> arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var files = new List<string>();
        foreach (string argument in arguments)
        {
            if (File.Exists(argument))
            {
                files.Add(argument);
            }
            else if (Directory.Exists(argument))
            {
                int start = files.Count;
                AddImagesUnder(argument, files);
                if (files.Count == start)
                    throw new AlexNetException(
                        $"folder {argument} holds no images ({string.Join(" ", ImageExtensions)}); name image files directly to classify files with other extensions");
                files.Sort(start, files.Count - start, StringComparer.Ordinal);
            }
            else
            {
                // Neither a file nor a folder: kept, so that it gets its error record where it stands and the
                // other inputs still run.
                files.Add(argument);
            }
        }
        return files;
    }

    private static readonly EnumerationOptions Options = new()
    {
        RecurseSubdirectories = true,
        // A folder that cannot be read is an error, not a silent hole in the list.
        IgnoreInaccessible = false,
        AttributesToSkip = FileAttributes.Hidden,
        MatchType = MatchType.Simple,
    };

    internal static void AddImagesUnder(string folder, List<string> files)
    {
        var entries = new FileSystemEnumerable<string>(folder, (ref FileSystemEntry entry) => entry.ToSpecifiedFullPath(), Options)
        {
            ShouldIncludePredicate = (ref FileSystemEntry entry) => !entry.IsDirectory && IsImageName(entry.FileName),
            // A link to a folder is a reparse point; descending into it could loop (a link to a parent) or
            // leave the tree the user named.
            ShouldRecursePredicate = (ref FileSystemEntry entry) => (entry.Attributes & FileAttributes.ReparsePoint) == 0,
        };
        try
        {
            foreach (string path in entries) files.Add(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AlexNetException($"cannot list folder {folder}: {e.Message.ReplaceLineEndings(" ")}", e);
        }
    }

    private static bool IsImageName(ReadOnlySpan<char> fileName)
    {
        ReadOnlySpan<char> extension = Path.GetExtension(fileName);
        foreach (string image in ImageExtensions)
        {
            if (extension.Equals(image, StringComparison.OrdinalIgnoreCase)) return true;
        }
        return false;
    }
}
