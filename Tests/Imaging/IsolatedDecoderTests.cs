using System.Diagnostics;
using AlexNet.Cli;
using AlexNet.Imaging;
using AlexNet.Imaging.Isolation;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace AlexNet.Cuda.Tests.Imaging;

/// <summary>
/// The parent side of <see cref="IsolatedImageDecoder"/>: a worker that crashes, never answers or grows past
/// its memory costs one file (an error record that says which), and the next file gets a fresh worker;
/// the real worker decodes what the in-process decoder decodes, pixel for pixel, and asks the caller's
/// budget for its memory. The failing workers are small shell scripts that speak the protocol's greeting.
/// </summary>
public sealed class IsolatedDecoderTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    /// <summary>A worker that greets like the real one and then, on the first request, runs <paramref name="behaviour"/>.</summary>
    private static DecodeWorkerCommand FakeWorker(string behaviour) => new("/bin/bash", ["-c",
        // The greeting: frame type 1 (hello), an 8-byte little-endian length 10, "imagesharp".
        "printf '\\001\\012\\000\\000\\000\\000\\000\\000\\000imagesharp'; head -c 9 >/dev/null; " + behaviour]);

    private string Png(string name, int width, int height)
    {
        using Image<Rgb24> image = TestImages.Synthetic(width, height, seed: width);
        string path = _folder.File(name);
        image.SaveAsPng(path);
        return path;
    }

    [Fact]
    public void AWorkerThatCrashesCostsOneFileAndTheNextGetsANewWorker()
    {
        using var decoder = new IsolatedImageDecoder("imagesharp", FakeWorker("kill -SEGV $$"), TimeSpan.FromSeconds(30));
        string path = Png("a.png", 5, 4);
        var e = Assert.Throws<ImageDecodeException>(() => decoder.Decode(path, new ImageDecodeOptions()));
        Assert.Equal(path, e.Path);
        Assert.Contains("the imagesharp decoder crashed on this file (its worker process ended with exit code 139", e.Message);
        Assert.EndsWith("the file was skipped", e.Message);
        Assert.Throws<ImageDecodeException>(() => decoder.Decode(path, new ImageDecodeOptions()));
        Assert.Equal(2, decoder.WorkersStarted); // the first, and a new one for the file after its death
    }

    [Fact]
    public void AWorkerThatNeverAnswersIsStoppedAtTheTimeout()
    {
        using var decoder = new IsolatedImageDecoder("imagesharp", FakeWorker("sleep 600"), TimeSpan.FromSeconds(1));
        string path = Png("a.png", 5, 4);
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<ImageDecodeException>(() => decoder.Decode(path, new ImageDecodeOptions()));
        Assert.Contains("the imagesharp decoder took more than 1 s on this file and was stopped (the limit is --decode-timeout)", e.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"stopped only after {clock.Elapsed}");
    }

    [Fact]
    public void AWorkerThatGrowsPastItsMemoryIsStopped()
    {
        // Holds 400 MB in the shell's own memory, far past the margin a decode is allowed before it asks for more.
        using var decoder = new IsolatedImageDecoder("imagesharp", FakeWorker("v=$(head -c 400000000 /dev/zero | tr '\\0' x); sleep 600"), TimeSpan.FromSeconds(120));
        string path = Png("a.png", 5, 4);
        var e = Assert.Throws<ImageDecodeException>(() => decoder.Decode(path, new ImageDecodeOptions()));
        Assert.Contains("the imagesharp decoder needed more than", e.Message);
        Assert.Contains("MiB for this file and was stopped", e.Message);
    }

    [Fact]
    public void AWorkerThatDoesNotStartIsOneErrorAtOnce()
    {
        var e = Assert.Throws<AlexNetException>(() => new IsolatedImageDecoder("imagesharp", new DecodeWorkerCommand("/bin/bash", ["-c", "echo nope >&2; exit 3"]), TimeSpan.FromSeconds(5)));
        Assert.Contains("the imagesharp decoder's worker process did not start", e.Message);
        Assert.Contains("exit code 3", e.Message);
        e = Assert.Throws<AlexNetException>(() => new IsolatedImageDecoder("imagesharp", new DecodeWorkerCommand(_folder.File("missing-program"), []), TimeSpan.FromSeconds(5)));
        Assert.Contains("could not start", e.Message);
    }

    [Fact]
    public void TheRealWorkerGivesTheInProcessDecodersPixelsAndItsErrors()
    {
        using var decoder = new IsolatedImageDecoder("imagesharp", WorkerCommand.ForThisProgram("imagesharp"), TimeSpan.FromSeconds(30));
        Assert.StartsWith("imagesharp 2.1.13", decoder.Name);
        string path = Png("b.png", 61, 47);
        using DecodedImage inProcess = ImageDecoders.Create("imagesharp").Decode(path, new ImageDecodeOptions());
        using DecodedImage isolated = decoder.Decode(path, new ImageDecodeOptions());
        Assert.Equal((inProcess.Width, inProcess.Height), (isolated.Width, isolated.Height));
        Assert.True(inProcess.Pixels.SequenceEqual(isolated.Pixels));

        string empty = _folder.File("empty.png");
        File.WriteAllBytes(empty, []);
        var e = Assert.Throws<ImageDecodeException>(() => decoder.Decode(empty, new ImageDecodeOptions()));
        Assert.Equal($"{empty}: not an image (empty file)", e.Message);
        var tooLarge = Assert.Throws<ImageDecodeException>(() => decoder.Decode(path, new ImageDecodeOptions { MaxPixels = 100 }));
        Assert.Contains("above the limit of 100", tooLarge.Message);
        Assert.Equal(1, decoder.WorkersStarted); // errors are answers, not deaths
    }

    [Fact]
    public void TheRealWorkerAsksTheCallersBudgetAndIsRefusedBeyondIt()
    {
        using var decoder = new IsolatedImageDecoder("imagesharp", WorkerCommand.ForThisProgram("imagesharp"), TimeSpan.FromSeconds(30));
        string path = Png("c.png", 640, 480);
        var budget = new DecodeMemoryBudget(IsolatedImageDecoder.WorkerMarginBytes + (1 << 20));
        var e = Assert.Throws<ImageDecodeException>(() => decoder.Decode(path, new ImageDecodeOptions { Memory = budget }));
        Assert.Contains("more than the decode memory budget of", e.Message);
        Assert.Equal(0, budget.GrantedBytes);

        var enough = new DecodeMemoryBudget(1L << 30);
        using (DecodedImage image = decoder.Decode(path, new ImageDecodeOptions { Memory = enough }))
        {
            // The image holds its grant (the worker's margin, its estimate and the parent's copy) until disposed.
            Assert.True(enough.GrantedBytes > IsolatedImageDecoder.WorkerMarginBytes + 2L * 640 * 480 * 3, $"{enough.GrantedBytes} bytes granted");
        }
        Assert.Equal(0, enough.GrantedBytes);
    }
}
