using AlexNet.Cuda.Compilation;

namespace AlexNet.Cuda.Devices;

/// <summary>A compiled kernel module: the entry points of one kernel file compiled with one set of defines.</summary>
public abstract class KernelModule : IDisposable
{
    private readonly Dictionary<string, Kernel> _kernels = new(StringComparer.Ordinal);

    private readonly IReadOnlyDictionary<string, KernelSignature> _signatures;

    private readonly ComputeDevice _device;
    private int _released;

    protected KernelModule(ComputeDevice device, KernelSource source, string cacheKey, bool fromCache, TimeSpan buildTime)
    {
        _device = device;
        _signatures = source.Signatures;
        SourceName = source.Name;
        CacheKey = cacheKey;
        FromCache = fromCache;
        BuildTime = buildTime;
        device.Retain();
    }

    public ComputeDevice Device => _device;

    /// <summary>The kernel file (<c>transpose.cu</c>).</summary>
    public string SourceName { get; }

    /// <summary>Hash of source, defines, compiler version and target: the on-disk cache entry's name.</summary>
    public string CacheKey { get; }

    /// <summary>True when the binary came from the disk cache instead of the compiler.</summary>
    public bool FromCache { get; }

    /// <summary>Time spent compiling (or loading from the cache).</summary>
    public TimeSpan BuildTime { get; }

    /// <summary>The entry point <paramref name="name"/> (an <c>extern "C"</c> KERNEL of the file).</summary>
    public Kernel GetKernel(string name)
    {
        lock (_kernels)
        {
            if (!_kernels.TryGetValue(name, out Kernel? kernel))
            {
                if (!_signatures.TryGetValue(name, out KernelSignature? signature))
                    throw new AlexNetException($"kernel '{name}' is not defined in {SourceName} (is it declared KERNEL?)");
                kernel = CreateKernel(signature);
                _kernels[name] = kernel;
            }
            return kernel;
        }
    }

    /// <summary>Creates the backend's kernel object for an entry point the source declares.</summary>
    protected abstract Kernel CreateKernel(KernelSignature signature);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        lock (_kernels)
        {
            foreach (Kernel kernel in _kernels.Values) kernel.Release();
            _kernels.Clear();
        }
        ReleaseModule();
        _device.Release();
        GC.SuppressFinalize(this);
    }

    protected abstract void ReleaseModule();
}

/// <summary>One entry point of a <see cref="KernelModule"/>; launch it with <see cref="ComputeStream.Launch"/>.</summary>
public abstract class Kernel(KernelModule module, KernelSignature signature)
{
    public KernelModule Module { get; } = module;

    public ComputeDevice Device => Module.Device;

    public string Name => Signature.Kernel;

    /// <summary>The parameter list the source declares; every launch's arguments are checked against it.</summary>
    public KernelSignature Signature { get; } = signature;

    /// <summary>
    /// Throws when <paramref name="arguments"/> do not match <see cref="Signature"/>: count, size and kind
    /// (pointer or scalar) of each. A loop over at most 32 entries; no allocation unless it fails.
    /// </summary>
    public void CheckArguments(in KernelArguments arguments)
    {
        IReadOnlyList<KernelParameter> parameters = Signature.Parameters;
        if (arguments.Count != parameters.Count)
            throw new ArgumentException($"kernel {this} takes {parameters.Count} arguments ({Signature}), {arguments.Count} were given");
        for (int i = 0; i < parameters.Count; i++)
        {
            KernelParameter p = parameters[i];
            bool pointer = p.Kind == KernelParameterKind.GlobalPointer;
            if (arguments.SizeOf(i) != p.Size || arguments.IsPointer(i) != pointer)
                throw new ArgumentException(
                    $"argument {i} of kernel {this} is '{p}' ({(pointer ? "a device buffer" : $"a {p.Size}-byte scalar")}), but " +
                    (arguments.IsPointer(i) ? "a device buffer" : $"a {arguments.SizeOf(i)}-byte scalar") + " was given");
        }
    }

    internal abstract void Release();

    public override string ToString() => $"{Module.SourceName}:{Name}";
}

/// <summary>
/// A point in a stream's queue of work: other streams wait on it (<see cref="ComputeStream.Wait"/>), and
/// two timing events measure the device time between them. Recorded with <see cref="ComputeStream.Record"/>,
/// as often as needed.
/// </summary>
public abstract class DeviceEvent : IDisposable
{
    private int _released;

    protected DeviceEvent(ComputeDevice device, bool timing)
    {
        Device = device;
        Timing = timing;
        device.Retain();
    }

    public ComputeDevice Device { get; }

    /// <summary>True when the event records time (for <see cref="ComputeDevice.ElapsedMilliseconds"/>).</summary>
    public bool Timing { get; }

    /// <summary>True once it has been recorded on a stream.</summary>
    public bool IsRecorded { get; protected set; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        ReleaseEvent();
        Device.Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Blocks the calling thread until the work before the event's last recording has finished
    /// (the host side of a pipeline: a batch's results are ready).</summary>
    public void Synchronize()
    {
        if (!IsRecorded) throw new InvalidOperationException("the event was never recorded");
        SynchronizeCore();
    }

    protected abstract void SynchronizeCore();

    /// <summary>Frees the native event; never throws.</summary>
    protected abstract void ReleaseEvent();
}
