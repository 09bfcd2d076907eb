using System.Text;
using AlexNet.Cuda.Labels;
using AlexNet.Cuda.Tests.Weights;

namespace AlexNet.Cuda.Tests.Classify;

/// <summary>The bundled ImageNet class names and labels files in both accepted forms, and every refusal.</summary>
public class ClassLabelsTests
{
    private static readonly UTF8Encoding Utf8NoBom = new(encoderShouldEmitUTF8Identifier: false);

    private static readonly byte[] Utf8ByteOrderMark = [0xEF, 0xBB, 0xBF];

    private static string WriteText(TempDir dir, string name, string text) => dir.Write(name, Utf8NoBom.GetBytes(text));

    private static AlexNetException AssertOneLineError(Action action, params string[] fragments)
    {
        var e = Assert.ThrowsAny<AlexNetException>(action);
        Assert.DoesNotContain('\n', e.Message);
        Assert.DoesNotContain('\r', e.Message);
        foreach (string fragment in fragments) Assert.Contains(fragment, e.Message);
        return e;
    }

    [Fact]
    public void TheBundledListIsTheThousandImageNetClassesInTheStandardOrder()
    {
        IReadOnlyList<string> labels = ClassLabels.ImageNet;
        Assert.Equal(1000, labels.Count);
        Assert.Equal(ClassLabels.ImageNetClassCount, labels.Count);
        Assert.Equal("tench, Tinca tinca", labels[0]);
        Assert.Equal("goldfish, Carassius auratus", labels[1]);
        Assert.Equal("great white shark, white shark, man-eater, man-eating shark, Carcharodon carcharias", labels[2]);
        Assert.Equal("tabby, tabby cat", labels[281]);
        Assert.Equal("analog clock", labels[409]);
        Assert.Equal("Granny Smith", labels[948]);
        Assert.Equal("toilet tissue, toilet paper, bathroom tissue", labels[999]);
        // The list's known duplicate: the bird and the machine are both "crane".
        Assert.Equal("crane", labels[134]);
        Assert.Equal("crane", labels[517]);
        Assert.All(labels, name => Assert.True(name.Length > 0 && name == name.Trim(), $"'{name}'"));
    }

    [Fact]
    public void TheEmbeddedListIsTheFileInTheRepositoryLineForLine()
    {
        string path = RepositoryFiles.PathOf("Host/AlexNet.Cuda/Labels/imagenet-classes.txt");
        byte[] bytes = File.ReadAllBytes(path);
        Assert.False(bytes.AsSpan().StartsWith(Utf8ByteOrderMark), "the file starts with a byte-order mark");
        Assert.DoesNotContain((byte)'\r', bytes);
        string text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        Assert.EndsWith("\n", text);
        string[] lines = text[..^1].Split('\n');
        Assert.Equal(1000, lines.Length);
        Assert.Equal(lines, ClassLabels.ImageNet);
        Assert.Equal(lines, ClassLabels.Load(path));
        Assert.True(File.Exists(RepositoryFiles.PathOf("Host/AlexNet.Cuda/Labels/NOTICE")));
        Assert.True(File.Exists(RepositoryFiles.PathOf("Host/AlexNet.Cuda/Labels/LICENSE.imagenet-classes")));
    }

    [Fact]
    public void SynsetWordsFormGivesTheNamesWithoutTheWordNetIds()
    {
        using var dir = new TempDir();
        string path = WriteText(dir, "synset_words.txt",
            "n01440764 tench, Tinca tinca\r\n" +
            "n01443537 goldfish, Carassius auratus\n" +
            "n01484850\tgreat white shark, white shark\n" +
            "n01491361 tiger shark, Galeocerdo cuvieri  \n" +
            "\n\n  \n");
        Assert.Equal(
            ["tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark, white shark", "tiger shark, Galeocerdo cuvieri"],
            ClassLabels.Load(path));
    }

    [Fact]
    public void AllThousandClassesInSynsetWordsFormReadBackAsTheBundledList()
    {
        using var dir = new TempDir();
        var text = new StringBuilder();
        for (int i = 0; i < ClassLabels.ImageNet.Count; i++)
            text.Append('n').Append((1_000_000 + i * 7919).ToString("D8")).Append(' ').Append(ClassLabels.ImageNet[i]).Append('\n');
        Assert.Equal(ClassLabels.ImageNet, ClassLabels.Load(WriteText(dir, "synset_words.txt", text.ToString())));
    }

    [Fact]
    public void OneNamePerLineFormKeepsEachNameWhole()
    {
        using var dir = new TempDir();
        // A byte-order mark, CRLF endings, no final newline, non-ASCII text, and names that start like an id
        // but are not one (7 digits, capital N) all stay names.
        byte[] bytes = [.. Utf8ByteOrderMark, .. Utf8NoBom.GetBytes("café au lait\r\nn0144076 seven digits\r\nN01440764 capital\r\nplain")];
        string path = dir.Write("names.txt", bytes);
        Assert.Equal(["café au lait", "n0144076 seven digits", "N01440764 capital", "plain"], ClassLabels.Load(path));
    }

    [Fact]
    public void ForClassesUsesTheFileWhenGiven()
    {
        using var dir = new TempDir();
        string path = WriteText(dir, "three.txt", "cat\ndog\nbird\n\n");
        Assert.Equal(["cat", "dog", "bird"], ClassLabels.ForClasses(3, path));
        // A file overrides the bundled list even for a 1000-class model.
        string thousand = WriteText(dir, "thousand.txt", string.Concat(Enumerable.Range(0, 1000).Select(i => $"class {i}\n")));
        IReadOnlyList<string>? labels = ClassLabels.ForClasses(1000, thousand);
        Assert.NotNull(labels);
        Assert.Equal("class 0", labels[0]);
        Assert.Equal("class 999", labels[999]);
    }

    [Fact]
    public void ForClassesWithoutAFileGivesImageNetForAThousandClassesAndIndicesOtherwise()
    {
        Assert.Same(ClassLabels.ImageNet, ClassLabels.ForClasses(1000, null));
        Assert.Null(ClassLabels.ForClasses(999, null));
        Assert.Null(ClassLabels.ForClasses(1001, null));
        Assert.Null(ClassLabels.ForClasses(1, null));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClassLabels.ForClasses(0, null));
    }

    [Theory]
    [InlineData(2, 3)]
    [InlineData(4, 3)]
    [InlineData(1000, 3)]
    public void ForClassesRefusesAFileWithADifferentCount(int numClasses, int namesInFile)
    {
        using var dir = new TempDir();
        string path = WriteText(dir, "labels.txt", string.Concat(Enumerable.Range(0, namesInFile).Select(i => $"name {i}\n")));
        AssertOneLineError(() => ClassLabels.ForClasses(numClasses, path),
            $"labels file '{path}'", $"names {namesInFile} classes", $"the model has {numClasses}");
    }

    [Fact]
    public void AMissingFileIsAnError()
    {
        using var dir = new TempDir();
        string path = dir.File("absent.txt");
        AssertOneLineError(() => ClassLabels.Load(path), $"labels file '{path}' does not exist");
        AssertOneLineError(() => ClassLabels.ForClasses(1000, path), $"labels file '{path}' does not exist");
    }

    [Fact]
    public void AFolderIsAnError()
    {
        using var dir = new TempDir();
        AssertOneLineError(() => ClassLabels.Load(dir.Path), $"labels file '{dir.Path}' is a folder");
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n")]
    [InlineData("\r\n \n\t\n")]
    [InlineData("\uFEFF")]
    [InlineData("\uFEFF\n\n")]
    public void AnEmptyFileIsAnError(string text)
    {
        using var dir = new TempDir();
        string path = dir.Write("empty.txt", Encoding.UTF8.GetBytes(text));
        AssertOneLineError(() => ClassLabels.Load(path), $"labels file '{path}' is empty");
    }

    [Theory]
    [InlineData("n01440764 tench\ngoldfish\n", 1, 2)]
    [InlineData("tench\ngoldfish\nn01484850 great white shark\n", 1, 3)]
    public void MixedFormsAreAnError(string text, int firstLine, int otherLine)
    {
        using var dir = new TempDir();
        string path = WriteText(dir, "mixed.txt", text);
        AssertOneLineError(() => ClassLabels.Load(path), $"labels file '{path}' mixes forms", $"line {firstLine} is", $"line {otherLine} is");
    }

    [Fact]
    public void AWordNetIdWithoutANameIsAnError()
    {
        using var dir = new TempDir();
        string path = WriteText(dir, "ids.txt", "n01440764 tench\nn01443537 \n");
        AssertOneLineError(() => ClassLabels.Load(path), $"labels file '{path}', line 2", "n01443537 has no class name");
    }

    [Fact]
    public void ABlankLineBeforeTheLastNameIsAnError()
    {
        using var dir = new TempDir();
        string path = WriteText(dir, "gap.txt", "cat\n\ndog\n");
        AssertOneLineError(() => ClassLabels.Load(path), $"labels file '{path}', line 2: blank line");
    }

    [Fact]
    public void ALineThatIsNotUtf8IsAnError()
    {
        using var dir = new TempDir();
        // Line 2 is Latin-1 "café": 0xE9 alone is not UTF-8.
        string path = dir.Write("latin1.txt", [.. "cat\n"u8, .. Encoding.Latin1.GetBytes("caf\u00e9\n")]);
        AssertOneLineError(() => ClassLabels.Load(path), $"labels file '{path}', line 2: not UTF-8 text");
    }

    [Fact]
    public void ABinaryFileIsAnError()
    {
        using var dir = new TempDir();
        // A PNG signature: its first byte, 0x89, cannot start a UTF-8 character.
        string path = dir.Write("image.png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]);
        AssertOneLineError(() => ClassLabels.Load(path), $"labels file '{path}', line 1: not UTF-8 text");
        string nul = dir.Write("nul.txt", [.. "cat\ndo"u8, 0, .. "g\n"u8]);
        AssertOneLineError(() => ClassLabels.Load(nul), $"labels file '{nul}', line 2: control character U+0000");
    }
}
