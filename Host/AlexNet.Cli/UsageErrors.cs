using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;

namespace AlexNet.Cli;

/// <summary>
/// Reports a command line the parser refused: one line naming the first problem (with the nearest known
/// command or option when a word was not recognised), then where to find the usage. The full help text
/// is left to <c>--help</c>, so the error stays readable.
/// </summary>
internal static partial class UsageErrors
{
    /// <summary>The exit status of a refused command line, as for other usage errors on Unix.</summary>
    public const int ExitCode = 2;

    public static int Write(ParseResult result, TextWriter stderr)
    {
        stderr.WriteLine($"{Program.Name}: error: {Describe(result)}");
        stderr.WriteLine($"Run '{CommandPath(result.CommandResult)} --help' for usage.");
        return ExitCode;
    }

    /// <summary>A command line that parsed but asks for what the device, once open, cannot do: the same two lines
    /// and exit status as a refused one. <paramref name="command"/> is the command's path after the program's
    /// name ("bench").</summary>
    public static int Write(string command, string message, TextWriter stderr)
    {
        stderr.WriteLine($"{Program.Name}: error: {OneLine(message)}");
        stderr.WriteLine($"Run '{Program.Name} {command} --help' for usage.");
        return ExitCode;
    }

    internal static string Describe(ParseResult result)
    {
        // An unknown option is usually the cause of the other errors (a stray value after it, a missing
        // command): name it first, whether the parser left it unmatched or handed it to a positional argument
        // that refused it (CliOptions.RefuseOptions); then an unrecognised word.
        string? word = result.UnmatchedTokens.FirstOrDefault();
        if (word is not null && CliOptions.LooksLikeOption(word)) return NoSuchOption(result.CommandResult, word);
        if (result.Errors.FirstOrDefault(e => e.Message.Contains(NoOption, StringComparison.Ordinal)) is ParseError refused)
            return OneLine(refused.Message);
        ParseError? error = word is null
            ? null
            : result.Errors.FirstOrDefault(e => e.Message.Contains($"'{word}'", StringComparison.Ordinal));
        if (error is not null)
        {
            string message = OneLine(error.Message);
            return Nearest(result.CommandResult, word!) is string suggestion ? $"{message} Did you mean '{suggestion}'?" : message;
        }
        return OneLine(WithoutTypeNames(result.Errors[0].Message));
    }

    private const string NoOption = " has no option ";

    /// <summary>"bench kernels has no option --bogus", with the nearest option when one is close enough to be a
    /// typo: the one message for an unknown option, whichever symbol the parser handed it to.</summary>
    internal static string NoSuchOption(CommandResult command, string word)
    {
        string message = $"{CommandName(command)}{NoOption}{word}";
        return Nearest(command, word) is string suggestion ? $"{message}. Did you mean '{suggestion}'?" : message;
    }

    /// <summary>
    /// The library's message for a value its own converter refused names a .NET type ("as expected type
    /// 'System.Nullable`1[System.Int64]'"); the CLI's own options have custom parsers that say what they take,
    /// so this is only a net under an option declared without one: it says what the type takes instead.
    /// </summary>
    internal static string WithoutTypeNames(string message)
    {
        Match m = LibraryConversionMessage().Match(message);
        if (!m.Success) return message;
        string type = m.Groups["type"].Value;
        string takes = type.Contains("Int", StringComparison.Ordinal) ? "a whole number"
            : type.Contains("Single", StringComparison.Ordinal) || type.Contains("Double", StringComparison.Ordinal) ? "a number"
            : type.Contains("Boolean", StringComparison.Ordinal) ? "true or false"
            : "another value";
        return $"{m.Groups["option"].Value} takes {takes}, not '{m.Groups["value"].Value}'";
    }

    /// <summary>The known name closest to <paramref name="word"/> by edit distance: options for a word that
    /// starts with '-', subcommands otherwise; null when nothing is close enough to be a plausible typo.</summary>
    internal static string? Nearest(CommandResult where, string word)
    {
        // A single letter carries no sign of the name it was meant to be.
        if (word.TrimStart('-').Length < 2) return null;
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

    /// <summary>"bench kernels" for a command, "alexnet" for the root: how a message names where an option is missing.</summary>
    internal static string CommandName(CommandResult command)
    {
        string path = CommandPath(command);
        return command.Parent is null ? path : path[(Program.Name.Length + 1)..];
    }

    [GeneratedRegex(@"^Cannot parse argument '(?<value>.*)' for option '(?<option>[^']+)' as expected type '(?<type>[^']+)'")]
    private static partial Regex LibraryConversionMessage();

    // Some library messages list allowed values on lines of their own; an error here is one line.
    private static string OneLine(string message) =>
        string.Join(' ', message.Split(['\r', '\n', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
