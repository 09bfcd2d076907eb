using AlexNet.Cuda.Devices;

namespace AlexNet.Cuda.Network;

/// <summary>What <see cref="ForwardGraphs{TOutputs}"/> needs of a stream: the seam its tests replace.</summary>
internal interface IGraphRecorder
{
    /// <summary>Records the work <paramref name="queue"/> puts on the stream, without running it, and makes it
    /// replayable; an <see cref="AlexNetException"/> when the capture or the instantiation fails, after which the
    /// stream is usable again.</summary>
    IRecordedPass Capture(Action queue);
}

/// <summary>A recorded pass: <see cref="Launch"/> queues one replay.</summary>
internal interface IRecordedPass : IDisposable
{
    void Launch();
}

/// <summary>Graphs of a <see cref="ComputeStream"/>, replayed on that same stream.</summary>
internal sealed class StreamGraphRecorder(ComputeStream stream) : IGraphRecorder
{
    public IRecordedPass Capture(Action queue) => new Recorded(stream.Capture(queue), stream);

    private sealed class Recorded(DeviceGraph graph, ComputeStream stream) : IRecordedPass
    {
        public void Launch() => graph.Launch(stream);

        public void Dispose() => graph.Dispose();
    }
}

/// <summary>
/// A model's forward pass as one graph per batch size. The first pass at a size runs launch by launch, as the
/// stream pass does, and is then captured (capturing runs nothing): so whatever the pass sets up on first use
/// is done outside the capture, and that first pass costs no more than the capture. Every later pass at that
/// size is one replay. At most <see cref="Capacity"/> sizes are kept: capturing one more destroys the least
/// recently used. A size whose capture fails runs launch by launch from then on, never captured again, and
/// the failure is kept, one line per size (<see cref="Failures"/>). A replay costs no managed allocation.
/// <para>
/// A replay runs the captured launches with their captured arguments, so the pass must read and write the same
/// buffers at the same size every time (the model's are allocated once, at load), and what it produced (which
/// buffer holds the probabilities) is kept with the graph: <typeparamref name="TOutputs"/>.
/// </para>
/// </summary>
internal sealed class ForwardGraphs<TOutputs> : IDisposable
{
    /// <summary>Sizes kept by default: a service sees a few batch sizes (full batches and the last, partial one).</summary>
    public const int DefaultCapacity = 8;

    private readonly IGraphRecorder _recorder;
    private readonly Func<int, TOutputs> _streamPass;
    // Most recently used first; the nodes move, never reallocated, so a replay allocates nothing.
    private readonly LinkedList<Entry> _order = new();
    private readonly Dictionary<int, LinkedListNode<Entry>> _graphs = [];
    private readonly Dictionary<int, string> _failures = [];
    private bool _disposed;

    private sealed record Entry(int Batch, IRecordedPass Graph, TOutputs Outputs);

    /// <param name="recorder">Captures and instantiates.</param>
    /// <param name="streamPass">Queues the pass over the given number of images launch by launch and says what it
    /// produced; called for the first pass at a size, once more inside the capture, and for every pass at a size
    /// whose capture failed.</param>
    /// <param name="capacity">Graphs kept at most.</param>
    public ForwardGraphs(IGraphRecorder recorder, Func<int, TOutputs> streamPass, int capacity = DefaultCapacity)
    {
        ArgumentNullException.ThrowIfNull(recorder);
        ArgumentNullException.ThrowIfNull(streamPass);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _recorder = recorder;
        _streamPass = streamPass;
        Capacity = capacity;
    }

    public int Capacity { get; }

    /// <summary>Batch sizes with a graph now, most recently used first.</summary>
    public IReadOnlyList<int> Captured => [.. _order.Select(e => e.Batch)];

    /// <summary>Batch sizes whose capture failed, each with the one-line reason; they run launch by launch.</summary>
    public IReadOnlyDictionary<int, string> Failures => _failures;

    /// <summary>Captures so far, and graphs destroyed to make room for another size.</summary>
    public int Captures { get; private set; }

    public int Evictions { get; private set; }

    /// <summary>Passes that were one replay of a graph.</summary>
    public long Replays { get; private set; }

    /// <summary>True when the next pass over <paramref name="batch"/> images is a replay.</summary>
    public bool HasGraph(int batch) => _graphs.ContainsKey(batch);

    /// <summary>Queues the pass over <paramref name="batch"/> images: a replay of its graph when it has one,
    /// otherwise launch by launch (capturing it afterwards when it is the size's first pass). Returns what the
    /// pass produced.</summary>
    public TOutputs Run(int batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_graphs.TryGetValue(batch, out LinkedListNode<Entry>? node))
        {
            if (!ReferenceEquals(_order.First, node))
            {
                _order.Remove(node);
                _order.AddFirst(node);
            }
            node.Value.Graph.Launch();
            Replays++;
            return node.Value.Outputs;
        }
        TOutputs outputs = _streamPass(batch);
        if (!_failures.ContainsKey(batch)) TryCapture(batch);
        return outputs;
    }

    private void TryCapture(int batch)
    {
        TOutputs captured = default!;
        IRecordedPass graph;
        try
        {
            graph = _recorder.Capture(() => captured = _streamPass(batch));
        }
        catch (AlexNetException e)
        {
            _failures[batch] = e.Message;
            return;
        }
        Captures++;
        if (_graphs.Count >= Capacity)
        {
            LinkedListNode<Entry> oldest = _order.Last!;
            _order.RemoveLast();
            _graphs.Remove(oldest.Value.Batch);
            oldest.Value.Graph.Dispose();
            Evictions++;
        }
        _graphs[batch] = _order.AddFirst(new Entry(batch, graph, captured));
    }

    /// <summary>Destroys every graph; never throws.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (Entry entry in _order) entry.Graph.Dispose();
        _order.Clear();
        _graphs.Clear();
    }
}
