using System.Text.RegularExpressions;
using AlexNet.Cuda.Network;
using AlexNet.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Tiff.Constants;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;
using SkiaSharp;
using Xunit.Abstractions;

namespace AlexNet.Cuda.Tests.Imaging;

/// <summary>Seed images in every format the decoders read, written at test time, and mutants of them.</summary>
internal static class ImageMutants
{
    /// <summary>(file name, bytes) of one small image per format and layout.</summary>
    public static List<(string Name, byte[] Bytes)> Seeds()
    {
        using Image<Rgb24> picture = TestImages.Synthetic(53, 37, seed: 5);
        using Image<Rgb24> small = TestImages.Synthetic(29, 31, seed: 6);
        var seeds = new List<(string, byte[])>
        {
            ("baseline.jpg", DecoderTests.EncodeWithSkia(picture, SKEncodedImageFormat.Jpeg, 90)),
            ("444.jpg", Encode(small, new JpegEncoder { Quality = 85, ColorType = JpegColorType.YCbCrRatio444 })),
            ("rgb.png", Encode(picture, new PngEncoder())),
            ("adam7.png", Encode(small, new PngEncoder { InterlaceMethod = PngInterlaceMode.Adam7, ColorType = PngColorType.RgbWithAlpha })),
            ("adam7-narrow.png", TestImages.InterlacedPng(3, 7)),
            ("palette.png", Encode(small, new PngEncoder { ColorType = PngColorType.Palette, BitDepth = PngBitDepth.Bit4 })),
            ("grey16.png", Encode(small, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit16 })),
            ("image.gif", Encode(small, new GifEncoder())),
            ("rgb24.bmp", Encode(small, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 })),
            ("palette8.bmp", Encode(small, new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel8 })),
            ("deflate.tif", Encode(small, new TiffEncoder { Compression = TiffCompression.Deflate })),
            ("packbits.tif", Encode(small, new TiffEncoder { Compression = TiffCompression.PackBits })),
            ("lossy.webp", DecoderTests.EncodeWithSkia(small, SKEncodedImageFormat.Webp, 80)),
            ("lossless.webp", Encode(small, new WebpEncoder { FileFormat = WebpFileFormatType.Lossless })),
        };
        return seeds;
    }

    private static byte[] Encode(Image<Rgb24> image, SixLabors.ImageSharp.Formats.IImageEncoder encoder)
    {
        using var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }

    /// <summary>
    /// The <paramref name="index"/>-th mutant of <paramref name="seed"/>: bit flips, overwritten runs,
    /// truncations, header bytes and words set to boundary values, insertions, deletions and repeated
    /// runs; the same bytes for the same arguments.
    /// </summary>
    public static (string Kind, byte[] Bytes) Mutate(byte[] seed, int index)
    {
        var random = new Random(index * 7919 + seed.Length);
        byte[] data = (byte[])seed.Clone();
        int header = Math.Min(data.Length, 160);
        ReadOnlySpan<byte> boundary = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF];
        ReadOnlySpan<uint> words = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x10000, 0xFFFF];
        switch (index % 9)
        {
            case 0:
            case 1:
            {
                ReadOnlySpan<int> counts = [1, 2, 8, 32];
                int flips = counts[random.Next(counts.Length)];
                for (int k = 0; k < flips; k++) data[random.Next(data.Length)] ^= (byte)(1 << random.Next(8));
                return ("bitflip", data);
            }
            case 2:
            {
                int at = random.Next(data.Length), run = Math.Min(1 + random.Next(16), data.Length - at);
                byte fill = (byte)(random.Next(3) switch { 0 => 0, 1 => 0xFF, _ => random.Next(256) });
                data.AsSpan(at, run).Fill(fill);
                return ("overwrite", data);
            }
            case 3:
                return ("truncate", data[..random.Next(data.Length)]);
            case 4:
                for (int k = 1 + random.Next(3); k > 0; k--) data[random.Next(header)] = boundary[random.Next(boundary.Length)];
                return ("headerbyte", data);
            case 5:
            {
                int offset = random.Next(Math.Max(1, header - 4));
                uint value = words[random.Next(words.Length)];
                if (random.Next(2) == 0) System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(offset), value);
                else System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(offset), value);
                return ("headerword", data);
            }
            case 6:
            {
                int offset = random.Next(data.Length);
                byte[] inserted = new byte[1 + random.Next(64)];
                random.NextBytes(inserted);
                return ("insert", [.. data[..offset], .. inserted, .. data[offset..]]);
            }
            case 7:
            {
                int offset = random.Next(data.Length), length = Math.Min(1 + random.Next(256), data.Length - offset);
                return ("delete", [.. data[..offset], .. data[(offset + length)..]]);
            }
            default:
            {
                int offset = random.Next(data.Length), length = Math.Min(1 + random.Next(512), data.Length - offset);
                return ("repeat", [.. data[..(offset + length)], .. data[offset..]]);
            }
        }
    }
}

/// <summary>
/// A few thousand mutated files (and the crafted reproducers) through every decoder the CLI offers, as
/// the CLI reads them (<see cref="ImageLoader"/>, with a decode memory budget and workers), interleaved
/// with good images: one record per file, no hang, every error a sentence naming the file and no .NET
/// exception text, the budget never exceeded, and the good images' input exactly what they give alone.
/// </summary>
public sealed class DecoderFuzzTests(IsolatedImageSharpFixture isolated, ITestOutputHelper output) : IClassFixture<IsolatedImageSharpFixture>, IDisposable
{
    private const int MutantsPerSeed = 180;
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    /// <summary>Texts that are a .NET exception's message rather than a sentence about the file.</summary>
    private static readonly Regex RawException = new(
        "Object reference not set|Sequence contains|Index was outside|Arithmetic operation|Specified argument|Value cannot be null|" +
        "Exception|System\\.|Attempted to|must be non-negative|out of range|Nullable`|\\bat [A-Z][A-Za-z]+\\.",
        RegexOptions.CultureInvariant);

    private (List<string> Paths, List<int> Good) WriteCorpus()
    {
        var paths = new List<string>();
        var good = new List<int>();
        List<(string Name, byte[] Bytes)> seeds = ImageMutants.Seeds();
        foreach ((string name, byte[] bytes) in seeds)
        {
            good.Add(paths.Count);
            paths.Add(Write($"good-{name}", bytes));
            for (int i = 0; i < MutantsPerSeed; i++)
            {
                (string kind, byte[] mutant) = ImageMutants.Mutate(bytes, i);
                paths.Add(Write($"m{i:D3}-{kind}-{name}", mutant));
            }
        }
        string hostile = Path.Combine(AppContext.BaseDirectory, "Fixtures", "hostile-images");
        foreach (string file in Directory.EnumerateFiles(hostile).Where(f => !f.EndsWith(".txt") && !f.EndsWith(".md")).Order(StringComparer.Ordinal))
            paths.Add(file);
        // The good images again at the end: their input must not depend on what came before.
        foreach (int g in good.ToArray())
        {
            good.Add(paths.Count);
            paths.Add(paths[g]);
        }
        return (paths, good);
    }

    private string Write(string name, byte[] bytes)
    {
        string path = _folder.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Theory]
    [InlineData("skiasharp")]
    [InlineData("imagesharp")]
    public void EveryMutantGetsOneRecordAndTheGoodImagesAreUnchanged(string decoder)
    {
        (List<string> paths, List<int> good) = WriteCorpus();
        IImageDecoder chosen = decoder == "imagesharp" ? isolated.Decoder : ImageDecoders.Create(decoder);
        var budget = new DecodeMemoryBudget(512L << 20);
        var loader = new ImageLoader(chosen, new ImageDecodeOptions { Memory = budget }, ResizeMode.Stretch, [104f, 117f, 124f], workers: 2);
        const int F = AlexNetModel.InputFloatsPerImage;
        var input = new float[(long)paths.Count * F];
        var errors = new string?[paths.Count];

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var run = new Thread(() =>
        {
            // In batches, as classify loads them.
            for (int first = 0; first < paths.Count; first += 64)
            {
                int count = Math.Min(64, paths.Count - first);
                var batchErrors = new string?[count];
                int offset = first;
                loader.Load(paths, first, count, i => input.AsSpan((offset + i) * F, F), batchErrors);
                batchErrors.CopyTo(errors, first);
            }
        });
        run.Start();
        Assert.True(run.Join(TimeSpan.FromMinutes(10)), $"{decoder}: the corpus did not finish in 10 minutes");
        output.WriteLine($"{decoder}: {paths.Count} files in {clock.Elapsed.TotalSeconds:F1} s, {errors.Count(e => e is not null)} refused, decode memory peak {budget.PeakBytes >> 20} MiB");

        Assert.Equal(0, budget.GrantedBytes);
        Assert.InRange(budget.PeakBytes, 1, budget.TotalBytes);
        var messages = new Dictionary<string, int>();
        for (int i = 0; i < paths.Count; i++)
        {
            if (errors[i] is not string error) continue;
            Assert.StartsWith(paths[i] + ": ", error);
            Assert.DoesNotContain('\n', error);
            string problem = error[(paths[i].Length + 2)..];
            Assert.False(RawException.IsMatch(problem), $"{decoder} on {Path.GetFileName(paths[i])}: a raw exception text: {problem}");
            messages[problem] = messages.GetValueOrDefault(problem) + 1;
        }
        foreach ((string problem, int n) in messages.OrderByDescending(m => m.Value).Take(12)) output.WriteLine($"{n,5}  {problem}");

        // The good images decoded alone, then compared with their places in the mixed run.
        foreach (int g in good)
        {
            if (decoder == "skiasharp" && paths[g].EndsWith(".tif", StringComparison.Ordinal))
            {
                Assert.Contains("TIFF is not read by the skiasharp decoder", errors[g]);
                continue;
            }
            if (decoder == "imagesharp" && paths[g].EndsWith("adam7-narrow.png", StringComparison.Ordinal))
            {
                Assert.Contains("which the imagesharp decoder never finishes", errors[g]);
                continue;
            }
            Assert.True(errors[g] is null, $"{decoder} refused the good {Path.GetFileName(paths[g])}: {errors[g]}");
            var alone = new float[F];
            var aloneError = new string?[1];
            loader.Load([paths[g]], 0, 1, _ => alone, aloneError);
            Assert.Null(aloneError[0]);
            Assert.True(alone.AsSpan().SequenceEqual(input.AsSpan(g * F, F)), $"{decoder}: {Path.GetFileName(paths[g])} differs in the mixed run");
        }
    }
}
