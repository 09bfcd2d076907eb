using System.Security.Cryptography;
using System.Text.Json;
using AlexNet.Cuda.Checks;
using AlexNet.Cuda.Tests.Infrastructure;
using AlexNet.Cuda.Weights;

namespace AlexNet.Cuda.Tests.Weights;

/// <summary>
/// The weight-file writer: read back by the engine bit for bit, and by numpy — the independent reader — with
/// the original TensorFlow code's loader, giving what a Python-2 bvlc_alexnet.npy gives there (the file
/// <see cref="Py2PickleWriter"/> writes byte by byte as cPickle did); written atomically.
/// </summary>
public sealed class WeightFileWriterTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Values chosen to catch any conversion: signed zeros, subnormals, the extremes, ±1 ulp around 1,
    /// and random bit patterns (every finite float32 equally likely to be drawn), the rest.</summary>
    private static float[] AwkwardValues(long count, int seed)
    {
        float[] special = [0f, -0f, float.Epsilon, -float.Epsilon, 1.17549421e-38f, float.MaxValue, -float.MaxValue, float.MinValue,
            1f, BitConverter.Int32BitsToSingle(0x3f800001), BitConverter.Int32BitsToSingle(0x3f7fffff), -123456.789f, 3.4e38f];
        var random = new Random(seed);
        var values = new float[count];
        for (long i = 0; i < count; i++)
        {
            if (i < special.Length) { values[i] = special[i]; continue; }
            float v;
            do v = BitConverter.Int32BitsToSingle(random.Next() ^ (random.Next(2) << 31)); while (!float.IsFinite(v));
            values[i] = v;
        }
        return values;
    }

    private static AlexNetWeights Awkward(AlexNetArchitecture arch, int seed) => new(arch,
        arch.Layers.Select((spec, i) => new LayerWeights(spec, AwkwardValues(spec.WeightCount, seed + 2 * i), AwkwardValues(spec.OutputChannels, seed + 2 * i + 1), "<f4")).ToList());

    private static void AssertBitIdentical(AlexNetWeights expected, AlexNetWeights actual)
    {
        Assert.Equal(expected.NumClasses, actual.NumClasses);
        Assert.Equal(expected.Layers.Count, actual.Layers.Count);
        for (int l = 0; l < expected.Layers.Count; l++)
        {
            LayerWeights e = expected.Layers[l], a = actual.Layers[l];
            Assert.Equal(e.Name, a.Name);
            Assert.Equal(e.WeightShape, a.WeightShape);
            Assert.Equal("<f4", a.Source);
            foreach ((float[] x, float[] y, string what) in new[] { (e.Weight, a.Weight, "weight"), (e.Bias, a.Bias, "bias") })
            {
                Assert.Equal(x.Length, y.Length);
                int bad = Enumerable.Range(0, x.Length).FirstOrDefault(i => BitConverter.SingleToInt32Bits(x[i]) != BitConverter.SingleToInt32Bits(y[i]), -1);
                Assert.True(bad < 0, $"{e.Name} {what}[{bad}]: wrote {x[Math.Max(bad, 0)]:R}, read {y[Math.Max(bad, 0)]:R}");
            }
        }
    }

    [Theory]
    [InlineData(3)]
    [InlineData(1000)]
    [InlineData(1)]
    public void ReadsBackThroughWeightFileLoadBitForBitWithNumClassesFromFc8(int classes)
    {
        AlexNetArchitecture arch = TinyNet.Architecture.WithNumClasses(classes);
        AlexNetWeights written = Awkward(arch, 100 + classes);
        string path = _dir.File($"model{classes}.npy");
        WeightFileWriter.Write(path, written);
        // No NumClasses asked for: the class count comes from the file's fc8.
        AlexNetWeights read = WeightFile.Load(path, new WeightLoadOptions { Architecture = TinyNet.Architecture });
        Assert.Equal(classes, read.NumClasses);
        AssertBitIdentical(written, read);
        Assert.Equal([Path.GetFileName(path)], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void AFullSizeModelReadsBackBitForBit()
    {
        // fc6's 151 MB of data is a BINSTRING with a 4-byte length; BVLC AlexNet's shapes throughout.
        AlexNetWeights written = SyntheticNetwork.Weights(AlexNetArchitecture.Default.WithNumClasses(3), 5);
        string path = _dir.File("full.npy");
        WeightFileWriter.Write(path, written);
        AlexNetWeights read = WeightFile.Load(path);
        Assert.Equal(3, read.NumClasses);
        Assert.Equal(AlexNetArchitecture.Default.WithNumClasses(3).ParameterCount, read.ParameterCount);
        AssertBitIdentical(written, read);
    }

    /// <summary>
    /// What numpy gives for a file under each encoding np.load takes: for 'bytes' (the original code's) and
    /// 'latin1', the outer array's dtype and shape, each key's Python type, each value's type, and each
    /// array's dtype, shape, C-contiguity and sha256 of its bytes, through the original code's loop; for the
    /// default 'ASCII', the exception's type (a Python-2 file's binary data is not ASCII). Also the pickle's
    /// protocol, the highest protocol of any opcode in it, and whether any warning was raised.
    /// </summary>
    private const string Describe = """
        import hashlib, json, pickletools, sys, warnings
        import numpy as np
        from numpy.lib import format as npformat
        path = sys.argv[1]
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for encoding in ("bytes", "latin1", "ASCII"):
                try:
                    arr = np.load(path, encoding=encoding, allow_pickle=True)
                except Exception as e:
                    out[encoding] = type(e).__name__
                    continue
                weights_dict = arr.item()
                layers = []
                # The loop of the original fine-tuning code (alexnet.py, load_initial_weights).
                for op_name in weights_dict:
                    arrays = []
                    for data in weights_dict[op_name]:
                        arrays.append({"role": "biases" if len(data.shape) == 1 else "weights", "dtype": data.dtype.str,
                                       "shape": list(data.shape), "c": bool(data.flags.c_contiguous),
                                       "sha256": hashlib.sha256(data.tobytes()).hexdigest()})
                    layers.append({"key": op_name.decode("ascii") if isinstance(op_name, bytes) else op_name,
                                   "key_type": type(op_name).__name__, "value_type": type(weights_dict[op_name]).__name__,
                                   "arrays": arrays})
                out[encoding] = {"outer": [arr.dtype.str, list(arr.shape)], "dict_type": type(weights_dict).__name__, "layers": layers}
        with open(path, "rb") as f:
            version = npformat.read_magic(f)
            npformat._read_array_header(f, version)
            ops = list(pickletools.genops(f.read()))
        out["proto"] = ops[0][1]
        out["max_opcode_proto"] = max(op.proto for op, _, _ in ops)
        out["opcodes"] = sorted({op.name for op, _, _ in ops})
        print(json.dumps(out))
        """;

    private static JsonElement NumpyDescribe(string path)
    {
        (int code, string output) = NumpyReference.Run(["-c", Describe, path]);
        Assert.True(code == 0, output);
        return JsonDocument.Parse(output).RootElement.Clone();
    }

    private static string Sha256(float[] values) =>
        Convert.ToHexStringLower(SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())));

    [SkippableFact]
    public void NumpyReadsItWithTheOriginalLoaderAsItReadsAPython2BvlcFile()
    {
        NumpyReference.Require();
        AlexNetArchitecture arch = TinyNet.Architecture.WithNumClasses(3);
        AlexNetWeights weights = Awkward(arch, 7);
        string ours = _dir.File("model.npy");
        WeightFileWriter.Write(ours, weights);
        string bvlc = _dir.File("bvlc_format.npy");
        Py2PickleWriter.WriteFile(bvlc, weights.Layers.Select(l => new Py2PickleWriter.Layer(l.Name, l.Weight, l.WeightShape, l.Bias)));

        JsonElement got = NumpyDescribe(ours), fixture = NumpyDescribe(bvlc);

        // What the original loader sees is the same for both files, under every encoding (no warning either).
        foreach (string encoding in new[] { "bytes", "latin1", "ASCII" })
            Assert.Equal(fixture.GetProperty(encoding).GetRawText(), got.GetProperty(encoding).GetRawText());

        // And it is what bvlc_alexnet.npy gives: byte-string keys under 'bytes', str under 'latin1', [W, b] lists of
        // float32 C-order arrays of AlexNet's shapes holding exactly the values written; 'ASCII' cannot read it.
        JsonElement bytes = got.GetProperty("bytes");
        Assert.Equal("|O", bytes.GetProperty("outer")[0].GetString());
        Assert.Equal(0, bytes.GetProperty("outer")[1].GetArrayLength());  // a 0-d array
        Assert.Equal("dict", bytes.GetProperty("dict_type").GetString());
        var layers = bytes.GetProperty("layers").EnumerateArray().ToList();
        Assert.Equal(AlexNetArchitecture.LayerNames, layers.Select(l => l.GetProperty("key").GetString()));
        for (int i = 0; i < layers.Count; i++)
        {
            Assert.Equal("bytes", layers[i].GetProperty("key_type").GetString());
            Assert.Equal("list", layers[i].GetProperty("value_type").GetString());
            var arrays = layers[i].GetProperty("arrays").EnumerateArray().ToList();
            Assert.Equal(["weights", "biases"], arrays.Select(a => a.GetProperty("role").GetString()));
            Assert.All(arrays, a => Assert.Equal("<f4", a.GetProperty("dtype").GetString()));
            Assert.All(arrays, a => Assert.True(a.GetProperty("c").GetBoolean()));
            Assert.Equal(arch.Layers[i].WeightShape, arrays[0].GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
            Assert.Equal(arch.Layers[i].BiasShape, arrays[1].GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
            Assert.Equal(Sha256(weights.Layers[i].Weight), arrays[0].GetProperty("sha256").GetString());
            Assert.Equal(Sha256(weights.Layers[i].Bias), arrays[1].GetProperty("sha256").GetString());
        }
        Assert.Equal([3], layers[7].GetProperty("arrays")[0].GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).Skip(1));
        Assert.All(got.GetProperty("latin1").GetProperty("layers").EnumerateArray(), l => Assert.Equal("str", l.GetProperty("key_type").GetString()));
        Assert.Equal("UnicodeError", got.GetProperty("ASCII").GetString());

        // A protocol-2 pickle of Python 2's types: no opcode of a later protocol (BINBYTES, BINUNICODE, FRAME, …).
        Assert.Equal(2, got.GetProperty("proto").GetInt32());
        Assert.Equal(2, got.GetProperty("max_opcode_proto").GetInt32());
        Assert.Contains("SHORT_BINSTRING", got.GetProperty("opcodes").EnumerateArray().Select(o => o.GetString()));
        Assert.Contains("BINSTRING", got.GetProperty("opcodes").EnumerateArray().Select(o => o.GetString()));
    }

    [SkippableFact]
    public void NumpyDescribesADifferentFileDifferently()
    {
        // The comparison above can fail: one value changed in fc8's bias, or the layers in another order, show.
        NumpyReference.Require();
        AlexNetWeights weights = Awkward(TinyNet.Architecture, 9);
        string ours = _dir.File("model.npy");
        WeightFileWriter.Write(ours, weights);
        var layers = weights.Layers.Select(l => new Py2PickleWriter.Layer(l.Name, l.Weight, l.WeightShape, (float[])l.Bias.Clone())).ToList();
        layers[7].Bias[4] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(layers[7].Bias[4]) ^ 1);
        string changed = _dir.File("changed.npy");
        Py2PickleWriter.WriteFile(changed, layers);
        string reordered = _dir.File("reordered.npy");
        Py2PickleWriter.WriteFile(reordered, weights.Layers.Reverse().Select(l => new Py2PickleWriter.Layer(l.Name, l.Weight, l.WeightShape, l.Bias)));
        string mine = NumpyDescribe(ours).GetProperty("bytes").GetRawText();
        Assert.NotEqual(mine, NumpyDescribe(changed).GetProperty("bytes").GetRawText());
        Assert.NotEqual(mine, NumpyDescribe(reordered).GetProperty("bytes").GetRawText());
    }

    [Theory]
    [InlineData(float.NaN, "NaN")]
    [InlineData(float.PositiveInfinity, "+inf")]
    [InlineData(float.NegativeInfinity, "-inf")]
    public void ANonFiniteValueIsRefusedAndTheFileAlreadyThereSurvivesWithNothingLeftBehind(float value, string named)
    {
        string path = _dir.File("model.npy");
        AlexNetWeights before = Awkward(TinyNet.Architecture, 1);
        WeightFileWriter.Write(path, before);
        byte[] kept = File.ReadAllBytes(path);

        // fc8's bias is the last array written: the refusal comes after the rest was in the temporary file.
        AlexNetWeights bad = Awkward(TinyNet.Architecture, 2);
        bad.Fc8.Bias[3] = value;
        var e = Assert.Throws<AlexNetException>(() => WeightFileWriter.Write(path, bad));
        Assert.Equal($"cannot write {path}: layer 'fc8' bias holds {named} at index 3; weights must be finite (the training diverged?)", e.Message);
        Assert.Equal(kept, File.ReadAllBytes(path));
        Assert.Equal(["model.npy"], Directory.GetFiles(_dir.Path).Select(Path.GetFileName));

        bad.Fc8.Bias[3] = 0;
        bad.Conv1.Weight[^1] = value;
        e = Assert.Throws<AlexNetException>(() => WeightFileWriter.Write(path, bad));
        Assert.Contains($"layer 'conv1' weight holds {named} at index {bad.Conv1.Weight.Length - 1};", e.Message);
        Assert.Equal(kept, File.ReadAllBytes(path));
        Assert.Single(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void ANewFileReplacesTheOldOneWhole()
    {
        string path = _dir.File("model.npy");
        File.WriteAllBytes(path, new byte[10_000_000]);  // longer than the new file: nothing of it may remain
        AlexNetWeights weights = Awkward(TinyNet.Architecture, 3);
        WeightFileWriter.Write(path, weights);
        AssertBitIdentical(weights, WeightFile.Load(path, new WeightLoadOptions { Architecture = TinyNet.Architecture }));
        Assert.True(new FileInfo(path).Length < 100_000);
        Assert.Single(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void AFolderOrAPathInAMissingFolderIsOneLineNamingIt()
    {
        AlexNetWeights weights = Awkward(TinyNet.Architecture, 4);
        string folder = _dir.File("models");
        Directory.CreateDirectory(folder);
        var e = Assert.Throws<AlexNetException>(() => WeightFileWriter.Write(folder, weights));
        Assert.Equal($"cannot write {folder}: it is a folder; give the weight file's own path (e.g. {Path.Combine(folder, "model.npy")})", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(folder));

        string missing = Path.Combine(_dir.Path, "no such folder", "model.npy");
        e = Assert.Throws<AlexNetException>(() => WeightFileWriter.Write(missing, weights));
        Assert.Equal($"cannot write {missing}: the folder {Path.GetDirectoryName(missing)} does not exist", e.Message);

        // A file where the folder should be.
        string file = _dir.Write("plain", [1]);
        e = Assert.Throws<AlexNetException>(() => WeightFileWriter.Write(Path.Combine(file, "model.npy"), weights));
        Assert.DoesNotContain('\n', e.Message);
        Assert.Contains(file, e.Message);
    }

    [Fact]
    public void ArraysThatDoNotFitTheirShapesAreRefused()
    {
        AlexNetArchitecture arch = TinyNet.Architecture;
        var layers = arch.Layers.Select((spec, i) => new LayerWeights(spec, TinyNet.Weight(i, spec.WeightShape), TinyNet.Bias(i, spec.OutputChannels), "<f4")).ToList();
        layers[4] = new LayerWeights(arch.Layers[4], new float[arch.Layers[4].WeightCount - 1], new float[arch.Layers[4].OutputChannels], "<f4");
        string path = _dir.File("model.npy");
        var e = Assert.Throws<AlexNetException>(() => WeightFileWriter.Write(path, new AlexNetWeights(arch, layers)));
        Assert.Equal($"cannot write {path}: layer 'conv5' weight holds {arch.Layers[4].WeightCount - 1} values but its shape needs {arch.Layers[4].WeightCount}", e.Message);
        Assert.Empty(Directory.GetFiles(_dir.Path));
    }
}
