using System.Diagnostics;
using System.Runtime.Versioning;
using AlexNet.Cli.Classify;
using AlexNet.Cuda.Tests.Weights;

namespace AlexNet.Cuda.Tests.Classify;

/// <summary>Which files a classify command line names, and in which order.</summary>
public class InputFilesTests
{
    private static string Touch(TempDir dir, string relative)
    {
        string path = Path.Combine(dir.Path, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, [1, 2, 3]);
        return path;
    }

    private static void AssertOneLineError(Action action, string message)
    {
        var e = Assert.ThrowsAny<AlexNetException>(action);
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void FilesNamedOnTheCommandLineAreTakenInArgumentOrderWhateverTheirExtension()
    {
        using var dir = new TempDir();
        string notes = Touch(dir, "z-notes.txt");
        string photo = Touch(dir, "a.JPG");
        string noExtension = Touch(dir, "raw");
        Assert.Equal([notes, photo, noExtension, notes], InputFiles.Enumerate([notes, photo, noExtension, notes]));
    }

    [Fact]
    public void AFolderGivesItsImagesRecursivelySortedByOrdinalPath()
    {
        using var dir = new TempDir();
        string root = Path.Combine(dir.Path, "images");
        string[] images =
        [
            "img10.png", "img2.png", "B.jpg", "a.jpeg", "c.BMP", "d.Gif", "e.tif", "f.TIFF", "g.webp",
            "a/x.png", "a-b/x.png", "a/deeper/still/y.jpg", "Z/u.PNG", "ü/v.jpg", "space name/w x.jpg",
        ];
        string[] others = ["readme.txt", "a/labels.csv", "a/x.png.bak", "jpg", "a/deeper/.jpg.txt", "noext"];
        foreach (string name in images.Concat(others)) Touch(dir, Path.Combine("images", name));
        Directory.CreateDirectory(Path.Combine(root, "empty", "nested"));

        // Ordinal order of the whole path: upper case before lower, '-' (0x2D) before '/' (0x2F), "img10" before "img2".
        string[] expected = images.Select(name => Path.Combine(root, name)).ToArray();
        Array.Sort(expected, StringComparer.Ordinal);
        Assert.Equal(Path.Combine(root, "B.jpg"), expected[0]);
        Assert.True(Array.IndexOf(expected, Path.Combine(root, "a-b/x.png")) < Array.IndexOf(expected, Path.Combine(root, "a/x.png")));

        Assert.Equal(expected, InputFiles.Enumerate([root]));
    }

    [Fact]
    public void PathsAreBuiltFromTheFolderAsWritten()
    {
        using var dir = new TempDir();
        Touch(dir, "set/one/1.png");
        Touch(dir, "set/2.png");
        string previous = Environment.CurrentDirectory;
        try
        {
            Environment.CurrentDirectory = dir.Path;
            Assert.Equal(["set/2.png", "set/one/1.png"], InputFiles.Enumerate(["set"]));
            Assert.Equal(["./set/2.png", "./set/one/1.png"], InputFiles.Enumerate(["./set"]));
        }
        finally
        {
            Environment.CurrentDirectory = previous;
        }
    }

    [Fact]
    public void ArgumentsKeepTheirOrderAndEachFolderIsSortedOnItsOwn()
    {
        using var dir = new TempDir();
        string late1 = Touch(dir, "z/1.png");
        string late2 = Touch(dir, "z/2.png");
        string early1 = Touch(dir, "a/1.png");
        string early2 = Touch(dir, "a/2.png");
        string single = Touch(dir, "m.gif");
        Assert.Equal(
            [late1, late2, single, early1, early2],
            InputFiles.Enumerate([Path.Combine(dir.Path, "z"), single, Path.Combine(dir.Path, "a")]));
    }

    [Fact]
    public void HiddenEntriesInAFolderAreSkippedButANamedHiddenFileIsTaken()
    {
        using var dir = new TempDir();
        string root = Path.Combine(dir.Path, "photos");
        string visible = Touch(dir, "photos/cat.jpg");
        string resourceFork = Touch(dir, "photos/._cat.jpg");
        Touch(dir, "photos/.thumbnails/cat.png");
        Assert.Equal([visible], InputFiles.Enumerate([root]));
        Assert.Equal([resourceFork], InputFiles.Enumerate([resourceFork]));
    }

    [Fact]
    public async Task LinksToFoldersAreNotFollowedSoALoopEndsAndLinksToFilesAreTaken()
    {
        using var dir = new TempDir();
        string root = Path.Combine(dir.Path, "root");
        string own = Touch(dir, "root/sub/own.png");
        string elsewhere = Touch(dir, "elsewhere/far.png");
        Directory.CreateSymbolicLink(Path.Combine(root, "sub", "loop"), root);
        Directory.CreateSymbolicLink(Path.Combine(root, "sub", "up.jpg"), Path.Combine(dir.Path, "root", "sub"));
        Directory.CreateSymbolicLink(Path.Combine(root, "outside"), Path.Combine(dir.Path, "elsewhere"));
        string fileLink = Path.Combine(root, "linked.png");
        File.CreateSymbolicLink(fileLink, elsewhere);

        IReadOnlyList<string> found = await Task.Run(() => InputFiles.Enumerate([root])).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal([fileLink, own], found);

        // A linked folder named on the command line is searched.
        Assert.Equal([Path.Combine(root, "outside", "far.png")], InputFiles.Enumerate([Path.Combine(root, "outside")]));
    }

    [Fact]
    public void AMissingPathStaysInItsPlaceToGetItsErrorRecord()
    {
        using var dir = new TempDir();
        string image = Touch(dir, "a.png");
        string missing = Path.Combine(dir.Path, "missing.png");
        Assert.Equal([missing, image, missing], InputFiles.Enumerate([missing, image, missing]));
        Assert.Equal([""], InputFiles.Enumerate([""]));
    }

    [Fact]
    public void AFolderWithoutImagesIsAnError()
    {
        using var dir = new TempDir();
        string empty = Path.Combine(dir.Path, "empty");
        Directory.CreateDirectory(Path.Combine(empty, "nested"));
        string hint = "holds no images (.jpg .jpeg .png .bmp .gif .tif .tiff .webp); name image files directly to classify files with other extensions";
        AssertOneLineError(() => InputFiles.Enumerate([empty]), $"folder {empty} {hint}");

        Touch(dir, "documents/readme.txt");
        Touch(dir, "documents/.hidden.png");
        string images = Path.Combine(dir.Path, "images");
        Touch(dir, "images/a.png");
        string documents = Path.Combine(dir.Path, "documents");
        AssertOneLineError(() => InputFiles.Enumerate([images, documents]), $"folder {documents} {hint}");
    }

    [Fact]
    [UnsupportedOSPlatform("windows")]
    public void AFolderThatCannotBeReadIsAnError()
    {
        using var dir = new TempDir();
        string root = Path.Combine(dir.Path, "root");
        Touch(dir, "root/a.png");
        if (Environment.IsPrivilegedProcess)
        {
            // Root reads every folder whatever its permissions; a tree deeper than PATH_MAX cannot be listed
            // by anyone (ENAMETOOLONG), which exercises the same error path. Built with relative mkdir steps.
            string deep = string.Join('/', Enumerable.Repeat(new string('d', 200), 24));
            try
            {
                // bash, whose cd keeps working past PATH_MAX (dash's does not).
                using (Process mkdir = Process.Start("/bin/bash", ["-c", $"cd '{root}' && for d in $(echo '{deep}' | tr '/' ' '); do mkdir $d && cd $d || exit 1; done"])!)
                {
                    mkdir.WaitForExit();
                    Assert.Equal(0, mkdir.ExitCode);
                }
                var e = Assert.ThrowsAny<AlexNetException>(() => InputFiles.Enumerate([root]));
                Assert.StartsWith($"cannot list folder {root}: ", e.Message);
                Assert.DoesNotContain('\n', e.Message);
            }
            finally
            {
                using Process rm = Process.Start("rm", ["-rf", Path.Combine(root, new string('d', 200))])!;
                rm.WaitForExit();
            }
            return;
        }
        string locked = Path.Combine(root, "locked");
        Touch(dir, "root/locked/b.png");
        File.SetUnixFileMode(locked, UnixFileMode.None);
        try
        {
            var e = Assert.ThrowsAny<AlexNetException>(() => InputFiles.Enumerate([root]));
            Assert.StartsWith($"cannot list folder {root}: ", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
        finally
        {
            File.SetUnixFileMode(locked, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    [Fact]
    public void AManyFileTreeMatchesAnIndependentListing()
    {
        using var dir = new TempDir();
        string root = Path.Combine(dir.Path, "many");
        var random = new Random(20120);
        string[] extensions = [".jpg", ".JPEG", ".png", ".txt", ".webp", ".json", ".tiff"];
        for (int i = 0; i < 2000; i++)
        {
            string folder = Path.Combine($"d{random.Next(7)}", random.Next(3) == 0 ? $"e{random.Next(5)}" : "");
            Touch(dir, Path.Combine("many", folder, $"f{random.Next(100_000)}{extensions[random.Next(extensions.Length)]}"));
        }
        string[] imageExtensions = [".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"];
        string[] expected = Directory.GetFiles(root, "*", SearchOption.AllDirectories)
            .Where(p => imageExtensions.Contains(Path.GetExtension(p).ToLowerInvariant()))
            .Order(StringComparer.Ordinal)
            .ToArray();
        Assert.InRange(expected.Length, 1000, 2000);
        Assert.Equal(expected, InputFiles.Enumerate([root]));
    }
}
