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
/// architecture, GEMMs by cuBLAS with one handle per stream, and GEMMs with a bias(+ReLU) epilogue by cuBLASLt
/// (one handle for the device: cuBLASLt takes the stream per call). Everything a stream needs is created when
/// the stream is: nothing is created lazily inside a forward pass, which CUDA graph capture requires.
/// </summary>
public sealed unsafe class CudaDevice : ComputeDevice
{
    private readonly int _ordinal;
    private readonly int _device;
    private IntPtr _context;
    private readonly CudaStream _defaultStream;
    // cuBLASLt's handle, or zero with the reason (a library that is missing or of another release than cuBLAS's is not
    // a reason to refuse the GPU: only GemmBias needs it).
    private IntPtr _cublasLt;
    private readonly string? _cublasLtProblem;

    private CudaDevice(int ordinal, int device, IntPtr context, IntPtr stream, IntPtr cublas, KernelCache cache, string name, NvrtcTarget target)
    {
        _ordinal = ordinal;
        _device = device;
        _context = context;
        _defaultStream = new CudaStream(this, stream, cublas);
        Cache = cache;
        Name = name;
        CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetAttribute(out int major, CudaDeviceAttribute.ComputeCapabilityMajor, device));
        CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetAttribute(out int minor, CudaDeviceAttribute.ComputeCapabilityMinor, device));
        CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetAttribute(out int sms, CudaDeviceAttribute.MultiprocessorCount, device));
        CudaException.ThrowIfFailed(CudaDriver.cuDeviceTotalMem_v2(out nuint total, device));
        CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetAttribute(out int l2, CudaDeviceAttribute.L2CacheSize, device));
        CacheBytes = l2;
        ComputeCapability = (major, minor);
        MultiprocessorCount = sms;
        TotalMemoryBytes = (long)total;
        Target = target;
        CompilerVersion = NvrtcCompiler.VersionText;
        // cuBLAS 11 and later encode major·10000 + minor·100 + patch (111103 for 11.11.3).
        GemmProvider = Cublas.cublasGetVersion_v2(cublas, out int version) == CublasStatus.Success && version > 0
            ? $"cuBLAS {version / 10000}.{version / 100 % 100}.{version % 100}"
            : "cuBLAS";
        (_cublasLt, _cublasLtProblem) = OpenCublasLt(version);
    }

    /// <summary>
    /// cuBLASLt's handle, loaded after cuBLAS so that its soname resolves to the cuBLASLt that cuBLAS itself links
    /// (libcublas.so.N needs libcublasLt.so.N); a release other than cuBLAS's (<paramref name="cublasVersion"/>, 0
    /// when unknown) is refused, since the two are built together. Never throws: the problem comes back instead.
    /// </summary>
    private static (IntPtr Handle, string? Problem) OpenCublasLt(int cublasVersion)
    {
        try
        {
            NativeLibraries.Load(NativeLibraryId.CublasLt);
            int version = (int)CublasLt.cublasLtGetVersion();
            if (cublasVersion > 0 && version / 10000 != cublasVersion / 10000)
                return (IntPtr.Zero, $"cuBLASLt {Release(version)} ({NativeLibraries.LoadedPath(NativeLibraryId.CublasLt)}) is not the release of cuBLAS {Release(cublasVersion)} ({NativeLibraries.LoadedPath(NativeLibraryId.Cublas)})");
            using SignalHandlers.Scope handlers = SignalHandlers.Preserve();
            CublasLtException.ThrowIfFailed(CublasLt.cublasLtCreate(out IntPtr handle));
            return (handle, null);
        }
        catch (AlexNetException e)
        {
            return (IntPtr.Zero, e.Message);
        }
        catch (EntryPointNotFoundException e)
        {
            return (IntPtr.Zero, $"{NativeLibraries.LoadedPath(NativeLibraryId.CublasLt)} is not a cuBLASLt this engine can use: {e.Message}");
        }

        static string Release(int v) => $"{v / 10000}.{v / 100 % 100}.{v % 100}";
    }

    /// <summary>
    /// Opens CUDA device <paramref name="ordinal"/>. Without a GPU this throws a <see cref="NoDeviceException"/>
    /// whose one-line message starts with "no CUDA device:"; with a GPU that cannot be used (its context
    /// cannot be had, as in exclusive-process mode when another process holds it; NVRTC or cuBLAS missing or
    /// unable to build for it) with "no usable CUDA device:" and the reason, so <c>--device auto</c> falls back.
    /// </summary>
    public static CudaDevice Open(int ordinal = 0, KernelCache? cache = null)
    {
        int count;
        try
        {
            NativeLibraries.Load(NativeLibraryId.CudaDriver);
            // Driver initialisation must leave the runtime's fault handlers in place (SignalHandlers).
            using SignalHandlers.Scope handlers = SignalHandlers.Preserve();
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

        string name = $"CUDA device {ordinal}";
        int device = -1;
        IntPtr context = IntPtr.Zero, stream = IntPtr.Zero, cublas = IntPtr.Zero;
        try
        {
            CudaException.ThrowIfFailed(CudaDriver.cuDeviceGet(out device, ordinal));
            name = ReadName(device);
            CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetAttribute(out int major, CudaDeviceAttribute.ComputeCapabilityMajor, device));
            CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetAttribute(out int minor, CudaDeviceAttribute.ComputeCapabilityMinor, device));
            // NVRTC must be able to build for this GPU, or not one kernel can run; and what it builds must be
            // loadable by this driver (an unversioned libnvrtc.so may belong to a newer toolkit).
            NvrtcTarget target = NvrtcCompiler.ChooseTarget(major, minor);
            if (NvrtcCompiler.DriverProblem(NvrtcCompiler.Version, NativeLibraries.DriverCudaVersion(), target) is string problem)
                throw new AlexNetException($"{problem} (NVRTC from {NativeLibraries.LoadedPath(NativeLibraryId.Nvrtc)})");
            CudaException.ThrowIfFailed(CudaDriver.cuDevicePrimaryCtxRetain(out context, device));
            CudaException.ThrowIfFailed(CudaDriver.cuCtxSetCurrent(context));
            CudaException.ThrowIfFailed(CudaDriver.cuStreamCreate(out stream, CudaDriver.StreamNonBlocking));
            cublas = CreateCublas(stream);
            return new CudaDevice(ordinal, device, context, stream, cublas, cache ?? KernelCache.Default, name, target);
        }
        catch (AlexNetException e)
        {
            if (cublas != IntPtr.Zero) Cublas.cublasDestroy_v2(cublas);
            if (stream != IntPtr.Zero) CudaDriver.cuStreamDestroy_v2(stream);
            if (context != IntPtr.Zero) CudaDriver.cuDevicePrimaryCtxRelease_v2(device);
            throw Unusable(name, e);
        }
    }

    /// <summary>The error for a GPU that is present but cannot run the engine: <c>auto</c> falls back on it.</summary>
    internal static NoDeviceException Unusable(string deviceName, AlexNetException reason) =>
        new(DeviceBackend.Cuda, $"no usable CUDA device: {deviceName} is present but {reason.Message}", reason);

    /// <summary>A cuBLAS handle bound to <paramref name="stream"/>, in plain FP32 (TF32 would change results
    /// in the 4th digit; it is for the throughput modes to opt into).</summary>
    private static IntPtr CreateCublas(IntPtr stream)
    {
        using SignalHandlers.Scope handlers = SignalHandlers.Preserve();
        CublasException.ThrowIfFailed(Cublas.cublasCreate_v2(out IntPtr handle));
        try
        {
            CublasException.ThrowIfFailed(Cublas.cublasSetStream_v2(handle, stream));
            CublasException.ThrowIfFailed(Cublas.cublasSetMathMode(handle, CublasMath.Default));
            return handle;
        }
        catch
        {
            Cublas.cublasDestroy_v2(handle);
            throw;
        }
    }

    public override DeviceBackend Backend => DeviceBackend.Cuda;

    /// <summary>cuBLAS's mixed-precision GEMMs need tensor cores for TF32 and bf16 (compute capability 8.0,
    /// Ampere) and FP16 arithmetic for fp16 (6.0 here: every GPU NVRTC builds the engine for that has it).</summary>
    public override bool SupportsGemm(ElementFormat format, GemmMath math, out string? reason)
    {
        (int major, int minor) = ComputeCapability;
        int needed = math == GemmMath.Tf32 || format == ElementFormat.BFloat16 ? 80 : format == ElementFormat.Half ? 60 : 0;
        if (major * 10 + minor >= needed)
        {
            reason = null;
            return true;
        }
        reason = $"{Name} is compute capability {major}.{minor}; {ComputeStream.GemmMathName(format, math)} GEMMs need {needed / 10}.{needed % 10} or later";
        return false;
    }

    /// <summary>cuBLASLt's GEMM with a bias epilogue (<see cref="ComputeStream.GemmBias"/>) runs what cuBLAS's GEMMs do,
    /// where cuBLASLt loaded and its handle was created.</summary>
    public override bool SupportsGemmBias(ElementFormat format, GemmMath math, out string? reason)
    {
        if (_cublasLt == IntPtr.Zero)
        {
            reason = $"cuBLASLt is not available on {Name}: {_cublasLtProblem}";
            return false;
        }
        return SupportsGemm(format, math, out reason);
    }

    public override string Name { get; }

    public (int Major, int Minor) ComputeCapability { get; }

    public int MultiprocessorCount { get; }

    /// <summary>What NVRTC builds for this GPU.</summary>
    public NvrtcTarget Target { get; }

    public override string CompilerVersion { get; }

    public override string GemmProvider { get; }

    public override long TotalMemoryBytes { get; }

    public override long CacheBytes { get; }

    public override KernelCache Cache { get; }

    /// <summary>The default stream's CUDA handle (for interop with other CUDA libraries).</summary>
    public IntPtr Stream => _defaultStream.Handle;

    public override string Description =>
        $"cuda:{_ordinal} {Name} (compute capability {ComputeCapability.Major}.{ComputeCapability.Minor}, {MultiprocessorCount} SMs, {Bytes(TotalMemoryBytes)}, {Bytes(CacheBytes)} L2; {CompilerVersion} -> {Target})";

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

    protected override KernelModule LoadModuleCore(KernelSource source, IReadOnlyDictionary<string, string>? defines)
    {
        MakeCurrent();
        var clock = Stopwatch.StartNew();
        string key = NvrtcCompiler.CacheKey(source, Target, defines);
        (IntPtr module, bool fromCache) = LoadThroughCache(
            () => NvrtcCompiler.CompileCached(Cache, source, Target, defines),
            () =>
            {
                NvrtcCompiler.Discard(Cache, source, Target, defines);
                return NvrtcCompiler.CompileCached(Cache, source, Target, defines);
            },
            output => LoadImage(source.Name, output));
        return Loaded(new CudaModule(this, module, source, key, fromCache, clock.Elapsed));
    }

    /// <summary>
    /// Loads a compiled image, rebuilding once when an image from the disk cache fails to load (a
    /// truncated or corrupt file, or one a different driver cannot take): a bad cache entry costs one
    /// compile, never every start. A freshly compiled image that fails is a real error and is thrown.
    /// </summary>
    internal static (T Module, bool FromCache) LoadThroughCache<T>(Func<NvrtcOutput> compileCached, Func<NvrtcOutput> discardAndRecompile,
        Func<NvrtcOutput, T> load)
    {
        NvrtcOutput output = compileCached();
        try
        {
            return (load(output), output.FromCache);
        }
        catch (AlexNetException) when (output.FromCache)
        {
            NvrtcOutput rebuilt = discardAndRecompile();
            return (load(rebuilt), rebuilt.FromCache);
        }
    }

    /// <summary>The one place a module is loaded: the image is validated first, since the driver takes no
    /// length and would read past a truncated or corrupt one.</summary>
    private IntPtr LoadImage(string name, NvrtcOutput output)
    {
        if (CudaImage.Problem(output.Image, output.Target.Cubin) is string problem)
            throw new AlexNetException($"{name} ({output.Target}{(output.FromCache ? ", from the disk cache" : "")}) was not handed to the driver: {problem}");
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
        try
        {
            return new CudaStream(this, stream, CreateCublas(stream));
        }
        catch
        {
            CudaDriver.cuStreamDestroy_v2(stream);
            throw;
        }
    }

    protected override DeviceEvent CreateEventCore(bool timing)
    {
        MakeCurrent();
        CudaException.ThrowIfFailed(CudaDriver.cuEventCreate(out IntPtr handle, timing ? CudaDriver.EventDefault : CudaDriver.EventDisableTiming));
        return new CudaEvent(this, handle, timing);
    }

    protected override double ElapsedMillisecondsCore(DeviceEvent start, DeviceEvent end)
    {
        if (start is not CudaEvent s || end is not CudaEvent e) throw new ArgumentException("events of another backend");
        if (!s.IsRecorded || !e.IsRecorded) throw new ArgumentException("both events must be recorded before measuring between them");
        MakeCurrent();
        CudaException.ThrowIfFailed(CudaDriver.cuEventSynchronize(s.Handle));
        CudaException.ThrowIfFailed(CudaDriver.cuEventSynchronize(e.Handle));
        CudaException.ThrowIfFailed(CudaDriver.cuEventElapsedTime(out float ms, s.Handle, e.Handle));
        return ms;
    }

    protected override void ReleaseDevice()
    {
        if (_context == IntPtr.Zero) return;
        // After every stream (and so every plan of a stream) is gone; cublasLtDestroy synchronises the device.
        IntPtr lt = Interlocked.Exchange(ref _cublasLt, IntPtr.Zero);
        if (lt != IntPtr.Zero && CudaDriver.cuCtxSetCurrent(_context) == CudaResult.Success) CublasLt.cublasLtDestroy(lt);
        CudaDriver.cuDevicePrimaryCtxRelease_v2(_device);
        _context = IntPtr.Zero;
    }

    private static CublasOperation Op(MatrixOp op) => op == MatrixOp.None ? CublasOperation.None : CublasOperation.Transpose;

    private static CudaDataType DataType(ElementFormat format) => format switch
    {
        ElementFormat.Half => CudaDataType.R16F,
        ElementFormat.BFloat16 => CudaDataType.R16BF,
        _ => CudaDataType.R32F,
    };

    /// <summary>
    /// A checked column-major GEMM with a bias epilogue as cuBLASLt takes it: the same operations, sizes and leading
    /// dimensions, A's and B's type and C's (the bias, left at its default type, is C's: cuBLASLt's datatypes table
    /// pairs FP32, fp16 and bf16 D with a bias of the same type under CUBLAS_COMPUTE_32F), FP32 accumulation, or
    /// TF32 products (CUBLAS_COMPUTE_32F_FAST_TF32, FP32 operands) as GemmEx runs them.
    /// </summary>
    internal static CublasLtMatmulShape EpilogueShape(in GemmCall call, bool relu) => new(
        Op(call.TransA), Op(call.TransB), (ulong)call.M, (ulong)call.N, (ulong)call.K, call.Lda, call.Ldb, call.Ldc,
        DataType(call.Format), DataType(call.CFormat),
        call.Math == GemmMath.Tf32 ? CublasComputeType.Compute32FFastTf32 : CublasComputeType.Compute32F,
        relu ? CublasLtEpilogue.ReluBias : CublasLtEpilogue.Bias);

    /// <summary>The largest power of two up to 256 that divides <paramref name="address"/>: what an operand there is
    /// aligned to, for cuBLASLt's heuristic.</summary>
    internal static uint Alignment(ulong address) => address == 0 ? 256u : (uint)Math.Min(256UL, address & (~address + 1));

    /// <summary>One cuBLASLt problem at operand alignments: the key of a stream's plans.</summary>
    private readonly record struct EpilogueKey(CublasLtMatmulShape Shape, uint AlignA, uint AlignB, uint AlignC, uint AlignBias);

    /// <summary>A CUDA stream with its own cuBLAS handle, so GEMMs on different streams need no lock and
    /// no stream switching.</summary>
    private sealed class CudaStream(CudaDevice device, IntPtr stream, IntPtr cublas) : ComputeStream(device)
    {
        private readonly CudaDevice _device = device;
        private IntPtr _stream = stream;
        private IntPtr _cublas = cublas;
        private ulong _cublasWorkspace = AttachCublasWorkspace(device, cublas);
        private readonly nuint _cublasWorkspaceBytes = CublasWorkspaceBytes(device);
        // cuBLASLt plans by problem, made at a problem's first GemmBias (the heuristic is queried once per problem, as
        // cuBLASLt recommends) and reused by every later call, a graph capture's included. A model's pass has two per
        // batch size; past the bound they are all destroyed and made again as needed.
        private readonly Dictionary<EpilogueKey, CublasLtMatmulPlan> _epiloguePlans = [];
        private const int EpiloguePlanCapacity = 64;

        public IntPtr Handle => _stream;

        private IntPtr Live()
        {
            IntPtr stream = _stream;
            ObjectDisposedException.ThrowIf(stream == IntPtr.Zero, this);
            _device.MakeCurrent();
            return stream;
        }

        protected override void WriteMemory(nint handle, long byteOffset, void* source, long bytes, bool wait)
        {
            IntPtr stream = Live();
            // Stream-ordered after the queued work; waiting afterwards lets the caller reuse pageable memory.
            CudaException.ThrowIfFailed(CudaDriver.cuMemcpyHtoDAsync_v2((ulong)handle + (ulong)byteOffset, source, (nuint)bytes, stream));
            if (wait) CudaException.ThrowIfFailed(CudaDriver.cuStreamSynchronize(stream));
        }

        protected override void ReadMemory(nint handle, long byteOffset, void* destination, long bytes, bool wait)
        {
            IntPtr stream = Live();
            CudaException.ThrowIfFailed(CudaDriver.cuMemcpyDtoHAsync_v2(destination, (ulong)handle + (ulong)byteOffset, (nuint)bytes, stream));
            if (wait) CudaException.ThrowIfFailed(CudaDriver.cuStreamSynchronize(stream));
        }

        protected override void FillMemory(nint handle, uint pattern, long count)
        {
            IntPtr stream = Live();
            CudaException.ThrowIfFailed(CudaDriver.cuMemsetD32Async((ulong)handle, pattern, (nuint)count, stream));
        }

        protected override void LaunchCore(Kernel kernel, Dim3 grid, Dim3 block, in KernelArguments arguments, int sharedMemoryBytes)
        {
            if (kernel is not CudaKernel cuda || !ReferenceEquals(cuda.Device, _device))
                throw new ArgumentException($"kernel {kernel} was not compiled for this device", nameof(kernel));
            IntPtr stream = Live();
            cuda.AllowSharedMemory(sharedMemoryBytes);
            int count = arguments.Count;
            void** parameters = stackalloc void*[Math.Max(count, 1)];
            fixed (byte* data = &Unsafe.AsRef(in arguments.Data))
            {
                for (int i = 0; i < count; i++) parameters[i] = data + arguments.OffsetOf(i);
                CudaResult result = CudaDriver.cuLaunchKernel(cuda.Function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z,
                    (uint)sharedMemoryBytes, stream, parameters, null);
                if (result != CudaResult.Success)
                    throw CudaException.Create(result, $"cuLaunchKernel({kernel}, grid {grid}, block {block}, {sharedMemoryBytes} bytes shared)");
            }
        }

        private static ulong At(DeviceBuffer<float> buffer, long offset) => (ulong)buffer.Handle + (ulong)offset * sizeof(float);

        protected override void GemmCore(MatrixOp transA, MatrixOp transB, int m, int n, int k,
            float alpha, DeviceBuffer<float> a, long aOffset, int lda,
            DeviceBuffer<float> b, long bOffset, int ldb,
            float beta, DeviceBuffer<float> c, long cOffset, int ldc)
        {
            Live();
            CublasException.ThrowIfFailed(Cublas.cublasSgemm_v2(_cublas, Op(transA), Op(transB), m, n, k,
                &alpha, At(a, aOffset), lda, At(b, bOffset), ldb, &beta, At(c, cOffset), ldc));
        }

        protected override void GemmStridedBatchedCore(MatrixOp transA, MatrixOp transB, int m, int n, int k,
            float alpha, DeviceBuffer<float> a, long aOffset, int lda, long strideA,
            DeviceBuffer<float> b, long bOffset, int ldb, long strideB,
            float beta, DeviceBuffer<float> c, long cOffset, int ldc, long strideC, int batchCount)
        {
            Live();
            CublasException.ThrowIfFailed(Cublas.cublasSgemmStridedBatched(_cublas, Op(transA), Op(transB), m, n, k,
                &alpha, At(a, aOffset), lda, strideA, At(b, bOffset), ldb, strideB, &beta, At(c, cOffset), ldc, strideC, batchCount));
        }

        private static ulong At(DeviceBuffer buffer, long offset) => (ulong)buffer.Handle + (ulong)(offset * buffer.ElementSize);

        /// <summary>TF32 and the 16-bit formats: cublasGemmEx / cublasGemmStridedBatchedEx with FP32 accumulation
        /// (alpha and beta are floats for a 32F compute type), so tensor cores do the products.</summary>
        protected override void GemmExCore(in GemmCall call)
        {
            Live();
            float alpha = call.Alpha, beta = call.Beta;
            CudaDataType type = DataType(call.Format), cType = DataType(call.CFormat);
            CublasComputeType compute = call.Math == GemmMath.Tf32 ? CublasComputeType.Compute32FFastTf32 : CublasComputeType.Compute32F;
            if (call.BatchCount == 1)
                CublasException.ThrowIfFailed(Cublas.cublasGemmEx(_cublas, Op(call.TransA), Op(call.TransB), call.M, call.N, call.K,
                    &alpha, At(call.A, call.AOffset), type, call.Lda, At(call.B, call.BOffset), type, call.Ldb,
                    &beta, At(call.C, call.COffset), cType, call.Ldc, compute, CublasGemmAlgo.Default));
            else
                CublasException.ThrowIfFailed(Cublas.cublasGemmStridedBatchedEx(_cublas, Op(call.TransA), Op(call.TransB), call.M, call.N, call.K,
                    &alpha, At(call.A, call.AOffset), type, call.Lda, call.StrideA, At(call.B, call.BOffset), type, call.Ldb, call.StrideB,
                    &beta, At(call.C, call.COffset), cType, call.Ldc, call.StrideC, call.BatchCount, compute, CublasGemmAlgo.Default));
        }

        /// <summary>
        /// One cublasLtMatmul with the BIAS or RELU_BIAS epilogue, in place in C (beta 0), on this stream. Its workspace
        /// is this stream's cuBLAS workspace: the two libraries' kernels on one stream run one after the other, so they
        /// never use it at once, and no call allocates one during a capture.
        /// </summary>
        protected override void GemmBiasCore(in GemmCall call, DeviceBuffer bias, bool relu)
        {
            IntPtr stream = Live();
            IntPtr lt = _device._cublasLt;
            if (lt == IntPtr.Zero) throw new AlexNetException($"GemmBias: cuBLASLt is not available on {_device.Name}: {_device._cublasLtProblem}");
            ulong a = At(call.A, call.AOffset), b = At(call.B, call.BOffset), c = At(call.C, call.COffset), biasAddress = (ulong)bias.Handle;
            var key = new EpilogueKey(EpilogueShape(call, relu), Alignment(a), Alignment(b), Alignment(c), Alignment(biasAddress));
            lock (_epiloguePlans)
            {
                if (!_epiloguePlans.TryGetValue(key, out CublasLtMatmulPlan? plan))
                {
                    if (_epiloguePlans.Count >= EpiloguePlanCapacity) DestroyPlans();
                    plan = CublasLtMatmulPlan.Create(key.Shape);
                    try
                    {
                        // The heuristic reads the bias pointer's alignment, so it is set first.
                        plan.SetBias(biasAddress);
                        plan.ChooseAlgorithm(lt, _cublasWorkspaceBytes, key.AlignA, key.AlignB, key.AlignC);
                    }
                    catch
                    {
                        plan.Dispose();
                        throw;
                    }
                    _epiloguePlans[key] = plan;
                }
                else
                {
                    plan.SetBias(biasAddress);
                }
                plan.Run(lt, a, b, c, _cublasWorkspace, _cublasWorkspaceBytes, stream);
            }
        }

        private void DestroyPlans()
        {
            foreach (CublasLtMatmulPlan plan in _epiloguePlans.Values) plan.Dispose();
            _epiloguePlans.Clear();
        }

        public override void Synchronize() => CudaException.ThrowIfFailed(CudaDriver.cuStreamSynchronize(Live()));

        public override void Record(DeviceEvent @event)
        {
            if (@event is not CudaEvent e || !ReferenceEquals(e.Device, _device))
                throw new ArgumentException("an event of another device or backend", nameof(@event));
            CudaException.ThrowIfFailed(CudaDriver.cuEventRecord(e.Handle, Live()));
            e.MarkRecorded();
        }

        public override void Wait(DeviceEvent @event)
        {
            if (@event is not CudaEvent e || !ReferenceEquals(e.Device, _device))
                throw new ArgumentException("an event of another device or backend", nameof(@event));
            CudaException.ThrowIfFailed(CudaDriver.cuStreamWaitEvent(Live(), e.Handle, 0));
        }

        protected override void Dispose(bool disposing)
        {
            IntPtr stream = Interlocked.Exchange(ref _stream, IntPtr.Zero);
            IntPtr cublas = Interlocked.Exchange(ref _cublas, IntPtr.Zero);
            if (stream == IntPtr.Zero || _device._context == IntPtr.Zero) return;
            if (CudaDriver.cuCtxSetCurrent(_device._context) != CudaResult.Success) return;
            // Releasing never throws; a failed synchronize here means the work is lost anyway.
            CudaDriver.cuStreamSynchronize(stream);
            if (cublas != IntPtr.Zero) Cublas.cublasDestroy_v2(cublas);
            lock (_epiloguePlans) DestroyPlans();
            ulong workspace = Interlocked.Exchange(ref _cublasWorkspace, 0);
            if (workspace != 0) CudaDriver.cuMemFree_v2(workspace);
            CudaDriver.cuStreamDestroy_v2(stream);
        }

        // ---- graphs ----

        public override string? GraphsUnsupportedReason => null;

        // Thread-local: a call on this thread that capture cannot record (an allocation, a synchronisation)
        // fails the capture, while other threads (decoders allocating pinned buffers) are left alone.
        protected override void BeginCaptureCore() =>
            CudaException.ThrowIfFailed(CudaDriver.cuStreamBeginCapture_v2(Live(), CudaStreamCaptureMode.ThreadLocal));

        protected override DeviceGraph EndCaptureCore()
        {
            IntPtr stream = Live();
            CudaResult ended = CudaDriver.cuStreamEndCapture(stream, out IntPtr graph);
            if (ended != CudaResult.Success)
            {
                if (graph != IntPtr.Zero) CudaDriver.cuGraphDestroy(graph);
                throw CudaException.Create(ended, "cuStreamEndCapture(stream, out graph)");
            }
            if (graph == IntPtr.Zero)
                throw new AlexNetException("cuStreamEndCapture returned no graph: the capture was invalidated by a call it cannot record");
            try
            {
                CudaException.ThrowIfFailed(CudaDriver.cuGraphInstantiateWithFlags(out IntPtr executable, graph, 0));
                return new CudaGraph(_device, executable);
            }
            finally
            {
                // The executable graph is independent of the graph it was made from.
                CudaDriver.cuGraphDestroy(graph);
            }
        }

        protected override void AbandonCaptureCore()
        {
            IntPtr stream = _stream;
            if (stream == IntPtr.Zero || _device._context == IntPtr.Zero || CudaDriver.cuCtxSetCurrent(_device._context) != CudaResult.Success) return;
            if (CudaDriver.cuStreamIsCapturing(stream, out CudaStreamCaptureStatus status) != CudaResult.Success || status == CudaStreamCaptureStatus.None) return;
            // Active or invalidated, the capture must be ended before the stream takes work again.
            if (CudaDriver.cuStreamEndCapture(stream, out IntPtr graph) == CudaResult.Success && graph != IntPtr.Zero)
                CudaDriver.cuGraphDestroy(graph);
        }

        /// <summary>Queues one replay of an instantiated graph on this stream.</summary>
        internal void LaunchGraph(IntPtr executable) => CudaException.ThrowIfFailed(CudaDriver.cuGraphLaunch(executable, Live()));
    }

    /// <summary>
    /// cuBLAS's recommended workspace (32 MiB on Hopper and later, 4 MiB before), allocated with the stream
    /// and given to its handle: without one of its own a handle may allocate its workspace inside a GEMM, which
    /// stream capture cannot record. Each stream's handle gets its own, as GEMMs on two streams may overlap.
    /// </summary>
    private static ulong AttachCublasWorkspace(CudaDevice device, IntPtr cublas)
    {
        nuint bytes = CublasWorkspaceBytes(device);
        CudaException.ThrowIfFailed(CudaDriver.cuMemAlloc_v2(out ulong workspace, bytes), $"cuMemAlloc_v2({bytes} bytes for the cuBLAS workspace)");
        CublasStatus status = Cublas.cublasSetWorkspace_v2(cublas, workspace, bytes);
        if (status != CublasStatus.Success)
        {
            CudaDriver.cuMemFree_v2(workspace);
            CublasException.ThrowIfFailed(status, "cublasSetWorkspace_v2(handle, workspace, bytes)");
        }
        return workspace;
    }

    private static nuint CublasWorkspaceBytes(CudaDevice device)
    {
        CudaException.ThrowIfFailed(CudaDriver.cuDeviceGetAttribute(out int major, CudaDeviceAttribute.ComputeCapabilityMajor, device._device));
        return (nuint)(major >= 9 ? 32 : 4) << 20;
    }

    /// <summary>An instantiated CUDA graph (<c>CUgraphExec</c>).</summary>
    private sealed class CudaGraph(CudaDevice device, IntPtr executable) : DeviceGraph(device)
    {
        private IntPtr _executable = executable;

        protected override void LaunchCore(ComputeStream stream)
        {
            if (stream is not CudaStream cuda) throw new ArgumentException("a stream of another backend", nameof(stream));
            cuda.LaunchGraph(_executable);
        }

        protected override void ReleaseGraph()
        {
            // An executable graph still running is freed by the driver once it completes.
            IntPtr executable = Interlocked.Exchange(ref _executable, IntPtr.Zero);
            if (executable != IntPtr.Zero && device._context != IntPtr.Zero && CudaDriver.cuCtxSetCurrent(device._context) == CudaResult.Success)
                CudaDriver.cuGraphExecDestroy(executable);
        }
    }

    private sealed class CudaModule(CudaDevice device, IntPtr module, KernelSource source, string key, bool fromCache, TimeSpan time)
        : KernelModule(device, source, key, fromCache, time)
    {
        private IntPtr _module = module;

        protected override Kernel CreateKernel(KernelSignature signature)
        {
            ObjectDisposedException.ThrowIf(_module == IntPtr.Zero, this);
            device.MakeCurrent();
            byte[] nameBytes = NativeText.NulTerminated(signature.Kernel);
            CudaResult result;
            IntPtr function;
            fixed (byte* p = nameBytes) result = CudaDriver.cuModuleGetFunction(out function, _module, p);
            if (result == CudaResult.NotFound)
                throw new AlexNetException($"kernel '{signature.Kernel}' is not defined in {SourceName} (is it declared KERNEL, i.e. extern \"C\"?)");
            CudaException.ThrowIfFailed(result, $"cuModuleGetFunction({SourceName}, {signature.Kernel})");
            (List<int>? compiled, CudaResult? parameterInfo) = CompiledParameterSizes(function);
            if (compiled is not null) CheckCompiledSignature(SourceName, signature, compiled);
            return new CudaKernel(this, signature, device, function, parameterInfo);
        }

        protected override void ReleaseModule()
        {
            IntPtr module = Interlocked.Exchange(ref _module, IntPtr.Zero);
            if (module != IntPtr.Zero && device._context != IntPtr.Zero && CudaDriver.cuCtxSetCurrent(device._context) == CudaResult.Success)
                CudaDriver.cuModuleUnload(module);
        }
    }

    /// <summary>The compiled kernel's parameter sizes from the driver (CUDA 12.4+), or null where the
    /// driver cannot say; and what <c>cuFuncGetParamInfo</c> answered: <see cref="CudaResult.Success"/> when the
    /// sizes were read, the failing status otherwise, null when the driver lacks the entry point.</summary>
    private static (List<int>? Sizes, CudaResult? Result) CompiledParameterSizes(IntPtr function)
    {
        var sizes = new List<int>();
        for (nuint i = 0; i < KernelArguments.MaxArguments + 1; i++)
        {
            CudaResult? result = CudaDriver.TryFuncGetParamInfo(function, i, out _, out nuint size);
            if (result is null) return (null, null);
            if (result == CudaResult.InvalidValue) return (sizes, CudaResult.Success); // past the last parameter
            if (result != CudaResult.Success) return (null, result);
            sizes.Add((int)size);
        }
        return (sizes, CudaResult.Success);
    }

    /// <summary>
    /// What <c>cuFuncGetParamInfo</c> answered when <paramref name="kernel"/> was created:
    /// <see cref="CudaResult.Success"/> when its compiled parameters were compared with the declared ones,
    /// the failing status when the driver could not say, null when the driver lacks the entry point.
    /// </summary>
    internal static CudaResult? ParameterInfoResult(Kernel kernel) => kernel is CudaKernel cuda
        ? cuda.ParameterInfo
        : throw new ArgumentException($"kernel {kernel} is not a CUDA kernel", nameof(kernel));

    /// <summary>
    /// The declared signature (read from the source) must agree with what the compiler made of it, or the
    /// host would pack arguments the kernel reads differently: one line naming the first disagreement.
    /// </summary>
    internal static void CheckCompiledSignature(string sourceName, KernelSignature declared, IReadOnlyList<int> compiledSizes)
    {
        IReadOnlyList<KernelParameter> parameters = declared.Parameters;
        if (compiledSizes.Count != parameters.Count)
            throw new AlexNetException($"{sourceName}: kernel {declared.Kernel} is declared with {parameters.Count} parameters but compiled with {compiledSizes.Count}; the host's reading of its signature ({declared}) is wrong");
        for (int i = 0; i < parameters.Count; i++)
        {
            if (compiledSizes[i] != parameters[i].Size)
                throw new AlexNetException($"{sourceName}: parameter {i} of kernel {declared.Kernel} ('{parameters[i]}') is {parameters[i].Size} bytes to the host but {compiledSizes[i]} in the compiled kernel");
        }
    }

    private sealed class CudaKernel(KernelModule module, KernelSignature signature, CudaDevice device, IntPtr function,
        CudaResult? parameterInfo) : Kernel(module, signature)
    {
        private int _sharedMemoryAllowed = 48 * 1024; // what every kernel may use without opting in

        public new CudaDevice Device { get; } = device;

        public IntPtr Function { get; } = function;

        /// <summary>See <see cref="ParameterInfoResult"/>.</summary>
        public CudaResult? ParameterInfo { get; } = parameterInfo;

        /// <summary>More than 48 KiB of dynamic shared memory needs a per-function opt-in, made once.</summary>
        public void AllowSharedMemory(int bytes)
        {
            if (bytes <= _sharedMemoryAllowed) return;
            CudaException.ThrowIfFailed(CudaDriver.cuFuncSetAttribute(Function, CudaFunctionAttribute.MaxDynamicSharedSizeBytes, bytes),
                $"cuFuncSetAttribute({this}, MAX_DYNAMIC_SHARED_SIZE_BYTES, {bytes})");
            _sharedMemoryAllowed = bytes;
        }

        internal override void Release() { } // functions die with their module
    }

    private sealed class CudaEvent(CudaDevice device, IntPtr handle, bool timing) : DeviceEvent(device, timing)
    {
        public IntPtr Handle { get; private set; } = handle;

        public void MarkRecorded() => IsRecorded = true;

        protected override void SynchronizeCore()
        {
            device.MakeCurrent();
            CudaException.ThrowIfFailed(CudaDriver.cuEventSynchronize(Handle));
        }

        protected override void ReleaseEvent()
        {
            IntPtr handle = Handle;
            Handle = IntPtr.Zero;
            if (handle != IntPtr.Zero && device._context != IntPtr.Zero && CudaDriver.cuCtxSetCurrent(device._context) == CudaResult.Success)
                CudaDriver.cuEventDestroy_v2(handle);
        }
    }
}
