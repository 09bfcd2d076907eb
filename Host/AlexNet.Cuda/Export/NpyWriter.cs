using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;

namespace AlexNet.Cuda.Export;

/// <summary>
/// Writes float32 arrays as numpy files: one array as <c>.npy</c> (format 1.0, <c>&lt;f4</c>, C order, the
/// header padded so the data starts on a 64-byte boundary, as numpy writes it), several as <c>.npz</c> (a zip
/// of <c>NAME.npy</c> members, stored uncompressed like <c>np.savez</c>). Files appear atomically: written to a
/// temporary name in the same folder, then renamed, so a reader never sees half a file under the final name.
/// </summary>
public static class NpyWriter
{
    /// <summary>Writes one array to <paramref name="path"/> as .npy.</summary>
    public static void WriteNpy(string path, ReadOnlySpan<float> data, ReadOnlySpan<int> shape)
    {
        CheckShape(data.Length, shape);
        float[] copy = data.ToArray();
        int[] dims = shape.ToArray();
        WriteAtomically(path, stream => WriteArray(stream, copy, dims));
    }

    /// <summary>Writes several named arrays to <paramref name="path"/> as .npz (members <c>NAME.npy</c>, in the given order).</summary>
    public static void WriteNpz(string path, IReadOnlyList<(string Name, float[] Data, int[] Shape)> arrays)
    {
        foreach ((string name, float[] data, int[] shape) in arrays)
        {
            CheckShape(data.Length, shape);
            if (name.Length == 0 || name.AsSpan().IndexOfAny('/', '\\') >= 0)
                throw new ArgumentException($"'{name}' is not a usable .npz member name", nameof(arrays));
        }
        WriteAtomically(path, stream =>
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            foreach ((string name, float[] data, int[] shape) in arrays)
            {
                ZipArchiveEntry entry = zip.CreateEntry(name + ".npy", CompressionLevel.NoCompression);
                using Stream member = entry.Open();
                WriteArray(member, data, shape);
            }
        });
    }

    /// <summary>The .npy header for a little-endian float32 C-order array of <paramref name="shape"/>.</summary>
    public static byte[] Header(ReadOnlySpan<int> shape)
    {
        var dims = new StringBuilder();
        foreach (int d in shape) dims.Append(d).Append(", ");
        string tuple = shape.Length == 1 ? $"({shape[0]},)" : $"({dims.ToString().TrimEnd(',', ' ')})";
        string dict = $"{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}";
        // magic (6) + version (2) + header length (2) + dict + padding + '\n', a multiple of 64.
        int unpadded = 10 + dict.Length + 1;
        int total = (unpadded + 63) / 64 * 64;
        var header = new byte[total];
        header[0] = 0x93;
        Encoding.ASCII.GetBytes("NUMPY").CopyTo(header, 1);
        header[6] = 1;
        header[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), (ushort)(total - 10));
        Encoding.ASCII.GetBytes(dict).CopyTo(header, 10);
        header.AsSpan(10 + dict.Length, total - 11 - dict.Length).Fill((byte)' ');
        header[^1] = (byte)'\n';
        return header;
    }

    /// <summary>Writes what <paramref name="write"/> writes to <paramref name="path"/> atomically, as the arrays are
    /// written: a temporary file in the same folder, flushed, then renamed over the path; a failure is one line
    /// naming the path and the cause, and leaves no temporary file and any earlier file as it was.</summary>
    public static void WriteFile(string path, Action<Stream> write) => WriteAtomically(path, write);

    /// <summary>One float32 array as a .npy (header and data) onto <paramref name="stream"/>: an .npz member, say.</summary>
    public static void WriteArray(Stream stream, float[] data, int[] shape)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(data);
        CheckShape(data.Length, shape);
        stream.Write(Header(shape));
        if (BitConverter.IsLittleEndian)
        {
            stream.Write(MemoryMarshal.AsBytes(data.AsSpan()));
            return;
        }
        var buffer = new byte[4];
        foreach (float v in data)
        {
            BinaryPrimitives.WriteSingleLittleEndian(buffer, v);
            stream.Write(buffer);
        }
    }

    private static void CheckShape(int length, ReadOnlySpan<int> shape)
    {
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException("array dimensions cannot be negative", nameof(shape));
            count *= d;
        }
        if (count != length) throw new ArgumentException($"shape ({string.Join(", ", shape.ToArray())}) holds {count} values, the data {length}", nameof(shape));
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 to <paramref name="path"/>, atomically like the arrays.</summary>
    public static void WriteText(string path, string text) =>
        WriteAtomically(path, stream => stream.Write(new System.Text.UTF8Encoding(false).GetBytes(text)));

    /// <summary>
    /// Throws the error a later write to <paramref name="path"/> would meet (the folder missing or not
    /// writable, the path a folder), by creating and removing a file beside it, so a command can refuse its
    /// output before doing the work.
    /// </summary>
    public static void CheckWritable(string path)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new AlexNetException($"cannot write {path}: it is a folder");
        WriteAtomically(path, _ => { }, keep: false);
    }

    // The temporary file is the writer's business: the message names the folder and the cause.
    private static string Reason(Exception e, string temp, string folder) => e switch
    {
        UnauthorizedAccessException => $"permission denied in {folder}",
        _ => e.Message.Replace(temp, folder, StringComparison.Ordinal).ReplaceLineEndings(" ").TrimEnd('.'),
    };

    internal static void WriteAtomically(string path, Action<Stream> write, bool keep = true)
    {
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(folder)) throw new AlexNetException($"cannot write {path}: the folder {folder} does not exist");
        string temp = Path.Combine(folder, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            if (keep) File.Move(temp, full, overwrite: true);
            else File.Delete(temp);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new AlexNetException($"cannot write {path}: {Reason(e, temp, folder)}", e);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
