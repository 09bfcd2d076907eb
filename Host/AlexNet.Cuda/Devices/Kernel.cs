namespace AlexNet.Cuda.Devices;

/// <summary>A compiled kernel module: the entry points of one kernel file compiled with one set of defines.</summary>
public abstract class KernelModule : IDisposable
{
    private readonly Dictionary<string, Kernel> _kernels = new(StringComparer.Ordinal);

    protected KernelModule(string sourceName, string cacheKey, bool fromCache, TimeSpan buildTime)
    {
        SourceName = sourceName;
        CacheKey = cacheKey;
        FromCache = fromCache;
        BuildTime = buildTime;
    }

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
                kernel = CreateKernel(name);
                _kernels[name] = kernel;
            }
            return kernel;
        }
    }

    protected abstract Kernel CreateKernel(string name);

    public void Dispose()
    {
        lock (_kernels)
        {
            foreach (Kernel kernel in _kernels.Values) kernel.Release();
            _kernels.Clear();
        }
        ReleaseModule();
        GC.SuppressFinalize(this);
    }

    protected abstract void ReleaseModule();
}

/// <summary>One entry point of a <see cref="KernelModule"/>; launch it with <see cref="ComputeDevice.Launch"/>.</summary>
public abstract class Kernel(KernelModule module, string name)
{
    public KernelModule Module { get; } = module;

    public string Name { get; } = name;

    internal abstract void Release();

    public override string ToString() => $"{Module.SourceName}:{Name}";
}

/// <summary>A point in a device's queue of work, for device-side timing.</summary>
public abstract class DeviceEvent : IDisposable
{
    public abstract void Dispose();
}
