using System.Diagnostics;
using AlexNet.Cuda.Network;
using SkiaSharp;

namespace AlexNet.Imaging;

/// <summary>One decoder on one file: single-thread speed and memory.</summary>
/// <param name="Decoder">The decoder's <see cref="IImageDecoder.Name"/>.</param>
/// <param name="File">The file's name (without its folder).</param>
/// <param name="Width">Width of the decoded image.</param>
/// <param name="Height">Height of the decoded image.</param>
/// <param name="FileBytes">Size of the file.</param>
/// <param name="Decodes">Timed decodes (after the warm-up).</param>
/// <param name="ImagesPerSecond">Decodes per second on one thread.</param>
/// <param name="MedianMilliseconds">Median time of one decode.</param>
/// <param name="PreprocessMilliseconds">Median time of <see cref="Preprocessor.Write"/> (Crop) on the result.</param>
/// <param name="AllocatedBytesPerDecode">Managed bytes allocated per decode (pooled buffers reused are not counted).</param>
/// <param name="PeakRssBytes">The process's peak resident memory while the row ran, or -1 where the peak cannot be reset (not Linux).</param>
public sealed record DecoderBenchmarkRow(
    string Decoder, string File, int Width, int Height, long FileBytes, int Decodes,
    double ImagesPerSecond, double MedianMilliseconds, double PreprocessMilliseconds,
    long AllocatedBytesPerDecode, long PeakRssBytes);

/// <summary>
/// Measures decoders on files: warm-up, then decodes on the calling thread until <c>minimumTime</c> has
/// passed (and at least three), so the rows are images per second per core. Each decoder runs on every file
/// in the same process run, so their ratios hold on a noisy machine. The peak memory is the process's
/// (reset before each row on Linux through <c>/proc/self/clear_refs</c>), so buffers pooled by earlier rows
/// count towards later ones: measure one decoder per process for absolute figures.
/// </summary>
public static class DecoderBenchmark
{
    public static IReadOnlyList<DecoderBenchmarkRow> Run(
        IReadOnlyList<string> files, IReadOnlyList<IImageDecoder> decoders, ImageDecodeOptions options, TimeSpan minimumTime, int warmup = 2)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(decoders);
        ArgumentNullException.ThrowIfNull(options);
        var rows = new List<DecoderBenchmarkRow>();
        var input = new float[AlexNetModel.InputFloatsPerImage];
        float[] mean = [104f, 117f, 124f];
        foreach (string file in files)
        {
            long fileBytes = new FileInfo(file).Length;
            foreach (IImageDecoder decoder in decoders)
            {
                for (int i = 0; i < warmup; i++) decoder.Decode(file, options).Dispose();
                GC.Collect();
                GC.WaitForPendingFinalizers();
                bool peakReset = ResetPeakRss();

                var times = new List<double>();
                var preprocess = new List<double>();
                int width = 0, height = 0;
                long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
                var total = Stopwatch.StartNew();
                while (times.Count < 3 || total.Elapsed < minimumTime)
                {
                    long start = Stopwatch.GetTimestamp();
                    using DecodedImage image = decoder.Decode(file, options);
                    times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    (width, height) = (image.Width, image.Height);
                    if (preprocess.Count < 16)
                    {
                        long p = Stopwatch.GetTimestamp();
                        Preprocessor.Write(image, ResizeMode.Crop, mean, input);
                        preprocess.Add(Stopwatch.GetElapsedTime(p).TotalMilliseconds);
                    }
                }
                double decodeSeconds = times.Sum() / 1000;
                long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
                rows.Add(new DecoderBenchmarkRow(decoder.Name, Path.GetFileName(file), width, height, fileBytes, times.Count,
                    times.Count / decodeSeconds, Median(times), Median(preprocess), allocated / times.Count,
                    peakReset ? PeakRss() : -1));
            }
        }
        return rows;
    }

    /// <summary>
    /// Writes the synthetic pictures the measurements in docs/decoding.md use (no photographs can be
    /// shipped): JPEG (quality 90, 4:2:0, as written by libjpeg-turbo through Skia) at 500×375, 1600×1200
    /// and 4000×3000, and PNG at 500×375 and 1600×1200. Smooth gradients and waves with edges and a little
    /// noise, so the files compress about as much as photographs do. Returns the paths.
    /// </summary>
    public static IReadOnlyList<string> WriteSyntheticImages(string folder)
    {
        Directory.CreateDirectory(folder);
        var paths = new List<string>();
        foreach ((int w, int h, SKEncodedImageFormat format) in (ReadOnlySpan<(int, int, SKEncodedImageFormat)>)
                 [(500, 375, SKEncodedImageFormat.Jpeg), (1600, 1200, SKEncodedImageFormat.Jpeg), (4000, 3000, SKEncodedImageFormat.Jpeg),
                  (500, 375, SKEncodedImageFormat.Png), (1600, 1200, SKEncodedImageFormat.Png)])
        {
            string path = Path.Combine(folder, $"synthetic-{w}x{h}.{(format == SKEncodedImageFormat.Jpeg ? "jpg" : "png")}");
            using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque));
            Paint(bitmap, seed: w);
            using SKData data = bitmap.Encode(format, 90) ?? throw new InvalidOperationException($"Skia could not encode {format}");
            File.WriteAllBytes(path, data.ToArray());
            paths.Add(path);
        }
        return paths;
    }

    private static void Paint(SKBitmap bitmap, int seed)
    {
        int w = bitmap.Width, h = bitmap.Height;
        var random = new Random(seed);
        Span<byte> pixels = bitmap.GetPixelSpan();
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                double u = (double)x / w, v = (double)y / h;
                double r = 128 + 90 * Math.Sin(6.3 * u) * Math.Cos(3.1 * v) + 40 * Math.Sin(90 * u * v);
                double g = 40 + 170 * v + 20 * Math.Sin(40 * u * v);
                double b = 200 - 150 * u + 30 * Math.Cos(25 * (u + v));
                if ((x / Math.Max(1, w / 9)) % 4 == 1 && y > h / 3 && y < 2 * h / 3) (r, g, b) = (250, 250, 20);
                int noise = random.Next(-12, 13);
                int at = (y * w + x) * 4;
                pixels[at] = Clamp(r + noise);
                pixels[at + 1] = Clamp(g + noise);
                pixels[at + 2] = Clamp(b + noise);
                pixels[at + 3] = 255;
            }
        }
    }

    private static byte Clamp(double v) => (byte)Math.Clamp(Math.Round(v), 0, 255);

    private static double Median(List<double> values)
    {
        if (values.Count == 0) return 0;
        values.Sort();
        return values.Count % 2 == 1 ? values[values.Count / 2] : (values[values.Count / 2 - 1] + values[values.Count / 2]) / 2;
    }

    /// <summary>Resets the kernel's record of this process's peak resident memory (Linux 4.0 and later).</summary>
    private static bool ResetPeakRss()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return PeakRss() > 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>VmHWM of /proc/self/status, in bytes; -1 when it cannot be read.</summary>
    private static long PeakRss()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (!line.StartsWith("VmHWM:", StringComparison.Ordinal)) continue;
                string kb = line["VmHWM:".Length..].Trim().Split(' ')[0];
                return long.Parse(kb, System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
        }
        return -1;
    }
}
