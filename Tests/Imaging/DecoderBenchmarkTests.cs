using AlexNet.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace AlexNet.Cuda.Tests.Imaging;

/// <summary><see cref="DecoderBenchmark"/> on tiny inputs: the rows it returns describe what it decoded.</summary>
public sealed class DecoderBenchmarkTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void RowsDescribeEachDecoderOnEachFile()
    {
        string jpeg = _folder.File("small.jpg"), png = _folder.File("small.png");
        using (Image<Rgb24> source = TestImages.Synthetic(41, 29))
        {
            source.SaveAsJpeg(jpeg);
            source.SaveAsPng(png);
        }
        IImageDecoder[] decoders = [.. ImageDecoders.Names.Select(ImageDecoders.Create)];
        IReadOnlyList<DecoderBenchmarkRow> rows = DecoderBenchmark.Run([jpeg, png], decoders, new ImageDecodeOptions(), TimeSpan.Zero, warmup: 1);

        Assert.Equal(4, rows.Count);
        Assert.Equal(["small.jpg", "small.jpg", "small.png", "small.png"], rows.Select(r => r.File));
        Assert.Equal(decoders.Select(d => d.Name).Concat(decoders.Select(d => d.Name)), rows.Select(r => r.Decoder));
        foreach (DecoderBenchmarkRow row in rows)
        {
            Assert.Equal((41, 29), (row.Width, row.Height));
            Assert.Equal(new FileInfo(_folder.File(row.File)).Length, row.FileBytes);
            Assert.True(row.Decodes >= 3, $"{row}");
            Assert.True(row.ImagesPerSecond > 0 && row.MedianMilliseconds > 0 && row.PreprocessMilliseconds > 0, $"{row}");
            // Images per second and the median time describe the same decodes: their product is near 1.
            Assert.InRange(row.ImagesPerSecond * row.MedianMilliseconds / 1000, 0.2, 5);
            if (OperatingSystem.IsLinux()) Assert.True(row.PeakRssBytes > 1 << 20, $"{row}");
        }
    }

    [Fact]
    public void ABadFileStopsTheRunWithItsName()
    {
        string bad = _folder.File("bad.jpg");
        File.WriteAllBytes(bad, [1, 2, 3, 4]);
        var e = Assert.Throws<ImageDecodeException>(() =>
            DecoderBenchmark.Run([bad], [ImageDecoders.Create("skiasharp")], new ImageDecodeOptions(), TimeSpan.Zero));
        Assert.Equal($"{bad}: not an image (unknown format)", e.Message);
    }

    [Fact]
    public void SyntheticImagesAreWrittenAtTheStatedSizes()
    {
        IReadOnlyList<string> paths = DecoderBenchmark.WriteSyntheticImages(_folder.File("synthetic"));
        (string Name, int W, int H)[] expected =
            [("synthetic-500x375.jpg", 500, 375), ("synthetic-1600x1200.jpg", 1600, 1200), ("synthetic-4000x3000.jpg", 4000, 3000),
             ("synthetic-500x375.png", 500, 375), ("synthetic-1600x1200.png", 1600, 1200)];
        Assert.Equal(expected.Select(e => e.Name), paths.Select(Path.GetFileName));
        foreach ((string path, (string _, int w, int h)) in paths.Zip(expected))
        {
            IImageInfo info = Image.Identify(path);
            Assert.Equal((w, h), (info.Width, info.Height));
        }
    }
}
