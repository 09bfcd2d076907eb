using AlexNet.Cuda;
using AlexNet.Cuda.Network;

namespace AlexNet.Imaging;

/// <summary>
/// Image files to the network's input, many at once: each file decoded and preprocessed on one of
/// <see cref="Workers"/> threads straight into its place in a batch. A file that cannot be used costs only
/// itself: its place is zeroed and its error is a one-line sentence naming the file, whatever the decoder
/// raised. What <c>classify</c> and <c>features</c> both read images with.
/// </summary>
public sealed class ImageLoader
{
    private readonly float[] _mean;
    private readonly ParallelOptions _parallel;

    /// <summary>Where image <c>index</c> of a <see cref="Load"/> call goes: 227×227×3 floats.</summary>
    public delegate Span<float> Destination(int index);

    public ImageLoader(IImageDecoder decoder, ImageDecodeOptions options, ResizeMode resize, ReadOnlySpan<float> meanBgr, int workers)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        if (meanBgr.Length != 3) throw new ArgumentException($"the mean has 3 values (B, G, R), not {meanBgr.Length}", nameof(meanBgr));
        Decoder = decoder;
        Options = options;
        Resize = resize;
        _mean = meanBgr.ToArray();
        Workers = workers;
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = workers };
    }

    public IImageDecoder Decoder { get; }

    public ImageDecodeOptions Options { get; }

    public ResizeMode Resize { get; }

    public ReadOnlySpan<float> MeanBgr => _mean;

    public int Workers { get; }

    /// <summary>Told of an exception no decoder should raise (a bug, not a bad file), with the file, so that
    /// a caller asked for details can print its stack; the file gets an error record either way.</summary>
    public Action<string, Exception>? UnexpectedError { get; init; }

    /// <summary>
    /// Decodes <paramref name="paths"/>[<paramref name="first"/> … <paramref name="first"/> + <paramref name="count"/>)
    /// into <paramref name="destination"/>(0 … count − 1); <paramref name="errors"/>[i] is null for an image
    /// that was written and the reason for one that was not (its destination then holds zeros).
    /// </summary>
    public void Load(IReadOnlyList<string> paths, int first, int count, Destination destination, string?[] errors)
    {
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(errors);
        if (first < 0 || count < 0 || first + count > paths.Count) throw new ArgumentOutOfRangeException(nameof(count), $"images {first}…{first + count} of {paths.Count}");
        if (errors.Length < count) throw new ArgumentException($"room for {errors.Length} errors, not {count}", nameof(errors));
        Parallel.For(0, count, _parallel, i => errors[i] = LoadOne(paths[first + i], destination(i)));
    }

    /// <summary>One file into <paramref name="target"/>; null, or why it could not be used.</summary>
    private string? LoadOne(string path, Span<float> target)
    {
        if (target.Length != AlexNetModel.InputFloatsPerImage)
            throw new ArgumentException($"one image is {AlexNetModel.InputFloatsPerImage} floats, the destination holds {target.Length}");
        try
        {
            using DecodedImage image = Decoder.Decode(path, Options);
            Preprocessor.Write(image, Resize, _mean, target);
            return null;
        }
        catch (Exception e)
        {
            target.Clear();
            return Describe(path, e);
        }
    }

    private string Describe(string path, Exception e)
    {
        switch (e)
        {
            case AlexNetException:
                return e.Message;
            case IOException or UnauthorizedAccessException:
                return $"{path}: cannot be read ({e.Message.ReplaceLineEndings(" ").TrimEnd('.')})";
            case OutOfMemoryException:
                return $"{path}: there was not enough memory to decode it";
            default:
                UnexpectedError?.Invoke(path, e);
                return $"{path}: could not be decoded (the {Decoder.Name} decoder failed unexpectedly: {e.GetType().Name})";
        }
    }
}
