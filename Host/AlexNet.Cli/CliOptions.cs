using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using AlexNet.Cuda;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Network;

namespace AlexNet.Cli;

/// <summary>
/// Options that several commands share, and typed options whose bad values are one-line parse errors
/// naming the option, what it takes and the value given (the library's own conversion message names a
/// .NET type instead). A parse error is exit status 2 with the usage hint, so every value that can be judged
/// without doing the work is judged here. Custom parsers also keep the CLI free of reflection-based
/// conversion, for NativeAOT.
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

    /// <summary>A whole number of 0 or more; <paramref name="fallback"/> when the option is absent.</summary>
    public static Option<int> NonNegativeInt(string name, string description, int fallback) =>
        Typed<int>(name, "N", description, (string text, out int value) =>
            int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value), "a whole number of 0 or more", fallback);

    /// <summary>A whole number above zero; null when the option is absent.</summary>
    public static Option<int?> OptionalPositiveInt(string name, string description) =>
        Typed<int?>(name, "N", description, (string text, out int? value) =>
        {
            bool ok = TryPositiveInt(text, out int n);
            value = ok ? n : null;
            return ok;
        }, "a positive whole number", null);

    /// <summary>A 64-bit whole number above zero (<c>--max-pixels 100000000</c>); <paramref name="fallback"/>
    /// when the option is absent.</summary>
    public static Option<long> PositiveLong(string name, string description, long fallback) =>
        Typed<long>(name, "N", description, (string text, out long value) =>
            long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value > 0,
            "a positive whole number", fallback);

    /// <summary>A non-negative whole number up to 2⁶⁴ − 1; <paramref name="fallback"/> when absent.</summary>
    public static Option<ulong> UnsignedLong(string name, string description, ulong fallback) =>
        Typed<ulong>(name, "N", description, (string text, out ulong value) =>
            ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value), "a non-negative whole number", fallback);

    /// <summary>
    /// A finite number in the invariant culture (<c>2e-05</c>, <c>0.75</c>; never NaN or infinite), which
    /// <paramref name="accept"/> may narrow: then <paramref name="expected"/> says what is accepted, as
    /// "a number above 0", for the message <c>--lrn-bias takes a number above 0, not '0'</c>.
    /// <paramref name="fallback"/> when the option is absent.
    /// </summary>
    public static Option<float> FiniteFloat(string name, string description, float fallback,
        Func<float, bool>? accept = null, string expected = "a number") =>
        Typed<float>(name, "X", description, (string text, out float value) =>
            float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && float.IsFinite(value)
            && (accept is null || accept(value)), expected, fallback);

    /// <summary>A number of bytes written as <see cref="ByteSize"/> takes it (<c>512M</c>, <c>4G</c>, <c>65536</c>);
    /// <paramref name="fallback"/> when absent, which help shows in the same form.</summary>
    public static Option<ByteSize> ByteSizeOption(string name, string description, ByteSize fallback) =>
        Typed<ByteSize>(name, "SIZE", description, ByteSize.TryParse,
            "a size in bytes, as 65536, or with K, M, G or T for KiB, MiB, GiB or TiB (as 512M)", fallback);

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

    /// <summary>
    /// A comma-separated list (<c>--batch 1,8,64</c>), each item parsed by <paramref name="parseItem"/>; null
    /// when the option is absent. Refused, each with a message naming the option: an empty list or an empty
    /// item (<c>''</c>, <c>1,,2</c>, <c>8,</c>), an item that does not parse, and an item given twice.
    /// <paramref name="expected"/> describes the whole list, as "positive whole numbers separated by commas
    /// (as 1,8,64)".
    /// </summary>
    public static Option<IReadOnlyList<T>?> CommaList<T>(string name, string helpName, string description, TryParse<T> parseItem,
        string expected, IEqualityComparer<T>? comparer = null) where T : notnull =>
        new(name)
        {
            Description = description,
            HelpName = helpName,
            DefaultValueFactory = _ => null,
            CustomParser = result =>
            {
                string text = LastToken(result);
                if (ParseList(name, expected, text, parseItem, comparer, out IReadOnlyList<T> items) is string error)
                {
                    result.AddError(error);
                    return null;
                }
                return items;
            },
        };

    /// <summary>Positive whole numbers separated by commas, each at most once (<c>--batch 1,8,64</c>).</summary>
    public static Option<IReadOnlyList<int>?> PositiveIntList(string name, string description) =>
        CommaList<int>(name, "N[,N]", description, TryPositiveInt, "positive whole numbers separated by commas (as 1,8,64)");

    /// <summary>Names from <paramref name="names"/> separated by commas, each at most once (<c>--layer conv5,fc7</c>,
    /// <c>--skip-layer fc8</c>); <paramref name="what"/> says what they are ("layer names") in the message for a
    /// name not among them, which lists them.</summary>
    public static Option<IReadOnlyList<string>?> NameList(string name, string helpName, string description, string what,
        IReadOnlyList<string> names)
    {
        var option = CommaList<string>(name, helpName, description, (string text, out string value) =>
        {
            value = text;
            return names.Contains(text, StringComparer.Ordinal);
        }, $"{what} separated by commas, from {string.Join(", ", names)}", StringComparer.Ordinal);
        option.CompletionSources.Add([.. names]);
        return option;
    }

    /// <summary>Splits and parses a comma-separated list; the error message when it is refused, else null.</summary>
    private static string? ParseList<T>(string name, string expected, string text, TryParse<T> parseItem,
        IEqualityComparer<T>? comparer, out IReadOnlyList<T> items) where T : notnull
    {
        var list = new List<T>();
        items = list;
        string[] parts = text.Split(',', StringSplitOptions.TrimEntries);
        if (parts.All(p => p.Length == 0)) return $"{name} takes {expected}, not '{text}'";
        var seen = new HashSet<T>(comparer ?? EqualityComparer<T>.Default);
        foreach (string part in parts)
        {
            if (part.Length == 0) return $"{name} takes {expected}; '{text}' has an empty item";
            if (!parseItem(part, out T value))
                return parts.Length == 1
                    ? $"{name} takes {expected}, not '{text}'"
                    : $"{name} takes {expected}; '{part}' in '{text}' is not one";
            if (!seen.Add(value)) return $"{name} names {part} twice";
            list.Add(value);
        }
        return null;
    }

    /// <summary>
    /// Refuses a token of a positional argument (image paths, a weight file) that looks like an option, with
    /// "features has no option --bogus" and the nearest option's name when one is close: the parser hands an
    /// unknown option to such an argument, where it would otherwise fail later as a missing file. A path
    /// that starts with '-' is written <c>./-name</c>.
    /// </summary>
    public static TArgument RefuseOptions<TArgument>(this TArgument argument) where TArgument : Argument
    {
        argument.Validators.Add(result =>
        {
            Token? token = result.Tokens.FirstOrDefault(t => LooksLikeOption(t.Value));
            if (token is not null && result.Parent is CommandResult command)
                result.AddError(UsageErrors.NoSuchOption(command, token.Value));
        });
        return argument;
    }

    /// <summary>'-x', '--x': what a user means as an option; '-' alone is a name.</summary>
    internal static bool LooksLikeOption(string token) => token.Length > 1 && token[0] == '-';

    /// <summary>--workspace: MiB of device memory for the convolutions' lowered input, or l2 for the size of
    /// the device's last-level cache; 256 MiB when absent.</summary>
    public static Option<WorkspaceSize> Workspace() =>
        Typed<WorkspaceSize>("--workspace", "MiB|l2",
            "MiB of device memory for the convolutions' lowered input (larger batches run in chunks that fit), or l2: the size of the device's last-level cache",
            (string text, out WorkspaceSize value) =>
            {
                if (text.Equals("l2", StringComparison.OrdinalIgnoreCase))
                {
                    value = WorkspaceSize.CacheSized;
                    return true;
                }
                bool ok = TryPositiveInt(text, out int mib);
                value = new WorkspaceSize((long)mib << 20);
                return ok;
            }, "a positive whole number of MiB or l2", new WorkspaceSize(AlexNetOptions.DefaultWorkspaceBytes));

    /// <summary>--precision: the number formats of the pass (<see cref="AlexNet.Cuda.Network.Precision"/>); fp32 when absent.</summary>
    public static Option<PrecisionChoice> Precision() =>
        Typed<PrecisionChoice>("--precision", PrecisionNames,
            "Number formats of the pass: fp32; tf32 (FP32 storage, the GEMMs' inputs rounded to TF32 on tensor cores); fp16 or bf16 " +
            "(weights and activations stored in 16 bits, FP32 accumulation, FP32 probabilities). `alexnet info` lists each device's",
            (string text, out PrecisionChoice value) =>
            {
                bool ok = TryParsePrecision(text, out PrecisionChoice? parsed);
                value = parsed ?? new PrecisionChoice(AlexNet.Cuda.Network.Precision.Fp32);
                return ok;
            }, PrecisionExpected, new PrecisionChoice(AlexNet.Cuda.Network.Precision.Fp32));

    /// <summary>--precision with no default (null when absent), for a command that does every precision unless told one.</summary>
    public static Option<PrecisionChoice?> OptionalPrecision(string description) =>
        Typed<PrecisionChoice?>("--precision", PrecisionNames, description, TryParsePrecision, PrecisionExpected, null);

    private const string PrecisionNames = "fp32|tf32|fp16|bf16";
    private const string PrecisionExpected = "fp32, tf32, fp16 or bf16";

    private static bool TryParsePrecision(string text, out PrecisionChoice? value)
    {
        value = Precisions.Parse(text) is Precision p ? new PrecisionChoice(p) : null;
        return value is not null;
    }

    // The default is shown by help as "[default: …]" when it is a value; null (absent) shows nothing.
    public static Option<T> Typed<T>(string name, string helpName, string description, TryParse<T> parse, string expected, T fallback) =>
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

/// <summary>
/// A number of bytes as a command line gives it: plain bytes (<c>65536</c>) or a whole number with K, M, G or T,
/// optionally followed by iB, for powers of 1024 (<c>512M</c> = <c>512MiB</c> = 536,870,912 bytes). "MB" is
/// refused rather than guessed at (10⁶ or 2²⁰). Shown in the largest unit that divides it exactly.
/// </summary>
internal readonly record struct ByteSize(long Bytes)
{
    private const string Units = "KMGT";

    public static bool TryParse(string text, out ByteSize size)
    {
        size = default;
        string digits = text;
        int shift = 0;
        if (digits.EndsWith("iB", StringComparison.Ordinal)) digits = digits[..^2];
        if (digits.Length > 0 && Units.IndexOf(char.ToUpperInvariant(digits[^1])) is int unit and >= 0)
        {
            shift = 10 * (unit + 1);
            digits = digits[..^1];
        }
        else if (digits.Length != text.Length)
        {
            return false; // "iB" without a unit
        }
        if (!long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out long count) || count < 1) return false;
        if (count > long.MaxValue >> shift) return false;
        size = new ByteSize(count << shift);
        return true;
    }

    public override string ToString()
    {
        for (int unit = Units.Length; unit > 0; unit--)
        {
            long scale = 1L << (10 * unit);
            if (Bytes >= scale && Bytes % scale == 0)
                return string.Create(CultureInfo.InvariantCulture, $"{Bytes / scale}{Units[unit - 1]}");
        }
        return Bytes.ToString(CultureInfo.InvariantCulture);
    }
}

/// <summary>The precision <c>--precision</c> asked for, written as the command line writes it (the help's default).</summary>
internal readonly record struct PrecisionChoice(Precision Value)
{
    public override string ToString() => Precisions.Name(Value);

    /// <summary>Throws the one-line error of a device that lacks this precision (before any other work).</summary>
    public void RequireOn(ComputeDevice device)
    {
        if (!Precisions.IsSupported(device, Value, out string? reason))
            throw new AlexNetException($"--precision {this} is not available on {device.Name}: {reason}; `alexnet info` lists each device's precisions");
    }

    /// <summary>For a header line: what the precision stores and how its GEMMs multiply.</summary>
    public string Describe() => Value switch
    {
        Precision.Tf32 => "tf32 (FP32 storage; GEMM inputs rounded to TF32, FP32 accumulation)",
        Precision.Fp16 => "fp16 (weights and activations in fp16; GEMMs with FP32 accumulation; FP32 probabilities)",
        Precision.Bf16 => "bf16 (weights and activations in bf16; GEMMs with FP32 accumulation; FP32 probabilities)",
        _ => "fp32",
    };
}

/// <summary>The size <c>--workspace</c> asked for: bytes, or (null) the device's last-level cache.</summary>
internal readonly record struct WorkspaceSize(long? Bytes)
{
    public static WorkspaceSize CacheSized => new(null);

    /// <summary>The workspace in bytes on <paramref name="device"/>.</summary>
    public long For(ComputeDevice device) => Bytes ?? AlexNetOptions.CacheSizedWorkspaceBytes(device);

    /// <summary>As the command line writes it (the help's default): MiB, or l2.</summary>
    public override string ToString() => Bytes is long b ? (b >> 20).ToString(CultureInfo.InvariantCulture) : "l2";

    /// <summary>What the run used (<paramref name="bytes"/>, as <see cref="For"/> gave it), for a header line.</summary>
    public string Describe(long bytes, ComputeDevice device)
    {
        string size = string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:0.#} MiB");
        return Bytes is not null ? size
            : device.CacheBytes > 0 ? $"{size} (--workspace l2: the device's last-level cache is {device.CacheBytes / 1048576.0:0.#} MiB)"
            : $"{size} (--workspace l2: the device does not say its cache size)";
    }
}
