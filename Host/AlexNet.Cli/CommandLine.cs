using AlexNet.Cuda;

namespace AlexNet.Cli;

/// <summary>Small helpers for the commands' own option parsing: every option is <c>--name value</c>.</summary>
internal static class CommandLine
{
    /// <summary>Splits <paramref name="args"/> into positional arguments and <c>--name value</c> options,
    /// refusing options the command does not know.</summary>
    public static (List<string> Positional, Dictionary<string, string> Options) Parse(
        string[] args, string command, params string[] knownOptions)
    {
        var positional = new List<string>();
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a == "--")
            {
                positional.Add(a);
                continue;
            }
            string name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            if (!knownOptions.Contains(name))
                throw new AlexNetException($"'{command}' has no option --{name}; known: {string.Join(", ", knownOptions.Select(o => "--" + o))}");
            if (value is null)
            {
                if (i + 1 >= args.Length) throw new AlexNetException($"option --{name} of '{command}' needs a value");
                value = args[++i];
            }
            options[name] = value;
        }
        return (positional, options);
    }
}
