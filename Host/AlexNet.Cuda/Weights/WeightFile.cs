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
    /// <summary>Reads, checks and completes the network's weights (see <see cref="WeightLoadOptions"/>).</summary>
    public static AlexNetWeights Load(string path, WeightLoadOptions? options = null)
    {
        options ??= new WeightLoadOptions();
        var baseArch = options.Architecture ?? AlexNetArchitecture.Default;
        var skip = new HashSet<string>(StringComparer.Ordinal);
        foreach (string s in options.SkipLayers)
        {
            if (baseArch.Find(s) is null)
                throw new WeightFileException($"skip_layer names '{s}', which is not a layer with weights; layers: {string.Join(", ", AlexNetArchitecture.LayerNames)}");
            skip.Add(s);
        }
        if (options.NumClasses is <= 0)
            throw new WeightFileException($"num_classes must be positive, not {options.NumClasses}");

        var file = ReadLayers(path);
        int? fileClasses = file.TryGetValue("fc8", out var fc8) && fc8.Weight.Shape.Length == 2 ? fc8.Weight.Shape[1] : null;
        if (options.NumClasses is int wanted && fileClasses is int have && wanted != have && !skip.Contains("fc8"))
            throw new WeightFileException($"{path}: num_classes {wanted} differs from the file's fc8, which has {have} classes; add fc8 to skip_layer to train a new last layer");
        int numClasses = options.NumClasses ?? (skip.Contains("fc8") ? null : fileClasses) ?? baseArch.NumClasses;
        var arch = baseArch.WithNumClasses(numClasses);

        var layers = new List<LayerWeights>(arch.Layers.Count);
        for (int i = 0; i < arch.Layers.Count; i++)
        {
            var spec = arch.Layers[i];
            if (skip.Contains(spec.Name))
            {
                layers.Add(new LayerWeights(spec, GlorotUniform(spec.WeightShape, options.Seed, i), new float[spec.OutputChannels], "init"));
                continue;
            }
            if (!file.TryGetValue(spec.Name, out var fl))
                throw new WeightFileException($"{path}: layer '{spec.Name}' is missing (found: {(file.Count == 0 ? "none" : string.Join(", ", file.Keys))}); add it to skip_layer to initialise it afresh");
            CheckShape(path, spec.Name, "weight", spec.WeightShape, fl.Weight.Shape);
            CheckShape(path, spec.Name, "bias", spec.BiasShape, fl.Bias.Shape);
            CheckFinite(path, spec.Name, "weight", fl.Weight.Data);
            CheckFinite(path, spec.Name, "bias", fl.Bias.Data);
            layers.Add(new LayerWeights(spec, fl.Weight.Data, fl.Bias.Data, fl.Weight.SourceDType));
        }
        return new AlexNetWeights(arch, layers);
    }

    /// <summary>Reads every layer of a .npy (pickled dict) or .npz file without checking shapes or values.</summary>
    public static IReadOnlyDictionary<string, FileLayer> ReadLayers(string path)
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
            if (n == 4 && head.SequenceEqual("PK\x03\x04"u8) || n == 4 && head.SequenceEqual("PK\x05\x06"u8))
                return ReadNpz(handle, path);
            var src = new ByteSource(handle, length, path);
            object? value = NpyReader.Read(src, requireEnd: true);
            return LayersFromValue(value, path);
        }
    }

    private static IReadOnlyDictionary<string, FileLayer> ReadNpz(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path)
    {
        var weights = new Dictionary<string, NpyArray>(StringComparer.Ordinal);
        var biases = new Dictionary<string, NpyArray>(StringComparer.Ordinal);
        var result = new Dictionary<string, FileLayer>(StringComparer.Ordinal);
        var ignored = new List<string>();
        try
        {
            using var fs = new FileStream(handle, FileAccess.Read, 1 << 16);
            using var zip = new ZipArchive(fs, ZipArchiveMode.Read, leaveOpen: true);
            // Entries that share compressed data (a zip bomb's trick) add up to more than the file.
            if (zip.Entries.Sum(e => e.CompressedLength) > fs.Length)
                throw new WeightFileException($"{path}: the archive's members claim more compressed bytes than the file has; it is damaged or hostile");
            foreach (var entry in zip.Entries)
            {
                string key = entry.FullName.EndsWith(".npy", StringComparison.Ordinal) ? entry.FullName[..^4] : entry.FullName;
                string name = $"{path}:{entry.FullName}";
                // Deflate expands at most ~1032:1, so a larger declared size is a lie; checked before allocating.
                if (entry.Length < 0 || entry.Length > entry.CompressedLength * 1100L + 4096)
                    throw new WeightFileException($"{name}: declared size {entry.Length} is impossible for {entry.CompressedLength} compressed bytes; the archive is damaged");
                object? value;
                using (var stream = entry.Open())
                    value = NpyReader.Read(new ByteSource(stream, entry.Length, name), requireEnd: true);
                if (value is NpyArray array && SplitKey(key) is (string layer, bool isWeight))
                    (isWeight ? weights : biases)[layer] = array;
                else if (value is not NpyArray)
                    foreach (var (k, v) in LayersFromValue(value, name)) result[k] = v;
                else
                    ignored.Add(key);
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
            result[layer] = new FileLayer(layer, w, b);
        }
        foreach (var layer in biases.Keys.Where(k => !weights.ContainsKey(k)))
            throw new WeightFileException($"{path}: layer '{layer}' has a bias but no weight array (expected a key such as {layer}_W or {layer}/weights)");
        if (result.Count == 0)
            throw new WeightFileException($"{path}: no layer arrays found (keys {(ignored.Count == 0 ? "none" : string.Join(", ", ignored.Take(8)))}); expected keys such as conv1_W and conv1_b, or conv1/weights and conv1/biases");
        return result;
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

    private static Dictionary<string, FileLayer> LayersFromValue(object? value, string name)
    {
        if (value is NpyArray a)
            throw new WeightFileException($"{name}: holds one {a.SourceDType} array of shape {NpyArray.FormatShape(a.Shape)}, not a dict of layers; expected bvlc_alexnet.npy or an .npz");
        if (value is PyNdArray { ObjectItems: [var item] })
            value = item;
        if (value is not PyDict dict)
            throw new WeightFileException($"{name}: the pickle holds a {PickleMachine.TypeName(value)}, not a dict of layers like {{'conv1': [W, b], …}}");
        var result = new Dictionary<string, FileLayer>(StringComparer.Ordinal);
        foreach (var (k, v) in dict.Items)
        {
            string key = k switch
            {
                string s => s,
                PyBytes { Data: not null } b => b.AsLatin1(),
                _ => throw new WeightFileException($"{name}: the dict has a {PickleMachine.TypeName(k)} key; layer names must be strings"),
            };
            result[key] = LayerFromValue(key, v, name);
        }
        return result;
    }

    private static FileLayer LayerFromValue(string layer, object? v, string name)
    {
        NpyArray? w = null, b = null;
        object?[]? pair = v switch
        {
            PyList l => l.Items.ToArray(),
            PyTuple t => t.Items,
            _ => null,
        };
        if (pair is [PyNdArray { Numeric: { } x }, PyNdArray { Numeric: { } y }])
        {
            // The 1-D array is the bias (the order is [W, b] in bvlc_alexnet.npy).
            (w, b) = x.Shape.Length == 1 && y.Shape.Length != 1 ? (y, x) : (x, y);
        }
        else if (v is PyDict d)
        {
            foreach (var (k, item) in d.Items)
            {
                string? key = k as string ?? (k as PyBytes)?.AsLatin1();
                if (item is not PyNdArray { Numeric: { } arr }) continue;
                if (key is "weights" or "weight" or "W" or "w" or "kernel") w = arr;
                else if (key is "biases" or "bias" or "b") b = arr;
            }
        }
        if (w is null || b is null)
            throw new WeightFileException($"{name}: layer '{layer}' is a {PickleMachine.TypeName(v)} but must be [weights, biases] (two float arrays) or {{'weights': W, 'biases': b}}");
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
