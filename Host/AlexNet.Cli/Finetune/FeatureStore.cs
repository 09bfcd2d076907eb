using System.Runtime.InteropServices;
using AlexNet.Cuda;

namespace AlexNet.Cli.Finetune;

/// <summary>
/// The frozen part's output (pool5) of every training and validation image, and of every mirrored training image
/// with <c>--flip</c>, computed once: while only fully connected layers train it does not change, so each later
/// epoch costs only the head. Entries are kept in memory up to a budget (<c>--feature-memory</c>); the rest go to a
/// temporary file beside the output, deleted when the run ends. 36 KiB per entry (9216 floats).
/// </summary>
internal sealed class FeatureStore : IDisposable
{
    private readonly int _floats;
    private readonly long _memoryEntries;
    private readonly List<float[]> _memory = [];
    private readonly string _spillPath;
    private FileStream? _spill;
    private long _spilled;
    private readonly Dictionary<int, long> _where = []; // key → index (memory) or −(slot + 1) (spill file)

    public FeatureStore(int floatsPerEntry, long memoryBytes, string spillFolder)
    {
        _floats = floatsPerEntry;
        _memoryEntries = Math.Max(0, memoryBytes / ((long)floatsPerEntry * sizeof(float)));
        _spillPath = Path.Combine(spillFolder, $".alexnet-features.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
    }

    public int Count => _where.Count;

    /// <summary>Entries that went to the spill file.</summary>
    public long Spilled => _spilled;

    public long MemoryBytes => (long)_memory.Count * _floats * sizeof(float);

    public void Add(int key, ReadOnlySpan<float> features)
    {
        if (features.Length != _floats) throw new ArgumentException($"an entry is {_floats} floats, not {features.Length}", nameof(features));
        if (_memory.Count < _memoryEntries)
        {
            _where[key] = _memory.Count;
            _memory.Add(features.ToArray());
            return;
        }
        try
        {
            _spill ??= new FileStream(_spillPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
            RandomAccess.Write(_spill.SafeFileHandle, MemoryMarshal.AsBytes(features), _spilled * _floats * sizeof(float));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AlexNetException($"the features beyond --feature-memory cannot be kept in {Path.GetDirectoryName(_spillPath)}: {e.Message.ReplaceLineEndings(" ").TrimEnd('.')}; give more --feature-memory", e);
        }
        _where[key] = -(_spilled + 1);
        _spilled++;
    }

    public bool Contains(int key) => _where.ContainsKey(key);

    public void Read(int key, Span<float> destination)
    {
        long at = _where[key];
        if (at >= 0)
        {
            _memory[(int)at].CopyTo(destination);
            return;
        }
        long slot = -at - 1;
        int read = RandomAccess.Read(_spill!.SafeFileHandle, MemoryMarshal.AsBytes(destination[.._floats]), slot * _floats * sizeof(float));
        if (read != _floats * sizeof(float)) throw new AlexNetException($"the feature spill file {_spillPath} was cut short");
    }

    public void Dispose() => _spill?.Dispose();
}
