using AlexNet.Cli.Classify;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Weights;
using AlexNet.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace AlexNet.Cuda.Tests.ClassifyCli;

/// <summary>
/// The classify pipeline with uploads on a copy stream of their own into two device input buffers, against the
/// same pipeline with everything on the one stream: the same probabilities bit for bit, image for image, over
/// batches that reuse both buffers, with a bad file in the middle; and the statistics that say so.
/// </summary>
[Collection(OpenClCollection.Name)]
public sealed class ClassifyPipelineTests(OpenClFixture fixture) : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private List<string> WriteImages(int count)
    {
        var paths = new List<string>();
        var random = new Random(3);
        for (int i = 0; i < count; i++)
        {
            string path = System.IO.Path.Combine(_dir.Path, $"{i:D2}.png");
            if (i == 5)
            {
                File.WriteAllBytes(path, [0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3]); // truncated: an error record
            }
            else
            {
                using var image = new Image<Rgb24>(64 + 13 * i, 48 + 7 * i);
                for (int y = 0; y < image.Height; y++)
                for (int x = 0; x < image.Width; x++)
                    image[x, y] = new Rgb24((byte)random.Next(256), (byte)(x * 3), (byte)(y * 5));
                image.SaveAsPng(path);
            }
            paths.Add(path);
        }
        return paths;
    }

    [SkippableFact]
    public void OverlappedUploadsGiveTheSameResultsAsOneStream()
    {
        List<string> paths = WriteImages(11);
        using AlexNetModel model = AlexNetModel.Create(fixture.Device, SyntheticNetwork.Weights(SyntheticNetwork.Narrow, seed: 9),
            new AlexNetOptions { MaxBatch = 4 });
        var loader = new ImageLoader(ImageDecoders.Create("skiasharp"), new ImageDecodeOptions(), ResizeMode.Stretch, [104f, 117f, 124f], workers: 2);

        (List<ImageResult> results, PipelineStats stats) Run(bool overlap)
        {
            using var pipeline = new ClassifyPipeline(model, loader, overlap);
            var results = new List<ImageResult>();
            PipelineStats stats = pipeline.Run(paths, results.Add, () => false, null);
            return (results, stats);
        }

        (List<ImageResult> serial, PipelineStats serialStats) = Run(overlap: false);
        (List<ImageResult> overlapped, PipelineStats overlappedStats) = Run(overlap: true);
        Assert.Equal(paths, serial.Select(r => r.Path));
        Assert.Equal(paths, overlapped.Select(r => r.Path));
        for (int i = 0; i < paths.Count; i++)
        {
            Assert.Equal(serial[i].Error, overlapped[i].Error);
            if (i == 5)
            {
                Assert.NotNull(overlapped[i].Error);
                continue;
            }
            Assert.Equal(serial[i].Probabilities, overlapped[i].Probabilities);
        }
        // Each image is its own: the three batches (4, 4, 3) did not mix buffers.
        Assert.NotEqual(overlapped[0].Probabilities, overlapped[4].Probabilities);
        Assert.NotEqual(overlapped[4].Probabilities, overlapped[8].Probabilities);

        Assert.False(serialStats.OverlappedUploads);
        Assert.True(overlappedStats.OverlappedUploads);
        Assert.True(overlappedStats.UploadMilliseconds > 0);
        Assert.Equal(0, serialStats.UploadMilliseconds);
        Assert.Equal(1, overlappedStats.Failed);
        Assert.InRange(overlappedStats.DeviceBusyFraction, double.Epsilon, 1);
    }
}
