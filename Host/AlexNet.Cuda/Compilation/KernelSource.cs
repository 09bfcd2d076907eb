using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;

namespace AlexNet.Cuda.Compilation;

/// <summary>
/// The text of one kernel file, ready for either compiler: quoted includes of the embedded headers
/// (<c>#include "prelude.h"</c>) are expanded in place, with <c>#line</c> directives so both compilers'
/// logs name the original file and line. Expanding here rather than handing the compilers an include
/// path keeps NVRTC and OpenCL on exactly the same text, and makes the text itself the cache key.
/// </summary>
public sealed partial class KernelSource
{
    private const string ResourcePrefix = "Kernels/";

    private KernelSource(string name, string text)
    {
        Name = name;
        Text = text;
        Hash = KernelCache.Hex(Encoding.UTF8.GetBytes(text));
        _signatures = new Lazy<IReadOnlyDictionary<string, KernelSignature>>(() => KernelSignature.Parse(name, text));
    }

    private readonly Lazy<IReadOnlyDictionary<string, KernelSignature>> _signatures;

    /// <summary>The parameter list of every <c>KERNEL</c> in the text, by kernel name.</summary>
    public IReadOnlyDictionary<string, KernelSignature> Signatures => _signatures.Value;

    /// <summary>File name (<c>transpose.cu</c>).</summary>
    public string Name { get; }

    /// <summary>The expanded text handed to the compiler.</summary>
    public string Text { get; }

    /// <summary>XxHash128 of <see cref="Text"/> (UTF-8), 32 hex digits: part of every cache key.</summary>
    public string Hash { get; }

    /// <summary>The kernel files embedded in the engine (<c>*.cu</c>), sorted.</summary>
    public static IReadOnlyList<string> EmbeddedKernelFiles() =>
        typeof(KernelSource).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".cu", StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..])
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>The embedded kernel file <paramref name="name"/>, includes expanded.</summary>
    public static KernelSource FromEmbedded(string name) =>
        new(name, Expand(name, ReadEmbedded(name), depth: 0));

    /// <summary>A kernel text given directly; its quoted includes still resolve to the embedded headers.</summary>
    public static KernelSource FromText(string name, string text) => new(name, Expand(name, text, depth: 0));

    internal static string ReadEmbedded(string name)
    {
        Assembly assembly = typeof(KernelSource).Assembly;
        using Stream? stream = assembly.GetManifestResourceStream(ResourcePrefix + name);
        if (stream is null)
        {
            string known = string.Join(", ", assembly.GetManifestResourceNames()
                .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)).Select(n => n[ResourcePrefix.Length..]));
            throw new AlexNetException($"no kernel file '{name}' is embedded in the engine; embedded: {known}");
        }
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    [GeneratedRegex("""^\s*#\s*include\s+"([^"]+)"\s*$""")]
    private static partial Regex QuotedInclude();

    private static string Expand(string name, string text, int depth)
    {
        if (depth > 8) throw new AlexNetException($"kernel includes nest deeper than 8 levels at '{name}'");
        var output = new StringBuilder(text.Length + 4096);
        output.Append("#line 1 \"").Append(name).Append("\"\n");
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            Match include = QuotedInclude().Match(line);
            if (include.Success)
            {
                string header = include.Groups[1].Value;
                output.Append(Expand(header, ReadEmbedded(header), depth + 1));
                output.Append("#line ").Append(i + 2).Append(" \"").Append(name).Append("\"\n");
                continue;
            }
            output.Append(line).Append('\n');
        }
        return output.ToString();
    }

    /// <summary>The <c>-D</c> defines as compiler options, in a stable order (they are part of the cache key).</summary>
    public static IReadOnlyList<string> DefineOptions(IReadOnlyDictionary<string, string>? defines)
    {
        if (defines is null || defines.Count == 0) return [];
        var options = new List<string>(defines.Count);
        foreach ((string key, string value) in defines.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (!DefineName().IsMatch(key))
                throw new ArgumentException($"'{key}' is not a valid macro name for -D", nameof(defines));
            if (value.AsSpan().ContainsAny('\n', '\r', '"'))
                throw new ArgumentException($"the value of -D{key} must be one line without quotes", nameof(defines));
            options.Add(value.Length == 0 ? $"-D{key}" : $"-D{key}={value}");
        }
        return options;
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex DefineName();
}
