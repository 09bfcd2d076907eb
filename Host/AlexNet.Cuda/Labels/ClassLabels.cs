using System.Text;
using System.Text.RegularExpressions;
using AlexNet.Cuda.Export;

namespace AlexNet.Cuda.Labels;

/// <summary>
/// Class names for the network's outputs: the 1000 ImageNet classes that ship inside the engine
/// (Labels/NOTICE for their source and licence), or a labels file given by the user.
/// </summary>
public static partial class ClassLabels
{
    /// <summary>The number of ImageNet (ILSVRC-2012) classes, and of BVLC AlexNet's outputs.</summary>
    public const int ImageNetClassCount = 1000;

    private const string ResourceName = "Labels/imagenet-classes.txt";

    private static readonly Lazy<IReadOnlyList<string>> s_imageNet = new(LoadEmbedded);

    /// <summary>The 1000 ImageNet class names in the standard class order (0 "tench, Tinca tinca" … 999 "toilet tissue, …").</summary>
    public static IReadOnlyList<string> ImageNet => s_imageNet.Value;

    /// <summary>
    /// The labels to print for a model with <paramref name="numClasses"/> outputs: the file's when
    /// <paramref name="path"/> is given (it must name exactly <paramref name="numClasses"/> classes), ImageNet's
    /// when the model has 1000 classes, otherwise none (<c>null</c>: print class indices).
    /// </summary>
    public static IReadOnlyList<string>? ForClasses(int numClasses, string? path)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numClasses, 1);
        if (path is not null)
        {
            IReadOnlyList<string> labels = Load(path);
            if (labels.Count != numClasses)
                throw new AlexNetException(
                    $"labels file '{path}' names {labels.Count} classes but the model has {numClasses}; give a file with one name per class");
            return labels;
        }
        return numClasses == ImageNetClassCount ? ImageNet : null;
    }

    /// <summary>
    /// The labels file kept beside a weight file: <c>model.npy</c> → <c>model.labels.txt</c> (the weight file's
    /// extension replaced, or <c>.labels.txt</c> added when it has none), one class name per line.
    /// </summary>
    public static string BesidePath(string weightsPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(weightsPath);
        return Path.ChangeExtension(weightsPath, ".labels.txt");
    }

    /// <summary>
    /// The labels for a model read from <paramref name="weightsPath"/> with <paramref name="numClasses"/> outputs:
    /// <paramref name="labelsPath"/> when given (as <see cref="ForClasses"/>); otherwise the file beside the
    /// weights (<see cref="BesidePath"/>) when it exists, which must name exactly <paramref name="numClasses"/>
    /// classes; otherwise ImageNet's for 1000 classes, or none.
    /// </summary>
    public static IReadOnlyList<string>? ForWeights(int numClasses, string weightsPath, string? labelsPath)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numClasses, 1);
        if (labelsPath is not null) return ForClasses(numClasses, labelsPath);
        string beside = BesidePath(weightsPath);
        if (!File.Exists(beside)) return ForClasses(numClasses, null);
        IReadOnlyList<string> labels = Load(beside);
        if (labels.Count != numClasses)
            throw new AlexNetException(
                $"labels file '{beside}' beside the weights names {labels.Count} classes but the weights' fc8 has {numClasses}; correct or remove it, or name another labels file");
        return labels;
    }

    /// <summary>
    /// Writes <paramref name="names"/> as the labels file beside <paramref name="weightsPath"/>
    /// (<see cref="BesidePath"/>), atomically (a temporary file in the same folder, then renamed), in a form
    /// <see cref="Load"/> reads back to the same names: one name per line, or, when every name starts with a
    /// WordNet id (ImageNet's folder names: <c>n01440764</c>), each line that id and the name, so the id is
    /// not taken for a synset_words.txt line's own. A name that is blank, has a line break or other control
    /// character, or spaces at either end, and a mix of names that no one form keeps, are refused.
    /// </summary>
    public static void WriteBeside(string weightsPath, IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        string path = BesidePath(weightsPath);
        if (names.Count == 0) throw new AlexNetException($"cannot write labels file '{path}': there are no class names");
        for (int i = 0; i < names.Count; i++)
        {
            string name = names[i] ?? throw new AlexNetException($"cannot write labels file '{path}': class {i} has no name");
            string? problem = name.Trim().Length == 0 ? "is blank"
                : name.Any(c => char.IsControl(c) && c != '\t') ? "holds a line break or another control character"
                : name != name.Trim() ? "has spaces at an end, which a labels file does not keep"
                : null;
            if (problem is not null)
                throw new AlexNetException($"cannot write labels file '{path}': the name of class {i} {problem}");
        }
        // A labels file is one form throughout, and a line starting with a WordNet id is read as synset_words.txt's.
        int withId = names.Count(n => SynsetLine().IsMatch(n));
        if (withId != 0 && withId != names.Count)
        {
            int first = Enumerable.Range(0, names.Count).First(i => SynsetLine().IsMatch(names[i]));
            int other = Enumerable.Range(0, names.Count).First(i => !SynsetLine().IsMatch(names[i]));
            throw new AlexNetException(
                $"cannot write labels file '{path}': class {first}'s name '{names[first]}' starts with a WordNet id but class {other}'s '{names[other]}' does not, and no labels file form keeps both; rename the classes");
        }
        var text = new StringBuilder();
        foreach (string name in names)
            text.Append(withId > 0 ? $"{name[..9]} {name}" : name).Append('\n');
        NpyWriter.WriteText(path, text.ToString());
    }

    /// <summary>
    /// Reads a labels file, UTF-8, in either of two forms, one throughout: Caffe's <c>synset_words.txt</c>
    /// (<c>n01440764 tench, Tinca tinca</c>: a WordNet id, a space, the name) or one name per line. Line n
    /// (from 0) names class n; blank lines at the end are ignored.
    /// </summary>
    public static IReadOnlyList<string> Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
            throw new AlexNetException($"labels file '{path}' is a folder; give a text file with one class name per line");
        if (!File.Exists(path))
            throw new AlexNetException($"labels file '{path}' does not exist; give a text file with one class name per line");
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AlexNetException($"cannot read labels file '{path}': {e.Message.ReplaceLineEndings(" ")}", e);
        }
        return Parse(bytes, $"labels file '{path}'");
    }

    private static IReadOnlyList<string> LoadEmbedded()
    {
        using Stream stream = typeof(ClassLabels).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new AlexNetException($"the ImageNet class names ({ResourceName}) are not embedded in the engine; the build is broken");
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        IReadOnlyList<string> labels = Parse(memory.ToArray(), "the embedded ImageNet labels");
        if (labels.Count != ImageNetClassCount)
            throw new AlexNetException($"the embedded ImageNet labels name {labels.Count} classes, not {ImageNetClassCount}; the build is broken");
        return labels;
    }

    private enum Form { Names, SynsetWords }

    // A WordNet noun id as Caffe's synset_words.txt writes it, then the name. Tabs are taken as well as the
    // single space Caffe writes, since editors and spreadsheets turn one into the other.
    [GeneratedRegex(@"^n[0-9]{8}(?:[ \t]+(.*))?$")]
    private static partial Regex SynsetLine();

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static ReadOnlySpan<byte> Utf8ByteOrderMark => [0xEF, 0xBB, 0xBF];

    internal static IReadOnlyList<string> Parse(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.StartsWith(Utf8ByteOrderMark)) bytes = bytes[3..];

        var lines = new List<string>();
        int lineNumber = 0;
        while (!bytes.IsEmpty)
        {
            lineNumber++;
            int end = bytes.IndexOf((byte)'\n');
            ReadOnlySpan<byte> raw = end < 0 ? bytes : bytes[..end];
            bytes = end < 0 ? [] : bytes[(end + 1)..];
            if (!raw.IsEmpty && raw[^1] == (byte)'\r') raw = raw[..^1];
            lines.Add(DecodeLine(raw, source, lineNumber));
        }

        int count = lines.Count;
        while (count > 0 && string.IsNullOrWhiteSpace(lines[count - 1])) count--;
        if (count == 0)
            throw new AlexNetException($"{source} is empty; give one class name per line");

        var names = new string[count];
        Form? form = null;
        int formLine = 0;
        for (int i = 0; i < count; i++)
        {
            string line = lines[i].Trim();
            if (line.Length == 0)
                throw new AlexNetException($"{source}, line {i + 1}: blank line before the last name; every class needs a name");

            Match synset = SynsetLine().Match(line);
            Form lineForm = synset.Success ? Form.SynsetWords : Form.Names;
            if (form is null)
            {
                form = lineForm;
                formLine = i + 1;
            }
            else if (form != lineForm)
            {
                throw new AlexNetException(
                    $"{source} mixes forms: line {formLine} is {Describe(form.Value)} but line {i + 1} is {Describe(lineForm)}; use one form throughout");
            }

            if (lineForm == Form.SynsetWords)
            {
                string name = synset.Groups[1].Value.Trim();
                if (name.Length == 0)
                    throw new AlexNetException($"{source}, line {i + 1}: WordNet id {line} has no class name after it");
                names[i] = name;
            }
            else
            {
                names[i] = line;
            }
        }
        return Array.AsReadOnly(names);
    }

    private static string Describe(Form form) => form == Form.SynsetWords
        ? "'WORDNET-ID NAME' (synset_words.txt)"
        : "a name alone";

    private static string DecodeLine(ReadOnlySpan<byte> raw, string source, int lineNumber)
    {
        string text;
        try
        {
            text = StrictUtf8.GetString(raw);
        }
        catch (DecoderFallbackException)
        {
            throw new AlexNetException($"{source}, line {lineNumber}: not UTF-8 text; a labels file is plain text, one class name per line");
        }
        foreach (char c in text)
        {
            // Tabs are whitespace in a name; any other control character (a NUL, an escape) means the file is not text.
            if (char.IsControl(c) && c != '\t')
                throw new AlexNetException(
                    $"{source}, line {lineNumber}: control character U+{(int)c:X4}; a labels file is plain text, one class name per line");
        }
        return text;
    }
}
