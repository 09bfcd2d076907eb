using System.Globalization;

namespace AlexNet.Imaging;

/// <summary>
/// Where a decoder asks for the memory one decode will take, once it knows the image's size from the header
/// and before it allocates any pixel buffer. The answer is a lease, held by the <see cref="DecodedImage"/>
/// until it is disposed; a decoder that cannot have the memory refuses the image.
/// </summary>
public abstract class DecodeMemory
{
    /// <summary>No limit: every request is granted at once (for callers that bound memory otherwise).</summary>
    public static DecodeMemory Unlimited { get; } = new UnlimitedMemory();

    /// <summary>
    /// Waits until <paramref name="bytes"/> can be had, and returns the lease. Throws
    /// <see cref="ImageDecodeException"/> for <paramref name="path"/> when the request can never be granted.
    /// </summary>
    public abstract IDisposable Reserve(string path, long bytes);

    /// <summary>
    /// <see cref="Reserve(string, long)"/>, saying how much of <paramref name="bytes"/> is the decoded image
    /// itself (<paramref name="imageBytes"/>), which outlives the decode: a decode worker process's parent
    /// needs as much again for its copy.
    /// </summary>
    public virtual IDisposable Reserve(string path, long bytes, long imageBytes) => Reserve(path, bytes);

    private sealed class UnlimitedMemory : DecodeMemory
    {
        public override IDisposable Reserve(string path, long bytes) => NoLease.Instance;
    }

    internal sealed class NoLease : IDisposable
    {
        public static readonly NoLease Instance = new();

        public void Dispose()
        {
        }
    }
}

/// <summary>
/// A budget for the decode buffers of all workers together: a decode waits until its bytes fit beside those
/// already granted, in the order the requests came (a large image is not starved by a stream of small ones),
/// and one that needs more than the whole budget on its own is refused with the reason. So a folder of small
/// files whose headers declare 10000×10000 pixels costs at most the budget, on 2 cores or 64.
/// </summary>
public sealed class DecodeMemoryBudget : DecodeMemory
{
    private readonly object _lock = new();
    private readonly LinkedList<long> _waiting = new();
    private long _granted;

    public DecodeMemoryBudget(long totalBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(totalBytes, 1);
        TotalBytes = totalBytes;
    }

    public long TotalBytes { get; }

    /// <summary>Bytes granted and not yet released (for tests and statistics).</summary>
    public long GrantedBytes
    {
        get { lock (_lock) return _granted; }
    }

    /// <summary>The most bytes granted at once so far.</summary>
    public long PeakBytes { get; private set; }

    /// <summary>
    /// A quarter of the memory this process may use (the machine's, or its container's limit, as the GC
    /// sees it), at least 256 MiB: the decoders get a share and the model, the batch buffers and the
    /// rest of the machine keep theirs.
    /// </summary>
    public static long DefaultBytes()
    {
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return Math.Max(256L << 20, available / 4 >> 20 << 20); // whole MiB, as help shows it
    }

    public override IDisposable Reserve(string path, long bytes)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes > TotalBytes)
            throw new ImageDecodeException(path,
                $"needs {Mebibytes(bytes)} to decode, more than the decode memory budget of {Mebibytes(TotalBytes)} (raise it with --decode-memory)");
        lock (_lock)
        {
            LinkedListNode<long> turn = _waiting.AddLast(bytes);
            while (_waiting.First != turn || _granted + bytes > TotalBytes) Monitor.Wait(_lock);
            _waiting.RemoveFirst();
            _granted += bytes;
            PeakBytes = Math.Max(PeakBytes, _granted);
            // The next in line may fit too.
            Monitor.PulseAll(_lock);
        }
        return new Lease(this, bytes);
    }

    private void Release(long bytes)
    {
        lock (_lock)
        {
            _granted -= bytes;
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>"667 MiB": a byte count as the messages give it.</summary>
    public static string Mebibytes(long bytes) =>
        string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:0.#} MiB");

    private sealed class Lease(DecodeMemoryBudget budget, long bytes) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) budget.Release(bytes);
        }
    }
}
