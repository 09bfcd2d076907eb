using System.CommandLine;
using System.CommandLine.Parsing;

namespace AlexNet.Cli;

/// <summary>
/// Reports a command line the parser refused: one line naming the first problem (with the nearest known
/// command or option when a word was not recognised), then where to find the usage. The full help text
/// is left to <c>--help</c>, so the error stays readable.
/// </summary>
internal static class UsageErrors
{
    /// <summary>The exit status of a refused command line, as for other usage errors on Unix.</summary>
    public const int ExitCode = 2;

    public static int Write(ParseResult result, TextWriter stderr)
    {
        stderr.WriteLine($"{Program.Name}: error: {Describe(result)}");
        stderr.WriteLine($"Run '{CommandPath(result.CommandResult)} --help' for usage.");
        return ExitCode;
    }

    internal static string Describe(ParseResult result)
    {
        // An unrecognised word is usually the cause of the other errors (a missing command, say): name it first.
        string? word = result.UnmatchedTokens.FirstOrDefault();
        ParseError? error = word is null
            ? null
            : result.Errors.FirstOrDefault(e => e.Message.Contains($"'{word}'", StringComparison.Ordinal));
        string message = OneLine((error ?? result.Errors[0]).Message);
        if (error is not null && Nearest(result.CommandResult, word!) is string suggestion)
            message += $" Did you mean '{suggestion}'?";
        return message;
    }

    /// <summary>The known name closest to <paramref name="word"/> by edit distance: options for a word that
    /// starts with '-', subcommands otherwise; null when nothing is close enough to be a plausible typo.</summary>
    internal static string? Nearest(CommandResult where, string word)
    {
        IEnumerable<string> names = word.StartsWith('-') ? OptionNames(where) : CommandNames(where.Command);
        int limit = Math.Clamp(word.TrimStart('-').Length / 2, 1, 3);
        return names
            .Select(name => (Name: name, Distance: EditDistance(word, name)))
            .Where(c => c.Distance <= limit)
            .OrderBy(c => c.Distance)
            .Select(c => c.Name)
            .FirstOrDefault();
    }

    private static IEnumerable<string> CommandNames(Command command) =>
        command.Subcommands.Where(c => !c.Hidden).SelectMany(c => c.Aliases.Prepend(c.Name));

    private static IEnumerable<string> OptionNames(CommandResult where)
    {
        // The command's own options, then those its ancestors pass down (--verbose).
        for (SymbolResult? r = where; r is not null; r = r.Parent)
        {
            if (r is not CommandResult c) continue;
            foreach (Option o in c.Command.Options)
            {
                if (o.Hidden || (c != where && !o.Recursive)) continue;
                yield return o.Name;
                foreach (string alias in o.Aliases) yield return alias;
            }
        }
    }

    /// <summary>Levenshtein distance: the fewest single-character insertions, deletions and substitutions.</summary>
    internal static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitute = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitute, Math.Min(previous[j], current[j - 1]) + 1);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    /// <summary>"alexnet bench kernels": the root's name is fixed, since the test host or a renamed binary
    /// would otherwise show its own.</summary>
    internal static string CommandPath(CommandResult command)
    {
        var names = new List<string>();
        for (CommandResult? c = command; c is not null; c = c.Parent as CommandResult)
            names.Add(c.Parent is null ? Program.Name : c.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }

    // Some library messages list allowed values on lines of their own; an error here is one line.
    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
