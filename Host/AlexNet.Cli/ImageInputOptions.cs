using System.CommandLine;
using System.Globalization;
using AlexNet.Cli.Classify;
using AlexNet.Imaging;
using AlexNet.Imaging.Isolation;

namespace AlexNet.Cli;

/// <summary>
/// How the commands that read images (<c>classify</c>, <c>features</c>) read them: the same inputs (files and
/// folders), decoders, preprocessing and limits, declared once so that both parse and default alike.
/// </summary>
internal sealed class ImageInputOptions
{
    /// <summary>The default of <c>--decode-timeout</c>: far above any real image (a 100-megapixel PNG takes a few
    /// seconds), far below the minute a crafted JPEG can cost.</summary>
    public const int DefaultDecodeTimeoutSeconds = 30;

    public Option<string?> Decoder { get; } = CliOptions.Choice("--decoder",
        $"Image decoder: skiasharp (the default) in this process; imagesharp (reads TIFF too) in worker processes, each file under a time and memory limit",
        [.. ImageDecoders.Names]);

    public Option<string?> Resize { get; } = CliOptions.Choice("--resize",
        "stretch: resize to 227×227 as the reference does (the default); crop: shorter side to 256, centre 227×227", "stretch", "crop");

    public Option<float[]?> Mean { get; } = new("--mean")
    {
        Description = "Mean subtracted per channel, B,G,R (the default is 104,117,124)",
        HelpName = "B,G,R",
        CustomParser = result =>
        {
            string text = result.Tokens[^1].Value;
            if (TryParseMean(text, out float[] mean)) return mean;
            result.AddError($"--mean takes three numbers B,G,R (as 104,117,124), not '{text}'");
            return null;
        },
    };

    public Option<long> MaxPixels { get; } = CliOptions.PositiveLong("--max-pixels",
        "Refuse images with more pixels than this, from their header", new ImageDecodeOptions().MaxPixels);

    public Option<bool> FastDecode { get; } = new("--fast-decode")
    {
        Description = "Decode large JPEGs at a reduced scale (at least twice the target): faster, not exactly the reference",
    };

    public Option<int> Workers { get; } = CliOptions.PositiveInt("--workers", "Threads that read, decode and resize images", Environment.ProcessorCount);

    public Option<ByteSize> DecodeMemory { get; } = CliOptions.ByteSizeOption("--decode-memory",
        "Memory for the images being decoded, all workers together (a quarter of this machine's); an image that needs more on its own is refused",
        new ByteSize(DecodeMemoryBudget.DefaultBytes()));

    public Option<int> DecodeTimeout { get; } = CliOptions.PositiveInt("--decode-timeout",
        "Seconds one file may take in the imagesharp decoder's worker process before it is stopped and the file refused", DefaultDecodeTimeoutSeconds);

    public Argument<string[]> Inputs { get; } = new Argument<string[]>("IMAGE|DIR")
    {
        Description = "Image files, or folders searched recursively for images (write a path that starts with - as ./-name)",
        Arity = ArgumentArity.OneOrMore,
    }.RefuseOptions();

    /// <summary>Every option, then the inputs, in the order help lists them.</summary>
    public IEnumerable<Symbol> Symbols => [Decoder, Resize, Mean, MaxPixels, FastDecode, Workers, DecodeMemory, DecodeTimeout, Inputs];

    public void AddTo(Command command)
    {
        foreach (Symbol symbol in Symbols)
        {
            if (symbol is Option option) command.Options.Add(option);
            else command.Arguments.Add((Argument)symbol);
        }
    }

    /// <summary>The options without the inputs, for a command that names its images another way (<c>finetune</c>).</summary>
    public void AddOptionsTo(Command command)
    {
        foreach (Symbol symbol in Symbols)
            if (symbol is Option option) command.Options.Add(option);
    }

    /// <summary>The settings of a command that added only the options (<see cref="AddOptionsTo"/>): no inputs.</summary>
    public ImageInputSettings ReadOptions(ParseResult result) => Read(result, []);

    public ImageInputSettings Read(ParseResult result) => Read(result, result.GetRequiredValue(Inputs));

    private ImageInputSettings Read(ParseResult result, string[] inputs) => new(
        result.GetValue(Decoder) ?? ImageDecoders.DefaultName,
        result.GetValue(Resize) == "crop" ? ResizeMode.Crop : ResizeMode.Stretch,
        result.GetValue(Mean) is { Length: 3 } mean ? mean : [104f, 117f, 124f],
        result.GetValue(MaxPixels),
        result.GetValue(FastDecode),
        result.GetValue(Workers),
        result.GetValue(DecodeMemory).Bytes,
        TimeSpan.FromSeconds(result.GetValue(DecodeTimeout)),
        inputs);

    /// <summary>B,G,R as three finite numbers.</summary>
    internal static bool TryParseMean(string text, out float[] mean)
    {
        string[] parts = text.Split(',');
        mean = new float[3];
        if (parts.Length != 3) return false;
        for (int i = 0; i < 3; i++)
            if (!float.TryParse(parts[i].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out mean[i]) || !float.IsFinite(mean[i])) return false;
        return true;
    }
}

/// <summary>What <see cref="ImageInputOptions"/> read from a command line.</summary>
internal sealed record ImageInputSettings(
    string Decoder, ResizeMode Resize, float[] MeanBgr, long MaxPixels, bool FastDecode, int Workers,
    long DecodeMemoryBytes, TimeSpan DecodeTimeout, string[] Inputs)
{
    /// <summary>The files the inputs name, in order; a path that does not exist is kept, to get its error record.</summary>
    public IReadOnlyList<string> Files() => InputFiles.Enumerate(Inputs);

    /// <summary>
    /// The loader for these settings: the decoder (imagesharp in worker processes of this program, started
    /// now, so a worker that cannot start is one error before any work), the decode memory budget and the
    /// preprocessing. Dispose it to stop the workers.
    /// </summary>
    public ImageInput Open(Action<string, Exception>? unexpected)
    {
        IImageDecoder decoder = Decoder == "imagesharp"
            ? new IsolatedImageDecoder(Decoder, WorkerCommand.ForThisProgram(Decoder), DecodeTimeout)
            : ImageDecoders.Create(Decoder);
        var budget = new DecodeMemoryBudget(DecodeMemoryBytes);
        var options = new ImageDecodeOptions { MaxPixels = MaxPixels, FastDecode = FastDecode, Memory = budget };
        return new ImageInput(new ImageLoader(decoder, options, Resize, MeanBgr, Workers) { UnexpectedError = unexpected }, budget);
    }
}

/// <summary>An <see cref="ImageLoader"/> and what it owns: worker processes, the budget.</summary>
internal sealed class ImageInput(ImageLoader loader, DecodeMemoryBudget budget) : IDisposable
{
    public ImageLoader Loader { get; } = loader;

    public DecodeMemoryBudget Budget { get; } = budget;

    public void Dispose() => (Loader.Decoder as IDisposable)?.Dispose();
}
