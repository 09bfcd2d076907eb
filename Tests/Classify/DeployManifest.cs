using System.Globalization;
using System.Text.RegularExpressions;
using AlexNet.Cli.Classify;

namespace AlexNet.Cuda.Tests.Classify;

/// <summary>
/// Reads deploy/classify-job.yaml as text, by the rule written at the head of that file, and checks the
/// <c>alexnet classify</c> command line in it against the options classify takes.
/// </summary>
internal static partial class DeployManifest
{
    /// <summary>The manifest in the repository.</summary>
    public static string JobPath => RepositoryFiles.PathOf("deploy/classify-job.yaml");

    /// <summary>What the kubelet replaces with the pod's completion index.</summary>
    public const string IndexPlaceholder = "$(JOB_COMPLETION_INDEX)";

    private static readonly HashSet<string> ShellOperators = new(StringComparer.Ordinal) { "|", "||", "&&", "&", ";" };

    // A word that starts a redirection: >, >>, <, 2>, 2>&1, >/dev/null and the like.
    [GeneratedRegex(@"^[0-9]*[<>]")]
    private static partial Regex Redirection();

    /// <summary>
    /// The arguments the Job passes to <c>alexnet</c> (<c>classify</c> first), with <see cref="IndexPlaceholder"/>
    /// as written: the one line whose first word is <c>alexnet</c>, joined with the lines that follow while a line
    /// ends in a backslash, split at spaces, from the word after <c>alexnet</c> up to the first word that is a shell
    /// operator (<c>|</c>, <c>||</c>, <c>&amp;&amp;</c>, <c>&amp;</c>, <c>;</c>) or starts a redirection (<c>&gt;</c>, <c>2&gt;</c>, <c>&lt;</c>, …).
    /// </summary>
    public static IReadOnlyList<string> ClassifyArguments(string yamlPath)
    {
        string[] lines = File.ReadAllLines(yamlPath);
        int[] starts = Enumerable.Range(0, lines.Length).Where(i => FirstWord(lines[i]) == "alexnet").ToArray();
        if (starts.Length != 1)
            throw new InvalidDataException($"{yamlPath}: {starts.Length} lines start with the word alexnet; the extraction rule needs exactly one");

        var command = new List<string>();
        for (int i = starts[0]; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd();
            bool continues = line.EndsWith('\\');
            command.Add(continues ? line[..^1] : line);
            if (!continues) break;
        }
        string text = string.Join(' ', command);
        if (text.IndexOfAny(['"', '\'', '`']) is int quote and >= 0 && quote < OperatorPosition(text))
            throw new InvalidDataException($"{yamlPath}: the alexnet command quotes a word; the extraction rule splits at spaces only");

        string[] words = text.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        int end = Array.FindIndex(words, w => ShellOperators.Contains(w) || Redirection().IsMatch(w));
        return words[1..(end < 0 ? words.Length : end)];
    }

    private static int OperatorPosition(string text)
    {
        int at = text.IndexOfAny(['>', '<', '|', '&', ';']);
        return at < 0 ? text.Length : at;
    }

    private static string? FirstWord(string line)
    {
        string trimmed = line.TrimStart();
        int space = trimmed.IndexOfAny([' ', '\t']);
        return space < 0 ? trimmed : trimmed[..space];
    }

    /// <summary>The value of a <c>key: number</c> line of the manifest; exactly one such line must exist.</summary>
    public static int Number(string yamlPath, string key)
    {
        MatchCollection matches = Regex.Matches(File.ReadAllText(yamlPath), $@"^\s*{Regex.Escape(key)}:\s*(\d+)\s*(?:#.*)?$", RegexOptions.Multiline);
        if (matches.Count != 1)
            throw new InvalidDataException($"{yamlPath}: {matches.Count} lines set {key}; expected one");
        return int.Parse(matches[0].Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"^\s*mountPath:\s*(\S+)\s*$", RegexOptions.Multiline)]
    private static partial Regex MountPath();

    /// <summary>
    /// What is wrong with the manifest's Job, one line per problem; empty when nothing is. The options and
    /// values are those of <c>alexnet classify</c> (<c>--weights FILE [--device auto|cuda|opencl] [--batch N]
    /// [--top K] [--labels FILE] [--resize stretch|crop] [--mean B,G,R] [--format text|json] [--workers N]
    /// [--shard I/N] IMAGE|DIR…</c>).
    /// </summary>
    public static IReadOnlyList<string> Problems(string yamlPath)
    {
        var problems = new List<string>();
        string text = File.ReadAllText(yamlPath);

        if (!Regex.IsMatch(text, @"^\s*completionMode:\s*Indexed\s*$", RegexOptions.Multiline))
            problems.Add("the Job is not completionMode: Indexed");
        if (!Regex.IsMatch(text, @"^\s*nvidia\.com/gpu:\s*1\s*$", RegexOptions.Multiline))
            problems.Add("the pod does not ask for one GPU (nvidia.com/gpu: 1)");
        if (!Regex.IsMatch(text, @"^\s*persistentVolumeClaim:\s*$", RegexOptions.Multiline))
            problems.Add("no volume is a persistentVolumeClaim");
        if (!text.Contains($"shard-{IndexPlaceholder}.", StringComparison.Ordinal))
            problems.Add($"the output file is not named by the index (shard-{IndexPlaceholder}.…)");

        int completions;
        try
        {
            completions = Number(yamlPath, "completions");
            int parallelism = Number(yamlPath, "parallelism");
            if (parallelism != completions) problems.Add($"parallelism {parallelism} differs from completions {completions}");
        }
        catch (InvalidDataException e)
        {
            problems.Add(e.Message);
            return problems;
        }

        string[] mounts = MountPath().Matches(text).Select(m => m.Groups[1].Value.TrimEnd('/') + "/").ToArray();
        if (mounts.Length == 0) problems.Add("nothing is mounted (no mountPath)");

        IReadOnlyList<string> arguments;
        try
        {
            arguments = ClassifyArguments(yamlPath);
        }
        catch (InvalidDataException e)
        {
            problems.Add(e.Message);
            return problems;
        }
        problems.AddRange(ArgumentProblems(arguments, completions, mounts));
        return problems;
    }

    private static readonly string[] Options =
        ["--weights", "--device", "--batch", "--top", "--labels", "--resize", "--mean", "--format", "--workers", "--shard"];

    /// <summary>Problems of a classify argument list (<c>classify</c> first) run as index 0..completions-1 of the Job.</summary>
    public static IEnumerable<string> ArgumentProblems(IReadOnlyList<string> arguments, int completions, IReadOnlyList<string> mounts)
    {
        if (arguments.Count == 0 || arguments[0] != "classify")
        {
            yield return $"the command is not `alexnet classify` but `alexnet {string.Join(' ', arguments)}`";
            yield break;
        }

        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        var inputs = new List<string>();
        for (int i = 1; i < arguments.Count; i++)
        {
            string word = arguments[i];
            if (!word.StartsWith('-'))
            {
                inputs.Add(word);
                continue;
            }
            if (!Options.Contains(word))
            {
                yield return $"{word} is not an option of classify";
                continue;
            }
            if (i + 1 >= arguments.Count || arguments[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                yield return $"{word} has no value";
                continue;
            }
            string value = arguments[++i];
            if (!seen.TryAdd(word, value))
            {
                yield return $"{word} is given twice";
                continue;
            }
            if (ValueProblem(word, value, completions, mounts) is string problem) yield return problem;
        }

        if (!seen.ContainsKey("--weights")) yield return "--weights is missing";
        if (!seen.ContainsKey("--shard")) yield return "--shard is missing: every pod would classify every image";
        // The pod has a GPU: auto would fall back to OpenCL, which the image does not have, when the GPU fails.
        if (seen.GetValueOrDefault("--device") != "cuda") yield return "--device is not cuda";
        // The shard files are JSON Lines (shard-K.jsonl).
        if (seen.GetValueOrDefault("--format") != "json") yield return "--format is not json";
        if (inputs.Count == 0) yield return "no IMAGE or DIR is given";
        foreach (string input in inputs)
        {
            if (PathProblem("IMAGE|DIR", input, mounts) is string problem) yield return problem;
        }
    }

    private static string? ValueProblem(string option, string value, int completions, IReadOnlyList<string> mounts) => option switch
    {
        "--weights" or "--labels" => PathProblem(option, value, mounts),
        "--device" => value is "auto" or "cuda" or "opencl" ? null : $"--device {value}: not auto, cuda or opencl",
        "--resize" => value is "stretch" or "crop" ? null : $"--resize {value}: not stretch or crop",
        "--format" => value is "text" or "json" ? null : $"--format {value}: not text or json",
        "--batch" or "--top" or "--workers" =>
            value.All(char.IsAsciiDigit) && int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0
                ? null : $"{option} {value}: not a positive whole number",
        "--mean" => value.Split(',') is { Length: 3 } parts
                    && parts.All(p => double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v))
            ? null : $"--mean {value}: not three numbers B,G,R",
        "--shard" => ShardProblem(value, completions),
        _ => null,
    };

    private static string? ShardProblem(string value, int completions)
    {
        string expected = $"{IndexPlaceholder}/{completions}";
        if (value != expected) return $"--shard {value}: expected {expected} (the pod's index of completions {completions})";
        for (int index = 0; index < completions; index++)
        {
            string substituted = value.Replace(IndexPlaceholder, index.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
            Shard shard;
            try
            {
                shard = Shard.Parse(substituted);
            }
            catch (AlexNetException e)
            {
                return $"pod {index}: {e.Message}";
            }
            if (shard != new Shard(index, completions)) return $"pod {index}: --shard {substituted} reads as {shard}";
        }
        return null;
    }

    private static string? PathProblem(string what, string path, IReadOnlyList<string> mounts) =>
        path.StartsWith('/') && mounts.Any(m => path.StartsWith(m, StringComparison.Ordinal) && path.Length > m.Length)
            ? null
            : $"{what} {path}: not an absolute path under a mounted volume ({string.Join(", ", mounts)})";
}
