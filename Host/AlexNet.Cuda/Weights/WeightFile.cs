using System.IO.Compression;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace AlexNet.Cuda.Weights;

/// <summary>A layer's arrays as found in a file, before any check against the architecture.</summary>
public sealed record FileLayer(string Name, NpyArray Weight, NpyArray Bias);

/// <summary>
/// Reads AlexNet weights from <c>bvlc_alexnet.npy</c> (a pickled dict <c>{'conv1': [W, b], …}</c>, any
/// pickle protocol 2–5, Python 2 or 3, numpy 1 or 2) or from an <c>.npz</c> with one array per key
/// (<c>conv1_W</c>/<c>conv1_b</c>, <c>conv1/weights</c>/<c>conv1/biases</c>, …). See docs/weights.md.
/// </summary>
public static class WeightFile
{
    /// <summary>Most members an .npz may have (AlexNet needs 16).</summary>
    internal const int MaxNpzMembers = 1024;

    /// <summary>Longest member name of an .npz, in characters.</summary>
    internal const int MaxNpzNameLength = 1024;

    /// <summary>What an .npz may inflate beyond 8 bytes (float64) per parameter: headers and a pickle's opcodes.</summary>
    internal const long NpzSlack = 1 << 20;

    /// <summary>Reads, checks and completes the network's weights (see <see cref="WeightLoadOptions"/>).</summary>
    public static AlexNetWeights Load(string path, WeightLoadOptions? options = null)
    {
        options ??= new WeightLoadOptions();
        var baseArch = options.Architecture ?? AlexNetArchitecture.Default;
        var skip = new HashSet<string>(StringComparer.Ordinal);
        foreach (string s in options.SkipLayers)
        {
            if (baseArch.Find(s) is null)
                throw new WeightFileException($"SkipLayers (--skip-layer of alexnet weights) names '{s}', which is not a layer with weights; layers: {string.Join(", ", AlexNetArchitecture.LayerNames)}");
            skip.Add(s);
        }
        if (options.NumClasses is <= 0)
            throw new WeightFileException($"NumClasses (--num-classes of alexnet weights) must be positive, not {options.NumClasses}");

        var plan = new ReadPlan(baseArch, skip, skip.Contains("fc8") ? null : options.NumClasses, checkShapes: true);
        return ReadFile(path, plan, file => Assemble(path, file, baseArch, skip, options));
    }

    /// <summary>Reads every layer of a .npy (pickled dict) or .npz file without checking shapes or values. An .npz
    /// still inflates no more than BVLC AlexNet can need (8 bytes per parameter, plus 1 MiB).</summary>
    public static IReadOnlyDictionary<string, FileLayer> ReadLayers(string path)
    {
        var plan = new ReadPlan(AlexNetArchitecture.Default, new HashSet<string>(), null, checkShapes: false);
        return ReadFile(path, plan, file =>
        {
            foreach (var l in file.Values) { _ = l.Weight.Data; _ = l.Bias.Data; }
            return (IReadOnlyDictionary<string, FileLayer>)file;
        });
    }

    /// <summary>Checks the layers read against the architecture and reads their data (the file is still open:
    /// a pickle's arrays are read only now, after their shapes passed).</summary>
    private static AlexNetWeights Assemble(string path, Dictionary<string, FileLayer> file, AlexNetArchitecture baseArch, HashSet<string> skip, WeightLoadOptions options)
    {
        int? fileClasses = file.TryGetValue("fc8", out var fc8) && fc8.Weight.Shape.Length == 2 ? fc8.Weight.Shape[1] : null;
        if (options.NumClasses is int wanted && fileClasses is int have && wanted != have && !skip.Contains("fc8"))
            throw NumClassesDiffer(path, wanted, have);
        int numClasses = options.NumClasses ?? (skip.Contains("fc8") ? null : fileClasses) ?? baseArch.NumClasses;
        var arch = baseArch.WithNumClasses(numClasses);

        // Every shape first, then the data: nothing is read for a file that is refused on a shape.
        foreach (var spec in arch.Layers.Where(l => !skip.Contains(l.Name)))
        {
            if (!file.TryGetValue(spec.Name, out var fl))
                throw new WeightFileException($"{path}: layer '{spec.Name}' is missing (found: {(file.Count == 0 ? "none" : string.Join(", ", file.Keys.Select(k => WeightFileException.Quote(k, 40))))}); name it in SkipLayers (--skip-layer of alexnet weights) to initialise it afresh");
            CheckShape(path, spec.Name, "weight", spec.WeightShape, fl.Weight.Shape);
            CheckShape(path, spec.Name, "bias", spec.BiasShape, fl.Bias.Shape);
        }
        var layers = new List<LayerWeights>(arch.Layers.Count);
        for (int i = 0; i < arch.Layers.Count; i++)
        {
            var spec = arch.Layers[i];
            if (skip.Contains(spec.Name))
            {
                layers.Add(new LayerWeights(spec, GlorotUniform(spec.WeightShape, options.Seed, i), new float[spec.OutputChannels], "init"));
                continue;
            }
            var fl = file[spec.Name];
            CheckFinite(path, spec.Name, "weight", fl.Weight.Data);
            CheckFinite(path, spec.Name, "bias", fl.Bias.Data);
            layers.Add(new LayerWeights(spec, fl.Weight.Data, fl.Bias.Data, fl.Weight.SourceDType));
        }
        return new AlexNetWeights(arch, layers);
    }

    private static WeightFileException NumClassesDiffer(string name, int wanted, int have) =>
        new($"{name}: NumClasses (--num-classes of alexnet weights) {wanted} differs from the file's fc8, which has {have} classes; add fc8 to SkipLayers (--skip-layer fc8) to train a new last layer");

    /// <summary>Opens the file, reads its layers and hands them to <paramref name="use"/> while the file is open.</summary>
    private static T ReadFile<T>(string path, ReadPlan plan, Func<Dictionary<string, FileLayer>, T> use)
    {
        Microsoft.Win32.SafeHandles.SafeFileHandle handle;
        if (Directory.Exists(path))
            throw new WeightFileException($"'{path}' is a folder; give the weight file itself (e.g. {Path.Combine(path, "bvlc_alexnet.npy")})", null);
        if (!File.Exists(path))
            throw new WeightFileException($"weight file '{path}' does not exist; download bvlc_alexnet.npy or give its path", null);
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new WeightFileException($"cannot open weight file '{path}': {e.Message}", null, e);
        }
        using (handle)
        {
            long length = RandomAccess.GetLength(handle);
            Span<byte> head = stackalloc byte[4];
            int n = length >= 4 ? RandomAccess.Read(handle, head, 0) : 0;
            Dictionary<string, FileLayer> layers;
            if (n == 4 && head.SequenceEqual("PK\x03\x04"u8) || n == 4 && head.SequenceEqual("PK\x05\x06"u8))
            {
                layers = ReadNpz(handle, path, plan);
            }
            else
            {
                var src = new ByteSource(handle, length, path);
                object? value = NpyReader.Read(src, requireEnd: true);
                layers = [];
                AddLayers(layers, value, path);
            }
            return use(layers);
        }
    }

    /// <summary>
    /// What a read may accept, and how much an .npz may inflate: no more than the architecture can need, 8 bytes
    /// (float64) per parameter plus <see cref="NpzSlack"/>, with fc8's class count as asked for or as the file's
    /// first fc8 header says. With <c>checkShapes</c> (<see cref="Load"/>), each needed member's header is
    /// checked against the architecture before its data is inflated, and members that Load does not use
    /// (skipped layers, names that are no layer of the architecture) are not inflated at all.
    /// </summary>
    private sealed class ReadPlan(AlexNetArchitecture architecture, HashSet<string> skip, int? numClasses, bool checkShapes)
    {
        private int? _fileClasses;
        private long _inflated;

        private AlexNetArchitecture Current => architecture.WithNumClasses(numClasses ?? _fileClasses ?? architecture.NumClasses);

        public long Budget => 8 * Current.ParameterCount + NpzSlack;

        /// <summary>Whether Load uses this layer's arrays.</summary>
        public bool Needs(string layer) => !checkShapes || architecture.Find(layer) is not null && !skip.Contains(layer);

        /// <summary>Checks a needed array's header against the architecture, before its data is inflated.</summary>
        public void CheckHeader(string name, string layer, bool isWeight, NpyHeader h)
        {
            var spec = architecture.Find(layer);
            if (spec is not null && spec == architecture.Layers[^1])
            {
                // fc8's class count comes from the file unless asked for: the first fc8 array that fits says it.
                int? n = isWeight ? (h.Shape is [int rows, int cols] && rows == spec.WeightShape[0] ? cols : null) : (h.Shape is [int b] ? b : null);
                if (n is > 0)
                {
                    if (checkShapes && numClasses is int wanted && wanted != n) throw NumClassesDiffer(name, wanted, n.Value);
                    _fileClasses ??= n;
                }
                spec = Current.Layers[^1];
            }
            if (checkShapes)
                CheckShape(name, layer, isWeight ? "weight" : "bias", isWeight ? spec!.WeightShape : spec!.BiasShape, h.Shape);
        }

        /// <summary>Counts <paramref name="bytes"/> more to inflate, refusing before they are when that passes the budget.</summary>
        public void Inflate(string name, long bytes)
        {
            long budget = Budget;
            if (bytes > budget - _inflated)
                throw new WeightFileException($"{name}: {bytes} more bytes would bring the archive's inflated total to {_inflated + bytes} bytes, more than the {budget} bytes this architecture's weights can need ({Current.ParameterCount} parameters at up to 8 bytes, plus {NpzSlack}); refusing before inflating it");
            _inflated += bytes;
        }
    }

    private static Dictionary<string, FileLayer> ReadNpz(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path, ReadPlan plan)
    {
        var weights = new Dictionary<string, NpyArray>(StringComparer.Ordinal);
        var biases = new Dictionary<string, NpyArray>(StringComparer.Ordinal);
        var result = new Dictionary<string, FileLayer>(StringComparer.Ordinal);
        var ignored = new List<string>();
        int layerMembers = 0;
        try
        {
            using var fs = new FileStream(handle, FileAccess.Read, 1 << 16);
            using var zip = new ZipArchive(fs, ZipArchiveMode.Read, leaveOpen: true);
            CheckDirectory(zip.Entries, fs.Length, path);
            foreach (var entry in zip.Entries)
            {
                string key = NpzKey(entry.FullName);
                string name = $"{path}:{entry.FullName}";
                var split = SplitKey(key);
                using var stream = entry.Open();
                var src = new ByteSource(stream, entry.Length, name) { ReadAhead = false };
                var header = NpyReader.ReadHeader(src, requireEnd: true);
                if (header.DType.IsObject)
                {
                    // A pickle cannot be checked before it is read: all of it counts against the budget.
                    plan.Inflate(name, entry.Length);
                    AddLayers(result, NpyReader.ReadBody(src, header), name);
                    continue;
                }
                if (split is not (string layer, bool isWeight))
                {
                    plan.Inflate(name, src.Position);  // the header only
                    ignored.Add(key);
                    continue;
                }
                layerMembers++;
                if (!plan.Needs(layer))
                {
                    plan.Inflate(name, src.Position);
                    continue;
                }
                plan.CheckHeader(name, layer, isWeight, header);
                plan.Inflate(name, entry.Length);
                (isWeight ? weights : biases)[layer] = (NpyArray)NpyReader.ReadBody(src, header)!;
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException or NotSupportedException)
        {
            throw new WeightFileException($"{path}: not a readable .npz (zip) archive: {e.Message}", null, e);
        }
        foreach (var (layer, w) in weights)
        {
            if (!biases.TryGetValue(layer, out var b))
                throw new WeightFileException($"{path}: layer '{layer}' has weights but no bias array (expected a key such as {layer}_b or {layer}/biases)");
            if (!result.TryAdd(layer, new FileLayer(layer, w, b)))
                throw new WeightFileException($"{path}: layer '{layer}' is given twice, by its own members and inside a pickled member; keep one");
        }
        foreach (var layer in biases.Keys.Where(k => !weights.ContainsKey(k)))
            throw new WeightFileException($"{path}: layer '{layer}' has a bias but no weight array (expected a key such as {layer}_W or {layer}/weights)");
        if (result.Count == 0 && layerMembers == 0)
            throw new WeightFileException($"{path}: no layer arrays found (keys {(ignored.Count == 0 ? "none" : string.Join(", ", ignored.Take(8).Select(k => WeightFileException.Quote(k, 40))))}); expected keys such as conv1_W and conv1_b, or conv1/weights and conv1/biases");
        return result;
    }

    /// <summary>An .npz member's key: its name without <c>.npy</c>, as <c>np.load</c> gives it.</summary>
    private static string NpzKey(string member) => member.EndsWith(".npy", StringComparison.Ordinal) ? member[..^4] : member;

    /// <summary>
    /// Checks the archive's directory before anything is inflated: the member count, name lengths, names given
    /// twice (also as two spellings of one array: <c>conv1_W.npy</c> and <c>conv1/weights.npy</c>), the compressed
    /// sizes against the file (members sharing data, a zip bomb's trick, add up to more than the file) and each
    /// declared size against deflate's best ratio.
    /// </summary>
    private static void CheckDirectory(IReadOnlyList<ZipArchiveEntry> entries, long fileLength, string path)
    {
        if (entries.Count > MaxNpzMembers)
            throw new WeightFileException($"{path}: the archive has {entries.Count} members, more than {MaxNpzMembers} members; a weight file has 16 (two per layer)");
        var byKey = new Dictionary<string, string>(StringComparer.Ordinal);
        var byArray = new Dictionary<(string, bool), string>();
        long compressed = 0;
        foreach (var entry in entries)
        {
            string member = entry.FullName;
            if (member.Length > MaxNpzNameLength)
                throw new WeightFileException($"{path}: member name {WeightFileException.Quote(member)} is {member.Length} characters long, longer than {MaxNpzNameLength}; the archive is damaged or hostile");
            string m = WeightFileException.Quote(member);
            // Entries that share compressed data add up to more than the file; added without overflow.
            if (entry.CompressedLength < 0 || entry.CompressedLength > fileLength - compressed)
                throw new WeightFileException($"{path}: the archive's members claim more compressed bytes than the file has ({m} brings them past {fileLength}); it is damaged or hostile");
            compressed += entry.CompressedLength;
            // Deflate expands at most ~1032:1, so a larger declared size is a lie; checked before inflating.
            if (entry.Length < 0 || entry.Length > entry.CompressedLength * 1100L + 4096)
                throw new WeightFileException($"{path}:{member}: declared size {entry.Length} is impossible for {entry.CompressedLength} compressed bytes; the archive is damaged");
            string key = NpzKey(member);
            if (byKey.TryGetValue(key, out string? first))
                throw new WeightFileException(first == member
                    ? $"{path}: the archive holds {m} twice; which copy is meant is unclear, so the file is refused"
                    : $"{path}: members {WeightFileException.Quote(first)} and {m} are both the key '{key}'; keep one");
            byKey.Add(key, member);
            if (SplitKey(key) is (string layer, bool isWeight))
            {
                if (byArray.TryGetValue((layer, isWeight), out string? other))
                    throw new WeightFileException($"{path}: members {WeightFileException.Quote(other)} and {m} are both {layer}'s {(isWeight ? "weights" : "biases")}; keep one");
                byArray.Add((layer, isWeight), member);
            }
        }
    }

    /// <summary>Splits an .npz key into (layer, is-weight): separators '_', '/', '.', ':'; weight suffixes W, w,
    /// weights, weight, kernel; bias suffixes b, biases, bias.</summary>
    internal static (string Layer, bool IsWeight)? SplitKey(string key)
    {
        int sep = key.LastIndexOfAny(['_', '/', '.', ':']);
        if (sep <= 0 || sep == key.Length - 1) return null;
        string layer = key[..sep], suffix = key[(sep + 1)..];
        return suffix switch
        {
            "W" or "w" or "weights" or "weight" or "kernel" => (layer, true),
            "b" or "biases" or "bias" => (layer, false),
            _ => null,
        };
    }

    /// <summary>Adds the layers of an unpickled value (the 0-d object array holding the dict, or the dict) to
    /// <paramref name="result"/>, refusing a layer given twice.</summary>
    private static void AddLayers(Dictionary<string, FileLayer> result, object? value, string name)
    {
        if (value is NpyArray a)
            throw new WeightFileException($"{name}: holds one {a.SourceDType} array of shape {NpyArray.FormatShape(a.Shape)}, not a dict of layers; expected bvlc_alexnet.npy or an .npz");
        if (value is PyNdArray { ObjectItems: [var item] })
            value = item;
        if (value is not PyDict dict)
            throw new WeightFileException($"{name}: the pickle holds a {PickleMachine.TypeName(value)}, not a dict of layers like {{'conv1': [W, b], …}}");
        foreach (var (k, v) in dict.Items)
        {
            string key = KeyText(k, name, "the dict of layers");
            // Python would keep the last value of a key given twice; which one the writer meant is unclear.
            if (result.ContainsKey(key))
                throw new WeightFileException($"{name}: the file gives layer {WeightFileException.Quote(key)} twice; keep one");
            result.Add(key, LayerFromValue(key, v, name));
        }
    }

    /// <summary>A dict key as text: a str or a byte string (Python 2) of at most <see cref="PyBytes.MaxTextLength"/>
    /// characters; anything else is refused, naming <paramref name="where"/>.</summary>
    private static string KeyText(object? k, string name, string where) => k switch
    {
        string s when s.Length <= PyBytes.MaxTextLength => s,
        PyBytes b when b.AsLatin1() is string s => s,
        string s => throw new WeightFileException($"{name}: {where} has a {s.Length}-character key {WeightFileException.Quote(s)}; keys are layer or array names"),
        PyBytes b => throw new WeightFileException($"{name}: {where} has a {b.Length}-byte key; keys are layer or array names"),
        PyText t => throw new WeightFileException($"{name}: {where} has a {t.Length}-byte str key; keys are layer or array names"),
        _ => throw new WeightFileException($"{name}: {where} has a {PickleMachine.TypeName(k)} key; keys are layer or array names (strings)"),
    };

    private static FileLayer LayerFromValue(string layer, object? v, string name)
    {
        NpyArray? w = null, b = null;
        object?[]? pair = v switch
        {
            PyList l => l.Items.ToArray(),
            PyTuple t => t.Items,
            _ => null,
        };
        string quoted = WeightFileException.Quote(layer, 40);
        if (pair is [PyNdArray { Numeric: { } x }, PyNdArray { Numeric: { } y }])
        {
            // The 1-D array is the bias (the order is [W, b] in bvlc_alexnet.npy).
            (w, b) = x.Shape.Length == 1 && y.Shape.Length != 1 ? (y, x) : (x, y);
        }
        else if (v is PyDict d)
        {
            string? wKey = null, bKey = null;
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (k, item) in d.Items)
            {
                string key = KeyText(k, name, $"layer {quoted}'s dict");
                if (!seen.Add(key))
                    throw new WeightFileException($"{name}: layer {quoted} gives the key {WeightFileException.Quote(key)} twice; keep one");
                if (item is not PyNdArray { Numeric: { } arr }) continue;
                bool isWeight = key is "weights" or "weight" or "W" or "w" or "kernel";
                if (!isWeight && key is not ("biases" or "bias" or "b")) continue;
                // Two spellings of one array ({'weights': W, 'kernel': W2}): which one is meant is unclear.
                if ((isWeight ? wKey : bKey) is string firstKey)
                    throw new WeightFileException($"{name}: layer {quoted} gives its {(isWeight ? "weights" : "biases")} twice, as {WeightFileException.Quote(firstKey)} and {WeightFileException.Quote(key)}; keep one");
                if (isWeight) (w, wKey) = (arr, key);
                else (b, bKey) = (arr, key);
            }
        }
        if (w is null || b is null)
            throw new WeightFileException($"{name}: layer {quoted} is a {PickleMachine.TypeName(v)} but must be [weights, biases] (two float arrays) or {{'weights': W, 'biases': b}}");
        return new FileLayer(layer, w, b);
    }

    private static void CheckShape(string path, string layer, string what, int[] expected, int[] found)
    {
        if (!expected.AsSpan().SequenceEqual(found))
            throw new WeightFileException($"{path}: layer '{layer}' {what} has shape {NpyArray.FormatShape(found)} but AlexNet needs {NpyArray.FormatShape(expected)}");
    }

    /// <summary>Fails on the first NaN or infinity, naming the layer and the index. (Fully optimised from the
    /// first call: it runs once per layer over 61 M values, where tier-0 code would cost a fresh process ~0.1 s.)</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void CheckFinite(string path, string layer, string what, float[] data)
    {
        ReadOnlySpan<int> bits = MemoryMarshal.Cast<float, int>(data.AsSpan());
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var exp = new Vector<int>(0x7f800000);
            for (; i <= bits.Length - Vector<int>.Count; i += Vector<int>.Count)
                if (Vector.EqualsAny(new Vector<int>(bits[i..]) & exp, exp)) break;
        }
        for (; i < bits.Length; i++)
        {
            if ((bits[i] & 0x7f800000) == 0x7f800000)
                throw new WeightFileException($"{path}: layer '{layer}' {what} holds {(float.IsNaN(data[i]) ? "NaN" : data[i] > 0 ? "+inf" : "-inf")} at index {i}; weights must be finite (the file is damaged or the training diverged)");
        }
    }

    /// <summary>
    /// TensorFlow's default initialiser for <c>tf.get_variable</c> weights, Glorot (Xavier) uniform: U(−l, l) with
    /// l = √(6 / (fan_in + fan_out)); for HWIO, fan_in = kh·kw·cin and fan_out = kh·kw·cout; for (in, out) the
    /// two sizes. Values come from SplitMix64 seeded with (seed, layer index), so they are reproducible.
    /// </summary>
    internal static float[] GlorotUniform(int[] shape, ulong seed, int layerIndex)
    {
        long receptive = 1;
        for (int a = 0; a < shape.Length - 2; a++) receptive *= shape[a];
        double fanIn = shape[^2] * (double)receptive, fanOut = shape[^1] * (double)receptive;
        double limit = Math.Sqrt(6.0 / (fanIn + fanOut));
        long count = shape.Aggregate(1L, (x, y) => x * y);
        var w = new float[count];
        ulong state = seed ^ (0x9E3779B97F4A7C15UL * (ulong)(layerIndex + 1));
        for (long i = 0; i < count; i++)
        {
            state += 0x9E3779B97F4A7C15UL;
            ulong z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            double u = (z >> 11) * (1.0 / (1UL << 53));  // [0, 1)
            w[i] = (float)((2 * u - 1) * limit);
        }
        return w;
    }
}
