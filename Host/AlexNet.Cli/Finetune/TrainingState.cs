using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using AlexNet.Cuda;
using AlexNet.Cuda.Export;

namespace AlexNet.Cli.Finetune;

/// <summary>
/// Where a fine-tuning run stands, kept beside its checkpoint (<c>model.npy</c> → <c>model.state.npz</c>) so that
/// <c>--resume</c> continues to the same result as a run never stopped: the position (epochs finished, steps of
/// the current epoch done, the loss summed so far in it), the settings that must not change (a
/// <see cref="Fingerprint"/> of the data, layers and optimiser), the epochs' records, the weight file's XxHash128
/// (a checkpoint whose two files come from different moments is refused) and the optimiser's momentum. The
/// shuffle, the flips and the dropout masks are functions of the seed, the epoch and the step
/// (<see cref="TrainingRandom"/>), so the position is their whole state.
/// <para>
/// The file is an .npz numpy reads: one float32 member per momentum array (<c>fc6.weight.npy</c>, …) and the
/// rest as <c>state.json</c>.
/// </para>
/// </summary>
internal sealed record TrainingState(int EpochsDone, int StepsDone, double EpochLossSum, long EpochImages, string Fingerprint,
    string WeightsHash, IReadOnlyList<string> History, IReadOnlyDictionary<string, float[]> Velocity)
{
    public const int FormatVersion = 1;

    /// <summary><c>model.npy</c> → <c>model.state.npz</c>.</summary>
    public static string PathFor(string weightsPath) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(weightsPath))!, Path.GetFileNameWithoutExtension(weightsPath) + ".state.npz");

    /// <summary>XxHash128 of a file (a checksum against mixing two checkpoints, not a defence against tampering; the
    /// engine keeps the cryptography library, and with it OpenSSL, out of the NativeAOT binary).</summary>
    public static string HashOf(string path)
    {
        using FileStream stream = File.OpenRead(path);
        var hash = new XxHash128();
        hash.Append(stream);
        return Convert.ToHexStringLower(hash.GetCurrentHash());
    }

    public void Write(string path)
    {
        var json = new MemoryStream();
        using (var j = new Utf8JsonWriter(json, new JsonWriterOptions { Indented = true }))
        {
            j.WriteStartObject();
            j.WriteNumber("format", FormatVersion);
            j.WriteNumber("epochs_done", EpochsDone);
            j.WriteNumber("steps_done", StepsDone);
            j.WriteNumber("epoch_loss_sum", EpochLossSum);
            j.WriteNumber("epoch_images", EpochImages);
            j.WriteString("fingerprint", Fingerprint);
            j.WriteString("weights_xxhash128", WeightsHash);
            j.WriteStartArray("history");
            foreach (string line in History) j.WriteStringValue(line);
            j.WriteEndArray();
            j.WriteEndObject();
        }
        NpyWriter.WriteFile(path, stream =>
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            foreach ((string name, float[] values) in Velocity.OrderBy(v => v.Key, StringComparer.Ordinal))
            {
                using Stream member = zip.CreateEntry(name + ".npy", CompressionLevel.NoCompression).Open();
                NpyWriter.WriteArray(member, values, [values.Length]);
            }
            using Stream state = zip.CreateEntry("state.json", CompressionLevel.NoCompression).Open();
            state.Write(json.ToArray());
        });
    }

    /// <summary>Reads a state this class wrote; anything else is a one-line error naming the file.</summary>
    public static TrainingState Read(string path)
    {
        if (!File.Exists(path))
            throw new AlexNetException($"--resume: there is no optimiser state {path} (a run writes it with its first checkpoint); start without --resume");
        try
        {
            using ZipArchive zip = ZipFile.OpenRead(path);
            ZipArchiveEntry stateEntry = zip.GetEntry("state.json") ?? throw Bad(path, "it has no state.json");
            using JsonDocument doc = JsonDocument.Parse(ReadAll(stateEntry, 1 << 24));
            JsonElement root = doc.RootElement;
            int format = root.GetProperty("format").GetInt32();
            if (format != FormatVersion) throw Bad(path, $"its format is {format}, this program reads {FormatVersion}");
            var velocity = new Dictionary<string, float[]>(StringComparer.Ordinal);
            foreach (ZipArchiveEntry entry in zip.Entries)
            {
                if (!entry.FullName.EndsWith(".npy", StringComparison.Ordinal)) continue;
                velocity[entry.FullName[..^4]] = ReadVector(path, entry);
            }
            return new TrainingState(
                root.GetProperty("epochs_done").GetInt32(), root.GetProperty("steps_done").GetInt32(),
                root.GetProperty("epoch_loss_sum").GetDouble(), root.GetProperty("epoch_images").GetInt64(),
                root.GetProperty("fingerprint").GetString() ?? "", root.GetProperty("weights_xxhash128").GetString() ?? "",
                [.. root.GetProperty("history").EnumerateArray().Select(e => e.GetString() ?? "")], velocity);
        }
        catch (Exception e) when (e is InvalidDataException or JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Bad(path, e.Message.ReplaceLineEndings(" ").TrimEnd('.'));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AlexNetException($"cannot read the optimiser state {path}: {e.Message.ReplaceLineEndings(" ").TrimEnd('.')}", e);
        }
    }

    private static AlexNetException Bad(string path, string why) =>
        new($"{path} is not an optimiser state this program wrote ({why}); start without --resume");

    private static byte[] ReadAll(ZipArchiveEntry entry, long limit)
    {
        if (entry.Length > limit) throw new InvalidDataException($"{entry.FullName} is {entry.Length} bytes, more than {limit}");
        using Stream stream = entry.Open();
        var bytes = new byte[entry.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    /// <summary>A 1-D float32 member exactly as <see cref="Write"/> stores it (the header must be the one it writes).</summary>
    private static float[] ReadVector(string path, ZipArchiveEntry entry)
    {
        using Stream stream = entry.Open();
        var start = new byte[10];
        stream.ReadExactly(start);
        int headerLength = 10 + BinaryPrimitives.ReadUInt16LittleEndian(start.AsSpan(8));
        long dataBytes = entry.Length - headerLength;
        if (dataBytes < 0 || dataBytes % 4 != 0 || dataBytes / 4 > int.MaxValue)
            throw Bad(path, $"member {entry.FullName} has a size that is no float32 vector");
        int count = (int)(dataBytes / 4);
        var header = new byte[headerLength];
        start.CopyTo(header, 0);
        stream.ReadExactly(header.AsSpan(10));
        if (!header.AsSpan().SequenceEqual(NpyWriter.Header([count])))
            throw Bad(path, $"member {entry.FullName} is not the float32 vector it should be: {Encoding.ASCII.GetString(header, 10, headerLength - 10).Trim()}");
        var values = new float[count];
        stream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan()));
        if (!BitConverter.IsLittleEndian)
            for (int i = 0; i < count; i++)
                values[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(values[i])));
        return values;
    }
}

/// <summary>
/// The run's random choices as pure functions of (seed, epoch, step or index), so that a resumed run draws exactly
/// what the uninterrupted one drew: SplitMix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014) over a key mixed from the arguments.
/// </summary>
internal static class TrainingRandom
{
    public static ulong Mix(ulong x)
    {
        x += 0x9E3779B97F4A7C15ul;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ul;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBul;
        return x ^ (x >> 31);
    }

    public static ulong Key(ulong seed, ulong purpose, ulong a, ulong b = 0) => Mix(Mix(Mix(seed ^ Mix(purpose)) ^ a) ^ b);

    /// <summary>The order of the training set in <paramref name="epoch"/>: Fisher–Yates from the epoch's key.</summary>
    public static int[] Permutation(int count, ulong seed, int epoch)
    {
        var order = new int[count];
        for (int i = 0; i < count; i++) order[i] = i;
        ulong state = Key(seed, 1, (ulong)epoch);
        for (int i = count - 1; i > 0; i--)
        {
            state = Mix(state);
            int j = (int)(state % (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>Whether image <paramref name="image"/> is seen mirrored in <paramref name="epoch"/> (<c>--flip</c>).</summary>
    public static bool Flip(ulong seed, int epoch, int image) => (Key(seed, 2, (ulong)epoch, (ulong)image) & 1) != 0;

    /// <summary>The dropout seed of one step.</summary>
    public static ulong DropoutSeed(ulong seed, int epoch, int step) => Key(seed, 3, (ulong)epoch, (ulong)step);
}

/// <summary><c>--lr-schedule</c>: <c>constant</c>, or <c>step:E:F</c> (the rate times F every E epochs).</summary>
internal readonly record struct LearningRateSchedule(int Every, float Factor)
{
    public static LearningRateSchedule Constant => new(0, 1f);

    public float Rate(float baseRate, int epoch) => Every <= 0 ? baseRate : baseRate * MathF.Pow(Factor, epoch / Every);

    public static bool TryParse(string text, out LearningRateSchedule schedule)
    {
        schedule = Constant;
        if (text == "constant") return true;
        string[] parts = text.Split(':');
        if (parts.Length != 3 || parts[0] != "step") return false;
        if (!int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int every) || every <= 0) return false;
        if (!float.TryParse(parts[2], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out float factor)
            || !float.IsFinite(factor) || factor <= 0) return false;
        schedule = new LearningRateSchedule(every, factor);
        return true;
    }

    public override string ToString() => Every <= 0 ? "constant" : FormattableString.Invariant($"step:{Every}:{Factor}");
}
