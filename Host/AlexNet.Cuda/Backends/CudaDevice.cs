using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using AlexNet.Cuda.Compilation;
using AlexNet.Cuda.Devices;
using AlexNet.Cuda.Interop;

namespace AlexNet.Cuda.Backends;

/// <summary>
/// A CUDA GPU through the driver API: the device's primary context (shared with the runtime API, so
/// with PyTorch in the same process), non-blocking streams, kernels compiled by NVRTC for the GPU's own
/// architecture, GEMMs by cuBLAS (a handle per stream, created on a stream's first GEMM, so a machine
/// without cuBLAS can still run kernels).
/// </summary>
public sealed unsafe class CudaDevice : ComputeDevice
{
    private readonly int _ordinal;
    private readonly int _device;
    private IntPtr _context;
    private readonly CudaStream _defaultStream;

    private CudaDevice(int ordinal, int device, IntPtr context, IntPtr stream, KernelCache cache)
    {
        _ordinal = ordinal;
        _device = device;
        _context = context;
        _defaultStream = new CudaStream(this, stream);
        Cache = cache;
        Name = ReadName(device);
        CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetAttribute(out int major, CudaDeviceAttribute.ComputeCapabilityMajor, device));
        CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetAttribute(out int minor, CudaDeviceAttribute.ComputeCapabilityMinor, device));
        CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetAttribute(out int sms, CudaDeviceAttribute.MultiprocessorCount, device));
        CudaException.ThrowIfFailed(CudaDriver.cuDeviceTotalMem_v2(out nuint total, device));
        ComputeCapability = (major, minor);
        MultiprocessorCount = sms;
        TotalMemoryBytes = (long)total;
        Target = NvrtcCompiler.ChooseTarget(major, minor);
        CompilerVersion = NvrtcCompiler.VersionText;
    }

    /// <summary>
    /// Opens CUDA device <paramref name="ordinal"/>. Without a usable GPU this throws a
    /// <see cref="NoDeviceException"/> whose one-line message starts with "no CUDA device:".
    /// </summary>
    public static CudaDevice Open(int ordinal = 0, KernelCache? cache = null)
    {
        int count;
        try
        {
            NativeLibraries.Load(NativeLibraryId.CudaDriver);
            CudaException.ThrowIfFailed(CudaDriver.cuInit(0));
            CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetCount(out count));
        }
        catch (AlexNetException e)
        {
            throw new NoDeviceException(DeviceBackend.Cuda, $"no CUDA device: {e.Message}", e);
        }
        if (count == 0) throw new NoDeviceException(DeviceBackend.Cuda, "no CUDA device: the driver reports 0 devices");
        if (ordinal < 0 || ordinal >= count)
            throw new NoDeviceException(DeviceBackend.Cuda, $"no CUDA device {ordinal}: the driver reports {count} (0..{count - 1})");

        CudaException.ThrowIfFailed(CudaDriver.cuDeviceGet(out int device, ordinal));
        CudaException.ThrowIfFailed(CudaDriver.cuDevicePrimaryCtxRetain(out IntPtr context, device));
        IntPtr stream = IntPtr.Zero;
        try
        {
            CudaException.ThrowIfFailed(CudaDriver.cuCtxSetCurrent(context));
            CudaException.ThrowIfFailed(CudaDriver.cuStreamCreate(out stream, CudaDriver.StreamNonBlocking));
            return new CudaDevice(ordinal, device, context, stream, cache ?? KernelCache.Default);
        }
        catch (NativeLibraryNotFoundException e)
        {
            // A GPU without NVRTC cannot run a single kernel: for `auto` that is no CUDA device at all.
            if (stream != IntPtr.Zero) CudaDriver.cuStreamDestroy_v2(stream);
            CudaDriver.cuDevicePrimaryCtxRelease_v2(device);
            throw new NoDeviceException(DeviceBackend.Cuda, $"no usable CUDA device: {ReadName(device)} is present but {e.Message}", e);
        }
        catch
        {
            if (stream != IntPtr.Zero) CudaDriver.cuStreamDestroy_v2(stream);
            CudaDriver.cuDevicePrimaryCtxRelease_v2(device);
            throw;
        }
    }

    public override DeviceBackend Backend => DeviceBackend.Cuda;

    public override string Name { get; }

    public (int Major, int Minor) ComputeCapability { get; }

    public int MultiprocessorCount { get; }

    /// <summary>What NVRTC builds for this GPU.</summary>
    public NvrtcTarget Target { get; }

    public override string CompilerVersion { get; }

    public override long TotalMemoryBytes { get; }

    public override KernelCache Cache { get; }

    /// <summary>The default stream's CUDA handle (for interop with other CUDA libraries).</summary>
    public IntPtr Stream => _defaultStream.Handle;

    public override string Description =>
        $"cuda:{_ordinal} {Name} (compute capability {ComputeCapability.Major}.{ComputeCapability.Minor}, {MultiprocessorCount} SMs, {Bytes(TotalMemoryBytes)}; {CompilerVersion} -> {Target})";

    internal static string ReadName(int device)
    {
        Span<byte> name = stackalloc byte[256];
        fixed (byte* p = name) CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetName(p, name.Length, device));
        return NativeText.FromUtf8(name);
    }

    /// <summary>Every public operation may come from any thread; the context must be current on it.</summary>
    private void MakeCurrent()
    {
        ObjectDisposedException.ThrowIf(_context == IntPtr.Zero, this);
        CudaException.ThrowIfFailed(CudaDriver.cuCtxSetCurrent(_context));
    }

    /// <summary>Allocates device memory; an out-of-memory failure says how much was free.</summary>
    protected internal override nint AllocateMemory(long bytes)
    {
        MakeCurrent();
        CudaResult result = CudaDriver.cuMemAlloc_v2(out ulong pointer, (nuint)bytes);
        if (result == CudaResult.OutOfMemory)
        {
            CudaDriver.cuMemGetInfo_v2(out nuint free, out _);
            throw new AlexNetException($"out of GPU memory: allocating {Bytes(bytes)} on {Name} with {Bytes((long)free)} free; use a smaller batch or free other GPU work");
        }
        CudaException.ThrowIfFailed(result, $"cuMemAlloc_v2({bytes} bytes)");
        return (nint)pointer;
    }

    protected internal override void FreeMemory(nint handle)
    {
        if (_context == IntPtr.Zero) return;
        // Freeing must not throw: failures here (a context already torn down) are not actionable.
        if (CudaDriver.cuCtxSetCurrent(_context) == CudaResult.Success) CudaDriver.cuMemFree_v2((ulong)handle);
    }

    protected internal override void* AllocatePinnedMemory(long bytes)
    {
        MakeCurrent();
        CudaResult result = CudaDriver.cuMemHostAlloc(out void* pointer, (nuint)bytes, CudaDriver.MemHostAllocPortable);
        if (result == CudaResult.OutOfMemory)
            throw new AlexNetException($"out of page-locked host memory: allocating {Bytes(bytes)} failed; use a smaller batch");
        CudaException.ThrowIfFailed(result, $"cuMemHostAlloc({bytes} bytes)");
        return pointer;
    }

    protected internal override void FreePinnedMemory(void* pointer)
    {
        if (_context != IntPtr.Zero && CudaDriver.cuCtxSetCurrent(_context) == CudaResult.Success) CudaDriver.cuMemFreeHost(pointer);
    }

    // ---- kernels ----

    public override KernelModule LoadModule(KernelSource source, IReadOnlyDictionary<string, string>? defines = null)
    {
        MakeCurrent();
        var clock = Stopwatch.StartNew();
        NvrtcOutput output = NvrtcCompiler.CompileCached(Cache, source, Target, defines);
        IntPtr module = LoadImage(source.Name, output);
        string key = NvrtcCompiler.CacheKey(source, Target, defines);
        return Loaded(new CudaModule(this, module, source.Name, key, output.FromCache, clock.Elapsed));
    }

    private IntPtr LoadImage(string name, NvrtcOutput output)
    {
        const int logSize = 16 * 1024;
        byte* errorLog = stackalloc byte[logSize];
        errorLog[0] = 0;
        CudaJitOption* options = stackalloc CudaJitOption[2];
        void** values = stackalloc void*[2];
        options[0] = CudaJitOption.ErrorLogBuffer;
        values[0] = errorLog;
        options[1] = CudaJitOption.ErrorLogBufferSizeBytes;
        values[1] = (void*)(nint)logSize;
        CudaResult result;
        IntPtr module;
        fixed (byte* image = output.Image)
            result = CudaDriver.cuModuleLoadDataEx(out module, image, 2, options, values);
        if (result != CudaResult.Success)
        {
            string log = NativeText.FromUtf8(new ReadOnlySpan<byte>(errorLog, logSize));
            CudaException error = CudaException.Create(result, $"cuModuleLoadDataEx({name}, {output.Target})");
            throw log.Length == 0 ? error : new AlexNetException($"{error.Message}; JIT log: {log.ReplaceLineEndings(" ")}", error);
        }
        return module;
    }

    // ---- streams and timing ----

    public override ComputeStream DefaultStream => _defaultStream;

    protected override ComputeStream CreateStreamCore()
    {
        MakeCurrent();
        CudaException.ThrowIfFailed(CudaDriver.cuStreamCreate(out IntPtr stream, CudaDriver.StreamNonBlocking));
        return new CudaStream(this, stream);
    }

    public override double ElapsedMilliseconds(DeviceEvent start, DeviceEvent end)
    {
        if (start is not CudaEvent s || end is not CudaEvent e) throw new ArgumentException("events of another backend");
        MakeCurrent();
        CudaException.ThrowIfFailed(CudaDriver.cuEventSynchronize(e.Handle));
        CudaException.ThrowIfFailed(CudaDriver.cuEventElapsedTime(out float ms, s.Handle, e.Handle));
        return ms;
    }

    protected override void Dispose(bool disposing)
    {
        if (_context == IntPtr.Zero) return;
        // Releasing never throws; a failed synchronize here means the work is lost anyway.
        CudaDriver.cuCtxSetCurrent(_context);
        _defaultStream.Dispose();
        CudaDriver.cuDevicePrimaryCtxRelease_v2(_device);
        _context = IntPtr.Zero;
    }

    /// <summary>A CUDA stream with its own cuBLAS handle (created on the first GEMM), so GEMMs on
    /// different streams need no lock and no stream switching.</summary>
    private sealed class CudaStream(CudaDevice device, IntPtr stream) : ComputeStream(device)
    {
        private readonly CudaDevice _device = device;
        private IntPtr _stream = stream;
        private IntPtr _cublas;
        private readonly Lock _cublasGate = new();

        public IntPtr Handle => _stream;

        protected override void WriteMemory(nint handle, long byteOffset, void* source, long bytes, bool wait)
        {
            _device.MakeCurrent();
            // Stream-ordered after the queued work; waiting afterwards lets the caller reuse pageable memory.
            CudaException.ThrowIfFailed(CudaDriver.cuMemcpyHtoDAsync_v2((ulong)handle + (ulong)byteOffset, source, (nuint)bytes, _stream));
            if (wait) CudaException.ThrowIfFailed(CudaDriver.cuStreamSynchronize(_stream));
        }

        protected override void ReadMemory(nint handle, long byteOffset, void* destination, long bytes, bool wait)
        {
            _device.MakeCurrent();
            CudaException.ThrowIfFailed(CudaDriver.cuMemcpyDtoHAsync_v2(destination, (ulong)handle + (ulong)byteOffset, (nuint)bytes, _stream));
            if (wait) CudaException.ThrowIfFailed(CudaDriver.cuStreamSynchronize(_stream));
        }

        protected override void FillMemory(nint handle, uint pattern, long count)
        {
            _device.MakeCurrent();
            CudaException.ThrowIfFailed(CudaDriver.cuMemsetD32Async((ulong)handle, pattern, (nuint)count, _stream));
        }

        public override void Launch(Kernel kernel, Dim3 grid, Dim3 block, in KernelArguments arguments)
        {
            if (kernel is not CudaKernel cuda || !ReferenceEquals(cuda.Device, _device))
                throw new ArgumentException($"kernel {kernel} was not compiled for this device", nameof(kernel));
            if (grid.Volume == 0 || block.Volume == 0) return;
            _device.MakeCurrent();
            int count = arguments.Count;
            void** parameters = stackalloc void*[Math.Max(count, 1)];
            fixed (byte* data = &Unsafe.AsRef(in arguments.Data))
            {
                for (int i = 0; i < count; i++) parameters[i] = data + arguments.OffsetOf(i);
                CudaResult result = CudaDriver.cuLaunchKernel(cuda.Function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z,
                    0, _stream, parameters, null);
                if (result != CudaResult.Success)
                    throw CudaException.Create(result, $"cuLaunchKernel({kernel}, grid {grid}, block {block})");
            }
        }

        private IntPtr CublasHandle()
        {
            lock (_cublasGate)
            {
                if (_cublas != IntPtr.Zero) return _cublas;
                _device.MakeCurrent();
                CublasException.ThrowIfFailed(Cublas.cublasCreate_v2(out IntPtr handle));
                CublasException.ThrowIfFailed(Cublas.cublasSetStream_v2(handle, _stream));
                // Plain FP32 unless asked otherwise: TF32 would change results in the 4th digit.
                CublasException.ThrowIfFailed(Cublas.cublasSetMathMode(handle, CublasMath.Default));
                _cublas = handle;
                return handle;
            }
        }

        private static CublasOperation Op(MatrixOp op) => op == MatrixOp.None ? CublasOperation.None : CublasOperation.Transpose;

        private static ulong At(DeviceBuffer<float> buffer, long offset) => (ulong)buffer.Handle + (ulong)offset * sizeof(float);

        protected override void GemmCore(MatrixOp transA, MatrixOp transB, int m, int n, int k,
            float alpha, DeviceBuffer<float> a, long aOffset, int lda,
            DeviceBuffer<float> b, long bOffset, int ldb,
            float beta, DeviceBuffer<float> c, long cOffset, int ldc)
        {
            IntPtr handle = CublasHandle();
            _device.MakeCurrent();
            CublasException.ThrowIfFailed(Cublas.cublasSgemm_v2(handle, Op(transA), Op(transB), m, n, k,
                &alpha, At(a, aOffset), lda, At(b, bOffset), ldb, &beta, At(c, cOffset), ldc));
        }

        protected override void GemmStridedBatchedCore(MatrixOp transA, MatrixOp transB, int m, int n, int k,
            float alpha, DeviceBuffer<float> a, long aOffset, int lda, long strideA,
            DeviceBuffer<float> b, long bOffset, int ldb, long strideB,
            float beta, DeviceBuffer<float> c, long cOffset, int ldc, long strideC, int batchCount)
        {
            IntPtr handle = CublasHandle();
            _device.MakeCurrent();
            CublasException.ThrowIfFailed(Cublas.cublasSgemmStridedBatched(handle, Op(transA), Op(transB), m, n, k,
                &alpha, At(a, aOffset), lda, strideA, At(b, bOffset), ldb, strideB, &beta, At(c, cOffset), ldc, strideC, batchCount));
        }

        public override void Synchronize()
        {
            _device.MakeCurrent();
            CudaException.ThrowIfFailed(CudaDriver.cuStreamSynchronize(_stream));
        }

        public override DeviceEvent RecordEvent()
        {
            _device.MakeCurrent();
            CudaException.ThrowIfFailed(CudaDriver.cuEventCreate(out IntPtr handle, CudaDriver.EventDefault));
            var ev = new CudaEvent(_device, handle);
            CudaException.ThrowIfFailed(CudaDriver.cuEventRecord(handle, _stream));
            return ev;
        }

        public override void Wait(DeviceEvent @event)
        {
            if (@event is not CudaEvent e) throw new ArgumentException("an event of another backend", nameof(@event));
            _device.MakeCurrent();
            CudaException.ThrowIfFailed(CudaDriver.cuStreamWaitEvent(_stream, e.Handle, 0));
        }

        protected override void Dispose(bool disposing)
        {
            IntPtr stream = Interlocked.Exchange(ref _stream, IntPtr.Zero);
            if (stream == IntPtr.Zero || _device._context == IntPtr.Zero) return;
            if (CudaDriver.cuCtxSetCurrent(_device._context) != CudaResult.Success) return;
            CudaDriver.cuStreamSynchronize(stream);
            if (_cublas != IntPtr.Zero) Cublas.cublasDestroy_v2(_cublas);
            _cublas = IntPtr.Zero;
            CudaDriver.cuStreamDestroy_v2(stream);
        }
    }

    private sealed class CudaModule(CudaDevice device, IntPtr module, string name, string key, bool fromCache, TimeSpan time)
        : KernelModule(name, key, fromCache, time)
    {
        private IntPtr _module = module;

        protected override Kernel CreateKernel(string kernelName)
        {
            ObjectDisposedException.ThrowIf(_module == IntPtr.Zero, this);
            device.MakeCurrent();
            byte[] nameBytes = NativeText.NulTerminated(kernelName);
            CudaResult result;
            IntPtr function;
            fixed (byte* p = nameBytes) result = CudaDriver.cuModuleGetFunction(out function, _module, p);
            if (result == CudaResult.NotFound)
                throw new AlexNetException($"kernel '{kernelName}' is not defined in {SourceName} (is it declared KERNEL, i.e. extern \"C\"?)");
            CudaException.ThrowIfFailed(result, $"cuModuleGetFunction({SourceName}, {kernelName})");
            return new CudaKernel(this, kernelName, device, function);
        }

        protected override void ReleaseModule()
        {
            IntPtr module = Interlocked.Exchange(ref _module, IntPtr.Zero);
            if (module != IntPtr.Zero && device._context != IntPtr.Zero && CudaDriver.cuCtxSetCurrent(device._context) == CudaResult.Success)
                CudaDriver.cuModuleUnload(module);
        }
    }

    private sealed class CudaKernel(KernelModule module, string name, CudaDevice device, IntPtr function) : Kernel(module, name)
    {
        public CudaDevice Device { get; } = device;

        public IntPtr Function { get; } = function;

        internal override void Release() { } // functions die with their module
    }

    private sealed class CudaEvent(CudaDevice device, IntPtr handle) : DeviceEvent
    {
        public IntPtr Handle { get; private set; } = handle;

        public override void Dispose()
        {
            if (Handle == IntPtr.Zero || device._context == IntPtr.Zero) return;
            CudaDriver.cuEventDestroy_v2(Handle);
            Handle = IntPtr.Zero;
        }
    }
}
