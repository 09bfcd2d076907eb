using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using AlexNet.Cuda;
using AlexNet.Cuda.Devices;

namespace AlexNet.Cli;

/// <summary>
/// Options that several commands share, and typed options whose bad values are one-line parse errors
/// naming the option, what it takes and the value given (the library's own conversion message names a
/// .NET type instead). Custom parsers also keep the CLI free of reflection-based conversion, for NativeAOT.
/// </summary>
internal static class CliOptions
{
    /// <summary>Converts an option's text; false when the text is not a valid value.</summary>
    public delegate bool TryParse<T>(string text, out T value);

    /// <summary><c>--device auto|cuda|opencl</c>, parsed by the engine's own <see cref="DeviceChoiceParser"/>;
    /// null when absent (read it with <see cref="GetDevice"/>), so that help states the default in the
    /// option's own spelling rather than the enum's.</summary>
    public static Option<DeviceChoice?> Device()
    {
        var option = new Option<DeviceChoice?>("--device")
        {
            Description = "Which backend runs: auto (the default) picks CUDA when a CUDA device works, else OpenCL",
            HelpName = "auto|cuda|opencl",
            CustomParser = result =>
            {
                try
                {
                    return DeviceChoiceParser.Parse(LastToken(result));
                }
                catch (AlexNetException e)
                {
                    result.AddError(e.Message);
                    return null;
                }
            },
        };
        option.CompletionSources.Add("auto", "cuda", "opencl");
        return option;
    }

    /// <summary>The device chosen with <see cref="Device"/>: auto when the option was not given.</summary>
    public static DeviceChoice GetDevice(this ParseResult result, Option<DeviceChoice?> device) =>
        result.GetValue(device) ?? DeviceChoice.Auto;

    /// <summary>A whole number above zero; <paramref name="fallback"/> when the option is absent.</summary>
    public static Option<int> PositiveInt(string name, string description, int fallback) =>
        Typed<int>(name, "N", description, TryPositiveInt, "a positive whole number", fallback);

    /// <summary>A whole number above zero; null when the option is absent.</summary>
    public static Option<int?> OptionalPositiveInt(string name, string description) =>
        Typed<int?>(name, "N", description, (string text, out int? value) =>
        {
            bool ok = TryPositiveInt(text, out int n);
            value = ok ? n : null;
            return ok;
        }, "a positive whole number", null);

    /// <summary>A non-negative whole number up to 2⁶⁴ − 1; <paramref name="fallback"/> when absent.</summary>
    public static Option<ulong> UnsignedLong(string name, string description, ulong fallback) =>
        Typed<ulong>(name, "N", description, (string text, out ulong value) =>
            ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value), "a non-negative whole number", fallback);

    /// <summary>One of <paramref name="values"/>; null when the option is absent, so a command can pick a
    /// default that depends on other choices.</summary>
    public static Option<string?> Choice(string name, string description, params string[] values)
    {
        var option = Typed<string?>(name, string.Join('|', values), description, (string text, out string? value) =>
        {
            value = values.Contains(text, StringComparer.Ordinal) ? text : null;
            return value is not null;
        }, values.Length == 2 ? $"{values[0]} or {values[1]}" : $"one of {string.Join(", ", values)}", null);
        option.CompletionSources.Add(values);
        return option;
    }

    // The default is shown by help as "[default: …]" when it is a value; null (absent) shows nothing.
    private static Option<T> Typed<T>(string name, string helpName, string description, TryParse<T> parse, string expected, T fallback) =>
        new(name)
        {
            Description = description,
            HelpName = helpName,
            DefaultValueFactory = _ => fallback,
            CustomParser = result =>
            {
                string text = LastToken(result);
                if (parse(text, out T value)) return value;
                result.AddError($"{name} takes {expected}, not '{text}'");
                return fallback;
            },
        };

    private static bool TryPositiveInt(string text, out int value) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value > 0;

    // The parser calls a custom parser only when the option was given a value; a repeated option keeps the last.
    private static string LastToken(ArgumentResult result) => result.Tokens[^1].Value;
}
