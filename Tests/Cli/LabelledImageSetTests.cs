using System.Text;
using AlexNet.Cli.Finetune;
using AlexNet.Cuda.Tests.Weights;

namespace AlexNet.Cuda.Tests.Cli;

/// <summary>Training and validation sets from a folder of class folders or a text file of `path label` lines:
/// order, classes, the awkward cases people's files have, and every refusal as one line naming the file and line.</summary>
public sealed class LabelledImageSetTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Touch(string relative)
    {
        string path = Path.Combine(_dir.Path, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, [1, 2, 3]);
        return path;
    }

    private string WriteList(string relative, string text, bool byteOrderMark = false)
    {
        string path = Path.Combine(_dir.Path, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        byte[] body = Encoding.UTF8.GetBytes(text);
        File.WriteAllBytes(path, byteOrderMark ? [0xEF, 0xBB, 0xBF, .. body] : body);
        return path;
    }

    private static void AssertOneLine(string expected, Action open)
    {
        var e = Assert.ThrowsAny<AlexNetException>(open);
        Assert.Equal(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    private static (string, int)[] Pairs(LabelledImageSet set) => set.Images.Select(i => (i.Path, i.Label)).ToArray();

    // ---- folder mode ----

    [Fact]
    public void ClassFoldersSortedOrdinallyAreTheClassesAndTheirImagesAtAnyDepthInOrdinalOrder()
    {
        string root = Path.Combine(_dir.Path, "train");
        string[] files =
        [
            "b/img10.jpg", "b/img2.JPG", "b/deeper/z.png", "b/deeper-x/y.png", "b/.hidden.jpg", "b/notes.txt", "b/x.png.bak",
            "B/one.webp", "a b/space name.jpeg", "a b/.cache/thumb.jpg", "ü/u.tiff", "ü/v.bmp", "ü/w.gif", "ü/x.tif",
            ".git/objects/o.png", "root-image.jpg", "README.txt",
        ];
        foreach (string f in files) Touch(Path.Combine("train", f));

        LabelledImageSet set = LabelledImageSet.Open(root);
        // Ordinal: "B" (0x42) < "a b" < "b" < "ü"; hidden folders (.git) and files at the top are no class.
        Assert.Equal(["B", "a b", "b", "ü"], set.ClassNames);
        Assert.Equal(root, set.Source);
        string P(string f) => Path.Combine(root, f);
        (string, int)[] expected =
        [
            (P("B/one.webp"), 0),
            (P("a b/space name.jpeg"), 1),
            // Ordinal path order: "deeper-x/" ('-' 0x2D) before "deeper/" ('/' 0x2F), "img10" before "img2".
            (P("b/deeper-x/y.png"), 2), (P("b/deeper/z.png"), 2), (P("b/img10.jpg"), 2), (P("b/img2.JPG"), 2),
            (P("ü/u.tiff"), 3), (P("ü/v.bmp"), 3), (P("ü/w.gif"), 3), (P("ü/x.tif"), 3),
        ];
        Assert.Equal(expected, Pairs(set));
        // The same again: the order is stable.
        Assert.Equal(expected, Pairs(LabelledImageSet.Open(root)));
    }

    [Fact]
    public void ALinkedClassFolderIsFollowedButALinkedFolderInsideAClassIsNot()
    {
        string elsewhere = Path.GetDirectoryName(Touch("elsewhere/cats/c.png"))!;
        Touch("elsewhere/more/m.png");
        string root = Path.Combine(_dir.Path, "set");
        Touch("set/dog/d.png");
        Directory.CreateSymbolicLink(Path.Combine(root, "cat"), elsewhere);
        Directory.CreateSymbolicLink(Path.Combine(root, "dog", "more"), Path.Combine(_dir.Path, "elsewhere", "more"));
        LabelledImageSet set = LabelledImageSet.Open(root);
        Assert.Equal(["cat", "dog"], set.ClassNames);
        Assert.Equal([(Path.Combine(root, "cat", "c.png"), 0), (Path.Combine(root, "dog", "d.png"), 1)], Pairs(set));
    }

    [Fact]
    public void FolderProblemsAreOneLineNamingTheFolder()
    {
        string missing = Path.Combine(_dir.Path, "nothing here");
        AssertOneLine($"image set '{missing}' does not exist; give a folder with one sub-folder of images per class, or a text file of 'PATH LABEL' lines",
            () => LabelledImageSet.Open(missing));

        string empty = Path.Combine(_dir.Path, "empty");
        Directory.CreateDirectory(Path.Combine(empty, ".hidden"));
        Touch("empty/loose.jpg");
        AssertOneLine($"folder {empty} has no class folders; give one sub-folder of images per class (its name is the class), or a text file of 'PATH LABEL' lines",
            () => LabelledImageSet.Open(empty));

        Touch("one/only/a.png");
        string one = Path.Combine(_dir.Path, "one");
        AssertOneLine($"folder {one} has 1 class folder ('only'), fewer than 2; a classifier needs at least 2 classes", () => LabelledImageSet.Open(one));

        Touch("holes/a/x.png");
        Touch("holes/b/readme.txt");
        Touch("holes/b/.x.png");
        Directory.CreateDirectory(Path.Combine(_dir.Path, "holes", "b", "sub"));
        string holes = Path.Combine(_dir.Path, "holes");
        AssertOneLine($"class folder {Path.Combine(holes, "b")} holds no images (.jpg .jpeg .png .bmp .gif .tif .tiff .webp); every class needs images",
            () => LabelledImageSet.Open(holes));
    }

    [Fact]
    public void AValidationFolderMustHaveTheTrainingClassFolders()
    {
        foreach (string f in new[] { "train/cat/1.png", "train/dog/2.png", "val/cat/3.png", "val/dog/4.png", "odd/cat/5.png", "odd/cow/6.png", "few/cat/7.png", "few/dog/8.png", "few/eel/9.png" })
            Touch(f);
        LabelledImageSet train = LabelledImageSet.Open(Path.Combine(_dir.Path, "train"));
        LabelledImageSet val = LabelledImageSet.Open(Path.Combine(_dir.Path, "val"), train.ClassNames);
        Assert.Equal(train.ClassNames, val.ClassNames);
        Assert.Equal([0, 1], val.Images.Select(i => i.Label));

        string odd = Path.Combine(_dir.Path, "odd");
        AssertOneLine($"folder {odd}: its 2 class folders are not the 2 classes of the training set ('dog' is missing and 'cow' is not one of them); give the same class folders",
            () => LabelledImageSet.Open(odd, train.ClassNames));
        string few = Path.Combine(_dir.Path, "few");
        AssertOneLine($"folder {few}: its 3 class folders are not the 2 classes of the training set ('eel' is not one of them); give the same class folders",
            () => LabelledImageSet.Open(few, train.ClassNames));
        AssertOneLine($"folder {Path.Combine(_dir.Path, "train")}: its 2 class folders are not the 3 classes of the training set ('eel' is missing); give the same class folders",
            () => LabelledImageSet.Open(Path.Combine(_dir.Path, "train"), ["cat", "dog", "eel"]));
        // Names in another order are other classes: label 0 would mean another thing.
        AssertOneLine($"folder {odd}: its 2 class folders are not the 2 classes of the training set (they are in another order); give the same class folders",
            () => LabelledImageSet.Open(odd, ["cow", "cat"]));
        AssertOneLine($"{odd}: 1 class names given, fewer than 2; a classifier needs at least 2 classes", () => LabelledImageSet.Open(odd, ["cat"]));
    }

    // ---- list mode ----

    [Fact]
    public void AListKeepsItsOrderResolvesPathsFromItsFolderAndTakesTheLastFieldAsTheLabel()
    {
        string a = Touch("data/imgs/a.jpg");
        string spaced = Touch("data/imgs/my photo  2.png");
        string absolute = Touch("other/abs.jpeg");
        string noExtension = Touch("data/raw");
        string list = WriteList("data/train.txt",
            "# comment line\r\n" +
            "imgs/a.jpg 0\r\n" +
            "\r\n" +
            "   \t\r\n" +
            "  # an indented comment\r\n" +
            $"{absolute} 2\r\n" +
            "imgs/my photo  2.png\t1\r\n" +
            "  imgs/a.jpg   +1  \r\n" +
            "raw 007", byteOrderMark: true);

        // The relative paths exist only from the list's folder, not from the process's working directory.
        Assert.False(File.Exists("imgs/a.jpg"));
        LabelledImageSet set = LabelledImageSet.Open(list);
        Assert.Equal([(a, 0), (absolute, 2), (spaced, 1), (a, 1), (noExtension, 7)], Pairs(set));
        Assert.Equal(Enumerable.Range(0, 8).Select(i => $"class {i}"), set.ClassNames);
        Assert.Equal(list, set.Source);
    }

    [Fact]
    public void ListProblemsAreOneLineNamingTheFileAndLine()
    {
        Touch("l/a.png");
        Directory.CreateDirectory(Path.Combine(_dir.Path, "l", "dir"));
        string L(string text) => WriteList("l/list.txt", text);
        string list = Path.Combine(_dir.Path, "l", "list.txt");
        (string Text, string Message)[] cases =
        [
            ("a.png 0\n\na.png\n", $"{list}, line 3: 'a.png' is not 'PATH LABEL' (a path, a space, a class number)"),
            ("a.png 0\na.png -1\n", $"{list}, line 2: label -1 is negative; labels are class numbers from 0"),
            ("a.png 1.5\n", $"{list}, line 1: label '1.5' is not a whole number from 0; the last field of a line is its class number"),
            ("a.png cat\n", $"{list}, line 1: label 'cat' is not a whole number from 0; the last field of a line is its class number"),
            ("a.png 1e3\n", $"{list}, line 1: label '1e3' is not a whole number from 0; the last field of a line is its class number"),
            ("a.png --1\n", $"{list}, line 1: label '--1' is not a whole number from 0; the last field of a line is its class number"),
            ("a.png 99999999999\n", $"{list}, line 1: label 99999999999 is out of range for a class number"),
            ("# only\n\na.png 1\nb.png 0\n", $"{list}, line 4: image '{Path.Combine(_dir.Path, "l", "b.png")}' does not exist (a relative path is taken from the list's folder)"),
            ("/no/such/file.png 0\n", $"{list}, line 1: image '/no/such/file.png' does not exist"),
            ("dir 1\n", $"{list}, line 1: '{Path.Combine(_dir.Path, "l", "dir")}' is a folder; each line names one image file"),
            ("a.png 0\na.png 0\n", $"image list {list}: every label is 0, so there is 1 class, fewer than 2; a classifier needs at least 2 classes"),
            ("# nothing\n\n", $"image list {list} lists no images; give 'PATH LABEL' lines"),
            ("", $"image list {list} lists no images; give 'PATH LABEL' lines"),
        ];
        foreach ((string text, string message) in cases)
            AssertOneLine(message, () => LabelledImageSet.Open(L(text)));

        File.WriteAllBytes(list, [.. "a.png 0\n"u8, (byte)'b', 0xFF, (byte)' ', (byte)'1', (byte)'\n']);
        AssertOneLine($"{list}, line 2: not UTF-8 text; an image list is a text file of 'PATH LABEL' lines", () => LabelledImageSet.Open(list));
    }

    [Fact]
    public void AValidationListTakesTheTrainingClassesAndRefusesALabelBeyondThem()
    {
        Touch("f/cat/c.png");
        Touch("f/dog/d.png");
        Touch("f/eel/e.png");
        LabelledImageSet train = LabelledImageSet.Open(Path.Combine(_dir.Path, "f"));
        string img = Touch("v/x.png");
        // Label 0 alone is fine here: the classes come from the training set.
        LabelledImageSet val = LabelledImageSet.Open(WriteList("v/val.txt", "x.png 2\nx.png 0\n"), train.ClassNames);
        Assert.Equal(["cat", "dog", "eel"], val.ClassNames);
        Assert.Equal([(img, 2), (img, 0)], Pairs(val));
        Assert.Equal([(img, 0)], Pairs(LabelledImageSet.Open(WriteList("v/zero.txt", "x.png 0\n"), train.ClassNames)));

        string bad = WriteList("v/bad.txt", "x.png 1\nx.png 3\n");
        AssertOneLine($"{bad}, line 2: label 3, but the 3 classes of the training set are 0 to 2", () => LabelledImageSet.Open(bad, train.ClassNames));

        // A training list's classes are 0 to its largest label, gaps included; a validation list may use fewer.
        LabelledImageSet listTrain = LabelledImageSet.Open(WriteList("v/train.txt", "x.png 0\nx.png 3\n"));
        Assert.Equal(["class 0", "class 1", "class 2", "class 3"], listTrain.ClassNames);
        Assert.Equal(listTrain.ClassNames, LabelledImageSet.Open(WriteList("v/val2.txt", "x.png 1\n"), listTrain.ClassNames).ClassNames);
        // A folder cannot validate a list's numbered classes: its folder names are other classes.
        AssertOneLine($"folder {Path.Combine(_dir.Path, "f")}: its 3 class folders are not the 4 classes of the training set ('class 0' is missing and 'cat' is not one of them); give the same class folders",
            () => LabelledImageSet.Open(Path.Combine(_dir.Path, "f"), listTrain.ClassNames));
    }
}
