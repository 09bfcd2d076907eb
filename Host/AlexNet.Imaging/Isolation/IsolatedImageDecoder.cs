using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using AlexNet.Cuda;

namespace AlexNet.Imaging.Isolation;

/// <summary>How to start a decode worker process: a program and its arguments (for the CLI, itself with a hidden command).</summary>
public sealed record DecodeWorkerCommand(string FileName, IReadOnlyList<string> Arguments);

/// <summary>
/// A decoder that runs another one (by name, see <see cref="ImageDecoders"/>) in worker processes, for a
/// library that cannot be trusted with crafted files in the caller's process: a file that crashes the worker,
/// keeps it busy past <see cref="Timeout"/> or grows it past the memory it was granted gets an error record,
/// the worker is stopped and the next file gets a fresh one. Each calling thread uses one worker at a time, so
/// there are as many workers as threads decoding at once. The memory a worker asks for is taken from the
/// caller's <see cref="ImageDecodeOptions.Memory"/> (with its own working margin, <see cref="WorkerMarginBytes"/>),
/// and a watchdog holds the worker to it.
/// </summary>
public sealed class IsolatedImageDecoder : IImageDecoder, IDisposable
{
    /// <summary>What a worker may use beyond the decode's own estimate (the library's scratch buffers, the
    /// header read before the estimate exists), and is granted from the budget for every decode.</summary>
    public const long WorkerMarginBytes = 64L << 20;

    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan WatchInterval = TimeSpan.FromMilliseconds(20);

    private readonly DecodeWorkerCommand _command;
    private readonly string _decoderName;
    private readonly ConcurrentBag<Worker> _idle = [];
    private readonly ConcurrentDictionary<Worker, byte> _all = new();
    private readonly Thread _watchdog;
    private volatile bool _disposed;

    /// <summary>
    /// Starts one worker for <paramref name="decoderName"/> and waits for it to say which decoder it runs, so a
    /// worker that cannot start is one error now rather than one per file.
    /// </summary>
    public IsolatedImageDecoder(string decoderName, DecodeWorkerCommand command, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(decoderName);
        ArgumentNullException.ThrowIfNull(command);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        _decoderName = decoderName;
        _command = command;
        Timeout = timeout;
        _watchdog = new Thread(Watch) { IsBackground = true, Name = "decode worker watchdog" };
        _watchdog.Start();
        Worker first = Start();
        Name = $"{first.DecoderName} (in worker processes)";
        _idle.Add(first);
    }

    public string Name { get; }

    /// <summary>The longest one file may take to decode (waiting for memory does not count).</summary>
    public TimeSpan Timeout { get; }

    /// <summary>Workers started so far, the first included: more than the threads means some were stopped.</summary>
    public int WorkersStarted => _started;

    private int _started;

    public DecodedImage Decode(string path, ImageDecodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(options);
        ObjectDisposedException.ThrowIf(_disposed, this);
        Worker worker;
        try
        {
            worker = _idle.TryTake(out Worker? idle) ? idle : Start();
        }
        catch (AlexNetException e)
        {
            throw new ImageDecodeException(path, $"{e.Message}; the file was skipped", e);
        }
        IDisposable lease;
        try
        {
            lease = options.Memory.Reserve(path, WorkerMarginBytes);
        }
        catch
        {
            _idle.Add(worker);
            throw;
        }
        bool healthy = false;
        try
        {
            DecodedImage image = Exchange(worker, path, options, ref lease);
            image.Hold(lease);
            healthy = true;
            return image;
        }
        catch (ImageDecodeException) when (worker.IsAlive)
        {
            lease.Dispose();
            healthy = true;
            throw;
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            lease.Dispose();
            throw new ImageDecodeException(path, $"the {_decoderName} decoder's worker process failed ({e.Message.ReplaceLineEndings(" ")}); the file was skipped", e);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
        finally
        {
            worker.Disarm();
            if (healthy && !_disposed) _idle.Add(worker);
            else Stop(worker);
        }
    }

    /// <summary>One request: the decode, the worker's memory request, and its answer.</summary>
    private DecodedImage Exchange(Worker worker, string path, ImageDecodeOptions options, ref IDisposable lease)
    {
        byte[] pathBytes = Encoding.UTF8.GetBytes(path);
        var request = new byte[13 + pathBytes.Length];
        BinaryPrimitives.WriteInt64LittleEndian(request, options.MaxPixels);
        BinaryPrimitives.WriteInt32LittleEndian(request.AsSpan(8), options.TargetShortSide);
        request[12] = options.FastDecode ? (byte)1 : (byte)0;
        pathBytes.CopyTo(request, 13);

        long baseline = worker.ResidentBytes();
        worker.Arm(Timeout, baseline + WorkerMarginBytes);
        try
        {
            worker.Requests.Write(FrameType.Decode, request);
            while (true)
            {
                (FrameType type, long length) = worker.Replies.ReadHeader() ?? throw Ended(worker, path);
                switch (type)
                {
                    case FrameType.Reserve:
                    {
                        byte[] payload = worker.Replies.ReadSmallPayload(length) ?? throw Ended(worker, path);
                        long bytes = BinaryPrimitives.ReadInt64LittleEndian(payload);
                        long imageBytes = BinaryPrimitives.ReadInt64LittleEndian(payload.AsSpan(8));
                        // The margin is given back before the whole is asked for, so that a thread waiting for
                        // memory holds none (no two waiters can block each other).
                        worker.Disarm();
                        lease.Dispose();
                        lease = DecodeMemory.NoLease.Instance;
                        try
                        {
                            lease = options.Memory.Reserve(path, WorkerMarginBytes + bytes + imageBytes);
                        }
                        catch (ImageDecodeException refused)
                        {
                            worker.Arm(Timeout, baseline + WorkerMarginBytes);
                            worker.Requests.Write(FrameType.Refused, refused.Problem);
                            break;
                        }
                        worker.Arm(Timeout, baseline + WorkerMarginBytes + bytes);
                        worker.Requests.Write(FrameType.Granted, []);
                        break;
                    }
                    case FrameType.Image:
                        return ReadImage(worker, path, length);
                    case FrameType.Error:
                    {
                        byte[] problem = worker.Replies.ReadSmallPayload(length) ?? throw Ended(worker, path);
                        throw new ImageDecodeException(path, Encoding.UTF8.GetString(problem));
                    }
                    default:
                        throw new InvalidDataException($"unexpected {type} from the decode worker");
                }
            }
        }
        catch (IOException e) when (e is not EndOfStreamException)
        {
            // A broken pipe: the worker ended while the request was being written.
            throw Ended(worker, path);
        }
    }

    private DecodedImage ReadImage(Worker worker, string path, long length)
    {
        Span<byte> size = stackalloc byte[8];
        if (!worker.Replies.ReadPayload(size)) throw Ended(worker, path);
        int width = BinaryPrimitives.ReadInt32LittleEndian(size), height = BinaryPrimitives.ReadInt32LittleEndian(size[4..]);
        if (width <= 0 || height <= 0 || 8 + 3L * width * height != length)
            throw new InvalidDataException($"a {width}×{height} image in a {length}-byte frame from the decode worker");
        var image = new DecodedImage(width, height);
        if (!worker.Replies.ReadPayload(image.Writable))
        {
            image.Dispose();
            throw Ended(worker, path);
        }
        return image;
    }

    /// <summary>Why the worker stopped answering, as the file's problem.</summary>
    private ImageDecodeException Ended(Worker worker, string path)
    {
        string? stopped = worker.StopReason;
        if (stopped is null)
        {
            worker.WaitForExit();
            stopped = worker.CrashDescription();
        }
        return new ImageDecodeException(path, $"the {_decoderName} decoder {stopped}; the file was skipped");
    }

    private Worker Start()
    {
        var info = new ProcessStartInfo(_command.FileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in _command.Arguments) info.ArgumentList.Add(argument);
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException("no process");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
        {
            throw new AlexNetException($"the {_decoderName} decoder's worker process could not start ({_command.FileName}: {e.Message.ReplaceLineEndings(" ")})", e);
        }
        var worker = new Worker(process);
        _all[worker] = 0;
        Interlocked.Increment(ref _started);
        // The first frame says which decoder it runs; a worker that does not say so in time is no worker.
        worker.Arm(StartTimeout, long.MaxValue);
        try
        {
            (FrameType Type, long Length)? hello = worker.Replies.ReadHeader();
            byte[]? name = hello is { Type: FrameType.Hello } h ? worker.Replies.ReadSmallPayload(h.Length) : null;
            if (name is null)
            {
                worker.WaitForExit();
                string why = worker.StopReason ?? worker.CrashDescription();
                Stop(worker);
                throw new AlexNetException($"the {_decoderName} decoder's worker process did not start: it {why}");
            }
            worker.DecoderName = Encoding.UTF8.GetString(name);
            return worker;
        }
        finally
        {
            worker.Disarm();
        }
    }

    private void Stop(Worker worker)
    {
        _all.TryRemove(worker, out _);
        worker.Dispose();
    }

    /// <summary>Stops workers past their deadline or their memory; the thread reading their replies then sees
    /// the pipe end and reads the reason.</summary>
    private void Watch()
    {
        while (!_disposed)
        {
            foreach (Worker worker in _all.Keys) worker.Enforce(_decoderName);
            Thread.Sleep(WatchInterval);
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (Worker worker in _all.Keys) Stop(worker);
        _watchdog.Join();
    }

    /// <summary>One worker process: its pipes, its limits while a request is in flight, and why it was stopped.</summary>
    private sealed class Worker : IDisposable
    {
        private static readonly long PageBytes = Environment.SystemPageSize;

        private readonly Process _process;
        private readonly object _lock = new();
        private readonly Queue<string> _stderr = new();
        private long _deadlineTicks = long.MaxValue;
        private long _memoryLimit = long.MaxValue;
        private TimeSpan _armedFor;
        private volatile string? _stopReason;

        public Worker(Process process)
        {
            _process = process;
            Requests = new FrameStream(process.StandardInput.BaseStream);
            Replies = new FrameStream(process.StandardOutput.BaseStream);
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (_stderr)
                {
                    _stderr.Enqueue(e.Data);
                    if (_stderr.Count > 40) _stderr.Dequeue();
                }
            };
            process.BeginErrorReadLine();
        }

        public FrameStream Requests { get; }

        public FrameStream Replies { get; }

        public string DecoderName { get; set; } = "";

        public string? StopReason => _stopReason;

        public bool IsAlive => _stopReason is null && !_process.HasExited;

        public void Arm(TimeSpan timeout, long memoryLimit)
        {
            lock (_lock)
            {
                _armedFor = timeout;
                _deadlineTicks = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
                _memoryLimit = memoryLimit;
            }
        }

        public void Disarm()
        {
            lock (_lock)
            {
                _deadlineTicks = long.MaxValue;
                _memoryLimit = long.MaxValue;
            }
        }

        /// <summary>The worker's resident memory, from /proc; 0 when it cannot be read.</summary>
        public long ResidentBytes()
        {
            try
            {
                string statm = File.ReadAllText($"/proc/{_process.Id}/statm");
                string[] fields = statm.Split(' ');
                return fields.Length > 1 && long.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out long pages) ? pages * PageBytes : 0;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                return 0;
            }
        }

        public void Enforce(string decoderName)
        {
            long deadline, limit;
            TimeSpan armedFor;
            lock (_lock) (deadline, limit, armedFor) = (_deadlineTicks, _memoryLimit, _armedFor);
            if (deadline == long.MaxValue || _stopReason is not null) return;
            if (Stopwatch.GetTimestamp() > deadline)
                Kill(string.Create(CultureInfo.InvariantCulture, $"took more than {armedFor.TotalSeconds:0.#} s on this file and was stopped (the limit is --decode-timeout)"));
            else if (limit != long.MaxValue && ResidentBytes() is long resident && resident > limit)
                Kill($"needed more than {DecodeMemoryBudget.Mebibytes(limit)} for this file and was stopped (more than the size its header declares can need)");
        }

        private void Kill(string reason)
        {
            _stopReason = reason;
            try
            {
                _process.Kill();
            }
            catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // It ended on its own meanwhile.
            }
        }

        /// <summary>Waits (up to 5 s) for the process to end and its error output to be read to the end.</summary>
        public void WaitForExit()
        {
            if (_process.WaitForExit(TimeSpan.FromSeconds(5))) _process.WaitForExit();
        }

        /// <summary>"crashed on this file (its worker process ended with exit code 134: System.AccessViolationException …)".</summary>
        public string CrashDescription()
        {
            string code = _process.HasExited ? $"ended with exit code {_process.ExitCode}" : "stopped answering";
            string? cause;
            lock (_stderr) cause = _stderr.FirstOrDefault(l => l.StartsWith("System.", StringComparison.Ordinal) || l.Contains("Exception", StringComparison.Ordinal));
            string name = cause is null ? "" : $": {cause.Split(':')[0].Trim()}";
            return $"crashed on this file (its worker process {code}{name})";
        }

        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            try
            {
                _process.StandardInput.Close(); // the worker ends at the end of its requests
                if (!_process.WaitForExit(TimeSpan.FromMilliseconds(200))) _process.Kill();
                _process.WaitForExit(TimeSpan.FromSeconds(5));
            }
            catch (Exception e) when (e is InvalidOperationException or IOException or System.ComponentModel.Win32Exception)
            {
                // Already gone.
            }
            _process.Dispose();
        }
    }
}
