using System.Globalization;
using System.Text;
using AlexNet.Cli.Classify;
using AlexNet.Cuda;

namespace AlexNet.Cli.Finetune;

/// <summary>An image file and its class index.</summary>
public sealed record LabelledImage(string Path, int Label);

/// <summary>
/// The images of a training or validation set and their classes, read from one of the two layouts people keep
/// them in: a folder with one sub-folder per class, or a text file of <c>path label</c> lines as the original
/// TensorFlow fine-tuning code reads them. Only paths are held; nothing is decoded here. Every problem is an
/// <see cref="AlexNetException"/> whose one line names the source and, in a text file, the line.
/// </summary>
/// <remarks>
/// Folder mode: the class folders are the source's sub-folders that are not hidden (names starting with a
/// dot), links to folders included; their names sorted by ordinal comparison are the classes, class 0 first.
/// A class's images are the files under its folder with an image extension that <c>classify</c> takes from
/// folders (<see cref="InputFiles.ImageExtensions"/>), at any depth — nested folders belong to the class they
/// are in, as they do for torchvision's ImageFolder and Keras — sorted by ordinal path; hidden files and other
/// files are skipped, links to folders inside a class folder are not followed (as in classify), and files
/// directly in the source folder belong to no class and are ignored.
/// <para>
/// List mode: UTF-8 (a byte-order mark is skipped; CRLF line ends are taken); blank lines and lines whose first
/// non-blank character is <c>#</c> are skipped; otherwise the label is the last whitespace-separated field, a
/// non-negative integer, and the path is everything before it, so a path may contain spaces (the original
/// code's <c>line.split(' ')</c> could not). A relative path is resolved from the text file's folder, not the
/// working directory, so a list and its images can move together; every listed file must exist, whatever its
/// extension (the decoder says later whether it is an image). The classes are 0 to the largest label;
/// without names given they are called <c>class 0</c> … <c>class K-1</c>.
/// </para>
/// </remarks>
public sealed class LabelledImageSet
{
    /// <summary>The fewest classes a set may have: one class is nothing to tell apart.</summary>
    public const int MinClasses = 2;

    private LabelledImageSet(string source, IReadOnlyList<LabelledImage> images, IReadOnlyList<string> classNames)
    {
        Source = source;
        Images = images;
        ClassNames = classNames;
    }

    /// <summary>The images in a stable order: folder mode sorted by class then ordinal path; list mode in the file's order.</summary>
    public IReadOnlyList<LabelledImage> Images { get; }

    /// <summary>Folder mode: the sorted sub-folder names (ordinal); list mode: <c>class 0</c> … <c>class K-1</c>, or the names given.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The folder or text file, as given.</summary>
    public string Source { get; }

    /// <summary>
    /// SRC is a folder with one sub-folder per class (sorted names are the classes; image files by the
    /// extensions the engine's InputFiles/ImageFiles already accept; hidden files and non-image files skipped),
    /// or a text file of <c>path label</c> lines as the original TensorFlow fine-tuning code reads them (label
    /// a non-negative integer; relative paths resolved from the text file's folder; blank lines and lines
    /// starting with # skipped; a path may contain spaces: the label is the last whitespace-separated field).
    /// </summary>
    public static LabelledImageSet Open(string source) => Open(source, null, "");

    /// <summary>
    /// The validation set must use the training set's classes: folder mode same sorted names; list mode
    /// labels &lt; classCount. Opens <paramref name="source"/> as <see cref="Open(string)"/> does, with
    /// <paramref name="classNames"/> (the training set's <see cref="ClassNames"/>) as its classes: a folder's
    /// class folders must be exactly those names, in their order; a list's every label below their count
    /// (a validation list need not use every class).
    /// </summary>
    public static LabelledImageSet Open(string source, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        return Open(source, classNames, " of the training set");
    }

    private static LabelledImageSet Open(string source, IReadOnlyList<string>? classNames, string whose)
    {
        ArgumentException.ThrowIfNullOrEmpty(source);
        if (classNames is { Count: < MinClasses })
            throw new AlexNetException($"{source}: {classNames.Count} class names given, fewer than {MinClasses}; a classifier needs at least {MinClasses} classes");
        if (Directory.Exists(source)) return OpenFolder(source, classNames, whose);
        if (File.Exists(source)) return OpenList(source, classNames, whose);
        throw new AlexNetException($"image set '{source}' does not exist; give a folder with one sub-folder of images per class, or a text file of 'PATH LABEL' lines");
    }

    private static readonly EnumerationOptions ClassFolders = new()
    {
        RecurseSubdirectories = false,
        IgnoreInaccessible = false,
        AttributesToSkip = FileAttributes.Hidden,
    };

    private static LabelledImageSet OpenFolder(string source, IReadOnlyList<string>? classNames, string whose)
    {
        List<string> names;
        try
        {
            names = new DirectoryInfo(source).EnumerateDirectories("*", ClassFolders).Select(d => d.Name).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AlexNetException($"cannot list folder {source}: {e.Message.ReplaceLineEndings(" ")}", e);
        }
        names.Sort(StringComparer.Ordinal);
        if (names.Count == 0)
            throw new AlexNetException($"folder {source} has no class folders; give one sub-folder of images per class (its name is the class), or a text file of 'PATH LABEL' lines");
        if (classNames is not null && !names.SequenceEqual(classNames, StringComparer.Ordinal))
        {
            string? missing = classNames.FirstOrDefault(n => !names.Contains(n, StringComparer.Ordinal));
            string? extra = names.FirstOrDefault(n => !classNames.Contains(n, StringComparer.Ordinal));
            string difference = missing is not null && extra is not null ? $"'{missing}' is missing and '{extra}' is not one of them"
                : missing is not null ? $"'{missing}' is missing"
                : extra is not null ? $"'{extra}' is not one of them"
                : "they are in another order";
            throw new AlexNetException($"folder {source}: its {names.Count} class folders are not the {classNames.Count} classes{whose} ({difference}); give the same class folders");
        }
        if (names.Count < MinClasses)
            throw new AlexNetException($"folder {source} has {names.Count} class folder ('{names[0]}'), fewer than {MinClasses}; a classifier needs at least {MinClasses} classes");

        var images = new List<LabelledImage>();
        var files = new List<string>();
        for (int label = 0; label < names.Count; label++)
        {
            string folder = Path.Combine(source, names[label]);
            files.Clear();
            InputFiles.AddImagesUnder(folder, files);
            if (files.Count == 0)
                throw new AlexNetException($"class folder {folder} holds no images ({string.Join(" ", InputFiles.ImageExtensions)}); every class needs images");
            files.Sort(StringComparer.Ordinal);
            foreach (string file in files) images.Add(new LabelledImage(file, label));
        }
        return new LabelledImageSet(source, images.AsReadOnly(), names.AsReadOnly());
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static LabelledImageSet OpenList(string source, IReadOnlyList<string>? classNames, string whose)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(source);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AlexNetException($"cannot read image list {source}: {e.Message.ReplaceLineEndings(" ")}", e);
        }
        ReadOnlySpan<byte> rest = bytes;
        if (rest.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) rest = rest[3..];
        string folder = Path.GetDirectoryName(source) ?? "";
        var images = new List<LabelledImage>();
        int largest = -1;
        for (int number = 1; !rest.IsEmpty; number++)
        {
            int end = rest.IndexOf((byte)'\n');
            ReadOnlySpan<byte> raw = end < 0 ? rest : rest[..end];
            rest = end < 0 ? [] : rest[(end + 1)..];
            string line;
            try
            {
                line = StrictUtf8.GetString(raw).Trim();
            }
            catch (DecoderFallbackException)
            {
                throw new AlexNetException($"{At(source, number)}: not UTF-8 text; an image list is a text file of 'PATH LABEL' lines");
            }
            if (line.Length == 0 || line[0] == '#') continue;

            int cut = line.AsSpan().LastIndexOfAny(' ', '\t');
            if (cut < 0)
                throw new AlexNetException($"{At(source, number)}: '{Shorten(line)}' is not 'PATH LABEL' (a path, a space, a class number)");
            string path = line[..cut].TrimEnd();
            int label = ParseLabel(line[(cut + 1)..], source, number);
            if (classNames is not null && label >= classNames.Count)
                throw new AlexNetException($"{At(source, number)}: label {label}, but the {classNames.Count} classes{whose} are 0 to {classNames.Count - 1}");
            string resolved = Path.IsPathRooted(path) ? path : Path.Combine(folder, path);
            if (!File.Exists(resolved))
                throw new AlexNetException(Directory.Exists(resolved)
                    ? $"{At(source, number)}: '{resolved}' is a folder; each line names one image file"
                    : $"{At(source, number)}: image '{resolved}' does not exist{(Path.IsPathRooted(path) ? "" : " (a relative path is taken from the list's folder)")}");
            images.Add(new LabelledImage(resolved, label));
            largest = Math.Max(largest, label);
        }
        if (images.Count == 0)
            throw new AlexNetException($"image list {source} lists no images; give 'PATH LABEL' lines");
        IReadOnlyList<string> names = classNames is not null
            ? classNames.ToArray().AsReadOnly()
            : Enumerable.Range(0, largest + 1).Select(i => string.Create(CultureInfo.InvariantCulture, $"class {i}")).ToArray().AsReadOnly();
        if (names.Count < MinClasses)
            throw new AlexNetException($"image list {source}: every label is 0, so there is {names.Count} class, fewer than {MinClasses}; a classifier needs at least {MinClasses} classes");
        return new LabelledImageSet(source, images.AsReadOnly(), names);
    }

    /// <summary>A class number as Python's <c>int()</c> reads one (an optional sign, decimal digits), refused below 0.</summary>
    private static int ParseLabel(string text, string source, int number)
    {
        if (int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int label))
        {
            if (label >= 0) return label;
            throw new AlexNetException($"{At(source, number)}: label {label} is negative; labels are class numbers from 0");
        }
        bool digits = text.TrimStart('+', '-') is { Length: > 0 } unsigned && unsigned.All(char.IsAsciiDigit) && text.Length - unsigned.Length <= 1;
        throw new AlexNetException(digits
            ? $"{At(source, number)}: label {Shorten(text)} is out of range for a class number"
            : $"{At(source, number)}: label '{Shorten(text)}' is not a whole number from 0; the last field of a line is its class number");
    }

    private static string At(string source, int number) => $"{source}, line {number}";

    private static string Shorten(string text) => text.Length > 80 ? text[..77] + "..." : text;
}
