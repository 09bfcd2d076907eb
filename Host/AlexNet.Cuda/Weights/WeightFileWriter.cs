using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using AlexNet.Cuda.Export;

namespace AlexNet.Cuda.Weights;

/// <summary>
/// Writes weights in <c>bvlc_alexnet.npy</c>'s own format, so that a fine-tuned model is read by everything
/// that reads the original: <see cref="WeightFile.Load"/>, and the TensorFlow fine-tuning code's
/// <c>np.load(path, encoding='bytes', allow_pickle=True).item()</c>, which then gives the same key types as
/// for <c>bvlc_alexnet.npy</c> (byte strings), so its <c>for op_name in weights_dict</c> loop runs unchanged.
/// </summary>
/// <remarks>
/// The file is what Python 2 numpy's <c>np.save(path, dict)</c> wrote (docs/model.md, "The weight file"):
/// an <c>.npy</c> 1.0 header for a 0-d object array (<c>descr '|O'</c>, what every numpy reads; Python 2
/// wrote <c>'|O8'</c>, which numpy now deprecates), then a pickle in protocol 2 with Python 2's types —
/// layer names, dtype codes and array data are byte strings (<c>SHORT_BINSTRING</c>/<c>BINSTRING</c>), so
/// <c>encoding='bytes'</c> gives <c>b'conv1'</c> and <c>encoding='latin1'</c> gives <c>'conv1'</c>. The
/// pickle rebuilds the object array with <c>numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), 'b')</c>
/// and <c>BUILD (1, (), dtype('O8', 0, 1), False, [dict])</c>; the dict maps each layer, in network order,
/// to <c>[W, b]</c>, each array rebuilt the same way with <c>dtype('f4', 0, 1)</c> (state
/// <c>(3, '&lt;', None, None, None, -1, -1, 0)</c>) and its raw little-endian float32 bytes, C order.
/// Unlike cPickle, nothing is memoised (no <c>BINPUT</c>): no object is used twice, so the memo would
/// only cost bytes. numpy 2 still resolves the <c>numpy.core</c> module name of such pickles.
/// </remarks>
public static class WeightFileWriter
{
    /// <summary>
    /// Writes weights as a file in bvlc_alexnet.npy's own format (a .npy holding a 0-d object array whose
    /// pickle is a dict layer name -> [weights ndarray float32, biases ndarray float32], shapes as
    /// <see cref="AlexNetArchitecture"/>/<see cref="LayerSpec"/> give them, fc8 sized for
    /// <see cref="AlexNetWeights.NumClasses"/>). Atomic: written to a temporary file in the same folder,
    /// flushed, then renamed over <paramref name="path"/>. A NaN or infinity is refused (an
    /// <see cref="AlexNetException"/> naming the layer and index), and so is a path that is a folder or
    /// cannot be written; an existing file at <paramref name="path"/> is then left as it was.
    /// </summary>
    public static void Write(string path, AlexNetWeights weights)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(weights);
        if (Directory.Exists(path)) throw new AlexNetException($"cannot write {path}: it is a folder; give the weight file's own path (e.g. {Path.Combine(path, "model.npy")})");
        foreach (LayerWeights layer in weights.Layers)
        {
            CheckLength(path, layer.Name, "weight", layer.Weight.LongLength, layer.Spec.WeightCount);
            CheckLength(path, layer.Name, "bias", layer.Bias.LongLength, layer.Spec.OutputChannels);
        }
        // The values are checked as each layer is written, in the same pass: a refusal then costs the
        // temporary file, which is removed, and never the file already at the path.
        NpyWriter.WriteAtomically(path, stream => new PickleStream(stream).WriteFile(path, weights));
    }

    private static void CheckLength(string path, string layer, string what, long have, long need)
    {
        if (have != need)
            throw new AlexNetException($"cannot write {path}: layer '{layer}' {what} holds {have} values but its shape needs {need}");
        // BINSTRING's length is a signed 32-bit count of bytes.
        if (have * sizeof(float) > int.MaxValue)
            throw new AlexNetException($"cannot write {path}: layer '{layer}' {what} is {have * sizeof(float)} bytes, more than the {int.MaxValue} a protocol-2 byte string can hold");
    }

    /// <summary>The opcodes of pickle protocol 2 that the file uses, written straight to the stream.</summary>
    private sealed class PickleStream(Stream s)
    {
        private const string Reconstruct = "numpy.core.multiarray\n_reconstruct\n";

        public void WriteFile(string path, AlexNetWeights weights)
        {
            WriteHeader();
            Op(0x80); Op(2);                                   // PROTO 2
            EmptyArray();
            Op('('); Int(1); Op(')');                          // MARK 1 () : state (1, shape (), …
            DType("O8", '|', 63);                              // the object dtype, flags as numpy gives them
            Op(0x89);                                          // NEWFALSE: not Fortran order
            Op(']');                                           // [ …the data of an object array is a list
            Op('}');                                           // { …of its one item, the dict
            Op('(');
            foreach (LayerWeights layer in weights.Layers)
            {
                Str(Encoding.ASCII.GetBytes(layer.Name));
                Op(']'); Op('(');
                FloatArray(path, layer.Name, "weight", layer.Weight, layer.WeightShape);
                FloatArray(path, layer.Name, "bias", layer.Bias, layer.BiasShape);
                Op('e');                                       // APPENDS
            }
            Op('u');                                           // SETITEMS
            Op('a');                                           // APPEND the dict to the list
            Op('t');                                           // TUPLE: the state
            Op('b');                                           // BUILD
            Op('.');                                           // STOP
        }

        /// <summary>The .npy 1.0 header of a 0-d object array, padded to 64 bytes as numpy pads it.</summary>
        private void WriteHeader()
        {
            const string dict = "{'descr': '|O', 'fortran_order': False, 'shape': (), }";
            int unpadded = 10 + dict.Length + 1;
            int total = (unpadded + 63) / 64 * 64;
            s.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
            Span<byte> length = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16LittleEndian(length, (ushort)(total - 10));
            s.Write(length);
            s.Write(Encoding.ASCII.GetBytes(dict + new string(' ', total - unpadded) + "\n"));
        }

        /// <summary><c>_reconstruct(numpy.ndarray, (0,), 'b')</c>: an empty array that BUILD then fills.</summary>
        private void EmptyArray()
        {
            Op('c'); s.Write(Encoding.ASCII.GetBytes(Reconstruct));
            Op('c'); s.Write("numpy\nndarray\n"u8);
            Int(0); Op(0x85);                                  // (0,)
            Str("b"u8);
            Op(0x87);                                          // TUPLE3
            Op('R');                                           // REDUCE
        }

        /// <summary><c>numpy.dtype(code, 0, 1)</c> then BUILD <c>(3, order, None, None, None, -1, -1, flags)</c>.</summary>
        private void DType(string code, char order, int flags)
        {
            Op('c'); s.Write("numpy\ndtype\n"u8);
            Str(Encoding.ASCII.GetBytes(code)); Int(0); Int(1); Op(0x87); Op('R');
            Op('('); Int(3); Str([(byte)order]); Op('N'); Op('N'); Op('N'); Int(-1); Int(-1); Int(flags); Op('t');
            Op('b');
        }

        private void FloatArray(string path, string layer, string what, float[] data, int[] shape)
        {
            EmptyArray();
            Op('('); Int(1);
            if (shape.Length is >= 1 and <= 3)
            {
                foreach (int d in shape) Int(d);
                Op((byte)(0x84 + shape.Length));               // TUPLE1, TUPLE2, TUPLE3
            }
            else
            {
                Op('(');
                foreach (int d in shape) Int(d);
                Op('t');
            }
            DType("f4", '<', 0);
            Op(0x89);
            int first = FirstNonFinite(data);
            if (first >= 0)
                throw new AlexNetException($"cannot write {path}: layer '{layer}' {what} holds {(float.IsNaN(data[first]) ? "NaN" : data[first] > 0 ? "+inf" : "-inf")} at index {first}; weights must be finite (the training diverged?)");
            ReadOnlySpan<byte> bytes = MemoryMarshal.AsBytes(data.AsSpan());
            if (bytes.Length < 256) { Op('U'); Op((byte)bytes.Length); }
            else { Op('T'); Int32(bytes.Length); }
            if (BitConverter.IsLittleEndian) s.Write(bytes);
            else
            {
                Span<byte> one = stackalloc byte[4];
                foreach (float v in data) { BinaryPrimitives.WriteSingleLittleEndian(one, v); s.Write(one); }
            }
            Op('t');
            Op('b');
        }

        private static int FirstNonFinite(float[] data)
        {
            for (int i = 0; i < data.Length; i++)
                if (!float.IsFinite(data[i])) return i;
            return -1;
        }

        private void Op(char c) => s.WriteByte((byte)c);

        private void Op(byte b) => s.WriteByte(b);

        /// <summary>A Python 2 str: SHORT_BINSTRING (names and codes are short).</summary>
        private void Str(ReadOnlySpan<byte> text)
        {
            Op('U'); Op((byte)text.Length);
            s.Write(text);
        }

        private void Int(int v)
        {
            if (v is >= 0 and < 256) { Op('K'); Op((byte)v); }
            else if (v is >= 0 and < 65536)
            {
                Op('M');
                Span<byte> b = stackalloc byte[2];
                BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)v);
                s.Write(b);
            }
            else { Op('J'); Int32(v); }
        }

        private void Int32(int v)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(b, v);
            s.Write(b);
        }
    }
}
