using System.Diagnostics;
using System.Text.Json;
using AlexNet.Cli;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Interop;
using AlexNet.Cuda.Network;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Tests.Weights;
using AlexNet.Cuda.Weights;
using AlexNet.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace AlexNet.Cuda.Tests.ClassifyCli;

/// <summary>One full-size Python-2-style weight file for every classify test (233 MiB, written once).</summary>
public sealed class ClassifyWeightsFixture : IDisposable
{
    private readonly Lazy<string> _path;
    private readonly TempDir _dir = new();

    public ClassifyWeightsFixture() => _path = new Lazy<string>(() =>
    {
        AlexNetWeights w = SyntheticNetwork.Weights(AlexNetArchitecture.Default, 19);
        string path = _dir.File("bvlc_alexnet.npy");
        Py2PickleWriter.WriteFile(path, w.Layers.Select(l => new Py2PickleWriter.Layer(l.Name, l.Weight, l.WeightShape, l.Bias)));
        return path;
    });

    public string Path => _path.Value;

    public void Dispose() => _dir.Dispose();
}

/// <summary>
/// `alexnet classify` end to end on the OpenCL device: input order through several workers and batches, the
/// network's own output for exact-size images, an independent numpy implementation of the reference
/// preprocessing and network for resized ones, bad files costing only themselves, labels, shards, stats.
/// </summary>
[Collection(OpenClCollection.Name)]
public sealed class ClassifyCliTests(OpenClFixture fixture, ClassifyWeightsFixture weights) : IClassFixture<ClassifyWeightsFixture>, IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private void RequireDevice()
    {
        _ = fixture.Device;
        TestNative.Require(NativeLibraryId.ClBlast);
    }

    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private string Image(string name, int width, int height, int seed)
    {
        var random = new Random(seed);
        using var image = new Image<Rgb24>(width, height);
        for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            image[x, y] = new Rgb24((byte)random.Next(256), (byte)(x * 255 / Math.Max(1, width - 1)), (byte)(y * 255 / Math.Max(1, height - 1)));
        string path = _dir.File(name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        image.Save(path);
        return path;
    }

    private static List<JsonElement> JsonLines(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    [SkippableFact]
    public void ExactSizeImagesGetTheNetworksOwnOutputInInputOrderThroughWorkersAndBatches()
    {
        RequireDevice();
        string[] images = Enumerable.Range(0, 7).Select(i => Image($"exact/{(char)('g' - i)}.png", 227, 227, i)).ToArray();
        (int code, string stdout, string stderr) = Cli(["classify", "--weights", weights.Path, "--device", "opencl", "--format", "json",
            "--batch", "3", "--workers", "3", "--top", "5", .. images]);
        Assert.True(code == 0, stderr);
        List<JsonElement> records = JsonLines(stdout);
        Assert.Equal(images, records.Select(r => r.GetProperty("file").GetString()));

        // The same tensors through the model directly.
        using var model = AlexNetModel.Load(fixture.Device, weights.Path, new AlexNetOptions { MaxBatch = 7 });
        var input = new float[7 * AlexNetModel.InputFloatsPerImage];
        IImageDecoder decoder = ImageDecoders.Create(ImageDecoders.DefaultName);
        for (int i = 0; i < 7; i++)
        {
            using DecodedImage decoded = decoder.Decode(images[i], new ImageDecodeOptions());
            Preprocessor.Write(decoded, ResizeMode.Stretch, [104f, 117f, 124f], input.AsSpan(i * AlexNetModel.InputFloatsPerImage, AlexNetModel.InputFloatsPerImage));
        }
        // Batches of 7 here against batches of 3 in the run: the GEMM provider may sum in another order for
        // another column count (OpenBLAS does), so the probabilities agree to the GEMM's rounding, not bit for bit.
        float[] probabilities = model.Predict(input, 7);
        for (int i = 0; i < 7; i++)
        {
            int[] want = ClassRanking.Top(probabilities.AsSpan(i * 1000, 1000), 5);
            JsonElement[] top = records[i].GetProperty("top").EnumerateArray().ToArray();
            AssertSameRanking(want.Select(c => (c, probabilities[i * 1000 + c])).ToArray(), Ranking(records[i]));
            foreach (JsonElement t in top)
            {
                float want1 = probabilities[i * 1000 + t.GetProperty("index").GetInt32()], got = t.GetProperty("probability").GetSingle();
                Assert.True(Close(want1, got), $"image {i}, class {t.GetProperty("index").GetInt32()}: {got} against the model's {want1}");
            }
            Assert.Equal("tench, Tinca tinca", Cuda.Labels.ClassLabels.ImageNet[0]);
            Assert.Equal(Cuda.Labels.ClassLabels.ImageNet[top[0].GetProperty("index").GetInt32()], top[0].GetProperty("label").GetString());
        }
    }

    [SkippableTheory]
    [InlineData("stretch")]
    [InlineData("crop")]
    public void ResizedImagesMatchAnIndependentNumpyImplementation(string resize)
    {
        RequireDevice();
        NumpyReference.Require();
        string[] images = [Image("r/wide.png", 400, 150, 1), Image("r/tall.png", 31, 300, 2), Image("r/small.png", 50, 40, 3), Image("r/one.png", 1, 1, 4), Image("r/exact.png", 227, 227, 5)];
        string json = _dir.File($"out-{resize}.jsonl");
        (int code, string stdout, string stderr) = Cli(["classify", "--weights", weights.Path, "--device", "opencl", "--format", "json", "--resize", resize, .. images]);
        Assert.True(code == 0, stderr);
        File.WriteAllText(json, stdout);
        (int code2, string report) = NumpyReference.RunScript(["--weights", weights.Path, "--classify-json", json, "--resize", resize]);
        Assert.True(code2 == 0, report);
        Assert.Contains("images: 5 passed, 0 failed", report);
    }

    [SkippableFact]
    public void BadFilesCostOnlyThemselves()
    {
        RequireDevice();
        string folder = _dir.File("mixed");
        Directory.CreateDirectory(folder);
        string good1 = Image("mixed/a-good.png", 300, 200, 1);
        string good2 = Image("mixed/d-good.jpg", 227, 227, 2);
        File.WriteAllBytes(System.IO.Path.Combine(folder, "b-corrupt.png"), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]);
        byte[] jpeg = File.ReadAllBytes(good2);
        File.WriteAllBytes(System.IO.Path.Combine(folder, "c-truncated.jpg"), jpeg[..(jpeg.Length / 3)]);
        File.WriteAllText(System.IO.Path.Combine(folder, "e-text.png"), "not an image at all");
        File.WriteAllText(System.IO.Path.Combine(folder, "notes.txt"), "ignored: not an image extension");
        string huge = System.IO.Path.Combine(folder, "f-huge.png");
        File.WriteAllBytes(huge, HugePngHeader(60_000, 60_000));
        string missing = _dir.File("gone.png");
        (int code, string stdout, string stderr) = Cli("classify", "--weights", weights.Path, "--device", "opencl", "--format", "json", "--batch", "2", folder, missing);
        Assert.Equal(1, code);
        Assert.Contains("5 of 7 images could not be classified", stderr);
        List<JsonElement> records = JsonLines(stdout);
        Assert.Equal(["a-good.png", "b-corrupt.png", "c-truncated.jpg", "d-good.jpg", "e-text.png", "f-huge.png", "gone.png"],
            records.Select(r => System.IO.Path.GetFileName(r.GetProperty("file").GetString())));
        Assert.Equal($"{missing}: cannot be read: no such file", records[6].GetProperty("error").GetString());
        Assert.True(records[0].TryGetProperty("top", out _));
        Assert.True(records[3].TryGetProperty("top", out _));
        foreach (int bad in new[] { 1, 2, 4, 5 })
        {
            string error = records[bad].GetProperty("error").GetString()!;
            Assert.DoesNotContain('\n', error);
        }
        Assert.Contains("pixels", records[5].GetProperty("error").GetString());
        // Refused from the header: neither decoder allocates more than a little for the 3.6-gigapixel file.
        foreach (string name in ImageDecoders.Names)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            Assert.Throws<ImageDecodeException>(() => ImageDecoders.Create(name).Decode(huge, new ImageDecodeOptions()));
            Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16L << 20, $"{name} allocated for the huge image");
        }
    }

    /// <summary>A valid PNG declaring <paramref name="width"/>×<paramref name="height"/> whose data holds a
    /// few empty rows: small on disk, gigapixels if decoded.</summary>
    private static byte[] HugePngHeader(int width, int height)
    {
        var png = new List<byte> { 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a };
        void Chunk(string kind, byte[] body)
        {
            byte[] typed = [.. System.Text.Encoding.ASCII.GetBytes(kind), .. body];
            png.AddRange(BigEndian(body.Length));
            png.AddRange(typed);
            png.AddRange(BigEndian((int)Crc32(typed)));
        }
        Chunk("IHDR", [.. BigEndian(width), .. BigEndian(height), 8, 2, 0, 0, 0]);
        var data = new MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(data, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            z.Write(new byte[1000]);
        Chunk("IDAT", data.ToArray());
        Chunk("IEND", []);
        return [.. png];
    }

    /// <summary>PNG's CRC-32 (polynomial 0xEDB88320), so the header is valid and only its size is hostile.</summary>
    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    private static byte[] BigEndian(int v) => [(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v];

    [SkippableFact]
    public void ShardsConcatenatedEqualOneRunAndStatsNameTheThreeRates()
    {
        RequireDevice();
        string[] images = Enumerable.Range(0, 5).Select(i => Image($"s/{i}.png", 227, 227, 40 + i)).ToArray();
        (int code, string whole, string stderr) = Cli(["classify", "--weights", weights.Path, "--device", "opencl", "--format", "json", "--stats", .. images]);
        Assert.True(code == 0, stderr);
        Assert.Matches(@"stats: 5 images in [\d.]+ s: end to end [\d.]+ images/s; decode [\d.]+ images/s on \d+ workers; inference [\d.]+ images/s", stderr);
        string joined = "";
        for (int i = 0; i < 3; i++)
        {
            (int c, string part, string err) = Cli(["classify", "--weights", weights.Path, "--device", "opencl", "--format", "json", "--shard", $"{i}/3", .. images]);
            Assert.True(c == 0, err);
            joined += part;
        }
        // Each shard batches its images differently from the whole run; the ranking and the probabilities
        // must agree to the GEMM's rounding (see ExactSizeImagesGetTheNetworksOwnOutput...).
        List<JsonElement> one = JsonLines(whole), shards = JsonLines(joined);
        Assert.Equal(one.Select(r => r.GetProperty("file").GetString()), shards.Select(r => r.GetProperty("file").GetString()));
        for (int i = 0; i < one.Count; i++) AssertSameRanking(Ranking(one[i]), Ranking(shards[i]));
    }

    /// <summary>Relative difference allowed between the probabilities of two runs whose GEMMs differ only in
    /// summation order (measured with OpenBLAS: up to 2.1e-5, the logits differing in their 6th digit); a wrong weight, image or batch slot moves them by
    /// orders of magnitude more.</summary>
    private const double ProbabilityTolerance = 1e-4;

    private static bool Close(double a, double b) => Math.Abs(a - b) <= ProbabilityTolerance * Math.Max(Math.Abs(a), Math.Abs(b)) + 1e-9;

    private static (int Index, float Probability)[] Ranking(JsonElement record) =>
        record.GetProperty("top").EnumerateArray().Select(t => (t.GetProperty("index").GetInt32(), t.GetProperty("probability").GetSingle())).ToArray();

    /// <summary>The same classes in the same order with probabilities within <see cref="ProbabilityTolerance"/>,
    /// except that two classes whose probabilities are that close may swap places (or share the last place).</summary>
    private static void AssertSameRanking((int Index, float Probability)[] expected, (int Index, float Probability)[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int p = 0; p < expected.Length; p++)
        {
            Assert.True(Close(expected[p].Probability, actual[p].Probability), $"place {p}: {expected[p]} against {actual[p]}");
            if (expected[p].Index != actual[p].Index)
            {
                bool tie = expected.Concat(actual).Any(o => o.Index != expected[p].Index && Close(o.Probability, expected[p].Probability));
                Assert.True(tie, $"place {p}: class {expected[p].Index} against {actual[p].Index}, not a tie within the tolerance");
            }
        }
    }

    [SkippableFact]
    public void LabelsComeFromAFileInEitherFormAndAWrongCountIsAnError()
    {
        RequireDevice();
        string image = Image("l/x.png", 227, 227, 7);
        string synsets = _dir.File("synset_words.txt");
        File.WriteAllLines(synsets, Enumerable.Range(0, 1000).Select(i => $"n{i:D8} class number {i}"));
        (int code, string stdout, string stderr) = Cli("classify", "--weights", weights.Path, "--device", "opencl", "--labels", synsets, "--top", "1", image);
        Assert.True(code == 0, stderr);
        Assert.Matches(@"\n\s+[\d.]+\s+(\d+)\s+class number \1", stdout);
        string short10 = _dir.File("ten.txt");
        File.WriteAllLines(short10, Enumerable.Range(0, 10).Select(i => $"name {i}"));
        (code, _, stderr) = Cli("classify", "--weights", weights.Path, "--device", "opencl", "--labels", short10, image);
        Assert.Equal(1, code); // the work cannot start: one error line
        Assert.Contains("10", stderr);
        Assert.Contains("1000", stderr);
    }

    /// <summary>The built CLI in a child process: classify, JSON, batches of 4, over a new folder of 40 images.</summary>
    private Process StartJsonRunOver40Images(string folderName, int seed)
    {
        string folder = _dir.File(folderName);
        for (int i = 0; i < 40; i++) Image($"{folderName}/{i:D2}.png", 227, 227, seed + i);
        string cli = System.IO.Path.Combine(AppContext.BaseDirectory, "alexnet.dll");
        var psi = new ProcessStartInfo("dotnet", [cli, "classify", "--weights", weights.Path, "--device", "opencl", "--format", "json", "--batch", "4", folder])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        return Process.Start(psi)!;
    }

    [SkippableTheory]
    [InlineData("fp16")]
    [InlineData("bf16")]
    public void ASixteenBitPrecisionClassifiesAsFp32DoesWithinItsTolerance(string precision)
    {
        RequireDevice();
        string[] images = Enumerable.Range(0, 5).Select(i => Image($"{precision}/{i}.png", 300 + 17 * i, 240 + 9 * i, 70 + i)).ToArray();
        (int code, string fp32, string stderr) = Cli(["classify", "--weights", weights.Path, "--device", "opencl", "--format", "json", "--batch", "5", .. images]);
        Assert.True(code == 0, stderr);
        (code, string reduced, stderr) = Cli(["classify", "--weights", weights.Path, "--device", "opencl", "--format", "json", "--batch", "5",
            "--precision", precision, .. images]);
        Assert.True(code == 0, stderr);
        // The network tolerance is measured on other images and weights (docs/performance.md); on these bf16 moved
        // the top probability by 0.031, past its 0.03: a peaked softmax turns bf16's logit error into up to
        // p(1−p)·Δlogit. Twice the tolerance still catches a pass in the wrong format or on the wrong weights.
        double bound = 2 * Precisions.Tolerance(Precisions.Parse(precision)!.Value).MaxProbabilityError;
        List<JsonElement> a = JsonLines(fp32), b = JsonLines(reduced);
        Assert.Equal(images, b.Select(r => r.GetProperty("file").GetString()));
        bool anyDifferent = false;
        for (int i = 0; i < images.Length; i++)
        {
            (int Index, float Probability)[] want = Ranking(a[i]), got = Ranking(b[i]);
            Assert.Equal(want[0].Index, got[0].Index); // the same most probable class
            Assert.InRange(Math.Abs(want[0].Probability - got[0].Probability), 0, bound);
            anyDifferent |= want[0].Probability != got[0].Probability;
        }
        Assert.True(anyDifferent, "the 16-bit run gave FP32's probabilities to the last bit: it did not run in 16 bits");
    }

    [SkippableFact]
    public void CtrlCStopsAfterTheBatchesInFlightWithWholeJsonLines()
    {
        RequireDevice();
        using Process p = StartJsonRunOver40Images("many", 100);
        var lines = new List<string>();
        string? first = p.StandardOutput.ReadLine(); // the first batch is out: interrupt the run now
        Assert.NotNull(first);
        lines.Add(first!);
        using (Process kill = Process.Start("kill", ["-INT", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!) kill.WaitForExit();
        string rest = p.StandardOutput.ReadToEnd();
        string stderr = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(120_000), "the run did not stop");
        lines.AddRange(rest.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.True(p.ExitCode == 130, $"exit {p.ExitCode}: {stderr}");
        Assert.Contains("interrupted by SIGINT after", stderr);
        Assert.InRange(lines.Count, 4, 36);
        Assert.Equal(0, lines.Count % 4); // whole batches only
        Assert.All(lines, l => JsonDocument.Parse(l)); // whole lines only
    }

    [SkippableFact]
    public void AReaderThatClosesThePipeEndsTheRunQuietly()
    {
        RequireDevice();
        using Process p = StartJsonRunOver40Images("piped", 300);
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        string? first = p.StandardOutput.ReadLine(); // `| head -1`: one line, then the reader is gone
        Assert.NotNull(first);
        JsonDocument.Parse(first!);
        p.StandardOutput.Close();
        Assert.True(p.WaitForExit(120_000), "the run did not stop");
        Assert.True(p.ExitCode == 141, $"exit {p.ExitCode}: {stderr.Result}");
        Assert.Equal("", stderr.Result);
    }

    /// <summary>The crafted files that once killed, hung or fooled the imagesharp decoder, among good images,
    /// through classify with that decoder (in worker processes): a record for each, in order, the good ones
    /// classified as the default decoder classifies them.</summary>
    [SkippableFact]
    public void TheHostileReproducersCostOnlyThemselvesWithEitherDecoder()
    {
        RequireDevice();
        string hostile = System.IO.Path.Combine(AppContext.BaseDirectory, "Fixtures", "hostile-images");
        string[] files = [.. Directory.GetFiles(hostile).Where(f => !f.EndsWith(".txt") && !f.EndsWith(".md")).Order(StringComparer.Ordinal)];
        string good1 = Image("h/good1.png", 227, 227, 71), good2 = Image("h/good2.png", 260, 230, 72);
        string[] inputs = [good1, .. files, good2];
        var results = new Dictionary<string, List<JsonElement>>();
        foreach (string decoder in ImageDecoders.Names)
        {
            (int code, string stdout, string stderr) = Cli(["classify", "--weights", weights.Path, "--device", "opencl", "--format", "json", "--batch", "8",
                "--decoder", decoder, "--decode-timeout", "20", "--max-pixels", "10000000", .. inputs]);
            Assert.True(code == 1, $"{decoder}: exit {code}: {stderr}");
            List<JsonElement> records = JsonLines(stdout);
            Assert.Equal(inputs, records.Select(r => r.GetProperty("file").GetString()));
            Assert.True(records[0].TryGetProperty("top", out _), $"{decoder}: {records[0]}");
            Assert.True(records[^1].TryGetProperty("top", out _), $"{decoder}: {records[^1]}");
            foreach (JsonElement r in records)
                if (r.TryGetProperty("error", out JsonElement e)) Assert.DoesNotContain("Exception", e.GetString());
            results[decoder] = records;
        }
        foreach (int i in new[] { 0, inputs.Length - 1 })
            Assert.Equal(results["skiasharp"][i].GetProperty("top")[0].GetProperty("index").GetInt32(),
                results["imagesharp"][i].GetProperty("top")[0].GetProperty("index").GetInt32());
    }

    [Fact]
    public void NothingToRunIsExitCode1AndABadCommandLine2WithOneLine()
    {
        (int code, _, string stderr) = Cli("classify", "--weights", _dir.File("missing.npy"), "--device", "opencl", _dir.File("nothing-here"));
        Assert.Equal(1, code);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Contains("missing.npy", stderr);
        (code, _, stderr) = Cli("classify", "--weights", "w.npy", "--shard", "3/3", ".");
        Assert.Equal(2, code);
        Assert.Contains("the index must be below the count", stderr);
        (code, _, stderr) = Cli("classify", "--weights", "w.npy", "--max-pixels", "abc", ".");
        Assert.Equal(2, code);
        Assert.Contains("--max-pixels takes a positive whole number, not 'abc'", stderr);
        (code, _, stderr) = Cli("classify", "--weights", "w.npy", "--decode-memory", "12MB", ".");
        Assert.Equal(2, code);
        Assert.Contains("--decode-memory takes a size in bytes", stderr);
        (code, _, stderr) = Cli("classify", "--weights", "w.npy", "--decode-timeout", "0", ".");
        Assert.Equal(2, code);
        (code, _, _) = Cli("classify", "--weights", "w.npy", "--batch", "0", ".");
        Assert.Equal(2, code);
        (code, _, stderr) = Cli("classify", "--weights", "w.npy", "--mean", "1,2", ".");
        Assert.Equal(2, code);
        Assert.Contains("--mean takes three numbers", stderr);
    }
}

/// <summary>The Job manifest's command line, with each completion index put in, parses with the CLI's own
/// parser as a classify run of that shard.</summary>
public class DeployManifestParsesTests
{
    [Fact]
    public void TheJobsCommandLineParsesForEveryIndex()
    {
        IReadOnlyList<string> args = Classify.DeployManifest.ClassifyArguments(Classify.DeployManifest.JobPath);
        Assert.Equal("classify", args[0]);
        string shard = args[args.ToList().IndexOf("--shard") + 1];
        int count = int.Parse(shard.Split('/')[1], System.Globalization.CultureInfo.InvariantCulture);
        for (int index = 0; index < count; index++)
        {
            string[] concrete = args.Select(a => a.Replace(Classify.DeployManifest.IndexPlaceholder, index.ToString(System.Globalization.CultureInfo.InvariantCulture))).ToArray();
            System.CommandLine.ParseResult parsed = Program.Parse(concrete);
            Assert.True(parsed.Errors.Count == 0, string.Join("; ", parsed.Errors.Select(e => e.Message)));
            Assert.Equal("classify", parsed.CommandResult.Command.Name);
            Assert.Contains($"{index}/{count}", concrete);
        }
        // And the parser does catch a broken line: the check can fail.
        Assert.NotEmpty(Program.Parse([.. args.Select(a => a == "--shard" ? "--shards" : a)]).Errors);
    }
}
